"""``pvm-bench data export`` / ``pvm-bench data check``: benchmark data for air-gapped machines.

On a machine with hub access, ``pvm-bench data export mmmu,mathvista --out data/`` writes the
``--data-dir`` layout; copy the folder, then ``pvm-bench data check data/ --tasks mmmu,mathvista``
on the cluster validates it offline (same one-line errors as ``run``) before ``pvm-bench run
--data-dir data/ ...``. See :mod:`pvm_bench.data.export`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pvm_bench.cli.lazy import OVERRIDE_TASK_HELP
from pvm_bench.cli.support import console, csv_names, fail, user_errors


def export_command(
    tasks: Annotated[
        str, typer.Argument(metavar="TASKS", help="Comma-separated task or group names (see `pvm-bench tasks`).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Data folder to write: OUT/<task>/<split>.parquet.")],
    split: Annotated[
        str | None, typer.Option(help="Split to export (default: each task's default split; 'all': every split).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace tables that already exist.")] = False,
    include_path: Annotated[list[Path] | None, typer.Option(help="Extra folder of task modules (repeatable).")] = None,
    override_task: Annotated[list[str] | None, typer.Option(metavar="NAME", help=OVERRIDE_TASK_HELP)] = None,
) -> None:
    """Download TASKS from the Hugging Face hub into the --data-dir layout (run where the hub is reachable)."""
    from pvm_bench.data.export import export_tasks, resolve_tasks
    from pvm_bench.runner.preflight import hub_unreachable, offline_reason
    from pvm_bench.tasks import HubTask

    resolved = resolve_tasks(csv_names(tasks), include_path or [], override_task or ())
    if any(isinstance(t, HubTask) for t in resolved):  # one probe, not a minute of retries per file
        reason = offline_reason() or hub_unreachable()
        if reason:
            raise fail(f"data export downloads from the Hugging Face hub, but {reason}; run it on a machine that "
                       f"reaches the hub (unset HF_HUB_OFFLINE there), then copy {out} to this one")
    written = export_tasks(resolved, out, split, overwrite=overwrite,
                           log=lambda msg: console.print(msg, highlight=False, soft_wrap=True))
    if written:
        typer.echo(f"exported {len(written)} table(s) to {out}; on the offline machine: "
                   f"pvm-bench data check {out} --tasks {tasks}")


def check_command(
    data_dir: Annotated[
        Path,
        typer.Argument(metavar="DATA_DIR", help="A folder written by `pvm-bench data export` (or in the same layout)."),
    ],
    tasks: Annotated[str, typer.Option(help="Comma-separated task or group names to check.")],
    split: Annotated[
        str | None, typer.Option(help="Split to check (default: each task's default split; 'all': every split).")
    ] = None,
    images: Annotated[
        bool, typer.Option("--images/--no-images", help="Decode every image (slower, catches corrupt files).")
    ] = True,
    include_path: Annotated[list[Path] | None, typer.Option(help="Extra folder of task modules (repeatable).")] = None,
    override_task: Annotated[list[str] | None, typer.Option(metavar="NAME", help=OVERRIDE_TASK_HELP)] = None,
) -> None:
    """Validate DATA_DIR offline for TASKS as `pvm-bench run --data-dir` reads it; exit 2 on any problem."""
    from pvm_bench.data.export import check_task, resolve_tasks, task_splits

    os.environ["HF_HUB_OFFLINE"] = "1"  # a check never reaches for the hub
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    if not data_dir.is_dir():
        raise fail(f"data dir {data_dir} is not a directory; pass the folder written by `pvm-bench data export`")
    problems = 0
    for task in resolve_tasks(csv_names(tasks), include_path or [], override_task or ()):
        for name in task_splits(task, split):
            result = check_task(task, data_dir, name, images=images)
            if result.note:
                typer.echo(f"ok {task.name}: {result.note}")
            elif result.ok:
                pictures = f", {result.images} images decoded" if images else ""
                typer.echo(
                    f"ok {task.name}/{name}: {result.samples} samples{pictures} (fingerprint {result.fingerprint})"
                )
            for message in result.errors:
                problems += 1
                fail(message, 2)  # prints the one line; the exit comes after every task is checked
    if problems:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group (``export``, ``check``) to ``app``."""
    data = typer.Typer(help="Export benchmark data for offline machines and check a --data-dir.", no_args_is_help=True)
    data.command("export")(user_errors(export_command))
    data.command("check")(user_errors(check_command))
    app.add_typer(data, name="data")
