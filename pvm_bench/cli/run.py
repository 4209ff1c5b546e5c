"""``pvm-bench run``: collect the flags, build a RunConfig, execute it with progress, print the headline.

The command body does no orchestration of its own beyond that: :func:`pvm_bench.cli.options.build_run_config`
decides every default, :class:`pvm_bench.runner.run.Runner` runs, the report layer writes the summary, and
:mod:`pvm_bench.cli.progress` shows progress and the closing table. Importing this module loads no
torch or pandas (``pvm-bench --help`` stays fast).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand

from pvm_bench.cli.lazy import OVERRIDE_TASK_HELP, THREADS_HELP
from pvm_bench.cli.options import RESUME_FREE, gen_kwargs_fields, merge_fields, model_args_fields, normalize_args
from pvm_bench.cli.support import Context, OptionError, UsageError, console, csv_names, fail
from pvm_bench.config import ATTN_CHOICES, DEVICE_HELP, DTYPE_CHOICES, PROTOCOL_CHOICES, RunConfig
from pvm_bench.errors import UserError

out = Console(soft_wrap=True)  # never break paths that users copy

MODEL, TASKS, GEN, INPUTS, PROBES, OUTPUT, RESOURCES, LMMS = (
    "Model", "Tasks and data", "Generation", "Input protocol", "Probes", "Output and resume", "Resources",
    "lmms-eval spellings",
)
_D = RunConfig.model_fields


def _default(field: str) -> str:
    return str(_D[field].default)


class RunCommand(TyperCommand):
    """``run`` with lmms-eval spellings rewritten before parsing (see :func:`normalize_args`)."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        names = [opt for param in self.params for opt in (*param.opts, *param.secondary_opts)]
        try:
            args = normalize_args(args, names)
        except OptionError as exc:
            raise UsageError(str(exc), ctx) from None
        return super().parse_args(ctx, args)


