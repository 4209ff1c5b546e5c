"""CLI commands of the report layer: ``report``, ``compare``, ``check``, ``baseline``.

:func:`register` adds them to a typer app (pvm_bench/cli/main.py calls it). Exit codes: 0 success /
check passed, 1 check failed (a regression), 2 bad input (one ``error:`` line naming the file and
the fix), 3 an output that cannot be written (read-only, missing folder, a directory in the way;
:mod:`pvm_bench.report.outputs`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pvm_bench.cli.support import user_errors

out = Console()

STATUS_STYLE = {"ok": "green", "better": "bold green", "worse": "bold red", "missing": "bold red"}


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, reports/<run_id>.")],
    cohort: Annotated[
        int | None,
        typer.Option(
            "--cohort",
            metavar="T",
            help="Fixed-cohort length for the decay section: only samples that "
            "reached T generated tokens, steps 1..T (default: the largest power of 2 that half the "
            "samples reached).",
        ),
    ] = None,
    single_file: Annotated[
        bool | None,
        typer.Option(
            "--single-file/--side-files",
            help="Embed every sample record in report.html (one file), or "
            "write them to report_samples/ next to it, loaded on demand (default: side files above 4000 records).",
        ),
    ] = None,
    allow_partial: Annotated[
        bool,
        typer.Option(
            help="Write the report even when a section cannot be computed (a damaged attention file, "
            "out of memory); report.html and summary.md then say so at the top. Without it such a "
            "report exits 2 and writes nothing."
        ),
    ] = False,
) -> None:
    """Write summary.csv, summary.md, plots/*.png and report.html for RUN_DIR."""
    from pvm_bench.report import build_report
    from pvm_bench.report.rundata import ReportInputError

    if cohort is not None and cohort < 2:
        raise ReportInputError(f"--cohort {cohort}: T must be a number of generated tokens >= 2 (e.g. --cohort 64)")
    html = build_report(run_dir, cohort_t=cohort, require_samples=True, single_file=single_file,
                        allow_partial=allow_partial,
                        log=lambda line: out.print(line, style="bold red", highlight=False, markup=False))
    out.print(f"report: {html}", highlight=False)
    out.print(f"summary: {html.parent / 'summary.md'}", highlight=False)


def compare_command(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Two or more run directories (the first is the reference, A).")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="FILE.md / FILE.csv (.md, .html, .csv and _leaderboard.csv are written) or a folder for compare.*.",
        ),
    ] = None,
    pair: Annotated[
        list[str] | None,
        typer.Option(
            help="VARIANT_A:VARIANT_B: pair run A's variant with the other runs' variant "
            "(e.g. base:pvm for an instruct-model run vs a PVM checkpoint run). Repeatable."
        ),
    ] = None,
    rank_by: Annotated[
        str | None,
        typer.Option(
            help="Leaderboard order: macro, accuracy, mass@64, mass@256, mass@1024, half_life or "
            "dependence_k (default: macro with several tasks, else accuracy)."
        ),
    ] = None,
    allow_task_change: Annotated[
        bool,
        typer.Option(
            "--allow-task-change",
            help="Pair runs even when a task's recorded definition differs (another plugin, an edited scorer).",
        ),
    ] = False,
) -> None:
    """The same metrics of several runs side by side, paired across runs by (task, sample_id, repeat)."""
    from pvm_bench.report.compare import compare_runs
    from pvm_bench.report.rundata import ReportInputError

    pairs = []
    for spec in pair or []:
        a, sep, b = spec.partition(":")
        if not sep or not a or not b:
            raise ReportInputError(f"--pair {spec!r} must be VARIANT_A:VARIANT_B (e.g. --pair base:pvm)")
        pairs.append((a, b))
    result = compare_runs(run_dirs, pairs=pairs, rank_by=rank_by, allow_task_change=allow_task_change)
    md = result.to_markdown()
    if output is None:
        typer.echo(md)  # plain: rich would re-wrap the markdown table
        return
    if output.suffix.lower() in (".md", ".csv"):
        md_path, csv_path = output.with_suffix(".md"), output.with_suffix(".csv")
    else:
        md_path, csv_path = output / "compare.md", output / "compare.csv"
    from pvm_bench.report.compare_html import render_compare_html
    from pvm_bench.report.outputs import make_parent, write_output

    make_parent(md_path, "the comparison")
    write_output(md_path, md, what="the comparison")
    write_output(csv_path, result.table.to_csv(index=False), what="the comparison")
    board_path = csv_path.with_name(csv_path.stem + "_leaderboard.csv")  # compare_leaderboard.csv
    write_output(board_path, result.leaderboard.to_csv(index=False), what="the leaderboard")
    html_path = md_path.with_suffix(".html")
    write_output(html_path, render_compare_html(result), what="the comparison")
    out.print(f"compare: {md_path}, {html_path}, {csv_path} and {board_path}", highlight=False)


def check_command(
    run_dir: Annotated[Path, typer.Argument(help="The run directory to check.")],
    baseline: Annotated[Path, typer.Option("--baseline", "-b", help="Baseline JSON (pvm-bench baseline -o FILE).")],
    tolerance: Annotated[
        float | None,
        typer.Option(help="Absolute tolerance for every metric (default: each baseline value's 95% CI half-width)."),
    ] = None,
    allow_partial: Annotated[bool, typer.Option(help="Do not fail because the run is partial.")] = False,
    allow_data_change: Annotated[
        bool, typer.Option(help="Do not fail because a task's data fingerprint differs from the baseline's.")
    ] = False,
    alpha: Annotated[
        float,
        typer.Option(help="Fail on a paired drop vs the baseline's per-sample scores with p below this (0: off)."),
    ] = 0.05,
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the verdict and diff table as markdown (e.g. $GITHUB_STEP_SUMMARY).")
    ] = None,
) -> None:
    """Exit 0 when every baseline metric is within tolerance and shows no significant paired drop
    (or is better), 1 otherwise, 2 on bad input."""
    from pvm_bench.report.check import check

    result = check(run_dir, baseline, tolerance=tolerance, allow_partial=allow_partial, alpha=alpha,
                   allow_data_change=allow_data_change)
    table = Table("task", "variant", "metric", "baseline", "current", "Δ", "tolerance", "p", "status",
                  title=f"pvm-bench check: {run_dir} vs {baseline}")
    rows = result.table
    # failures first, then the rest in baseline order
    rows = rows.assign(_f=~rows["status"].isin(["worse", "missing"])).sort_values("_f", kind="stable")
    def num(x: float, signed: bool = False) -> str:
        return "–" if math.isnan(x) else (f"{x:+.4f}" if signed else f"{x:.4f}")

    for r in rows.itertuples(index=False):
        style = STATUS_STYLE.get(r.status, "")
        metric = r.metric + (f"@{int(r.t)}" if r.t is not None and not math.isnan(r.t) else "")
        metric += f" [{r.band}]" if r.band else ""
        metric += " Δ vs base" if r.stat == "diff_vs_base" else ""
        status = f"[{style}]{r.status}[/]" + (f" ({r.reason})" if r.reason else "")
        table.add_row(r.task, r.variant, metric, num(r.baseline), num(r.current), num(r.delta, True),
                      num(r.tolerance), num(r.p_value), status)
    Console(width=max(out.width, 132)).print(table)  # CI logs default to 80 columns
    for note in result.notes:
        out.print(f"note: {note}", highlight=False, markup=False)
    if markdown is not None:  # a failed write is exit 3, never the regression code 1 nor a PASS
        from pvm_bench.report.outputs import write_output

        write_output(markdown, result.to_markdown() + "\n", what="the check summary", append=True)
    if result.passed:
        out.print("[bold green]check: PASS[/]")
        return
    out.print(f"[bold red]check: FAIL[/] ({len(result.failures)} metric(s) worse or missing"
              + (", run is partial" if "partial" in " ".join(result.notes) and not allow_partial else "") + ")")
    raise typer.Exit(1)


def baseline_command(
    run_dir: Annotated[Path, typer.Argument(help="A completed run directory.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the baseline JSON.")],
    allow_partial: Annotated[bool, typer.Option(help="Allow a partial (unfinished) run as the baseline.")] = False,
) -> None:
    """Write RUN_DIR's metrics (with their 95% CIs) as a baseline file for `pvm-bench check`."""
    from pvm_bench.report.check import write_baseline

    path = write_baseline(run_dir, output, allow_partial=allow_partial)
    out.print(f"baseline: {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``report``, ``compare``, ``check`` and ``baseline`` to ``app``."""
    app.command("report")(user_errors(report_command))
    app.command("compare")(user_errors(compare_command))
    app.command("check")(user_errors(check_command))
    app.command("baseline")(user_errors(baseline_command))
