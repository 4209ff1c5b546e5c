"""The report's view model: every view of a run computed once, rendered twice (summary.md, report.html).

:func:`build_view` turns a run's data and summary into a :class:`ReportView`: the banners, the
findings (:mod:`pvm_bench.report.findings`), the tables in reading order (headline metrics, then
the visual dependence, the decay and the per-image mass, then accuracy by length / distance and
the probe tables), each with its method note, and the run metadata. The renderers
(:func:`pvm_bench.report.markdown.render_markdown`, :func:`pvm_bench.report.html.render_html`)
only lay this object out; neither computes a view of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pvm_bench.report.decay import DECAY_NOTE
from pvm_bench.report.dependence import NOTE as DEPENDENCE_NOTE
from pvm_bench.report.dependence import dependence_view
from pvm_bench.report.findings import Finding, findings
from pvm_bench.report.paper import paper_note, paper_view
from pvm_bench.report.per_image import NOTE as IMAGE_NOTE
from pvm_bench.report.per_image import image_view
from pvm_bench.report.rundata import RunData, missing_attention_note
from pvm_bench.report.runinfo import compositions_line, decoding_line, parameters_line
from pvm_bench.report.summary import Summary, base_note
from pvm_bench.report.views import (
    DISTANCE_NOTE,
    FLAGS_NOTE,
    METRICS_NOTE,
    PROBE_LAYER_NOTE,
    convergence_view,
    decay_footnotes,
    decay_view,
    distance_labels,
    distance_views,
    flags_view,
    length_view,
    metrics_view,
    probe_layer_view,
    probe_view,
)


@dataclass(frozen=True)
class TableView:
    """One table of the report. ``key``: its HTML id; ``title``: the heading; ``note``: how to read
    it (method text); ``frame``: the cells, already formatted strings; ``empty_note``: shown instead
    of the section when ``frame`` is empty (None: the section is left out); ``footnotes``: lines
    under the table (why a column is missing)."""

    key: str
    title: str
    note: str
    frame: pd.DataFrame
    empty_note: str | None = None
    footnotes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportView:
    """Everything summary.md and report.html show, in the order they show it (see the module docstring).

    ``header``: the short run header (label -> text); ``meta``: the detailed run table of the page
    (values may be mappings); ``comparability``: ``task: note`` lines."""

    run_id: str
    status: str
    partial: bool
    n_records: int
    count_problem: str | None
    failures: list[str]
    warnings: list[str]
    base_note: str | None
    findings: list[Finding]
    tables: list[TableView]
    comparability: list[str]
    header: dict[str, str]
    meta: list[tuple[str, Any]]
    config_json: str
    n_rows: int
    empty: bool = False


def comparability_notes(summary: Summary) -> list[str]:
    """``task: note`` for every task of the run that declares a ``comparability_note``."""
    return [f"{name}: {info.comparability_note}" for name, info in summary.tasks.items() if info.comparability_note]


def run_header(data: RunData) -> dict[str, str]:
    """The short run header (label -> value) of summary.md."""
    run = data.run
    model = run.model if run else {}
    adapter = run.adapter if run else None
    return {
        "status": data.status,
        "model": (model.get("name") or model.get("source") or json.dumps(model)) if run else "–",
        "model fingerprint": str(model.get("fingerprint") or "–") if run else "–",
        "adapter": (str(adapter.get("path") or json.dumps(adapter)) if adapter else "–"),
        "parameters": parameters_line(model, adapter) if run else "–",
        "variants": ", ".join(data.variants) or "–",
        "variant compositions": compositions_line(run.variant_compositions) if run else "–",
        "decoding": decoding_line(run.config) if run else "–",
        "samples (records)": str(len(data.samples)),
        "seed": str(run.seed) if run else "–",
        "git": (f"{run.git.get('commit', '–')}{' (dirty)' if run.git.get('dirty') else ''}" if run else "–"),
        "started / ended": f"{run.started_at} / {run.ended_at or '–'}" if run else "–",
    }


def run_meta(data: RunData) -> list[tuple[str, Any]]:
    """(label, value) rows of the page's run table; mappings (model, git, ...) stay mappings (the
    template renders them as nested key/value lists, not raw JSON)."""
    run = data.run
    rows: list[tuple[str, Any]] = [("run id", data.run_id), ("status", data.status), ("directory", str(data.run_dir))]
    if run is None:
        return rows
    rows += [
        ("started", run.started_at), ("ended", run.ended_at or "–"), ("seed", str(run.seed)),
        ("variants", ", ".join(run.variants)), ("variant compositions", compositions_line(run.variant_compositions)),
        ("decoding", decoding_line(run.config)), ("model", run.model), ("adapter", run.adapter or "–"),
        ("parameters", parameters_line(run.model, run.adapter)),
        ("git", run.git), ("datasets", run.datasets), ("counts", run.counts), ("versions", run.versions),
    ]
    if run.error:
        rows.append(("error", run.error))
    return rows


def evidence_tables(data: RunData, summary: Summary) -> list[TableView]:
    """The tables in reading order: headline metrics, visual dependence, decay, per-image mass, then
    accuracy by length and distance, score flags, probes, convergence and the paper's table."""
    rows, variants = summary.rows, data.variants
    missing = missing_attention_note(data) if len(data.samples) else None
    longest = int(data.samples["n_generated"].max()) if len(data.samples) and "n_generated" in data.samples else 0
    decay = decay_view(rows, variants, summary.bands)
    return [
        TableView("accuracy-table", "Metrics", METRICS_NOTE, metrics_view(rows, variants)),
        TableView("dependence-table", "Visual dependence (image removed from generated token K on)",
                  DEPENDENCE_NOTE, dependence_view(rows, variants)),
        TableView("decay-table", "Visual-attention decay: visual_mass ≈ a + b/(c + t)", DECAY_NOTE, decay,
                  missing, tuple(decay_footnotes(rows, variants, longest))),
        TableView("image-table", "Visual mass per image", IMAGE_NOTE, image_view(rows, variants)),
        TableView("length-table", "Accuracy by output length (n_generated bucket: accuracy (n))",
                  "n_generated bucket: accuracy [95% CI] (number of records).", length_view(rows, variants)),
        *(TableView(f"distance-table-{k}", f"Accuracy by {label}", DISTANCE_NOTE, view)
          for k, (label, view) in enumerate(distance_views(rows, variants, distance_labels(summary.tasks)))),
        TableView("flags-table", "Score flags (share of records)", FLAGS_NOTE, flags_view(rows, variants)),
        TableView("probe-table", "Probe signals (mean over generated steps)", "Mean over generated steps.",
                  probe_view(rows, variants)),
        TableView("probe-layer-table", "Probe signals per layer (PVM gate and branch ratio)", PROBE_LAYER_NOTE,
                  probe_layer_view(rows, variants)),
        TableView("convergence-table", "Convergence (next-token entropy)", "", convergence_view(rows, variants)),
        TableView("paper-table", "PVM paper Table 1 (published) beside this run", paper_note(data),
                  paper_view(rows, variants)),
    ]


def build_view(data: RunData, summary: Summary) -> ReportView:
    """The run's :class:`ReportView` (computed once; both renderers read it)."""
    config = data.run.config if data.run is not None else {}
    empty = summary.rows.empty
    return ReportView(
        run_id=data.run_id, status=data.status, partial=data.partial, n_records=len(data.samples),
        count_problem=data.count_problem, failures=list(data.failures), warnings=list(data.warnings),
        base_note=base_note(data), findings=findings(summary.rows, list(data.variants)),
        tables=[] if empty else evidence_tables(data, summary), comparability=comparability_notes(summary),
        header=run_header(data), meta=run_meta(data),
        config_json=json.dumps(config, indent=2, sort_keys=True, default=str) if config else "",
        n_rows=len(summary.rows), empty=empty,
    )


__all__ = ["ReportView", "TableView", "build_view", "comparability_notes", "evidence_tables", "run_header",
           "run_meta"]