def run(
    model: Annotated[str | None, typer.Option(
        help="Hub id or local model dir (default: the built-in organism, on its own tasks only).",
        rich_help_panel=MODEL)] = None,
    pvm: Annotated[str | None, typer.Option(
        help="PVM adapter dir or full reference checkpoint; adds the 'pvm' variant.", rich_help_panel=MODEL)] = None,
    dtype: Annotated[str | None, typer.Option(
        help=f"{' | '.join(DTYPE_CHOICES)} (default: {_default('dtype')}).", show_default=False,
        rich_help_panel=MODEL)] = None,
    device: Annotated[str | None, typer.Option(
        help=f"{DEVICE_HELP} (default: {_default('device')}).", show_default=False, rich_help_panel=MODEL)] = None,
    device_map: Annotated[str | None, typer.Option(
        help="'auto' to shard a large model over GPUs.", rich_help_panel=MODEL)] = None,
    attn_implementation: Annotated[str | None, typer.Option(
        help=f"Base attention backend: {' | '.join(ATTN_CHOICES)} (default: {_default('attn_implementation')}).",
        show_default=False, rich_help_panel=MODEL)] = None,
    trust_remote_code: Annotated[bool | None, typer.Option(
        "--trust-remote-code", help="Allow model code from the hub (off unless you pass it).", show_default=False,
        rich_help_panel=MODEL)] = None,
    judge: Annotated[str | None, typer.Option(
        help="Local judge model (dir or hub id) for tasks that can use one.", rich_help_panel=MODEL)] = None,
    tasks: Annotated[str | None, typer.Option(
        help="Comma-separated task or group names (see `pvm-bench tasks`).", rich_help_panel=TASKS)] = None,
    variants: Annotated[str | None, typer.Option(
        help="Comma-separated variants (default: base, plus pvm with --pvm). A bare fix is base+fix (PVM off); "
        "compose with '+' (pvm+pai); parameters after ':' (pai:alpha=0.2).", rich_help_panel=TASKS)] = None,
    split: Annotated[str | None, typer.Option(
        help="Dataset split (default: each task's own).", rich_help_panel=TASKS)] = None,
    limit: Annotated[int | None, typer.Option(
        help="At most N samples per task (default: all; organism: 100).", rich_help_panel=TASKS)] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Local data: DIR/<task>/<split>.parquet in the hub schema (see `pvm-bench data`).",
        rich_help_panel=TASKS)] = None,
    include_path: Annotated[list[Path] | None, typer.Option(
        help="Extra folder of task modules (repeatable).", rich_help_panel=TASKS)] = None,
    override_task: Annotated[list[str] | None, typer.Option(
        metavar="NAME", help=OVERRIDE_TASK_HELP, rich_help_panel=TASKS)] = None,
    allow_outside_data: Annotated[bool | None, typer.Option(
        "--allow-outside-data",
        help="Let image paths in --data-dir tables point outside it (off: such a sample fails).", show_default=False,
        rich_help_panel=TASKS)] = None,
    batch_size: Annotated[int | None, typer.Option(
        help=f"Samples per generate() batch (default: {_default('batch_size')}; organism: 8).", show_default=False,
        rich_help_panel=GEN)] = None,
    max_new_tokens: Annotated[int | None, typer.Option(
        help="Generation length (default: each task's own; organism: 256).", rich_help_panel=GEN)] = None,
    temperature: Annotated[float | None, typer.Option(
        help=f"0 = greedy; the paper uses 0.7 with 4 repeats (default: {_default('temperature')}).", show_default=False,
        rich_help_panel=GEN)] = None,
    top_p: Annotated[float | None, typer.Option(
        help="Nucleus mass in (0, 1] when sampling (default: the checkpoint's generation_config).",
        rich_help_panel=GEN)] = None,
    top_k: Annotated[int | None, typer.Option(
        help="Top-k when sampling (default: the checkpoint's generation_config).", rich_help_panel=GEN)] = None,
    repetition_penalty: Annotated[float | None, typer.Option(
        help="> 0; 1 = none (default: the checkpoint's generation_config).", rich_help_panel=GEN)] = None,
    repeats: Annotated[int | None, typer.Option(
        help=f"Generations per sample (seeded per sample and repeat) (default: {_default('repeats')}).",
        show_default=False, rich_help_panel=GEN)] = None,
    seed: Annotated[int | None, typer.Option(
        help=f"Run seed (default: {_default('seed')}).", show_default=False, rich_help_panel=GEN)] = None,
    protocol: Annotated[str | None, typer.Option(
        help=f"{' | '.join(PROTOCOL_CHOICES)}: 'lmms-eval' sends what lmms-eval 0.7.3's wrapper for the model family "
        "sends (Qwen3-VL: system turn 'You are a helpful assistant.', images within 200704..1605632 pixels) and "
        "parses an output cut inside <think> as lmms-eval does; 'pvm-paper' adds temperature 0.7 and 4 repeats (the "
        f"PVM paper's evaluation); flags below win (default: {_default('protocol')}).", show_default=False,
        rich_help_panel=INPUTS)] = None,
    system_prompt: Annotated[str | None, typer.Option(
        help="System turn for every request ('' for none) (default: the protocol's; none).",
        rich_help_panel=INPUTS)] = None,
    min_pixels: Annotated[int | None, typer.Option(
        help="Smallest image size in pixels, Qwen-VL families (default: the protocol's, else the processor's).",
        rich_help_panel=INPUTS)] = None,
    max_pixels: Annotated[int | None, typer.Option(
        help="Largest image size in pixels, Qwen-VL families; bounds the image tokens (default: the protocol's, else "
        "the processor's).", rich_help_panel=INPUTS)] = None,
    probes: Annotated[str | None, typer.Option(
        help="Comma-separated probes ('' for none): attention, lens, branch (default: attention,lens, plus branch "
        "with --pvm).", show_default=False, rich_help_panel=PROBES)] = None,
    per_head: Annotated[bool | None, typer.Option(
        "--per-head", help="Keep per-head visual mass in attention.parquet.", show_default=False,
        rich_help_panel=PROBES)] = None,
    per_image: Annotated[bool | None, typer.Option(
        "--per-image",
        help="Record visual mass per image (attention.parquet columns visual_mass_img0, visual_mass_img1, ...).",
        show_default=False, rich_help_panel=PROBES)] = None,
    maps: Annotated[str | None, typer.Option(
        help="Spatial attention maps (heat map over the image per generated token, in the sample browser) for the "
        f"first N samples of each task, or for sample ids 'id1,id2' (0 = none) (default: {_default('maps')}).",
        metavar="N|IDS", show_default=False, rich_help_panel=PROBES)] = None,
    ablate_after: Annotated[str | None, typer.Option(
        help="Comma-separated K: also run every variant blind from generated token K (variant+blind:after=K; 0 = "
        "text-only prior).", metavar="K,K,...", rich_help_panel=PROBES)] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out",
        help=f"Output root; the run goes to OUT/RUN_ID (lmms-eval: --output_path) (default: {_default('out')}).",
        show_default=False, rich_help_panel=OUTPUT)] = None,
    run_id: Annotated[str | None, typer.Option(
        help="Run directory name, a plain name (default: timestamp).", rich_help_panel=OUTPUT)] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Continue the run in this directory (other run options must match it).", rich_help_panel=OUTPUT)] = None,
    force_resume: Annotated[bool, typer.Option(
        "--force-resume",
        help="With --resume: continue even if the model, data or settings changed (recorded in run.json).",
        rich_help_panel=OUTPUT)] = False,
    report: Annotated[bool | None, typer.Option(
        "--report/--no-report", help="Write summary, plots and report.html at the end (default: --report).",
        show_default=False, rich_help_panel=OUTPUT)] = None,
    fail_on_sample_errors: Annotated[bool, typer.Option(
        help="Exit 1 when any sample could not be run (e.g. corrupt image).", rich_help_panel=OUTPUT)] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.", rich_help_panel=OUTPUT)] = False,
    wandb_project: Annotated[str | None, typer.Option(
        help="Log config, metrics and plots to this Weights & Biases project at the end (pip install "
        "'pvm-bench\\[wandb]').", rich_help_panel=OUTPUT)] = None,
    tensorboard: Annotated[Path | None, typer.Option(
        help="Log config, metrics and plots to this TensorBoard log dir at the end (pip install "
        "'pvm-bench\\[tensorboard]').", rich_help_panel=OUTPUT)] = None,
    threads: Annotated[int | None, typer.Option(help=THREADS_HELP, rich_help_panel=RESOURCES)] = None,
    launcher: Annotated[str | None, typer.Option(
        help="'torchrun' to start --nproc data-parallel workers.", rich_help_panel=RESOURCES)] = None,
    nproc: Annotated[int, typer.Option(
        min=1, help="Workers per node with --launcher torchrun.", rich_help_panel=RESOURCES)] = 2,
    model_args: Annotated[str | None, typer.Option(
        help="lmms-eval style pretrained=DIR,pvm=DIR,dtype=...,device_map=...,attn_implementation=...",
        rich_help_panel=LMMS)] = None,
    gen_kwargs: Annotated[str | None, typer.Option(
        help="lmms-eval style temperature=0.7,top_p=...,top_k=...,max_new_tokens=...,repetition_penalty=...",
        rich_help_panel=LMMS)] = None,
    log_samples: Annotated[bool, typer.Option(
        "--log-samples", help="Accepted for lmms-eval scripts: samples.jsonl is always written.",
        rich_help_panel=LMMS)] = False,
) -> None:
    """Evaluate MODEL (and its PVM variant) on tasks, with attention probes; write OUT/RUN_ID/.

    Without --model this runs the built-in organism on its own task with its own defaults. Every
    flag you pass wins; lmms-eval spellings (--batch_size, --output_path, --model_args, --gen_kwargs,
    --log_samples) are accepted.
    """
    given = {
        "model": model, "pvm": pvm, "dtype": dtype, "device": device, "device_map": device_map,
        "attn_implementation": attn_implementation, "trust_remote_code": trust_remote_code, "judge": judge,
        "tasks": csv_names(tasks) if tasks is not None else None,
        "variants": csv_names(variants) if variants is not None else None,
        "split": split, "limit": limit, "data_dir": str(data_dir) if data_dir else None,
        "allow_outside_data": allow_outside_data,
        "include_paths": [str(p) for p in include_path] if include_path else None,
        "override_tasks": list(override_task) if override_task else None,
        "batch_size": batch_size, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
        "top_k": top_k, "repetition_penalty": repetition_penalty, "repeats": repeats, "seed": seed,
        "protocol": protocol, "system_prompt": system_prompt, "min_pixels": min_pixels, "max_pixels": max_pixels,
        "probes": csv_names(probes) if probes is not None else None, "per_head": per_head, "per_image": per_image,
        "out": str(out_dir) if out_dir is not None else None, "run_id": run_id, "report": report,
    }
    given = {k: v for k, v in given.items() if v is not None}
    try:
        if maps is not None:
            from pvm_bench.runner.maps import parse_maps

            given["maps"] = parse_maps(maps)
        if ablate_after is not None:
            given["ablate_after"] = _steps(ablate_after, "--ablate-after")
        if model_args:
            extra = model_args_fields(model_args)
            if "model" in given and "model" in extra and _is_model_type(given["model"]):
                hint = "" if "protocol" in given else (
                    "; pass --protocol lmms-eval to send its wrapper's system turn and image sizes")
                console.print(f"note: --model {given['model']} read as lmms-eval's model type; "
                              f"loading pretrained={extra['model']}{hint}", highlight=False)
                del given["model"]
            given = merge_fields(given, extra, "--model_args")
        if gen_kwargs:
            given = merge_fields(given, gen_kwargs_fields(gen_kwargs), "--gen_kwargs")
        if threads is not None and threads < 1:
            raise OptionError(f"--threads must be >= 1 (got {threads})")
        from pvm_bench.cli.trackers import requested_trackers

        trackers = requested_trackers(wandb_project, tensorboard)  # a missing package stops here, before any work
    except UserError as exc:
        raise fail(str(exc)) from None
    if launcher is not None:
        _relaunch(launcher, nproc)
    _silence_library_progress()
    from pvm_bench.runner.distributed import init_from_env

    dist = init_from_env()
    try:
        _run(dist, given, resume=resume, force_resume=force_resume, threads=threads, quiet=quiet,
             fail_on_sample_errors=fail_on_sample_errors, trackers=trackers)
    finally:
        dist.shutdown()


