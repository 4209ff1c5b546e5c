"""Plots of attention records: decay curves, the layer x position heatmap, PVM's own signals.

- :func:`plot_decay`: per layer band, the observed mean visual mass in log-spaced bins with a
  95% CI band over samples, the fitted law (per-sample fixed-effects fit, dashed and labelled
  with its flags when a flag is raised), the fitted half-life, and below each panel the number
  of samples behind every bin (the tail is a few long outputs: the reader must see it);
- :func:`plot_heatmap`: mean visual mass per layer x position bin, one panel per variant, plus a
  ``variant - base`` panel per other variant on a diverging scale centred at 0;
- :func:`plot_decay_cohort`: all layers, the fixed cohort of samples that reached T tokens (steps
  1..T: the same samples at every step) against all samples (whose tail is the survivors only);
- :func:`plot_pvm_signals`: the branch probe's ``pvm_ratio`` (||PVM output|| / ||residual||) per
  PVM layer vs position with a CI band, and each layer's ``pvm_gate`` value.

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

from pvm_bench.report.curves import (
    BinCells,
    band_decay_from_samples,
    binned_curve,
    cohort_t_of,
    curve_from_moments,
    fixed_cohort,
    log_bin_edges,
    sample_lengths,
)
from pvm_bench.report.fit import DecayFit
from pvm_bench.report.plot_style import save_figure, setup_style, variant_colors
from pvm_bench.report.summary import ALL_TASKS, BANDS, REFERENCE_VARIANT, RunData, Summary, layer_span

MIN_N_FOR_SCALE = 5
"""Bins with fewer samples do not set the y range of the decay plot (their bands are clipped)."""


def _scope(data: RunData, summary: Summary) -> str | None:
    """The pooled task when the run has several tasks, else its only task."""
    tasks = data.tasks
    if not tasks:
        return None
    return ALL_TASKS if len(tasks) > 1 else tasks[0]


def law_text(fit: DecayFit) -> str:
    """The fitted law as text with proper signs, e.g. ``0.012 + 3.094/(t + 100.2)``."""
    def signed(x: float, digits: int) -> str:
        return f"{'−' if x < 0 else '+'} {abs(x):.{digits}f}"

    return f"{fit.a:.3f} {signed(fit.b, 3)}/(t {signed(fit.c, 1)})"


def _fit_label(variant: str, fit: DecayFit, hl_ci: tuple[float, float] | None = None) -> str:
    label = f"{variant}: {law_text(fit)}, R² {fit.r2:.2f}"
    hl = fit.half_life()
    if math.isfinite(hl):
        label += f", t½ {hl:.0f}"
        if hl_ci is not None and math.isfinite(hl_ci[0]):
            label += f" [{hl_ci[0]:.0f}, {'∞' if math.isinf(hl_ci[1]) else f'{hl_ci[1]:.0f}'}]"
        label += " (extrapolated)" if fit.extrapolated() else ""
    flags = [f for f in fit.flags() if f != "extrapolated"]
    if flags:
        label += "\n  ⚑ " + ", ".join(flags)
    return label


def _summary_fit(
    summary: Summary, task: str, variant: str, band: str,
) -> tuple[DecayFit | None, tuple[float, float] | None]:
    """The summary's per-sample fit of (task, variant, band) and its half-life CI, if it has one."""
    fit = summary.fits.get((task, variant, band))
    if fit is None or fit.method != "per_sample":
        return None, None
    t = summary.table
    ci = None
    lo_col, hi_col = f"half_life_{band}_fit_ci_low", f"half_life_{band}_fit_ci_high"
    if lo_col in t.columns and hi_col in t.columns:
        row = t[(t["task"] == task) & (t["variant"] == variant)]
        if len(row):
            ci = (float(row[lo_col].iloc[0]), float(row[hi_col].iloc[0]))
    return fit, ci


