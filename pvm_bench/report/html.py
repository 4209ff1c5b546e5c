"""report.html: one self-contained file (inline CSS/JS, plots as base64 PNG, no network).

The page comes from jinja2 templates with autoescape on (templates/report.html.j2; the sample
browser from templates/browser.html.j2). Every string that comes from the run (model text,
prompts, targets, task and variant names, metadata) is escaped: by the template, by
:func:`html.escape` in the metric sections (tables through ``DataFrame.to_html(escape=True)``),
or as script-safe JSON rendered with ``textContent`` in the sample browser, so model output such
as ``<script>`` is shown as text and never executed.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from pvm_bench.report.browser import render_browser
from pvm_bench.report.decay import DECAY_NOTE
from pvm_bench.report.dependence import NOTE as DEPENDENCE_NOTE
from pvm_bench.report.dependence import dependence_view
from pvm_bench.report.markdown import comparability_notes
from pvm_bench.report.paper import paper_note, paper_view
from pvm_bench.report.per_image import NOTE as IMAGE_NOTE
from pvm_bench.report.per_image import image_view
from pvm_bench.report.rundata import RunData, missing_attention_note
from pvm_bench.report.runinfo import compositions_line, decoding_line
from pvm_bench.report.summary import Summary, base_note
from pvm_bench.report.templating import environment, html_table
from pvm_bench.report.views import (
    DISTANCE_NOTE,
    FLAGS_NOTE,
    METRICS_NOTE,
    PROBE_LAYER_NOTE,
    convergence_view,
    decay_view,
    distance_labels,
    distance_views,
    flags_view,
    fmt,
    length_view,
    metrics_view,
    probe_layer_view,
    probe_view,
)
from pvm_bench.results import atomic_write_text

PLOT_CAPTIONS = {
    "decay": "Visual mass vs generated position per layer band: dots = observed mean (log-binned), "
    "lines = fitted a + b/(c + t).",
    "heatmap": "Mean visual mass per decoder layer and generated-position bin.",
    "accuracy_vs_length": "Accuracy by output length (n_generated bucket), 95% CI (Wilson for 0/1 scores).",
    "accuracy_by_task": "Accuracy per task and variant, 95% CI (Wilson for 0/1 scores).",
}

def esc(value: Any) -> str:
    """HTML-escape any value (quotes included); None -> empty string."""
    return html.escape("" if value is None else str(value), quote=True)


def _meta_rows(data: RunData) -> list[tuple[str, Any]]:
    """(label, value) rows of the run table; mappings (model, git, ...) are rendered by the
    template as nested key/value tables, not as raw JSON."""
    run = data.run
    rows: list[tuple[str, Any]] = [("run id", data.run_id), ("status", data.status), ("directory", str(data.run_dir))]
    if run is None:
        return rows
    rows += [
        ("started", run.started_at), ("ended", run.ended_at or "–"), ("seed", str(run.seed)),
        ("variants", ", ".join(run.variants)), ("variant compositions", compositions_line(run.variant_compositions)),
        ("decoding", decoding_line(run.config)), ("model", run.model), ("adapter", run.adapter or "–"),
        ("git", run.git), ("datasets", run.datasets), ("counts", run.counts), ("versions", run.versions),
    ]
    if run.error:
        rows.append(("error", run.error))
    return rows


def _plot(name: str, path: Path) -> dict[str, str]:
    from pvm_bench.report.plots import CAPTIONS  # the plots' own captions, kept in sync with them

    return {"name": name, "caption": CAPTIONS.get(name, PLOT_CAPTIONS.get(name, name)),
            "b64": base64.b64encode(path.read_bytes()).decode("ascii")}


def _metric_sections(data: RunData, summary: Summary) -> list[str]:
    """The metric tables of the page, from the same metric rows as summary.md."""
    rows, variants = summary.rows, data.variants
    parts = ["<h2>Metrics</h2>"]
    if rows.empty:
        return parts + ['<p class="note">No samples or attention records yet.</p>']
    parts.append(f'<p class="note">{esc(METRICS_NOTE)}</p>')
    parts.append(html_table(metrics_view(rows, variants), "accuracy-table"))
    for line in comparability_notes(summary):
        parts.append(f'<p class="banner comparability">Not comparable: {esc(line)}</p>')
    missing = missing_attention_note(data) if len(data.samples) else None
    decay_missing = f'<p class="note" id="decay-missing">{esc(missing)}</p>' if missing else None
    sections: list[tuple[str, str, pd.DataFrame, str, str | None]] = [  # ..., html when the table is empty
        ("Accuracy by output length", "n_generated bucket: accuracy (number of records).",
         length_view(rows, variants), "length-table", None),
        *((f"Accuracy by {label}", DISTANCE_NOTE, view, f"distance-table-{k}", None)
          for k, (label, view) in enumerate(distance_views(rows, variants, distance_labels(summary.tasks)))),
        ("Score flags", FLAGS_NOTE, flags_view(rows, variants), "flags-table", None),
        ("Visual-attention decay", DECAY_NOTE, decay_view(rows, variants, summary.bands), "decay-table", decay_missing),
        ("Visual dependence", DEPENDENCE_NOTE, dependence_view(rows, variants), "dependence-table", None),
        ("Visual mass per image", IMAGE_NOTE, image_view(rows, variants), "image-table", None),
        ("Probe signals", "Mean over generated steps.", probe_view(rows, variants), "probe-table", None),
        ("Probe signals per layer", PROBE_LAYER_NOTE, probe_layer_view(rows, variants), "probe-layer-table", None),
        ("Convergence", "", convergence_view(rows, variants), "convergence-table", None),
        ("PVM paper Table 1 (published) beside this run", paper_note(data), paper_view(rows, variants), "paper-table",
         None),
    ]
    for title, note, view, table_id, if_empty in sections:
        if view.empty:
            if if_empty:
                parts.append(if_empty)
            continue
        parts.append(f"<h2>{esc(title)}</h2>")
        if note:
            parts.append(f'<p class="note">{esc(note)}</p>')
        parts.append(html_table(view, table_id))
    return parts


def render_html(data: RunData, summary: Summary, plots: dict[str, Path], single_file: bool | None = None) -> str:
    """The report page as a string, from templates/report.html.j2 (see the module docstring for
    the escaping contract)."""
    config = data.run.config if data.run is not None else {}
    return environment().get_template("report.html.j2").render(
        run_id=data.run_id, partial=data.partial, status=data.status, n_records=len(data.samples),
        warnings=data.warnings, failures=data.failures, meta_rows=_meta_rows(data),
        config_json=json.dumps(config, indent=2, sort_keys=True, default=str) if config else "",
        base_note=base_note(data) or "",
        metric_sections=Markup("\n".join(_metric_sections(data, summary))),  # built with esc() / to_html(escape=True)
        plots=[_plot(k, p) for k, p in plots.items()],
        browser=render_browser(data, single_file=single_file),  # every record, paged (WP6), side files at scale
        n_rows=fmt(len(summary.rows)),
    )


def write_html(data: RunData, summary: Summary, plots: dict[str, Path], out: Path | None = None,
               single_file: bool | None = None) -> Path:
    """Write report.html (default: ``<run_dir>/report.html``) atomically; returns the path."""
    out = out or data.run_dir / "report.html"
    atomic_write_text(out, render_html(data, summary, plots, single_file))
    return out
