"""summary.md and summary.csv of a run (from :class:`~pvm_bench.report.summary.Summary`)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pvm_bench.report.decay import DECAY_NOTE
from pvm_bench.report.dependence import NOTE as DEPENDENCE_NOTE
from pvm_bench.report.dependence import dependence_view
from pvm_bench.report.mdtext import md_escape
from pvm_bench.report.paper import paper_note, paper_view
from pvm_bench.report.per_image import NOTE as IMAGE_NOTE
from pvm_bench.report.per_image import image_view
from pvm_bench.report.rundata import RunData, missing_attention_note
from pvm_bench.report.runinfo import compositions_line, decoding_line
from pvm_bench.report.summary import Summary, base_note
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
    length_view,
    metrics_view,
    probe_layer_view,
    probe_view,
    to_markdown,
)
from pvm_bench.results import atomic_write_text


def comparability_notes(summary: Summary) -> list[str]:
    """``task: note`` for every task of the run that declares a ``comparability_note``."""
    return [f"{name}: {info.comparability_note}" for name, info in summary.tasks.items() if info.comparability_note]


def run_meta(data: RunData) -> dict[str, str]:
    """The run header of summary.md (label -> value)."""
    run = data.run
    model = run.model if run else {}
    adapter = run.adapter if run else None
    return {
        "status": data.status,
        "model": (model.get("name") or model.get("source") or json.dumps(model)) if run else "–",
        "model fingerprint": str(model.get("fingerprint") or "–") if run else "–",
        "adapter": (str(adapter.get("path") or json.dumps(adapter)) if adapter else "–"),
        "variants": ", ".join(data.variants) or "–",
        "variant compositions": compositions_line(run.variant_compositions) if run else "–",
        "decoding": decoding_line(run.config) if run else "–",
        "samples (records)": str(len(data.samples)),
        "seed": str(run.seed) if run else "–",
        "git": (f"{run.git.get('commit', '–')}{' (dirty)' if run.git.get('dirty') else ''}" if run else "–"),
        "started / ended": f"{run.started_at} / {run.ended_at or '–'}" if run else "–",
    }


def render_markdown(data: RunData, summary: Summary) -> str:
    """summary.md: run header, partial-run warning, notes, and the readable tables."""
    parts = [f"# pvm-bench summary: {md_escape(data.run_id)}\n"]
    if data.count_problem:
        parts.append(f"> **{md_escape(data.count_problem)}**\n")
    if data.failures:
        parts.append("> **INCOMPLETE REPORT** (--allow-partial): these sections could not be computed and are "
                     "missing or incomplete below:\n" + "".join(f">\n> - {md_escape(f)}\n" for f in data.failures))
    if data.partial:
        parts.append(f"> **PARTIAL RUN** (status: {md_escape(data.status)}). "
                     "Numbers cover only the samples written so far.\n")
    parts.append("\n".join(f"- **{k}**: {md_escape(v)}" for k, v in run_meta(data).items()) + "\n")
    note = base_note(data)
    if note:
        parts.append(f"> **baseline**: {md_escape(note)}\n")
    for w in data.warnings:
        if w != data.count_problem:
            parts.append(f"> note: {md_escape(w)}\n")
    rows, variants = summary.rows, data.variants
    if rows.empty:
        parts.append("\n_No samples or attention records yet._\n")
        return "\n".join(parts)
    parts.append("\n## Metrics\n")
    parts.append(METRICS_NOTE + "\n\n")
    parts.append(to_markdown(metrics_view(rows, variants)))
    for line in comparability_notes(summary):
        parts.append(f"\n> **not comparable**: {md_escape(line)}\n")
    missing = missing_attention_note(data) if len(data.samples) else None
    sections: list[tuple[str, str, pd.DataFrame, str | None]] = [  # (heading, note, table, line when it is empty)
        ("Accuracy by output length (n_generated bucket: accuracy (n))", "", length_view(rows, variants), None),
        *((f"Accuracy by {md_escape(label)}", DISTANCE_NOTE, view, None)
          for label, view in distance_views(rows, variants, distance_labels(summary.tasks))),
        ("Score flags (share of records)", FLAGS_NOTE, flags_view(rows, variants), None),
        ("Visual-attention decay: visual_mass ≈ a + b/(c + t)", DECAY_NOTE,
         decay_view(rows, variants, summary.bands), missing),
        ("Visual dependence (image removed from generated token K on)", DEPENDENCE_NOTE,
         dependence_view(rows, variants), None),
        ("Visual mass per image", IMAGE_NOTE, image_view(rows, variants), None),
        ("Probe signals (mean over generated steps)", "", probe_view(rows, variants), None),
        ("Probe signals per layer (PVM gate and branch ratio)", PROBE_LAYER_NOTE, probe_layer_view(rows, variants),
         None),
        ("Convergence (next-token entropy)", "", convergence_view(rows, variants), None),
        ("PVM paper Table 1 (published) beside this run", paper_note(data), paper_view(rows, variants), None),
    ]
    for heading, note, view, if_empty in sections:
        if view.empty:
            if if_empty:
                parts.append(f"\n> {if_empty}\n")
            continue
        parts.append(f"\n## {heading}\n")
        if note:
            parts.append(note + "\n\n")
        parts.append(to_markdown(view))
    return "\n".join(parts)


def write_summary(data: RunData, summary: Summary) -> tuple[Path, Path]:
    """Write summary.csv (the wide view, full precision), metrics.csv (the long metric rows) and
    summary.md into the run directory; returns (summary.csv, summary.md)."""
    csv_path, md_path = data.run_dir / "summary.csv", data.run_dir / "summary.md"
    atomic_write_text(csv_path, summary.table.to_csv(index=False))
    atomic_write_text(data.run_dir / "metrics.csv", summary.rows.to_csv(index=False))
    atomic_write_text(md_path, render_markdown(data, summary))
    return csv_path, md_path
