"""Visual-attention decay and convergence per task and variant, from attention records.

- decay of ``visual_mass`` over generated positions t >= 1 per layer band (early / middle / late
  thirds of the recorded layers, and all layers): the curve is the mean over the band's layers of
  the per-layer mean over the samples that reached t; fitted to ``a + b/(c+t)``
  (:func:`pvm_bench.report.fit.fit_decay`);
- observed mass at t in :data:`~pvm_bench.report.fit.FIXED_POSITIONS` (mean over a +-5% step
  window, with a bootstrap CI over samples), NaN where no sample reached t;
- means of ``visual_mass_norm``, ``sink_mass`` and of every numeric probe column (``lens_*``,
  ``pvm_*``, or any other scalar column a probe adds);
- convergence summaries when attention.parquet has an ``entropy`` column.

:func:`decay_block` returns a flat dict (the wide summary.csv view); :func:`decay_rows` turns
it into metric rows (see :mod:`pvm_bench.report.rows`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pvm_bench.report.attention_agg import NOT_MEASURES, VIS_MEASURES, AttentionAggregates, layer_bands  # noqa: F401 (public names)
from pvm_bench.report.curves import BandDecay, band_decay_from_samples, fill_mass_at, sample_keys, sample_runs
from pvm_bench.report.fit import FIXED_POSITIONS, DecayFit, fit_decay
from pvm_bench.report.fit_stats import FitStats
from pvm_bench.report.rows import row as metric_row
from pvm_bench.report.stats import SMALL_N

BANDS: tuple[str, ...] = ("all", "early", "middle", "late")
FitStatsByBand = dict[tuple[str, str], list[FitStats]]
"""(variant, band) -> the fit statistics of that variant's task scopes, in generation order."""
COHORT = "cohort"
"""Wide-column band name of the fixed-cohort decay; its metric rows carry band ``cohort@T``."""
HESITATION_NATS = math.log(2.0)
"""A step "hesitates" when next-token entropy exceeds one bit (two equally likely tokens)."""

#: How to read the decay table (shared by summary.md and report.html).
DECAY_NOTE = (
    "visual_mass ≈ a + b/(c + t), t = generated position (tokens), fitted on per-sample curves (one level "
    "per sample, shared b and c), so samples that stop early do not bend the curve. Half-life: first t where "
    "the fitted law (observed mean curve) falls to half its start level (mean over t = 1..8); never = does "
    "not fall to half; (extrapolated) = beyond the longest output. mass@t: observed mean over steps within "
    "±5% of t (n = samples that reached t); – = not reached; n = samples in the fit. cohort@T: all layers, only the "
    "samples that "
    "reached T tokens and only their steps 1..T, so every step averages the same samples (`pvm-bench report "
    "--cohort T` to choose T). Flags: no_fit, c_at_bound, a_negative, no_decay, r2_low (R² < 0.5), "
    "extrapolated. † = fewer than 30 samples."
)
def layer_span(layers: list[int]) -> str:
    """"3" for one layer, "0–5" for several."""
    return str(layers[0]) if len(layers) == 1 else f"{layers[0]}–{layers[-1]}"


