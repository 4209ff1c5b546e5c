"""``pvm-bench replay SOURCE``: diagnostics (and scores) for outputs that already exist.

SOURCE is a pvm-bench run directory, an lmms-eval ``--log_samples`` file (or the folder of them),
or a plain JSONL (:mod:`pvm_bench.replay.sources`). The result is a normal run directory
(samples.jsonl with the given outputs scored by pvm-bench's task scorers, attention.parquet,
report), so ``report``, ``compare`` and ``check`` work on it unchanged. With ``--score-only``
no model is loaded and no attention data is written. ``--launcher torchrun --nproc N`` shards
the samples over N workers exactly like ``run`` (same sharding, resume and merge).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pvm_bench.cli.support import csv_names, fail
from pvm_bench.errors import UserError

SOURCE_FIELDS = ("model", "pvm", "tasks", "variants", "split", "limit", "data_dir", "include_paths", "protocol",
                 "system_prompt", "min_pixels", "max_pixels", "max_new_tokens", "dtype", "device", "device_map",
                 "attn_implementation", "seed", "repeats", "batch_size", "judge")
"""Fields of a source run's config that a replay of it keeps (unless given on the command line)."""


def replay_config(source: Any, given: dict[str, Any], *, score_only: bool) -> Any:
    """The RunConfig of a replay of ``source``: the source run's settings (a run dir), then ``given``."""
    from pvm_bench.cli.options import build_run_config

    fields: dict[str, Any] = {}
    if source.kind == "run":
        fields = {k: source.config[k] for k in SOURCE_FIELDS if source.config.get(k) is not None}
        if "variants" not in given:
            fields["variants"] = list(dict.fromkeys(r.variant for r in source.rows if r.variant))
    fields.update(given)
    fields.setdefault("tasks", source.tasks)
    fields.setdefault("probes", ["attention", "lens", *(["branch"] if fields.get("pvm") else [])])
    fields["repeats"] = max(fields.get("repeats", 1), max(r.repeat for r in source.rows) + 1)
    if score_only:
        fields.update(model="none", pvm=None, probes=[])
    elif not fields.get("model"):
        raise UserError(f"{source.path}: no --model given; pass the model that generated the outputs "
                        "(or --score-only to score them without one)")
    return build_run_config({k: v for k, v in fields.items() if v is not None})


