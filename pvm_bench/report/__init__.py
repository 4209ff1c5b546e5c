"""Reports, statistics and regression checks for a run directory (reports/<run_id>/).

Entry points:

- :func:`build_report` (called by the runner at the end of a run, and by ``pvm-bench report``):
  writes summary.csv, summary.md, plots/*.png and report.html into the run directory;
- :func:`pvm_bench.report.check.write_baseline` / :func:`pvm_bench.report.check.check`;
- :func:`pvm_bench.report.commands.register` adds ``report``, ``compare``, ``check`` and
  ``baseline`` to a typer app.
"""

from __future__ import annotations

from pathlib import Path

from pvm_bench.report.rundata import ReportInputError, load_run
from pvm_bench.report.summary import build_summary


def build_report(
    run_dir: Path, cohort_t: int | None = None, require_samples: bool = False, allow_partial: bool = False,
) -> Path:
    """Write summary.csv, summary.md, plots/*.png and report.html for ``run_dir``.

    Works on partial runs (marked as such), runs without attention.parquet and runs with a single
    variant. Returns the path of report.html. Raises :class:`ReportInputError` when ``run_dir``
    is not a run directory, or (``require_samples``, as ``pvm-bench report`` asks) when it has no
    sample records yet. ``cohort_t``: the fixed-cohort length T of the decay section and plot
    (default: :func:`~pvm_bench.report.curves.suggest_cohort_t` per task).

    A section that cannot be computed (an unreadable attention file, out of memory) raises
    :class:`~pvm_bench.report.attention_engine.ReportIncompleteError` (or ``ReportMemoryError``)
    before anything is written, unless ``allow_partial``: then the report is written without it and
    says so at the top of report.html and summary.md.
    """
    from pvm_bench.report.html import write_html
    from pvm_bench.report.markdown import write_summary
    from pvm_bench.report.plots import make_plots
    from pvm_bench.report.rundata import require_samples as _require

    data = load_run(Path(run_dir), allow_partial=allow_partial)
    if require_samples:
        _require(data)
    summary = build_summary(data, cohort_t=cohort_t)
    write_summary(data, summary)
    plots = make_plots(data, summary, data.run_dir / "plots")
    return write_html(data, summary, plots)


__all__ = ["ReportInputError", "build_report", "build_summary", "load_run"]