def plot_decay(summary: Summary, variants: list[str], out: Path, data: RunData | None = None) -> Path | None:
    """Decay curves per layer band (see the module docstring). Needs ``data`` (the attention
    records) for the CI bands, n per bin and the per-sample fit; without it (old callers) the
    summary's mean curves and fits are drawn without bands."""
    agg = data.agg if data is not None else None
    if data is None or agg is None or not agg.has_visual:
        return _plot_decay_from_summary(summary, variants, out)
    task = _scope(data, summary)
    if task is None:
        return None
    scope = agg.gen_mask(None if task == ALL_TASKS else task)
    bands = [b for b in BANDS if b in summary.bands]
    if not bands or not agg.has_visual_in(scope):
        return None
    setup_style()
    colors = variant_colors(variants)
    ncols = 2 if len(bands) > 1 else 1
    nrows = math.ceil(len(bands) / ncols)
    fig = plt.figure(figsize=(6.4 * ncols, 5.0 * nrows))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.3, wspace=0.16)
    edges = log_bin_edges(agg.max_visual_step(scope))
    # one variant's rows at a time (13M per band at paper scale); its layer bands share their cells
    observed: dict[tuple[str, str], tuple[pd.DataFrame, DecayFit, tuple[float, float] | None]] = {}
    for v in variants:
        cells: BinCells | None = None
        for band in bands:
            per_sample = agg.band_samples(band, scope & agg.gen_mask(variant=v))
            if per_sample.empty:
                continue
            if cells is None or not cells.matches(per_sample):  # the first band, or one measured at other steps
                cells = BinCells.of(per_sample, edges)
            fit, hl_ci = _summary_fit(summary, task, v, band)
            if fit is None:  # the summary was built without per-sample fits: fit here
                bd = band_decay_from_samples(per_sample)
                fit, hl_ci = bd.fit, bd.fit_ci.half_life
            observed[(band, v)] = (binned_curve(per_sample, edges, cells=cells), fit, hl_ci)
        del cells, per_sample  # before the next variant's rows (bands is not empty)
    first_ax = None
    top = 0.0
    for k, band in enumerate(bands):
        r, c = divmod(k, ncols)
        inner = outer[r, c].subgridspec(2, 1, height_ratios=[3.2, 1.0], hspace=0.06)
        ax = fig.add_subplot(inner[0], sharey=first_ax)
        first_ax = first_ax or ax
        ax_n = fig.add_subplot(inner[1], sharex=ax)
        layers = summary.bands[band]
        for v in variants:
            if (band, v) not in observed:
                continue
            obs, fit, hl_ci = observed[(band, v)]
            # y range from bins with enough samples: a 2-sample t-interval must not set the scale
            solid = obs[obs["n"] >= MIN_N_FOR_SCALE]
            top = max(top, float(np.nanmax(solid["ci_high"].fillna(solid["mass"]))) if len(solid) else 0.0,
                      float(obs["mass"].max()))
            col = colors[v]
            ax.fill_between(obs["step"], obs["ci_low"], obs["ci_high"], color=col, alpha=0.18, lw=0)
            ax.plot(obs["step"], obs["mass"], "o", ms=3.2, alpha=0.7, color=col)
            ax_n.plot(obs["step"], obs["n"], "-", drawstyle="steps-mid", color=col, lw=1.4)
            if fit.ok:
                tt = np.geomspace(1, max(fit.t_max, 2), 200)
                style = "--" if [f for f in fit.flags() if f != "extrapolated"] else "-"
                ax.plot(tt, fit.predict(tt), style, lw=2, color=col, label=_fit_label(v, fit, hl_ci))
                hl = fit.half_life()
                if math.isfinite(hl) and not fit.extrapolated():
                    ax.plot([hl], [float(fit.predict(hl))], marker="v", ms=8, color=col, mec="white")
            else:
                ax.plot(obs["step"], obs["mass"], "-", lw=1, color=col, label=f"{v} (no fit)")
        ax.set_xscale("log")
        ax.set_title(f"{band} layers ({layer_span(layers)})")
        ax.tick_params(labelbottom=False)
        if c == 0:
            ax.set_ylabel("visual mass (fraction of\nattention on image tokens)")
            ax_n.set_ylabel("n samples")
        ax.legend(
            fontsize=7.5,
            loc="upper right",
            title="dots ± band: observed mean, 95% CI · line: fit · ▼ t½ [95% CI]",
            title_fontsize=7.5,
        )
        ax_n.set_xlabel("generated position t (tokens, log scale)")
        ax_n.set_ylim(bottom=0)
    if first_ax is not None and top > 0:
        first_ax.set_ylim(0.0, 1.12 * top)  # a mass is never negative; bands of tiny bins are clipped
    scope = "all tasks" if task == ALL_TASKS else f"task {task}"
    fig.suptitle(f"Attention to the image vs generated position ({scope}); "
                 "fit: per-sample levels, dashed = flagged", fontsize=12)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.07 if nrows > 1 else 0.12,
                        top=0.92 if nrows > 1 else 0.86)
    return save_figure(fig, out)


