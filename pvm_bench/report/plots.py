"""PNG plots of a run (matplotlib Agg + seaborn styling), readable at a glance.

:func:`make_plots` writes, when the data exist (captions in :data:`CAPTIONS`):

- ``decay.png``, ``decay_cohort.png``, ``heatmap.png``, ``pvm_signals.png``: see
  :mod:`pvm_bench.report.plots_attention`;
- ``accuracy_vs_length.png``: accuracy per output-length bucket, one panel per task;
- ``accuracy_vs_distance.png``: accuracy by the task's declared distance (``Task.distance_key``,
  a sample-metadata field such as ``n_filler`` = N for the length diagnostics), one panel per task
  that declares one;
- ``accuracy_by_task.png``: per-task grouped bars with 95% CI error bars.

Accuracy intervals are :func:`~pvm_bench.report.stats.accuracy_ci` (Wilson for 0/1 scores, so a
bucket at 0 or 1 still shows its uncertainty); points with n < SMALL_N are drawn hollow.
Each function returns the written path, or None when there is nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from pvm_bench.report.attention_engine import release_freed_memory
from pvm_bench.report.dependence import split_ablated
from pvm_bench.report.distance import distance_keys, distance_table
from pvm_bench.report.per_image import image_frame
from pvm_bench.report.plot_style import DPI, inch_margins, save_figure, setup_style, variant_colors
from pvm_bench.report.plots_attention import plot_decay, plot_decay_cohort, plot_heatmap, plot_pvm_signals
from pvm_bench.report.plots_dependence import CAPTION as DEPENDENCE_CAPTION
from pvm_bench.report.plots_dependence import plot_dependence
from pvm_bench.report.plots_per_image import CAPTION as PER_IMAGE_CAPTION
from pvm_bench.report.plots_per_image import plot_per_image
from pvm_bench.report.stats import SMALL_N, MeanCI, accuracy_ci
from pvm_bench.report.summary import RunData, Summary, length_buckets
from pvm_bench.safeio import ensure_dir

__all__ = [
    "CAPTIONS", "DPI", "distance_keys", "make_plots", "plot_accuracy_vs_distance", "plot_accuracy_vs_length",
    "plot_decay", "plot_decay_cohort", "plot_heatmap", "plot_pvm_signals", "plot_task_bars", "variant_colors",
]

CAPTIONS: dict[str, str] = {
    "decay": "Visual mass vs generated position per layer band: dots = observed mean in log-spaced bins with a "
    "95% CI band over samples; lines = a + b/(c + t) fitted on per-sample values (dashed = flagged fit); "
    "▼ = fitted half-life; lower panels: samples behind each bin.",
    "decay_cohort": "All-layer visual mass of the fixed cohort (only the samples that reached T tokens, so every "
    "step averages the same samples) against all samples, whose tail averages only the long outputs.",
    "heatmap": "Mean visual mass per decoder layer and generated-position bin, one variant per row; last rows: "
    "each variant minus base on the same samples (paired; blank where they did not both reach the position).",
    "pvm_signals": "PVM branch contribution (‖PVM output‖ / ‖residual‖) per PVM layer vs position, 95% CI "
    "over samples; gate α per layer in the legend.",
    "accuracy_vs_length": "Accuracy by output length (n_generated bucket) per task, 95% CI (Wilson for 0/1 "
    "scores); hollow = fewer than 30 samples.",
    "accuracy_vs_distance": "Accuracy by the task's declared distance (e.g. N for the length diagnostics), 95% CI "
    "(Wilson for 0/1 scores); hollow = fewer than 30 samples.",
    "accuracy_by_task": "Accuracy per task and variant, 95% CI.",
    "visual_dependence": DEPENDENCE_CAPTION,
    "per_image": PER_IMAGE_CAPTION,
}
"""One caption per plot name (report.html shows them under the images)."""

TINY_N = 5
"""Buckets with fewer records are drawn as lone hollow points: a line through a one-record bucket
would draw a jump to 0 or 1 that the data do not support."""


def _ci_points(ax: Any, x: np.ndarray, cis: list[MeanCI], color: Any, label: str) -> None:
    """Error bars at ``x`` with filled markers, hollow where n < SMALL_N; the line joins only the
    points with at least :data:`TINY_N` records (a tiny bucket stands alone, with its CI)."""
    y = np.array([c.mean for c in cis])
    err = np.nan_to_num(np.array([[c.mean - c.low for c in cis], [c.high - c.mean for c in cis]]))
    tiny = np.array([c.n < TINY_N for c in cis], dtype=bool)
    ax.errorbar(x, y, yerr=err, fmt="none", capsize=3, color=color)
    ax.plot(np.where(tiny, np.nan, x), np.where(tiny, np.nan, y), "-", color=color, label=label)
    small = np.array([c.small_n for c in cis], dtype=bool)
    ax.plot(x[~small], y[~small], "o", color=color, ms=6)
    ax.plot(x[small], y[small], "o", mfc="white", mec=color, mew=1.5, ms=6)


def _annotate_n(ax: Any, x: np.ndarray, cis: list[MeanCI], color: Any, j: int) -> None:
    for xi, c in zip(x, cis):
        # alternate above/below per variant so labels of overlapping points stay readable; below a
        # point near 1 (above it the label would leave the axes and be clipped)
        near_top = c.mean > 0.93
        dy = (-11 - 10 * (j % 2)) if near_top else (-11 if j % 2 else 5)
        ax.annotate(f"n={c.n}", (xi, c.mean), textcoords="offset points", xytext=(4, dy),
                    fontsize=7, color=color, annotation_clip=False)


def _grouped_accuracy(
    ax: Any, table: pd.DataFrame, variants: list[str], colors: Mapping[str, Any],
) -> list[str]:
    """Draw accuracy per (variant, group) from ``table`` (columns variant, group, label, score
    lists); returns the group labels in x order."""
    groups = sorted(table["group"].unique())
    pos = {g: k for k, g in enumerate(groups)}
    present = [v for v in variants if v in set(table["variant"])]
    for j, v in enumerate(present):
        d = table[table["variant"] == v].sort_values("group")
        x = np.array([pos[g] for g in d["group"]], dtype=float) + (j - (len(present) - 1) / 2) * 0.08
        cis = [accuracy_ci(np.asarray(sc, dtype=float)) for sc in d["scores"]]
        _ci_points(ax, x, cis, colors[v], v)
        _annotate_n(ax, x, cis, colors[v], j)
    labels = table.drop_duplicates("group").set_index("group")["label"]
    ax.set_xticks(range(len(groups)), [labels[g] for g in groups])
    ax.set_ylim(-0.03, 1.08)
    ax.set_ylabel("accuracy (mean score, 95% CI)")
    return [str(labels[g]) for g in groups]


MAX_LENGTH_PANELS = 12
"""Beyond this many tasks the accuracy-vs-length plot shows the pooled records only."""


def _length_table(s: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    rows = []
    for v in variants:
        sv = s[s["variant"] == v]
        for i, (lo, hi, _) in enumerate(length_buckets()):
            b = sv[(sv["n_generated"] >= lo) & (sv["n_generated"] < hi)]
            if len(b):
                name = f"{int(lo)}–{int(hi) - 1}" if math.isfinite(hi) else f"≥{int(lo)}"
                rows.append((v, i, name, b["score"].to_numpy()))
    return pd.DataFrame(rows, columns=["variant", "group", "label", "scores"])


def plot_accuracy_vs_length(data: RunData, variants: list[str], out: Path) -> Path | None:
    """Accuracy per n_generated bucket, 95% CI, n annotated: one panel per task (pooling tasks
    would read a task mix as a length effect: long outputs come from the hard tasks), or the
    pooled records when there are more than MAX_LENGTH_PANELS tasks."""
    s = data.samples
    if s.empty:
        return None
    tasks = sorted(s["task"].unique())
    scopes = [(t, s[s["task"] == t]) for t in tasks] if len(tasks) <= MAX_LENGTH_PANELS else [("all tasks", s)]
    panels = [(name, _length_table(rows, variants)) for name, rows in scopes]
    panels = [(name, table) for name, table in panels if len(table)]
    if not panels:
        return None
    setup_style()
    colors = variant_colors(variants)
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.0 * ncols, 4.2 * nrows), squeeze=False)
    for ax, (name, table) in zip(axes.flat, panels):
        _grouped_accuracy(ax, table, variants, colors)
        ax.set_xlabel("output length, n_generated (tokens)")
        ax.legend(title=f"variant (hollow: n < {SMALL_N})", fontsize=8, title_fontsize=8)
        ax.set_title(f"Accuracy vs output length: {name}")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    inch_margins(fig)
    return save_figure(fig, out)


def plot_accuracy_vs_distance(
    data: RunData, variants: list[str], out: Path, keys: Mapping[str, tuple[str, str]] | None = None,
) -> Path | None:
    """Accuracy by the task's declared distance, one panel per task with a distance, 95% CI.

    ``keys``: ``{task: (metadata key, label)}``; default :func:`distance_keys`. Bins are shared
    by the variants of a task. None when no task declares a distance or no record carries it.
    """
    keys = distance_keys(data) if keys is None else dict(keys)
    s = data.samples
    panels = []
    for task, (key, label) in keys.items():
        st = s[s["task"] == task]
        binned = distance_table(st, key)  # the bins of the kind="distance" rows
        if binned.empty:
            continue
        table = binned.groupby(["variant", "group", "label"])["score"].agg(list).rename("scores").reset_index()
        panels.append((task, label, table))
    if not panels:
        return None
    setup_style()
    colors = variant_colors(variants)
    fig, axes = plt.subplots(1, len(panels), figsize=(7.2 * len(panels), 4.4), squeeze=False)
    for ax, (task, label, table) in zip(axes.flat, panels):
        _grouped_accuracy(ax, table, variants, colors)
        ax.set_xlabel(label)
        ax.set_title(f"{task}: accuracy vs {label}")
        ax.legend(title=f"variant (hollow: n < {SMALL_N})", fontsize=8, title_fontsize=8)
        ax.tick_params(axis="x", labelrotation=20 if len(table["group"].unique()) > 6 else 0)
    fig.tight_layout()
    return save_figure(fig, out)


def plot_task_bars(summary: Summary, variants: list[str], out: Path) -> Path | None:
    """Per-task accuracy, grouped by variant, 95% CI error bars (the summary's CIs), n under each
    bar; bars with n < SMALL_N are hatched."""
    t = summary.table
    if t.empty or "accuracy" not in t or t["accuracy"].isna().all():
        return None
    tasks = list(dict.fromkeys(t["task"]))
    present = [v for v in variants if v in set(t["variant"])]
    setup_style()
    colors = variant_colors(variants)
    width = 0.8 / max(len(present), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(tasks) * max(len(present), 1) * 0.6 + 2), 4.2))
    for j, v in enumerate(present):
        d = t[t["variant"] == v].set_index("task").reindex(tasks)
        x = np.arange(len(tasks)) + (j - (len(present) - 1) / 2) * width
        err = np.vstack([(d["accuracy"] - d["acc_ci_low"]).to_numpy(), (d["acc_ci_high"] - d["accuracy"]).to_numpy()])
        n = d["n_samples"].to_numpy(dtype=float) if "n_samples" in d else np.full(len(tasks), np.nan)
        hatch = ["//" if 0 < k < SMALL_N else "" for k in np.nan_to_num(n)]
        bars = ax.bar(x, d["accuracy"], width * 0.95, yerr=np.nan_to_num(err), capsize=3, color=colors[v], label=v)
        for bar, h, k in zip(bars, hatch, n):
            bar.set_hatch(h)
            bar.set_edgecolor("white")
            if math.isfinite(k):
                ax.annotate(f"n={int(k)}", (bar.get_x() + bar.get_width() / 2, 0.01), ha="center", va="bottom",
                            fontsize=7, color="white", rotation=90 if len(present) > 3 else 0)
    ax.set_xticks(range(len(tasks)), tasks)
    notes = [
        text for key, text in (("ALL", "ALL = pooled samples"), ("MACRO", "MACRO = mean over tasks")) if key in tasks
    ]
    if any(0 < k < SMALL_N for k in t.get("n_samples", pd.Series(dtype=float)).fillna(0)):
        notes.append(f"hatched: n < {SMALL_N}")
    ax.set_xlabel("task" + (f"\n({'; '.join(notes)})" if notes else ""))
    ax.set_ylabel("accuracy (mean score, 95% CI)")
    ax.set_ylim(0, 1.2)
    ax.set_yticks(np.linspace(0, 1, 6))
    handles = [Patch(facecolor=colors[v], label=v) for v in present]  # plain swatches, whatever bar 1's hatch
    ax.legend(handles=handles, title="variant", ncols=min(len(present), 4), loc="upper center", fontsize=8,
              title_fontsize=8)
    ax.set_title("Accuracy per task")
    fig.tight_layout()
    return save_figure(fig, out)


def make_plots(
    data: RunData, summary: Summary, out_dir: Path, distance: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, Path]:
    """Write every plot that the data support into ``out_dir``; returns {name: path}.

    ``distance``: ``{task: (metadata key, label)}`` for :func:`plot_accuracy_vs_distance`
    (default: the tasks' declared ``distance_key``, see :func:`distance_keys`).
    """
    ensure_dir(out_dir)  # refuses RUN/plots when it is a symlink out of the run directory
    variants = data.variants
    # Ablated V+blind:after=K variants have their own plot (visual_dependence); their attention
    # is trivially 0 after K, so the decay plots show the un-ablated variants only.
    seen = [v for v in variants if split_ablated(v) is None]
    jobs = {
        "decay": lambda p: plot_decay(summary, seen, p, data=data),
        "decay_cohort": lambda p: plot_decay_cohort(data, seen, p, cohort_t=summary.cohort_t),
        "heatmap": lambda p: plot_heatmap(data, seen, p),
        "pvm_signals": lambda p: plot_pvm_signals(data, seen, p),
        "accuracy_vs_length": lambda p: plot_accuracy_vs_length(data, variants, p),
        "accuracy_vs_distance": lambda p: plot_accuracy_vs_distance(data, variants, p, keys=distance),
        "accuracy_by_task": lambda p: plot_task_bars(summary, variants, p),
        "visual_dependence": lambda p: plot_dependence(summary.rows, variants, p),
        "per_image": lambda p: plot_per_image(image_frame(data.agg), seen, p),
    }
    written: dict[str, Path] = {}
    for name, job in jobs.items():
        path = job(out_dir / f"{name}.png")
        release_freed_memory()
        if path is not None:
            written[name] = path
    return written