def decay_block(
    agg: AttentionAggregates, mask: np.ndarray, bands: dict[str, list[int]], seed: int, key: tuple[str, str],
    curves: list[pd.DataFrame], fits: dict[tuple[str, str, str], DecayFit], cohort_t: int | None = None,
    fit_stats: FitStatsByBand | None = None, pooled: bool = False,
) -> dict[str, Any]:
    """The flat decay/probe/convergence values of one (task, variant) scope: the generations in
    ``mask`` of the run's attention aggregates; fitted curves and fits are appended to ``curves`` /
    ``fits`` under ``key``.

    ``fit_stats``: per (variant, band), the fit statistics of the task scopes computed so far;
    a task scope adds its own, a ``pooled`` scope (all tasks, computed after them) starts its fits
    from them (:func:`~pvm_bench.report.curves.band_decay_from_samples`'s ``parts``).

    ``cohort_t``: also the all-layer decay of the fixed cohort of samples that reached ``cohort_t``
    tokens (steps 1..T; :func:`pvm_bench.report.curves.fixed_cohort`): wide values
    ``fit_cohort_*``, ``half_life_cohort_*``, ``mass_cohort_t{t}`` and ``cohort_t``; the fit is
    stored in ``fits`` under band ``"cohort"``.
    """
    row: dict[str, Any] = {}
    by_layer = agg.select(agg.by_layer, mask)
    if agg.has_visual_in(mask):
        # one band's per-sample frame at a time besides all layers' (a paper-scale scope holds 13M rows per band)
        everyone = agg.band_samples("all", mask) if bands.get("all") else None

        def per_band(band: str) -> pd.DataFrame:
            return everyone if band == "all" and everyone is not None else agg.band_samples(band, mask)

        row.update(_band_fits(per_band, everyone is not None and not everyone.empty, bands, seed, key, curves, fits,
                              fit_stats, pooled))
        if cohort_t is not None and everyone is not None and not everyone.empty:
            bd = band_decay_from_samples(everyone, seed=seed, cohort_t=cohort_t)
            fits[(key[0], key[1], COHORT)] = bd.fit
            row.update(bd.wide(COHORT), cohort_t=int(cohort_t))
        vis = by_layer[by_layer["layer"].notna()]
        for col in VIS_MEASURES:
            if col in agg.columns:
                row[f"{col}_mean"] = agg.mean_of(col, vis[f"{col}|vsum"].to_numpy(), vis[f"{col}|vn"].to_numpy())
    n_gen = int(by_layer["_rows"].sum())
    for col in agg.measures():
        n = int(by_layer[f"{col}|n"].sum())
        if n_gen and n == 0:  # another variant's probe (base has no pvm_gate)
            continue
        mean = agg.mean_of(col, by_layer[f"{col}|sum"].to_numpy(), n) if n_gen else math.nan
        per_layer = layer_means(by_layer, col)
        if per_layer:
            row.update({f"layer{layer}_{col}": v for layer, v in per_layer.items()})
            # a mean over layers of a signed value (a gate) means nothing
            if not (by_layer[f"{col}|min"].min() < 0 < by_layer[f"{col}|max"].max()):
                row[f"mean_{col}"] = mean
        else:
            row[f"mean_{col}"] = mean
    if "entropy" in agg.steps:
        cols = [c for c in ("entropy", "margin") if c in agg.steps]
        row.update(_convergence(agg.step_frame(mask, cols)))
    return row


def layer_means(by_layer: pd.DataFrame, col: str) -> dict[int, float]:
    """{layer: mean of ``col``} when ``col`` is a per-layer measurement (recorded on rows that carry
    a ``layer``, e.g. the PVM branch's ``pvm_ratio``/``pvm_gate`` on the PVM layers); each sample's
    mean over its generated steps first (``{col}|mean`` of the aggregates' ``by_layer``), then the
    mean over samples. Empty for step-level columns (values on rows without a layer)."""
    rec = by_layer[by_layer[f"{col}|n"] > 0]
    if rec.empty or rec["layer"].isna().any():
        return {}
    # per-sample means are float32 for a float32 column; their mean over samples is float64 (as pandas' was)
    means = rec[f"{col}|mean"].astype(float).groupby(rec["layer"].astype(int)).mean()
    return {int(k): float(v) for k, v in means.items()}


