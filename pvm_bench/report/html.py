"""report.html: one self-contained file (inline CSS/JS, plots as base64 PNG, no network).

Every string that comes from the run (model text, prompts, targets, task and variant names,
metadata) goes through :func:`html.escape` (tables through ``DataFrame.to_html(escape=True)``),
so model output such as ``<script>`` is shown as text and never executed.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from pvm_bench.report.browser import render_browser
from pvm_bench.report.decay import DECAY_NOTE
from pvm_bench.report.markdown import comparability_notes
from pvm_bench.report.rundata import RunData, missing_attention_note
from pvm_bench.report.summary import Summary, base_note
from pvm_bench.report.views import (
    FLAGS_NOTE,
    METRICS_NOTE,
    convergence_view,
    decay_view,
    flags_view,
    fmt,
    length_view,
    metrics_view,
    probe_view,
)
from pvm_bench.results import atomic_write_text

PLOT_CAPTIONS = {
    "decay": "Visual mass vs generated position per layer band: dots = observed mean (log-binned), "
    "lines = fitted a + b/(c + t).",
    "heatmap": "Mean visual mass per decoder layer and generated-position bin.",
    "accuracy_vs_length": "Accuracy by output length (n_generated bucket), 95% bootstrap CI.",
    "accuracy_by_task": "Accuracy per task and variant, 95% bootstrap CI.",
}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.banner{background:#fff3cd;border:1px solid #e0b000;color:#5c4400;padding:10px 14px;border-radius:6px;margin:10px 0;font-weight:600}
.note{color:#555;font-size:13px}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f3}tbody tr:nth-child(even){background:#f8f8fa}
.meta td:first-child{font-weight:600;white-space:nowrap}
figure{margin:12px 0;background:#fff;border:1px solid #e3e3e3;padding:8px;border-radius:6px}
figure img{max-width:100%;height:auto}figcaption{color:#555;font-size:13px}
.ok{color:#176b2c;font-weight:600}.bad{color:#a8201a;font-weight:600}.trunc{color:#8a5a00}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f8;border:1px solid #eee;padding:6px 8px;margin:4px 0;max-height:420px;overflow:auto}
.label{font-size:12px;color:#666;margin-top:6px}
"""

def esc(value: Any) -> str:
    """HTML-escape any value (quotes included); None -> empty string."""
    return html.escape("" if value is None else str(value), quote=True)


def _table(df: pd.DataFrame, table_id: str) -> str:
    if df.empty:
        return '<p class="note">No data.</p>'
    return df.to_html(index=False, escape=True, border=0, table_id=table_id, na_rep="–")


def _meta_rows(data: RunData) -> list[tuple[str, str]]:
    run = data.run
    rows = [("run id", data.run_id), ("status", data.status), ("directory", str(data.run_dir))]
    if run is None:
        return rows
    rows += [
        ("started", run.started_at), ("ended", run.ended_at or "–"), ("seed", str(run.seed)),
        ("variants", ", ".join(run.variants)), ("model", json.dumps(run.model, sort_keys=True)),
        ("adapter", json.dumps(run.adapter, sort_keys=True) if run.adapter else "–"),
        ("git", json.dumps(run.git, sort_keys=True)), ("datasets", json.dumps(run.datasets, sort_keys=True)),
        ("counts", json.dumps(run.counts, sort_keys=True)), ("versions", json.dumps(run.versions, sort_keys=True)),
    ]
    if run.error:
        rows.append(("error", run.error))
    return rows


def _metadata(data: RunData) -> str:
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in _meta_rows(data))
    parts = [f'<table class="meta" id="run-metadata"><tbody>{body}</tbody></table>']
    if data.run is not None and data.run.config:
        cfg = json.dumps(data.run.config, indent=2, sort_keys=True, default=str)
        parts.append(f"<details><summary>full config</summary><pre>{esc(cfg)}</pre></details>")
    return "".join(parts)


def _figure(name: str, path: Path) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    cap = PLOT_CAPTIONS.get(name, name)
    return (f'<figure id="plot-{esc(name)}"><img alt="{esc(cap)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{esc(cap)}</figcaption></figure>")


def _metric_sections(data: RunData, summary: Summary) -> list[str]:
    """The metric tables of the page, from the same metric rows as summary.md."""
    rows, variants = summary.rows, data.variants
    parts = ["<h2>Metrics</h2>"]
    if rows.empty:
        return parts + ['<p class="note">No samples or attention records yet.</p>']
    parts.append(f'<p class="note">{esc(METRICS_NOTE)}</p>')
    parts.append(_table(metrics_view(rows, variants), "accuracy-table"))
    for line in comparability_notes(summary):
        parts.append(f'<p class="banner comparability">Not comparable: {esc(line)}</p>')
    sections = [
        ("Accuracy by output length", "n_generated bucket: accuracy (number of records).",
         length_view(rows, variants), "length-table"),
        ("Score flags", FLAGS_NOTE, flags_view(rows, variants), "flags-table"),
        ("Visual-attention decay", DECAY_NOTE, decay_view(rows, variants, summary.bands), "decay-table"),
        ("Probe signals", "Mean over generated steps.", probe_view(rows, variants), "probe-table"),
        ("Convergence", "", convergence_view(rows, variants), "convergence-table"),
    ]
    for title, note, view, table_id in sections:
        if view.empty:
            if table_id == "decay-table" and len(data.samples) and missing_attention_note(data):
                parts.append(f'<p class="note" id="decay-missing">{esc(missing_attention_note(data))}</p>')
            continue
        parts.append(f"<h2>{esc(title)}</h2>")
        if note:
            parts.append(f'<p class="note">{esc(note)}</p>')
        parts.append(_table(view, table_id))
    return parts


def render_html(data: RunData, summary: Summary, plots: dict[str, Path]) -> str:
    """The report page as a string (see the module docstring for the escaping contract)."""
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>pvm-bench report: {esc(data.run_id)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>pvm-bench report: {esc(data.run_id)}</h1>",
    ]
    if data.partial:
        parts.append(
            f'<div class="banner" role="alert" id="partial-banner">Partial run (status: {esc(data.status)}): '
            f"numbers cover only the {len(data.samples)} sample records written so far.</div>"
        )
    for w in data.warnings:
        parts.append(f'<p class="note">Note: {esc(w)}</p>')
    parts.append("<h2>Run</h2>" + _metadata(data))
    note = base_note(data)
    if note:
        parts.append(f'<div class="banner" id="base-note">Baseline: {esc(note)}</div>')
    parts.extend(_metric_sections(data, summary))
    if plots:
        parts.append("<h2>Plots</h2>" + "".join(_figure(k, p) for k, p in plots.items()))
    parts.append("<h2>Samples</h2>" + render_browser(data))  # every record, paged in the page (WP6)
    parts.append(f'<p class="note">Generated by pvm-bench. Rows: {fmt(len(summary.rows))} metric rows.</p>')
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_html(data: RunData, summary: Summary, plots: dict[str, Path], out: Path | None = None) -> Path:
    """Write report.html (default: ``<run_dir>/report.html``) atomically; returns the path."""
    out = out or data.run_dir / "report.html"
    atomic_write_text(out, render_html(data, summary, plots))
    return out
