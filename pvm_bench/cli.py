"""The ``pvm-bench`` command line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from pvm_bench.cli_support import console, fail, user_errors
from pvm_bench.errors import UserError

app = typer.Typer(
    name="pvm-bench",
    help="Does a VLM keep looking at the image deep into a long answer? Evaluate base vs PVM, measure attention decay.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Micro-benchmarks (ratios within one run).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

out = Console(soft_wrap=True)  # never break paths that users copy

#: Modules contributing commands: each defines ``register(app)`` and/or ``register_bench(bench)``.
COMMAND_MODULES = (
    "pvm_bench.report.commands",
    "pvm_bench.pvm.commands",
    "pvm_bench.bench.probe",
    "pvm_bench.organism.commands",
)


DEFAULT_PROBES = "attention,lens"


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@app.command()
@user_errors
def run(
    model: Annotated[Optional[str], typer.Option(help="Hub id or local model dir (default: the built-in organism).")] = None,
    pvm: Annotated[Optional[str], typer.Option(help="PVM adapter dir or full reference checkpoint; adds the 'pvm' variant.")] = None,
    tasks: Annotated[Optional[str], typer.Option(help="Comma-separated task or group names (see `pvm-bench tasks`).")] = None,
    variants: Annotated[Optional[str], typer.Option(help="Comma-separated variants (default: base, plus pvm with --pvm).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most N samples per task.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Dataset split (default: the task's).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Local data: DIR/<task>/<split>.parquet in the hub schema.")] = None,
    include_path: Annotated[Optional[list[Path]], typer.Option(help="Extra folder of task modules (repeatable).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output root; the run goes to OUT/RUN_ID.")] = Path("reports"),
    run_id: Annotated[Optional[str], typer.Option(help="Run directory name (default: timestamp).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory (other options ignored).")] = None,
    batch_size: Annotated[int, typer.Option(help="Samples per generate() batch.")] = 4,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Override the task's generation length.")] = None,
    temperature: Annotated[float, typer.Option(help="0 = greedy; the paper uses 0.7 with 4 repeats.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass when temperature > 0.")] = 1.0,
    repeats: Annotated[int, typer.Option(help="Generations per sample (seeded per sample and repeat).")] = 1,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    probes: Annotated[str, typer.Option(help="Comma-separated probes ('' for none): attention, lens, branch (added with --pvm).")] = DEFAULT_PROBES,
    per_head: Annotated[bool, typer.Option(help="Keep per-head visual mass in attention.parquet.")] = False,
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    device_map: Annotated[Optional[str], typer.Option(help="'auto' to shard a large model over GPUs.")] = None,
    attn_implementation: Annotated[str, typer.Option(help="Base attention backend: sdpa | eager | flash_attention_2.")] = "sdpa",
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model code from the hub (off unless you pass it).")] = False,
    report: Annotated[bool, typer.Option(help="Write summary, plots and report.html at the end.")] = True,
    fail_on_sample_errors: Annotated[bool, typer.Option(help="Exit 1 when any sample could not be run (e.g. corrupt image).")] = True,
    quiet: Annotated[bool, typer.Option(help="No progress bar (CI logs).")] = False,
    launcher: Annotated[Optional[str], typer.Option(help="'torchrun' to start --nproc data-parallel workers.")] = None,
    nproc: Annotated[int, typer.Option(help="Workers per node with --launcher torchrun.")] = 2,
) -> None:
    """Evaluate MODEL (and its PVM variant) on tasks, with attention probes; write reports/RUN_ID/."""
    from pvm_bench.distributed import init_from_env

    if launcher is not None:
        _relaunch(launcher, nproc)
    _silence_library_progress()
    dist = init_from_env()
    try:
        _run_command(dist, locals())
    finally:
        dist.shutdown()


def _silence_library_progress() -> None:
    """Our rich bar is the progress display; transformers/datasets bars would interleave with it."""
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def _relaunch(launcher: str, nproc: int) -> None:
    """Re-run this command under torchrun (same arguments minus --launcher/--nproc)."""
    import subprocess

    if launcher != "torchrun":
        raise fail(f"unknown launcher '{launcher}'; the only launcher is 'torchrun'")
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg in ("--launcher", "--nproc"):
            skip = True
            continue
        if arg.startswith(("--launcher=", "--nproc=")):
            continue
        args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "pvm_bench", *args]
    raise typer.Exit(subprocess.call(cmd))


def _run_command(dist: Any, opts: dict[str, Any]) -> None:
    from pvm_bench.run import Runner

    quiet = opts["quiet"]
    runner: Runner | None = None
    failure: str | None = None
    if dist.is_main:
        try:
            runner = _create_runner(opts)
        except UserError as exc:
            failure = str(exc)
    payload = None
    if dist.is_main:
        payload = ("error", failure) if failure else ("dir", str(runner.run_dir))
    run_dir_or_error = dist.broadcast(payload)
    if run_dir_or_error[0] == "error":
        raise fail(run_dir_or_error[1])
    if runner is None:  # a non-zero rank joins the run rank 0 set up
        runner = Runner.resume(Path(run_dir_or_error[1]), dist, mark_resumed=False)
    runner.dist = dist
    _execute(runner, quiet=quiet or not dist.is_main)
    if not dist.is_main:
        return
    record = runner.record
    if runner.config.report:
        _report(runner.run_dir, quiet)
    counts = record.counts
    out.print(
        f"run {record.run_id}: {record.status}, {counts.get('samples', 0)} samples "
        f"({counts.get('errors', 0)} errors, {counts.get('truncated', 0)} truncated) -> {runner.run_dir}"
    )
    if runner.errors and opts["fail_on_sample_errors"]:
        raise fail(f"{len(runner.errors)} sample(s) could not be run (see 'error' in {runner.run_dir}/samples.jsonl)", 1)


def _create_runner(opts: dict[str, Any]) -> Any:
    from pvm_bench.run import RunConfig, Runner

    model, pvm, tasks = opts["model"], opts["pvm"], opts["tasks"]
    if opts["resume"] is not None:
        return Runner.resume(opts["resume"])
    extra: dict[str, Any] = {}
    if model is None:
        from pvm_bench.organism import default_run_options

        defaults = default_run_options()
        model = defaults.pop("model")
        pvm = pvm if pvm is not None else defaults.pop("pvm", None)
        tasks = tasks or defaults.pop("tasks")
        extra = {k: v for k, v in defaults.items() if k in RunConfig.model_fields}
    if not tasks:
        raise UserError("no tasks given; pass --tasks NAME[,NAME] (see `pvm-bench tasks`)")
    probes = _csv(opts["probes"])
    if pvm and opts["probes"] == DEFAULT_PROBES:
        probes.append("branch")  # with an adapter, also record what the branch writes
    config = RunConfig(
        model=model, pvm=pvm, tasks=_csv(tasks), variants=_csv(opts["variants"]), split=opts["split"],
        limit=opts["limit"], data_dir=str(opts["data_dir"]) if opts["data_dir"] else None,
        include_paths=[str(p) for p in opts["include_path"] or []], out=str(opts["out_dir"]), run_id=opts["run_id"],
        batch_size=opts["batch_size"], max_new_tokens=opts["max_new_tokens"], temperature=opts["temperature"],
        top_p=opts["top_p"], repeats=opts["repeats"], seed=opts["seed"], probes=probes,
        per_head=opts["per_head"], dtype=opts["dtype"], device=opts["device"], device_map=opts["device_map"],
        attn_implementation=opts["attn_implementation"], trust_remote_code=opts["trust_remote_code"],
        report=opts["report"],
    )
    # Organism defaults (split, limit, ...) apply only where the user left the CLI default.
    updates = {k: v for k, v in extra.items() if getattr(config, k) == RunConfig.model_fields[k].default}
    return Runner.create(config.model_copy(update=updates))


def _execute(runner: Any, *, quiet: bool) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if quiet:
        runner.execute(log=lambda msg: console.print(msg, highlight=False))
        return

    class Rate(TextColumn):
        def render(self, task: Any) -> Any:  # samples/s over the samples run in this process
            speed = task.finished_speed or task.speed
            return super().render(task) if speed is None else f"{speed:.2f} samples/s"

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(""),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
    ) as bar:
        handle = bar.add_task(f"run {runner.record.run_id}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(handle, completed=done, total=total)

        runner.execute(progress=progress, log=lambda msg: bar.console.print(msg, highlight=False))


def _report(run_dir: Path, quiet: bool) -> None:
    try:
        from pvm_bench.report import build_report
    except ImportError:
        return
    html = build_report(run_dir)
    if not quiet:
        out.print(f"report: {html}")


@app.command("models")
def list_models() -> None:
    """List the supported model families and example hub ids."""
    from pvm_bench.models.families import FAMILIES

    table = Table("family", "model_type", "decoder layers", "example ids")
    for spec in FAMILIES.values():
        table.add_row(spec.name, spec.model_type, spec.layers_path, ", ".join(spec.example_ids))
    out.print(table)


@app.command("tasks")
@user_errors
def list_tasks(
    include_path: Annotated[Optional[list[Path]], typer.Option(help="Extra folder of task modules.")] = None,
) -> None:
    """List the registered tasks and groups."""
    from pvm_bench.tasks import get_registry

    registry = get_registry(include_path or [])
    table = Table("task", "splits", "size", "metric", "source", "description")
    for name in sorted(registry.tasks):
        task = registry.tasks[name]
        table.add_row(
            name, ", ".join(task.splits), getattr(task, "size_hint", "") or "", task.metric,
            task.hub_id or "generated", task.description,
        )
    out.print(table)
    if registry.groups:
        groups = Table("group", "tasks")
        for name, members in sorted(registry.groups.items()):
            groups.add_row(name, ", ".join(members))
        out.print(groups)


def _register_modules() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that part of the package is not present in this build
            raise
        if hasattr(module, "register"):
            module.register(app)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_app)


_register_modules()


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
