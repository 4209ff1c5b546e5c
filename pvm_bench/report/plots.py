"""PNG plots of a run (matplotlib Agg + seaborn styling), readable at a glance.

:func:`make_plots` writes, when the data exist:

- ``decay.png``: visual mass vs generated position per layer band (all / early / middle / late),
  observed mean (markers, log-binned) and the fitted ``a + b/(c+t)`` (line), one colour per
  variant, log-x;
- ``heatmap.png``: mean visual mass per layer x position bin, one panel per variant, shared scale;
- ``accuracy_vs_length.png``: accuracy per output-length bucket with 95% bootstrap CIs;
- ``accuracy_by_task.png``: per-task grouped bars with 95% bootstrap CI error bars.

Each function returns the written path, or None when there is nothing to draw.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pvm_bench.report.stats import bootstrap_ci
from pvm_bench.report.summary import (
    ALL_TASKS,
    BANDS,
    REFERENCE_VARIANT,
    RunData,
    Summary,
    layer_span,
    length_buckets,
    visual_rows,
)

DPI = 110
N_LOG_BINS = 40
"""Log-spaced position bins for observed curves and the heatmap (keeps long runs legible)."""


def variant_colors(variants: list[str]) -> dict[str, tuple[float, float, float] | str]:
    """Stable colours: ``base`` dark grey, the others from seaborn's colour-blind palette."""
    palette = sns.color_palette("colorblind", max(len(variants), 1))
    others = [v for v in variants if v != REFERENCE_VARIANT]
    colors: dict[str, tuple[float, float, float] | str] = {REFERENCE_VARIANT: "#404040"}
    for v, c in zip(others, palette):
        colors[v] = c
    return colors


def _pooled_task(summary: Summary) -> str | None:
    tasks = list(dict.fromkeys(summary.table["task"])) if len(summary.table) else []
    if ALL_TASKS in tasks:
        return ALL_TASKS
    return tasks[0] if tasks else None


def _log_bins(t_max: int) -> np.ndarray:
    return np.unique(np.round(np.geomspace(1, max(t_max, 2) + 1, N_LOG_BINS + 1))).astype(float)


def _binned(curve: pd.DataFrame) -> pd.DataFrame:
    """Mean of ``mass`` within log-spaced step bins; x = geometric bin centre."""
    edges = _log_bins(int(curve["step"].max()))
    idx = np.clip(np.searchsorted(edges, curve["step"].to_numpy(), side="right") - 1, 0, len(edges) - 2)
    g = curve.assign(bin=idx).groupby("bin").agg(step=("step", "mean"), mass=("mass", "mean"))
    return g.reset_index(drop=True)


def _style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)