def plot_decay_cohort(
    data: RunData, variants: list[str], out: Path, cohort_t: int | None = None,
) -> Path | None:
    """All-layer decay of the fixed cohort (samples that reached ``cohort_t`` tokens; default
    :func:`~pvm_bench.report.curves.suggest_cohort_t` of all variants' samples together, so every
    variant uses the same T) next to the curve of all samples, one panel per variant."""
    agg = data.agg
    if agg is None or not agg.has_visual:
        return None
    scope = agg.gen_mask(data.tasks[0] if len(data.tasks) == 1 else None)
    t_cohort = cohort_t if cohort_t is not None else cohort_t_of(agg.visual_lengths(scope))  # every variant's samples
    present = [v for v in variants if agg.has_visual_in(scope & agg.gen_mask(variant=v))]
    if t_cohort is None or not present:
        return None
    setup_style()
    colors = variant_colors(variants)
    fig, axes = plt.subplots(1, len(present), figsize=(6.0 * len(present), 5.3), squeeze=False, sharey=True)
    edges = log_bin_edges(agg.max_visual_step(scope))
    top = 0.0
    for ax, v in zip(axes.flat, present):
        per_sample = agg.band_samples("all", scope & agg.gen_mask(variant=v))
        cohort = fixed_cohort(per_sample, t_cohort)
        col = colors[v]
        full = binned_curve(per_sample, edges)
        ax.plot(full["step"], full["mass"], "o", ms=3.5, mfc="white", mec=col, alpha=0.8,
                label=f"all samples (n={len(sample_lengths(per_sample))}, "
                      "tail = survivors)")
        top = max(top, float(full.loc[full["n"] >= MIN_N_FOR_SCALE, "mass"].max() if len(full) else 0.0))
        if not cohort.empty:
            obs = binned_curve(cohort, edges)
            n_cohort = int(obs["n"].max())
            ax.fill_between(obs["step"], obs["ci_low"], obs["ci_high"], color=col, alpha=0.2, lw=0)
            ax.plot(obs["step"], obs["mass"], "o", ms=4, color=col, label=f"cohort (n={n_cohort}), 95% CI")
            top = max(top, float(obs.loc[obs["n"] >= MIN_N_FOR_SCALE, "ci_high"].max()))
            fit = band_decay_from_samples(cohort, cohort_t=t_cohort, bootstrap=False).fit
            if fit.ok:
                tt = np.geomspace(1, t_cohort, 100)
                style = "--" if [f for f in fit.flags() if f != "extrapolated"] else "-"
                ax.plot(tt, fit.predict(tt), style, lw=2, color=col, label=_fit_label("cohort fit", fit))
        ax.axvline(t_cohort, color="#888888", lw=1, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{v}")
        ax.set_xlabel("generated position t (tokens, log scale)")
        # below the axes: inside, it covered the cohort's last points (issue 21)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    if top > 0:
        axes.flat[0].set_ylim(0.0, 1.15 * top)
    axes.flat[0].set_ylabel("visual mass, all layers")
    fig.suptitle(f"Fixed cohort: only the samples that reached t = {t_cohort} tokens (steps 1..{t_cohort})",
                 fontsize=12)
    # fixed margins: tight_layout re-draws log axes and doubles the cost
    fig.subplots_adjust(left=0.8 / fig.get_figwidth(), right=0.98, bottom=0.31, top=0.89, wspace=0.06)
    return save_figure(fig, out)


def _plot_decay_from_summary(summary: Summary, variants: list[str], out: Path) -> Path | None:
    """Fallback without attention records: the summary's mean curves and fits only."""
    curves = summary.curves
    if curves.empty:
        return None
    task = ALL_TASKS if (curves["task"] == ALL_TASKS).any() else curves["task"].iloc[0]
    curves = curves[curves["task"] == task]
    setup_style()
    colors = variant_colors(variants)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for v in variants:
        c = curves[(curves["band"] == "all") & (curves["variant"] == v)]
        if c.empty:
            continue
        ax.plot(c["step"], c["mass"], "o", ms=2.5, alpha=0.6, color=colors[v])
        fit = summary.fits.get((task, v, "all"))
        if fit is not None and fit.ok:
            tt = np.geomspace(1, max(fit.t_max, 2), 200)
            ax.plot(tt, fit.predict(tt), "-", lw=2, color=colors[v], label=_fit_label(v, fit))
    ax.set_xscale("log")
    ax.set_xlabel("generated position t (tokens, log scale)")
    ax.set_ylabel("visual mass")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out)


