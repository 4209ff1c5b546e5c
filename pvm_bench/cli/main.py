"""The ``pvm-bench`` command line.

Commands live in their own modules and load on first use (:mod:`pvm_bench.cli.lazy`): the table
below names each one, its module and its one-line help, so ``pvm-bench --help`` imports neither
torch nor pandas. ``run`` is in :mod:`pvm_bench.cli.run`, its option rules in
:mod:`pvm_bench.cli.options`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pvm_bench.cli.lazy import OVERRIDE_TASK_HELP, LazyCommand, lazy_group
from pvm_bench.cli.support import user_errors

REPORTS, TRAIN, DATA, DISCOVER, BENCH = "Reports", "PVM and the organism", "Data", "Discover", "Benchmarks"

#: Top-level commands defined in other modules (name -> module, one-line help, panel).
COMMANDS = {
    "report": LazyCommand(
        "pvm_bench.report.commands",
        "Write summary.csv, summary.md, plots/*.png and report.html for RUN_DIR.",
        panel=REPORTS,
    ),
    "compare": LazyCommand(
        "pvm_bench.report.commands",
        "Side-by-side table of several runs (markdown + csv), e.g. two models or two adapters.",
        panel=REPORTS,
    ),
    "check": LazyCommand(
        "pvm_bench.report.commands",
        "Exit 0 when every baseline metric is within tolerance (or better), 1 otherwise, 2 on bad input.",
        panel=REPORTS,
    ),
    "baseline": LazyCommand(
        "pvm_bench.report.commands",
        "Write RUN_DIR's metrics (with their 95% CIs) as a baseline file for `pvm-bench check`.",
        panel=REPORTS,
    ),
    "pvm": LazyCommand(
        "pvm_bench.pvm.commands", "Persistent Visual Memory: size, training, export.", panel=TRAIN, threaded=("train",)
    ),
    "organism": LazyCommand(
        "pvm_bench.organism.commands", "The built-in tiny model organism (tiny Qwen3-VL + PVM adapter).", panel=TRAIN
    ),
    "replay": LazyCommand(
        "pvm_bench.replay.cli",
        "Attention diagnostics and scores for outputs you already have (a run, an lmms-eval log, a JSONL).",
        panel=REPORTS,
        threaded=("",),
    ),
    "data": LazyCommand(
        "pvm_bench.data.commands", "Export benchmark data for offline machines and check a --data-dir.", panel=DATA
    ),
}
#: ``pvm-bench bench ...`` commands.
BENCH_COMMANDS = {
    "probe": LazyCommand(
        "pvm_bench.bench.probe",
        "Tokens/s and peak memory: plain generate vs the streaming probe vs output_attentions.",
        hook="register_bench",
        threaded=("",),
    ),
    "pvm": LazyCommand(
        "pvm_bench.pvm.commands",
        "Decode tokens/s: base vs PVM variant in one run (ratio = PVM / base).",
        hook="register_bench",
        threaded=("",),
    ),
    "report": LazyCommand(
        "pvm_bench.bench.report",
        "Merge and report wall time and peak RSS on a synthetic run, as ratios to a DuckDB group-by.",
        hook="register_bench",
    ),
    "replay": LazyCommand(
        "pvm_bench.bench.replay",
        "Per sample: replay vs decode-time probing of the same outputs (time, peak memory, agreement).",
        hook="register_bench",
        threaded=("",),
    ),
    "batch": LazyCommand(
        "pvm_bench.bench.batch",
        "Samples/s of batched generation (batch 8 vs 1) on the same requests and outputs.",
        hook="register_bench",
        threaded=("",),
    ),
}

app = typer.Typer(
    name="pvm-bench",
    help="Does a VLM keep looking at the image deep into a long answer? Evaluate base vs PVM, measure attention decay.",
    cls=lazy_group(COMMANDS, order=("run", "report", "compare", "check", "baseline", "data", "tasks", "models")),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(
    help="Micro-benchmarks (ratios within one run).", cls=lazy_group(BENCH_COMMANDS), no_args_is_help=True
)
app.add_typer(bench_app, name="bench", rich_help_panel=BENCH)


def _register_run() -> None:
    from pvm_bench.cli.run import register

    register(app)


_register_run()


@app.command("models", rich_help_panel=DISCOVER)
def list_models() -> None:
    """List the supported model families and example hub ids."""
    from rich.console import Console
    from rich.table import Table

    from pvm_bench.models.families import FAMILIES

    table = Table("family", "model_type", "decoder layers", "example ids")
    for spec in FAMILIES.values():
        table.add_row(spec.name, spec.model_type, spec.layers_path, ", ".join(spec.example_ids))
    Console(soft_wrap=True).print(table)


@app.command("tasks", rich_help_panel=DISCOVER)
@user_errors
def list_tasks(
    include_path: Annotated[list[Path] | None, typer.Option(help="Extra folder of task modules.")] = None,
    override_task: Annotated[list[str] | None, typer.Option(metavar="NAME", help=OVERRIDE_TASK_HELP)] = None,
) -> None:
    """List the registered tasks (splits, default split, metric, data source) and groups."""
    from rich.console import Console
    from rich.table import Table

    from pvm_bench.tasks import get_registry

    registry = get_registry(include_path or [], override_tasks=override_task or ())
    table = Table("task", "splits (default first)", "metric", "source", "description")
    table.columns[0].no_wrap = True
    for name in sorted(registry.tasks):
        task = registry.tasks[name]
        splits = [task.default_split, *(s for s in task.splits if s != task.default_split)]
        table.add_row(name, ", ".join(splits), task.metric, task.hub_id or "generated", task.description)
    console = Console(soft_wrap=False)
    if not console.is_terminal:  # piped or captured: rich would squeeze the table to 80 columns
        console = Console(width=200)
    console.print(table)
    if registry.groups:
        groups = Table("group", "tasks")
        for name, members in sorted(registry.groups.items()):
            groups.add_row(name, ", ".join(members))
        console.print(groups)
    for message in registry.conflicts.values():  # refused when selected; say so before a run does
        console.print(f"note: {message}", highlight=False, markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