def _band_fits(
    per_band: Callable[[str], pd.DataFrame], has_all: bool, bands: dict[str, list[int]], seed: int,
    key: tuple[str, str], curves: list[pd.DataFrame], fits: dict[tuple[str, str, str], DecayFit],
    fit_stats: FitStatsByBand | None = None, pooled: bool = False,
) -> dict[str, Any]:
    """Decay fit, half-lives and fixed-t masses per layer band from the per-sample band curves
    (``per_band(band)``; none without ``has_all``, a non-empty all-layer frame;
    :func:`pvm_bench.report.curves.band_decay_from_samples`: per-sample fixed-effects fit, n per
    step, half-lives from the start level, fixed-t masses with a bootstrap CI over samples)."""
    row: dict[str, Any] = {}
    decays: dict[str, BandDecay | None] = {}
    for band in BANDS:
        layers = bands.get(band)
        if not layers or not has_all:
            fit = fit_decay([], [])
            fits[(key[0], key[1], band)] = fit
            decays[band] = None
            continue
        known = fit_stats.setdefault((key[1], band), []) if fit_stats is not None else None
        bd = band_decay_from_samples(per_band(band), seed=seed, parts=known if pooled else None, defer_mass_ci=True)
        if known is not None and not pooled and bd.stats is not None:
            known.append(bd.stats)
        fits[(key[0], key[1], band)] = bd.fit
        if len(bd.curve):
            curves.append(bd.curve.assign(task=key[0], variant=key[1], band=band))
        decays[band] = bd
    fill_mass_at([bd for bd in decays.values() if bd is not None], seed)  # the bands' fixed-t CIs share resamples
    for band, bd in decays.items():
        row.update(bd.wide(band) if bd is not None else {f"fit_{band}_t_max": 0})
    return row


def _early_late(frame: pd.DataFrame, col: str) -> tuple[float, float, pd.DataFrame]:
    """Per-step values of ``col`` (mean over layers), then the mean over the first and the last
    quarter of each sample's recorded steps, averaged over samples."""
    keys = sample_keys(frame)  # one integer column for the aggregates' frames: same groups, faster
    e = frame.dropna(subset=[col]) if frame[col].isna().any() else frame  # no copy of 13M rows without NaN
    runs = sample_runs(e)
    if runs is not None:  # one row per (sample, step) already, sorted: runs of rows, no groupby
        return (*_early_late_runs(e["step"].to_numpy(), e[col].to_numpy(float), runs), e)
    e = e.groupby(keys + ["step"])[col].mean().reset_index()
    if e.empty:
        return math.nan, math.nan, e
    g = e.groupby(keys)["step"]
    lo, hi = g.transform("min"), g.transform("max")
    quarter = np.ceil((hi - lo + 1) / 4.0)
    early = e[e["step"] < lo + quarter].groupby(keys)[col].mean().mean()
    late = e[e["step"] > hi - quarter].groupby(keys)[col].mean().mean()
    return float(early), float(late), e


def _early_late_runs(step: np.ndarray, value: np.ndarray, runs: np.ndarray) -> tuple[float, float]:
    """:func:`_early_late`'s two means for rows grouped in runs (:func:`~pvm_bench.report.curves.sample_runs`)."""
    sizes = np.diff(runs)
    first, last = step[runs[:-1]].astype(np.int64), step[runs[1:] - 1].astype(np.int64)
    quarter = (last - first + 4) // 4  # ceil(length / 4), per sample
    small = step.dtype if step.dtype.kind in "iu" and step.dtype.itemsize <= 4 else np.int64  # 13M rows: 4 bytes
    lo = np.repeat((first + quarter).astype(small), sizes)  # early: step < lo
    hi = np.repeat((last - quarter).astype(small), sizes)  # late: step > hi
    sample = np.repeat(np.arange(sizes.size, dtype=np.int32), sizes)

    def mean_of(part: np.ndarray) -> float:
        n = np.bincount(sample[part], minlength=sizes.size)
        sums = np.bincount(sample[part], value[part], minlength=sizes.size)
        return float(np.mean(sums[n > 0] / n[n > 0]))

    return mean_of(step < lo), mean_of(step > hi)


def _convergence(steps: pd.DataFrame) -> dict[str, float]:
    """Entropy (and, when recorded, top-2 logit margin) early vs late in the generation, and the
    hesitation rate: the fraction of recorded steps with entropy above one bit. ``steps``: the
    per-step means of one scope (:meth:`~pvm_bench.report.attention_agg.AttentionAggregates.step_frame`)."""
    out: dict[str, float] = {}
    early, late, e = _early_late(steps, "entropy")
    out.update(entropy_early=early, entropy_late=late, entropy_delta=late - early,
               hesitation_rate=float((e["entropy"] > HESITATION_NATS).mean()) if len(e) else math.nan)
    if "margin" in steps.columns:
        m_early, m_late, _ = _early_late(steps, "margin")
        out.update(margin_early=m_early, margin_late=m_late)
    return out