def plot_heatmap(data: RunData, variants: list[str], out: Path) -> Path | None:
    """Layer x position heatmap of mean visual mass per variant (shared scale), then one
    ``variant - base`` panel per other variant (paired: per sample, layer and bin, only where both
    variants reached the bin; a difference of two unpaired means would mix in who survives;
    diverging scale, symmetric around 0). Bins: the fixed log-spaced
    :data:`~pvm_bench.report.attention_agg.HEATMAP_EDGES` up to the longest output
    (:class:`~pvm_bench.report.attention_agg.Heatmap`)."""
    heat = data.agg.heatmap if data.agg is not None else None
    if heat is None or not heat.grids:
        return None
    edges, layers, mats = heat.edges, heat.layers, heat.grids
    present = [v for v in variants if v in mats]
    if not present:
        return None
    blank = np.full((len(layers), len(edges) - 1), np.nan)
    diffs = {
        v: heat.diffs.get(v, blank)
        for v in present if v != REFERENCE_VARIANT and REFERENCE_VARIANT in mats
    }
    panels = [(v, mats[v], False) for v in present]
    panels += [(f"{v} − {REFERENCE_VARIANT} (paired)", d, True) for v, d in diffs.items()]
    vmin = float(np.nanmin([np.nanmin(mats[v]) for v in present]))
    vmax = float(np.nanmax([np.nanmax(mats[v]) for v in present]))
    dmax = max([float(np.nanmax(np.abs(d))) for d in diffs.values() if np.isfinite(d).any()] or [0.0]) or 1e-6
    setup_style()
    # one panel per row, ~790 px wide: side by side (2024 px for base, pvm and the difference) the
    # page shrank the image until its text could not be read
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.2, 2.3 * len(panels) + 1.0), squeeze=False, sharex=True)
    fig.subplots_adjust(left=0.12, right=0.86, bottom=0.55 / (2.3 * len(panels) + 1.0) + 0.04,
                        top=1 - 0.7 / (2.3 * len(panels) + 1.0), hspace=0.35)
    y_edges = np.arange(len(layers) + 1) - 0.5
    for ax, (title, mat, is_diff) in zip(axes.flat, panels):
        kw = dict(cmap="RdBu_r", vmin=-dmax, vmax=dmax) if is_diff else dict(cmap="viridis", vmin=vmin, vmax=vmax)
        mesh = ax.pcolormesh(edges, y_edges, mat, shading="flat", **kw)
        ax.set_xscale("log")
        ax.set_title(title, fontsize=11)
        ax.set_ylabel("decoder layer")
        ax.grid(False)
        step = max(1, len(layers) // 8)
        ax.set_yticks(range(0, len(layers), step), [str(layers[i]) for i in range(0, len(layers), step)])
        # one colour bar per panel; the variants' panels share vmin/vmax, so their bars are the same scale
        fig.colorbar(mesh, ax=ax, label="Δ vs base" if is_diff else "visual mass", pad=0.02)  # type: ignore[arg-type]
    axes.flat[-1].set_xlabel("generated position t (log scale)")
    fig.suptitle("Visual mass by layer and position (mean over samples); red = more than base", fontsize=12)
    return save_figure(fig, out)


def plot_pvm_signals(data: RunData, variants: list[str], out: Path) -> Path | None:
    """``pvm_ratio`` per PVM layer vs generated position (binned mean over samples, 95% CI band),
    one panel per variant that recorded it, gate values in the legend. None without the columns.
    The bins are the 40 log bins snapped to the aggregate tables' fixed bins
    (:func:`~pvm_bench.report.curves.snapped_edges`; computed in DuckDB, ``AttentionAggregates.pvm``)."""
    agg = data.agg
    if agg is None or agg.pvm is None or agg.pvm.empty:
        return None
    rows = agg.pvm
    present = [v for v in variants if (rows["variant"] == v).any()]
    setup_style()
    fig, axes = plt.subplots(1, len(present), figsize=(max(8.0, 6.4 * len(present)), 4.4), squeeze=False,
                             sharey=True)
    for ax, v in zip(axes.flat, present):
        rv = rows[rows["variant"] == v]
        layers = sorted(int(x) for x in rv["layer"].unique())
        palette = plt.get_cmap("plasma")(np.linspace(0.1, 0.8, max(len(layers), 1)))
        for color, layer in zip(palette, layers):
            obs = curve_from_moments(rv[rv["layer"] == layer])
            label = f"layer {layer}"
            if (v, layer) in agg.pvm_gates:
                label += f" (gate {agg.pvm_gates[(v, layer)]:+.3f})"
            ax.fill_between(obs["step"], obs["ci_low"], obs["ci_high"], color=color, alpha=0.2, lw=0)
            ax.plot(obs["step"], obs["mass"], "-o", ms=3, lw=1.5, color=color, label=label)
        ax.set_xscale("log")
        ax.set_title(f"{v}: PVM branch contribution")
        ax.set_xlabel("generated position t (tokens, log scale)")
        ax.legend(fontsize=8, title="PVM layer (gate α)", title_fontsize=8)
    axes.flat[0].set_ylabel("pvm_ratio = ‖PVM output‖ / ‖residual‖")
    fig.suptitle("What the PVM branch adds to the residual stream (mean over samples, 95% CI)", fontsize=12)
    fig.subplots_adjust(left=0.9 / fig.get_figwidth(), right=0.98, bottom=0.13, top=0.84, wspace=0.06)
    return save_figure(fig, out)
