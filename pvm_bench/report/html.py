"""report.html: one self-contained file (inline CSS/JS, plots as base64 PNG, no network).

The page comes from jinja2 templates with autoescape on (templates/report.html.j2; the sample
browser from templates/browser.html.j2). Every string that comes from the run (model text,
prompts, targets, task and variant names, metadata) is escaped: by the template (findings,
titles, notes), in the tables by ``DataFrame.to_html(escape=True)``
(:func:`~pvm_bench.report.templating.html_table`), or as script-safe JSON rendered with
``textContent`` in the sample browser, so model output such as ``<script>`` is shown as text and
never executed. Every view comes from the run's :class:`~pvm_bench.report.viewmodel.ReportView`,
the object summary.md renders too.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from pvm_bench.report.browser import render_browser
from pvm_bench.report.rundata import RunData
from pvm_bench.report.summary import Summary
from pvm_bench.report.templating import environment, html_table
from pvm_bench.report.viewmodel import ReportView, build_view
from pvm_bench.report.views import fmt
from pvm_bench.results import atomic_write_text

PLOT_CAPTIONS = {
    "decay": "Visual mass vs generated position per layer band: dots = observed mean (log-binned), "
    "lines = fitted a + b/(c + t).",
    "heatmap": "Mean visual mass per decoder layer and generated-position bin.",
    "accuracy_vs_length": "Accuracy by output length (n_generated bucket), 95% CI (Wilson for 0/1 scores).",
    "accuracy_by_task": "Accuracy per task and variant, 95% CI (Wilson for 0/1 scores).",
}


def _plot(name: str, path: Path) -> dict[str, str]:
    from pvm_bench.report.plots import CAPTIONS  # the plots' own captions, kept in sync with them

    return {"name": name, "caption": CAPTIONS.get(name, PLOT_CAPTIONS.get(name, name)),
            "b64": base64.b64encode(path.read_bytes()).decode("ascii")}


#: Plots in the order the page shows them (the story first); any other plot follows.
PLOT_ORDER = ("accuracy_by_task", "visual_dependence", "decay_cohort", "decay", "per_image", "accuracy_vs_distance",
              "accuracy_vs_length", "heatmap")


def _tables(view: ReportView) -> list[dict[str, Any]]:
    """The view's tables for the template (cells escaped by :func:`html_table`)."""
    out = []
    for t in view.tables:
        if t.frame.empty and not t.empty_note:
            continue
        out.append({"key": t.key, "title": t.title, "note": t.note, "empty_note": t.empty_note or "",
                    "table": html_table(t.frame, t.key) if not t.frame.empty else "", "footnotes": list(t.footnotes),
                    "comparability": view.comparability if t.key == "accuracy-table" else []})
    return out


def render_html(data: RunData, view: ReportView, plots: dict[str, Path], single_file: bool | None = None) -> str:
    """The report page as a string, from templates/report.html.j2 and the run's view model (see the
    module docstring for the escaping contract): findings, plots, tables with their method notes
    folded, then the run metadata and config (folded) and the sample browser."""
    ordered = [k for k in PLOT_ORDER if k in plots] + [k for k in plots if k not in PLOT_ORDER]
    return environment().get_template("report.html.j2").render(
        view=view, findings=view.findings, tables=_tables(view), meta_rows=view.meta,
        plots=[_plot(k, plots[k]) for k in ordered],
        browser=render_browser(data, single_file=single_file),  # every record, paged (WP6), side files at scale
        n_rows=fmt(view.n_rows),
    )


def write_html(data: RunData, summary: Summary, plots: dict[str, Path], out: Path | None = None,
               single_file: bool | None = None, view: ReportView | None = None) -> Path:
    """Write report.html (default: ``<run_dir>/report.html``) atomically; returns the path.
    ``view``: the run's view model when the caller built it already (summary.md renders the same one)."""
    out = out or data.run_dir / "report.html"
    atomic_write_text(out, render_html(data, view or build_view(data, summary), plots, single_file))
    return out