def plot_decay(summary: Summary, variants: list[str], out: Path) -> Path | None:
    """Decay curves per layer band with the fitted law; base and other variants overlaid."""
    task = _pooled_task(summary)
    curves = summary.curves
    if task is None or curves.empty:
        return None
    curves = curves[curves["task"] == task]
    bands = [b for b in BANDS if b in summary.bands and (curves["band"] == b).any()]
    if not bands:
        return None
    _style()
    colors = variant_colors(variants)
    ncols = 2 if len(bands) > 1 else 1
    nrows = math.ceil(len(bands) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 4.2 * nrows), sharey=True, squeeze=False)
    for k, (ax, band) in enumerate(zip(axes.flat, bands)):
        layers = summary.bands[band]
        for v in variants:
            c = curves[(curves["band"] == band) & (curves["variant"] == v)]
            if c.empty:
                continue
            obs = _binned(c)
            ax.plot(obs["step"], obs["mass"], "o", ms=3.5, alpha=0.55, color=colors[v])
            fit = summary.fits.get((task, v, band))
            label = f"{v}"
            if fit is not None and fit.ok:
                tt = np.geomspace(1, max(fit.t_max, 2), 200)
                label += f": {fit.a:.3f} + {fit.b:.3f}/({fit.c:.1f} + t), R² {fit.r2:.2f}"
                ax.plot(tt, fit.predict(tt), "-", lw=2, color=colors[v], label=label)
            else:
                ax.plot(obs["step"], obs["mass"], "-", lw=1, color=colors[v], label=f"{v} (no fit)")
        ax.set_xscale("log")
        ax.set_title(f"{band} layers ({layer_span(layers)})")
        ax.set_xlabel("generated position t (tokens, log scale)")
        if k % ncols == 0:
            ax.set_ylabel("visual mass (fraction of attention\non image tokens)")
        ax.tick_params(labelleft=True)
        ax.legend(fontsize=8, loc="upper right", title="dots: observed mean · line: fit", title_fontsize=8)
    for ax in list(axes.flat)[len(bands):]:
        ax.set_visible(False)
    scope = "all tasks" if task == ALL_TASKS else f"task {task}"
    fig.suptitle(f"Attention to the image vs generated position ({scope})", fontsize=13)
    # fixed margins: tight_layout/bbox_inches="tight" re-draw log axes and double the cost
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.09 if nrows > 1 else 0.14,
                        top=0.91 if nrows > 1 else 0.84, wspace=0.16, hspace=0.32)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def plot_heatmap(data: RunData, variants: list[str], out: Path) -> Path | None:
    """Layer x position heatmap of mean visual mass, one panel per variant (shared colour scale)."""
    a = visual_rows(data.attention)
    if a is None or not (a["step"] >= 1).any():
        return None
    gen = a[a["step"] >= 1]
    edges = _log_bins(int(gen["step"].max()))
    idx = np.clip(np.searchsorted(edges, gen["step"].to_numpy(), side="right") - 1, 0, len(edges) - 2)
    grid = gen.assign(bin=idx).groupby(["variant", "layer", "bin"])["visual_mass"].mean()
    layers = sorted(gen["layer"].unique())
    present = [v for v in variants if v in grid.index.get_level_values(0)]
    mats = {}
    for v in present:
        m = grid.loc[v].unstack("bin").reindex(index=layers, columns=range(len(edges) - 1))
        mats[v] = m.to_numpy(dtype=float)
    vmax = float(np.nanmax([np.nanmax(m) for m in mats.values()]))
    vmin = float(np.nanmin([np.nanmin(m) for m in mats.values()]))
    _style()
    width = 5.6 * len(present) + 2.2  # inches: panels + 0.9 left margin + 1.3 colour bar
    fig, axes = plt.subplots(1, len(present), figsize=(width, 4.0), squeeze=False, sharey=True)
    right = 1 - 1.3 / width
    fig.subplots_adjust(left=0.9 / width, right=right, bottom=0.15, top=0.84, wspace=0.08)
    y_edges = np.arange(len(layers) + 1) - 0.5
    mesh = None
    for ax, v in zip(axes.flat, present):
        mesh = ax.pcolormesh(edges, y_edges, mats[v], cmap="viridis", vmin=vmin, vmax=vmax, shading="flat")
        ax.set_xscale("log")
        ax.set_title(v)
        ax.set_xlabel("generated position t (tokens, log scale)")
        ax.grid(False)
        step = max(1, len(layers) // 8)
        ax.set_yticks(range(0, len(layers), step), [str(layers[i]) for i in range(0, len(layers), step)])
    axes.flat[0].set_ylabel("decoder layer")
    if mesh is not None:
        cax = fig.add_axes((right + 0.15 / width, 0.15, 0.14 / width, 0.69))
        fig.colorbar(mesh, cax=cax, label="visual mass (fraction)")
    fig.suptitle("Visual mass by layer and position (mean over samples)", fontsize=12)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def plot_accuracy_vs_length(data: RunData, variants: list[str], out: Path) -> Path | None:
    """Accuracy per n_generated bucket (all tasks pooled), 95% bootstrap CI, n annotated."""
    s = data.samples
    if s.empty:
        return None
    rows = []
    for v in variants:
        sv = s[s["variant"] == v]
        for i, (lo, hi, _) in enumerate(length_buckets()):
            b = sv[(sv["n_generated"] >= lo) & (sv["n_generated"] < hi)]
            if len(b):
                ci = bootstrap_ci(b["score"].to_numpy())
                name = f"{int(lo)}–{int(hi) - 1}" if math.isfinite(hi) else f"≥{int(lo)}"
                rows.append((v, i, name, ci.mean, ci.low, ci.high, ci.n))
    if not rows:
        return None
    df = pd.DataFrame(rows, columns=["variant", "i", "bucket", "acc", "lo", "hi", "n"])
    used = sorted(df["i"].unique())
    pos = {b: k for k, b in enumerate(used)}
    _style()
    colors = variant_colors(variants)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    nv = df["variant"].nunique()
    for j, v in enumerate([v for v in variants if v in set(df["variant"])]):
        d = df[df["variant"] == v]
        x = np.array([pos[i] for i in d["i"]]) + (j - (nv - 1) / 2) * 0.08
        ax.errorbar(x, d["acc"], yerr=[d["acc"] - d["lo"], d["hi"] - d["acc"]], fmt="-o", capsize=3,
                    color=colors[v], label=v)
        for xi, yi, n in zip(x, d["acc"], d["n"]):
            # Alternate above/below per variant so labels of overlapping points stay readable.
            ax.annotate(f"n={n}", (xi, yi), textcoords="offset points", xytext=(4, 5 if j % 2 == 0 else -11),
                        fontsize=7, color=colors[v])
    names = df.drop_duplicates("i").set_index("i")["bucket"]
    ax.set_xticks(range(len(used)), [names[i] for i in used])
    ax.set_xlabel("output length, n_generated (tokens)")
    ax.set_ylabel("accuracy (mean score, 95% CI)")
    ax.set_ylim(-0.03, 1.05)
    ax.legend(title="variant")
    ax.set_title("Accuracy vs output length (all tasks)")
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def plot_task_bars(summary: Summary, variants: list[str], out: Path) -> Path | None:
    """Per-task accuracy, grouped by variant, 95% bootstrap CI error bars."""
    t = summary.table
    if t.empty or "accuracy" not in t or t["accuracy"].isna().all():
        return None
    tasks = list(dict.fromkeys(t["task"]))
    present = [v for v in variants if v in set(t["variant"])]
    _style()
    colors = variant_colors(variants)
    width = 0.8 / max(len(present), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(tasks) * max(len(present), 1) * 0.6 + 2), 4.2))
    for j, v in enumerate(present):
        d = t[t["variant"] == v].set_index("task").reindex(tasks)
        x = np.arange(len(tasks)) + (j - (len(present) - 1) / 2) * width
        err = np.vstack([(d["accuracy"] - d["acc_ci_low"]).to_numpy(), (d["acc_ci_high"] - d["accuracy"]).to_numpy()])
        ax.bar(x, d["accuracy"], width * 0.95, yerr=np.nan_to_num(err), capsize=3, color=colors[v], label=v)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_xlabel("task (ALL = pooled samples)")
    ax.set_ylabel("accuracy (mean score, 95% CI)")
    ax.set_ylim(0, 1.2)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(title="variant", ncols=min(len(present), 4), loc="upper center", fontsize=8, title_fontsize=8)
    ax.set_title("Accuracy per task")
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def make_plots(data: RunData, summary: Summary, out_dir: Path) -> dict[str, Path]:
    """Write every plot that the data support into ``out_dir``; returns {name: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = data.variants
    jobs = {
        "decay": lambda p: plot_decay(summary, variants, p),
        "heatmap": lambda p: plot_heatmap(data, variants, p),
        "accuracy_vs_length": lambda p: plot_accuracy_vs_length(data, variants, p),
        "accuracy_by_task": lambda p: plot_task_bars(summary, variants, p),
    }
    written: dict[str, Path] = {}
    for name, job in jobs.items():
        path = job(out_dir / f"{name}.png")
        if path is not None:
            written[name] = path
    return written