#: (wide suffix, metric name, digits) of the per-band fit values.
FIT_FIELDS = (("a", "decay_a"), ("b", "decay_b"), ("c", "decay_c"), ("r2", "decay_r2"), ("t_max", "decay_t_max"))
CONVERGENCE_FIELDS = (
    "entropy_early",
    "entropy_late",
    "entropy_delta",
    "hesitation_rate",
    "margin_early",
    "margin_late",
)


def cohort_band(t: int) -> str:
    """The metric-row band of the fixed cohort of length ``t``: ``"cohort@256"``."""
    return f"{COHORT}@{int(t)}"


def decay_rows(wide: dict[str, Any], task: str, variant: str, bands: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Metric rows (``kind`` "decay", "probe" or "convergence") from a :func:`decay_block` dict.

    ``visual_mass`` at t (band "all") is gated by ``check`` (higher is better); every other row
    is descriptive (``higher_is_better=None``). The fixed cohort's rows carry band ``cohort@T``
    (:func:`cohort_band`); per-layer probe values carry band ``layer:L``.
    """
    out: list[dict[str, Any]] = []
    specs = [(band, band) for band in BANDS if band in bands]
    if wide.get("cohort_t"):
        specs.append((COHORT, cohort_band(int(wide["cohort_t"]))))
    for band, label in specs:
        t_max = wide.get(f"fit_{band}_t_max", math.nan)
        if not (isinstance(t_max, (int, float)) and t_max > 0):
            continue
        flags = str(wide.get(f"fit_{band}_flags") or "")
        n_fit = int(wide.get(f"fit_{band}_n_samples") or 0)
        for suffix, name in FIT_FIELDS:
            out.append(metric_row(task, variant, name, float(wide[f"fit_{band}_{suffix}"]), band=label, kind="decay",
                                  n=n_fit, flags=flags))
        for kind in ("fit", "obs"):
            extra = "extrapolated" if kind == "fit" and wide.get(f"half_life_{band}_fit_extrapolated") else ""
            ci = (
                (
                    wide.get(f"half_life_{band}_fit_ci_low", math.nan),
                    wide.get(f"half_life_{band}_fit_ci_high", math.nan),
                )
                if kind == "fit"
                else (math.nan, math.nan)
            )
            out.append(metric_row(task, variant, f"half_life_{kind}", float(wide[f"half_life_{band}_{kind}"]),
                                  band=label, kind="decay", flags=extra, ci_low=ci[0], ci_high=ci[1], n=n_fit))
        for t in FIXED_POSITIONS:
            col = f"mass_{band}_t{t}"
            value = wide.get(col, math.nan)
            if isinstance(value, float) and math.isfinite(value):
                n = int(wide.get(f"n_{band}_t{t}") or 0)
                out.append(metric_row(
                    task, variant, "visual_mass", value, band=label, t=float(t), ci_low=wide[f"{col}_ci_low"],
                    ci_high=wide[f"{col}_ci_high"], higher_is_better=True if band == "all" else None, kind="decay",
                    n=n, flags="small_n" if 0 < n < SMALL_N else "",
                ))
    for key, value in wide.items():
        if key.endswith("_mean") and key[: -len("_mean")] in ("visual_mass_norm", "sink_mass"):
            out.append(metric_row(task, variant, key[: -len("_mean")], value, kind="probe"))
        elif key.startswith("mean_"):
            out.append(metric_row(task, variant, key[len("mean_"):], value, kind="probe"))
        elif key.startswith("layer") and "_" in key and key[len("layer"):].split("_", 1)[0].isdigit():
            layer, metric = key[len("layer"):].split("_", 1)
            out.append(metric_row(task, variant, metric, value, band=f"layer:{int(layer)}", kind="probe"))
        elif key in CONVERGENCE_FIELDS:
            out.append(metric_row(task, variant, key, value, kind="convergence"))
    return out