def register(app: typer.Typer) -> None:
    """Add ``replay`` to ``app``."""

    @app.command("replay")
    def replay(
        source: Annotated[
            Path,
            typer.Argument(
                help="A pvm-bench run dir, an lmms-eval *_samples_<task>.jsonl (or its folder), or a plain JSONL."
            ),
        ],
        input_format: Annotated[str, typer.Option("--format", help="auto | run | lmms-eval | jsonl.")] = "auto",
        model: Annotated[
            str | None, typer.Option(help="The model that generated the outputs (default: a run dir's own).")
        ] = None,
        pvm: Annotated[str | None, typer.Option(help="PVM adapter dir (default: a run dir's own).")] = None,
        variants: Annotated[
            str | None, typer.Option(help="Variants the outputs belong to (default: a run dir's; else base).")
        ] = None,
        tasks: Annotated[
            str | None, typer.Option(help="Task of the outputs (default: from the source; lmms-eval names are mapped).")
        ] = None,
        split: Annotated[str | None, typer.Option(help="Dataset split the outputs were generated on.")] = None,
        data_dir: Annotated[Path | None, typer.Option(help="Local data (as for run).")] = None,
        include_path: Annotated[
            list[Path] | None, typer.Option(help="Extra folder of task modules (repeatable).")
        ] = None,
        protocol: Annotated[
            str | None, typer.Option(help="default | lmms-eval: the input protocol the outputs were generated with.")
        ] = None,
        system_prompt: Annotated[str | None, typer.Option(help="System turn of every request ('' for none).")] = None,
        max_pixels: Annotated[int | None, typer.Option(help="Largest image size in pixels (Qwen-VL families).")] = None,
        min_pixels: Annotated[
            int | None, typer.Option(help="Smallest image size in pixels (Qwen-VL families).")
        ] = None,
        probes: Annotated[
            str | None,
            typer.Option(
                help="Probes to replay: attention, lens, branch (default: attention,lens, plus branch with a PVM)."
            ),
        ] = None,
        per_head: Annotated[bool, typer.Option("--per-head", help="Keep per-head visual mass.")] = False,
        per_image: Annotated[bool, typer.Option("--per-image", help="Record visual mass per image.")] = False,
        score_only: Annotated[
            bool, typer.Option("--score-only", help="No model: score the outputs with the task scorers only.")
        ] = False,
        max_new_tokens: Annotated[
            int | None, typer.Option(help="The generation limit the outputs were made with (marks truncated outputs).")
        ] = None,
        chunk: Annotated[int, typer.Option(min=1, help="Output positions per teacher-forced forward.")] = 512,
        batch_size: Annotated[int | None, typer.Option(help="Samples per replayed batch.")] = None,
        dtype: Annotated[str | None, typer.Option(help="Model dtype (default: a run dir's; else auto).")] = None,
        device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
        out_dir: Annotated[Path | None, typer.Option("--out", help="Output root (default: reports).")] = None,
        run_id: Annotated[str | None, typer.Option(help="Run directory name (default: timestamp).")] = None,
        resume: Annotated[Path | None, typer.Option(help="Continue the replay run in this directory.")] = None,
        report: Annotated[
            bool, typer.Option("--report/--no-report", help="Write summary, plots and report.html at the end.")
        ] = True,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
        launcher: Annotated[str | None, typer.Option(help="'torchrun' to start --nproc data-parallel workers.")] = None,
        nproc: Annotated[int, typer.Option(min=1, help="Workers per node with --launcher torchrun.")] = 2,
    ) -> None:
        """Replay existing outputs: attention diagnostics in one teacher-forced pass, scores by pvm-bench's scorers."""
        from pvm_bench.cli.run import _execute, _finish, _relaunch, _silence_library_progress
        from pvm_bench.runner.distributed import init_from_env

        given = {
            "model": model,
            "pvm": pvm,
            "variants": csv_names(variants) if variants else None,
            "tasks": csv_names(tasks) if tasks else None,
            "split": split,
            "data_dir": str(data_dir) if data_dir else None,
            "include_paths": [str(p) for p in include_path] if include_path else None,
            "protocol": protocol,
            "system_prompt": system_prompt,
            "max_pixels": max_pixels,
            "min_pixels": min_pixels,
            "probes": csv_names(probes) if probes is not None else None,
            "per_head": per_head or None,
            "per_image": per_image or None,
            "batch_size": batch_size,
            "max_new_tokens": max_new_tokens,
            "dtype": dtype,
            "device": device,
            "out": str(out_dir) if out_dir else None,
            "run_id": run_id,
            "report": report,
        }
        given = {k: v for k, v in given.items() if v is not None}
        if launcher is not None:
            _relaunch(launcher, nproc)
        _silence_library_progress()
        dist = init_from_env()
        try:
            runner = _open(dist, source, input_format, given, score_only=score_only, chunk=chunk, resume=resume)
            try:
                _execute(runner, quiet=quiet or not dist.is_main)
            except UserError as exc:
                raise fail(str(exc)) from None
            if dist.is_main:
                _finish(runner, True, report)
        finally:
            dist.shutdown()


def _open(dist: Any, source_path: Path, kind: str, given: dict[str, Any], *, score_only: bool, chunk: int,
          resume: Path | None) -> Any:
    """Rank 0 creates (or resumes) the run; the other ranks join it through replay.json."""
    from pvm_bench.replay.runner import ReplayRunner, ScoreOnlyRunner
    from pvm_bench.replay.sources import read_source

    cls = ScoreOnlyRunner if score_only else ReplayRunner
    payload: tuple[str, str] | None = None
    runner = None
    if dist.is_main:
        try:
            if resume is not None:
                runner = cls.reopen(resume)
            else:
                tasks = given.get("tasks")
                source = read_source(source_path, kind, tasks[0] if tasks and len(tasks) == 1 else None)
                runner = cls.start(replay_config(source, given, score_only=score_only), source, chunk=chunk)
            payload = ("dir", str(runner.run_dir))
        except UserError as exc:
            payload = ("error", str(exc))
    payload = dist.broadcast(payload)
    if payload[0] == "error":
        raise fail(payload[1])
    if runner is None:
        runner = cls.reopen(Path(payload[1]), dist, mark_resumed=False)
    runner.dist = dist
    return runner
