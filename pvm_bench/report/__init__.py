"""Reports, statistics and regression checks for a run directory (reports/<run_id>/).

Entry points:

- :func:`build_report` (called by the runner at the end of a run, and by ``pvm-bench report``):
  writes summary.csv, summary.md, plots/*.png and report.html into the run directory;
- :func:`pvm_bench.report.check.write_baseline` / :func:`pvm_bench.report.check.check`;
- :func:`pvm_bench.report.commands.register` adds ``report``, ``compare``, ``check`` and
  ``baseline`` to a typer app.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pvm_bench.report.rundata import ReportInputError, load_run
from pvm_bench.report.summary import build_summary

#: How long a report waits for another report of the same run to finish writing (seconds).
REPORT_LOCK_WAIT_S = 600.0


def build_report(run_dir: Path, cohort_t: int | None = None, require_samples: bool = False,
                 single_file: bool | None = None, log: Callable[[str], None] | None = None,
                 allow_partial: bool = False) -> Path:
    """Write summary.csv, summary.md, plots/*.png and report.html for ``run_dir``.

    Works on partial runs (marked as such), runs without attention.parquet and runs with a single
    variant. Returns the path of report.html. Raises :class:`ReportInputError` when ``run_dir``
    is not a run directory, or (``require_samples``, as ``pvm-bench report`` asks) when it has no
    sample records yet. ``cohort_t``: the fixed-cohort length T of the decay section and plot
    (default: :func:`~pvm_bench.report.curves.suggest_cohort_t` per task). ``single_file``: the
    sample browser's records embedded in report.html or in side files
    (:func:`pvm_bench.report.browser.render_browser`; None: by size). ``log``: where to say
    loudly that the records disagree with run.json's count (summary.md says it first too).

    Reports of one run take turns (the run's report lock, ``RUN/.report.lock``), so two
    concurrent reports never mix their files. A file that cannot be written is one
    :class:`~pvm_bench.errors.OutputError` line (exit 3).

    A section that cannot be computed (an unreadable attention file, out of memory) raises
    :class:`~pvm_bench.report.attention_engine.ReportIncompleteError` (or ``ReportMemoryError``)
    before anything is written, unless ``allow_partial``: then the report is written without it and
    says so at the top of report.html and summary.md.
    """
    from pvm_bench.report.html import write_html
    from pvm_bench.report.markdown import write_summary
    from pvm_bench.report.outputs import check_writable_dir, output_errors
    from pvm_bench.report.plots import make_plots
    from pvm_bench.report.rundata import require_samples as _require
    from pvm_bench.report.viewmodel import build_view
    from pvm_bench.runner.guard import REPORT_LOCK_NAME, RunLock

    data = load_run(Path(run_dir), allow_partial=allow_partial)
    if require_samples:
        _require(data)
    if data.count_problem and log is not None:
        log(f"warning: {data.count_problem}")
    check_writable_dir(data.run_dir, "the report")
    with output_errors("the report into", data.run_dir):
        lock = RunLock(data.run_dir, REPORT_LOCK_NAME).acquire(wait=REPORT_LOCK_WAIT_S)
    try:  # another report of this run writes its whole set first; then this one writes all of its own
        summary = build_summary(data, cohort_t=cohort_t)
        view = build_view(data, summary)  # every view computed once; summary.md and report.html render it
        with output_errors("the report into", data.run_dir):
            plots = make_plots(data, summary, data.run_dir / "plots")
            write_summary(data, summary, view, plots=list(plots))
            return write_html(data, summary, plots, single_file=single_file, view=view)
    finally:
        lock.release()


__all__ = ["ReportInputError", "build_report", "build_summary", "load_run"]