def _steps(value: str, flag: str) -> list[int]:
    """``"0,16,64"`` -> ``[0, 16, 64]`` (generated-token indices, >= 0)."""
    out = []
    for part in csv_names(value):
        if not part.isdigit():
            raise OptionError(f"{flag} takes comma-separated token counts >= 0 (got '{part}'), e.g. {flag} 0,16,64")
        out.append(int(part))
    return out


def _is_model_type(value: str) -> bool:
    """lmms-eval's ``--model qwen3_vl`` names a wrapper class, not weights: no '/', not a path."""
    return "/" not in value and not os.path.exists(value)


def _silence_library_progress() -> None:
    """Our progress display is the only one: transformers/datasets bars would interleave with it.
    Not by importing datasets (~0.8 s; runs of built-in or local tasks never load it): its variable
    HF_DATASETS_DISABLE_PROGRESS_BARS is read at its import (a user's value wins, as before)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    else:
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


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


def _create_or_resume(given: dict[str, Any], resume: Path | None, force_resume: bool, threads: int | None) -> Any:
    from pvm_bench.cli.options import build_run_config
    from pvm_bench.runner.run import Runner
    from pvm_bench.threads import resolve_threads

    if resume is not None:
        return resume_runner(resume, given, force=force_resume)
    if force_resume:
        raise OptionError("--force-resume only applies with --resume RUN_DIR")
    config = build_run_config({**given, "threads": resolve_threads(threads)})
    _suggest_lmms_task_names(config)
    return Runner.create(config, log=lambda m: console.print(m, highlight=False, soft_wrap=True, markup=False))


def _suggest_lmms_task_names(config: RunConfig) -> None:
    """An lmms-eval task name (``mmmu_val``) that is not a task here gets the right name in one line."""
    from pvm_bench.cli.options import LMMS_TASK_NAMES, lmms_task_hint
    from pvm_bench.tasks import get_registry

    if not any(name in LMMS_TASK_NAMES for name in config.tasks):
        return
    registry = get_registry(config.include_paths, override_tasks=config.override_tasks)
    hint = lmms_task_hint(config.tasks, [*registry.tasks, *registry.groups])
    if hint:
        raise OptionError(hint)


def resume_runner(run_dir: Path, given: dict[str, Any], *, force: bool) -> Any:
    """``Runner.resume`` with the options the user typed (the runner refuses those that differ).

    A resumed run continues with the settings in its run.json; ``--report/--no-report`` only
    changes what happens at the end, so it is not compared. ``force`` (``--force-resume``) lets
    the runner continue although the model or data fingerprints changed (recorded in run.json).
    """
    from pvm_bench.cli.options import typed_fields
    from pvm_bench.runner.run import Runner

    overrides = typed_fields({k: v for k, v in given.items() if k not in RESUME_FREE})
    return Runner.resume(run_dir, force=force, overrides=overrides)


def _run(dist: Any, given: dict[str, Any], *, resume: Path | None, force_resume: bool, threads: int | None,
         quiet: bool, fail_on_sample_errors: bool, trackers: list[Any] | None = None) -> None:
    from pvm_bench.runner.run import Runner
    from pvm_bench.threads import apply_threads

    runner: Any = None
    failure: str | None = None
    if dist.is_main:
        try:
            runner = _create_or_resume(given, resume, force_resume, threads)
        except UserError as exc:
            failure = str(exc)
    payload = None
    if dist.is_main:
        payload = ("error", failure) if failure else ("dir", str(runner.run_dir))
    run_dir_or_error = dist.broadcast(payload)
    if run_dir_or_error[0] == "error":
        raise fail(run_dir_or_error[1])
    try:
        dist.check_shared_dir(Path(run_dir_or_error[1]))  # multi-node: every rank must see rank 0's run dir
    except UserError as exc:
        raise fail(str(exc)) from None
    if runner is None:  # a non-zero rank joins the run rank 0 set up
        runner = Runner.resume(Path(run_dir_or_error[1]), dist, mark_resumed=False)
    runner.dist = dist
    # The run's own count (recorded at creation) unless --threads is given: a resumed run keeps the
    # count of its first part, so its float reductions do not change half way.
    apply_threads(threads if threads is not None else runner.config.threads)
    try:
        _execute(runner, quiet=quiet or not dist.is_main)
    except UserError as exc:
        raise fail(str(exc)) from None
    if not dist.is_main:
        return
    _finish(runner, fail_on_sample_errors, given.get("report"), trackers or [])


def _execute(runner: Any, *, quiet: bool) -> None:
    """Run with a bar on a terminal, plain progress lines elsewhere, nothing with --quiet."""
    from pvm_bench.cli.progress import BarProgress, LineProgress

    def log(msg: str) -> None:  # runner messages are plain text (sample ids may hold '[...]'); one line each
        console.print(msg, highlight=False, soft_wrap=True, markup=False)

    if quiet:
        runner.execute(log=log)
    elif console.is_terminal:
        with BarProgress(console, runner.record.run_id) as bar:
            runner.execute(progress=bar, log=bar.log)
    else:
        with LineProgress(sys.stderr) as lines:
            runner.execute(progress=lines, log=log)


def _finish(
    runner: Any, fail_on_sample_errors: bool, report: bool | None = None, trackers: list[Any] | None = None
) -> None:
    """Report, then the closing lines: status, headline table, summary.md and report.html paths;
    then the experiment trackers (``--wandb-project``, ``--tensorboard``; pvm_bench.cli.trackers)."""
    from pvm_bench.cli.progress import HEADLINE_TITLE, headline_table

    record, run_dir = runner.record, runner.run_dir
    html = None
    if runner.config.report if report is None else report:
        try:
            from pvm_bench.report import build_report
        except ImportError:
            build_report = None
        if build_report is not None:
            html = build_report(run_dir)
    counts = record.counts
    out.print(
        f"run {record.run_id}: {record.status}, {counts.get('samples', 0)} records "
        f"over {len(runner.config.resolved_variants())} variant(s) (one record per sample and variant), "
        f"{counts.get('errors', 0)} errors, {counts.get('truncated', 0)} truncated -> {run_dir}",
        highlight=False,
    )
    table = headline_table(run_dir) if html is not None else None
    if table is not None:  # piped to a file, rich would squeeze the table to 80 columns
        out.print(HEADLINE_TITLE, highlight=False)
        (out if out.is_terminal else Console(width=160)).print(table)
    if html is not None:
        out.print(f"summary: {Path(run_dir) / 'summary.md'}", highlight=False)
        out.print(f"report: {html}", highlight=False)
    if trackers:
        from pvm_bench.cli.trackers import log_run

        for kind, where in log_run(
            run_dir, trackers, log=lambda m: console.print(m, highlight=False, markup=False)
        ).items():
            out.print(f"{kind}: {where}", highlight=False)
    if runner.errors and fail_on_sample_errors:
        raise fail(f"{len(runner.errors)} sample(s) could not be run (see 'error' in {run_dir}/samples.jsonl)", 1)


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    from pvm_bench.cli.support import user_errors

    app.command("run", cls=RunCommand, rich_help_panel="Evaluate")(user_errors(run))


__all__ = ["RunCommand", "register", "resume_runner", "run"]
