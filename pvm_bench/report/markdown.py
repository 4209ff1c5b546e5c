"""summary.md and summary.csv of a run: summary.md renders the run's view model
(:class:`~pvm_bench.report.viewmodel.ReportView`), the same object report.html renders."""

from __future__ import annotations

from pathlib import Path

from pvm_bench.report.mdtext import md_escape
from pvm_bench.report.rundata import RunData
from pvm_bench.report.summary import Summary
from pvm_bench.report.viewmodel import ReportView, build_view
from pvm_bench.report.views import to_markdown
from pvm_bench.results import atomic_write_text

#: Plots linked from summary.md (plots/<name>.png beside it), in the order the page shows them.
PLOT_LINKS = ("accuracy_by_task", "visual_dependence", "decay_cohort", "decay", "per_image", "accuracy_vs_distance",
              "accuracy_vs_length", "heatmap")


def render_markdown(view: ReportView, plots: list[str] | None = None) -> str:
    """summary.md from the run's :class:`~pvm_bench.report.viewmodel.ReportView`: warnings, the
    findings, links to the plots, the tables (each with its method note), then the run header."""
    parts = [f"# pvm-bench summary: {md_escape(view.run_id)}\n"]
    if view.count_problem:
        parts.append(f"> **{md_escape(view.count_problem)}**\n")
    if view.failures:
        parts.append("> **INCOMPLETE REPORT** (--allow-partial): these sections could not be computed and are "
                     "missing or incomplete below:\n" + "".join(f">\n> - {md_escape(f)}\n" for f in view.failures))
    if view.partial:
        parts.append(f"> **PARTIAL RUN** (status: {md_escape(view.status)}). "
                     "Numbers cover only the samples written so far.\n")
    if view.base_note:
        parts.append(f"> **baseline**: {md_escape(view.base_note)}\n")
    for w in view.warnings:
        if w != view.count_problem:
            parts.append(f"> note: {md_escape(w)}\n")
    if view.findings:
        parts.append("\n## Findings\n")
        parts.append("\n".join(f"- {md_escape(f.text)}" for f in view.findings) + "\n")
    if view.empty:
        parts.append("\n_No samples or attention records yet._\n")
    shown = [p for p in PLOT_LINKS if p in (plots or [])] + [p for p in plots or [] if p not in PLOT_LINKS]
    if shown:
        parts.append("\n## Plots\n")
        parts.append(" · ".join(f"[{md_escape(p)}](plots/{p}.png)" for p in shown) + "\n")
    for table in view.tables:
        if table.frame.empty:
            if table.empty_note:
                parts.append(f"\n> {md_escape(table.empty_note)}\n")
            continue
        parts.append(f"\n## {md_escape(table.title)}\n")
        if table.note:
            parts.append(table.note + "\n\n")
        parts.append(to_markdown(table.frame))
        parts.extend(f"\n_{md_escape(line)}_\n" for line in table.footnotes)
        if table.key == "accuracy-table":
            parts.extend(f"\n> **not comparable**: {md_escape(line)}\n" for line in view.comparability)
    parts.append("\n## Run\n")
    parts.append("\n".join(f"- **{k}**: {md_escape(v)}" for k, v in view.header.items()) + "\n")
    return "\n".join(parts)


def write_summary(data: RunData, summary: Summary, view: ReportView | None = None,
                  plots: list[str] | None = None) -> tuple[Path, Path]:
    """Write summary.csv (the wide view, full precision), metrics.csv (the long metric rows) and
    summary.md into the run directory; returns (summary.csv, summary.md). ``view``: the run's view
    model when the caller built it already (report.html renders the same one); ``plots``: the plot
    names summary.md links to."""
    csv_path, md_path = data.run_dir / "summary.csv", data.run_dir / "summary.md"
    atomic_write_text(csv_path, summary.table.to_csv(index=False))
    atomic_write_text(data.run_dir / "metrics.csv", summary.rows.to_csv(index=False))
    atomic_write_text(md_path, render_markdown(view or build_view(data, summary), plots))
    return csv_path, md_path
