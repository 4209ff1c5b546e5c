"""Per-sample decay curves: n per step, binned means with CIs, fixed cohorts, and the band fit.

The unit of every statistic here is the *sample* (one generation, keyed by (task, sample_id,
repeat) within a variant), never a step: a sample contributes one value per step (its mean over
the band's layers), a bin's CI is taken over the samples in the bin, and the decay fit is the
per-sample fixed-effects fit (:func:`pvm_bench.report.fit.fit_decay_per_sample`).

Inputs are visual-mass rows as in attention.parquet (columns task, sample_id, repeat, step,
layer, visual_mass; already restricted to one variant). Steps < 1 (the prompt) are ignored.

- :func:`sample_curves`: one row per (sample, step): the mass averaged over the given layers;
- :func:`step_curve`: the mean curve with ``n`` (samples that reached each step);
- :func:`binned_curve`: log-spaced bins, per-sample bin means, mean +- t-interval over samples;
- :func:`fixed_cohort`: only the samples that reached T tokens, steps 1..T (no survivor bias);
- :func:`band_decay` / :func:`band_decay_from_samples`: everything the summary row of one layer
  band needs (:class:`BandDecay`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from pvm_bench.attention_tables import log_bin_edges as _log_bin_edges
from pvm_bench.report.fit import (
    FIXED_POSITIONS,
    DecayFit,
    fit_decay_per_sample,
    fit_rows,
    observed_half_life,
    window,
)
from pvm_bench.report.fit_ci import EMPTY, DecayCI, decay_bootstrap
from pvm_bench.report.fit_rows import FitRows, runs_of
from pvm_bench.report.fit_stats import FitStats
from pvm_bench.report.stats import MeanCI, bootstrap_cis

SAMPLE_KEYS: tuple[str, ...] = ("task", "sample_id", "repeat")
"""Sample identity within one variant (contracts.md: never sample_id alone)."""

N_LOG_BINS = 40
"""Log-spaced position bins for binned curves (plots), so long runs stay legible."""


def sample_curves(vis: pd.DataFrame, layers: list[int] | None = None, column: str = "visual_mass") -> pd.DataFrame:
    """Per (sample, step >= 1) mean of ``column`` over ``layers`` (all layers when None).

    Returns columns ``task, sample_id, repeat, step, mass`` (float), sorted; empty when there
    is nothing to average.
    """
    cols = [*SAMPLE_KEYS, "step", "mass"]
    if vis is None or vis.empty or column not in vis:
        return pd.DataFrame(columns=cols)
    rows = vis[(vis["step"] >= 1) & vis[column].notna()]
    if layers is not None and "layer" in rows:
        rows = rows[rows["layer"].isin(layers)]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    out = rows.groupby([*SAMPLE_KEYS, "step"], sort=True)[column].mean().rename("mass").reset_index()
    out["mass"] = out["mass"].astype(float)
    return out


def sample_keys(per_sample: pd.DataFrame) -> list[str]:
    """The columns that tell samples apart: ``task`` alone when ``sample_id`` and ``repeat`` are
    constant (frames of :meth:`~pvm_bench.report.attention_agg.AttentionAggregates.band_samples`,
    where task is the generation), else :data:`SAMPLE_KEYS`. Grouping by either gives the same
    groups in the same order; one integer column is much faster at paper scale."""
    rest = [per_sample[k].to_numpy() for k in SAMPLE_KEYS[1:]]
    if len(per_sample) and all(r.dtype.kind in "iu" and r[0] == r[-1] and (r == r[0]).all() for r in rest):
        return ["task"]
    return list(SAMPLE_KEYS)


def sample_runs(per_sample: pd.DataFrame) -> np.ndarray | None:
    """Where each sample's rows start (plus the end), when the frame is keyed by one integer
    column, sorted, with each sample's steps ascending and distinct (the aggregates' frames,
    :func:`sample_keys` = ``["task"]``): groups are then runs of rows, read in O(rows) without a
    groupby. None for any other frame."""
    if sample_keys(per_sample) != ["task"]:
        return None
    gen, step = per_sample["task"].to_numpy(), per_sample["step"].to_numpy()
    if gen.dtype.kind not in "iu" or step.dtype.kind not in "iu" or not gen.size:
        return None
    dg = np.diff(gen)
    if not (np.all(dg >= 0) and np.all((dg > 0) | (np.diff(step) > 0))):
        return None
    return np.r_[0, np.flatnonzero(dg) + 1, gen.size]


def sample_lengths(per_sample: pd.DataFrame) -> pd.Series:
    """Last recorded step of each sample (indexed by the sample keys)."""
    runs = sample_runs(per_sample)
    if runs is not None:
        gen, step = per_sample["task"].to_numpy(), per_sample["step"].to_numpy()
        return pd.Series(step[runs[1:] - 1], index=pd.Index(gen[runs[:-1]], name="task"), name="step")
    return per_sample.groupby(sample_keys(per_sample))["step"].max()


def step_curve(per_sample: pd.DataFrame) -> pd.DataFrame:
    """Mean over samples at each step, with ``n`` = number of samples that reached the step.

    Columns ``step, mass, n``. This is the curve whose tail is averaged over survivors only:
    always show ``n`` next to it.
    """
    if per_sample.empty:
        return pd.DataFrame({"step": pd.Series(dtype=int), "mass": pd.Series(dtype=float), "n": pd.Series(dtype=int)})
    step = per_sample["step"].to_numpy()
    if step.dtype.kind in "iu" and step.min() >= 0:  # integer steps: a counting pass, no groupby
        n = np.bincount(step)
        at = np.flatnonzero(n)
        sums = np.bincount(step, per_sample["mass"].to_numpy(float))
        return pd.DataFrame({"step": at.astype(step.dtype), "mass": sums[at] / n[at], "n": n[at]})
    g = per_sample.groupby("step")["mass"]
    return pd.DataFrame({"mass": g.mean(), "n": g.size()}).reset_index()


def fixed_cohort(per_sample: pd.DataFrame, t_cohort: int) -> pd.DataFrame:
    """Only the samples that reached step ``t_cohort``, and only their steps 1..t_cohort.

    Every step then averages the same samples, so the curve's shape cannot come from who
    survives. Empty when no sample reached ``t_cohort``.
    """
    if per_sample.empty:
        return per_sample
    runs = sample_runs(per_sample)
    if runs is not None:  # each sample's last row holds its longest step
        reached = np.repeat(per_sample["step"].to_numpy()[runs[1:] - 1], np.diff(runs))
    else:
        reached = per_sample.groupby(sample_keys(per_sample))["step"].transform("max").to_numpy()
    return per_sample[(reached >= t_cohort) & (per_sample["step"] <= t_cohort).to_numpy()].reset_index(drop=True)


def suggest_cohort_t(per_sample: pd.DataFrame, min_share: float = 0.5) -> int | None:
    """The largest power of two T that at least ``min_share`` of the samples reached (None when
    fewer than 2 samples or T would be < 8): a default for the fixed-cohort view."""
    if per_sample.empty:
        return None
    return cohort_t_of(sample_lengths(per_sample).to_numpy(), min_share)


def cohort_t_of(lengths: np.ndarray, min_share: float = 0.5) -> int | None:
    """:func:`suggest_cohort_t` from the samples' lengths (their last steps)."""
    if lengths.size < 2:
        return None
    t = int(np.quantile(lengths, 1.0 - min_share, method="lower"))
    if t < 8:
        return None
    return 1 << (t.bit_length() - 1)


def log_bin_edges(t_max: int, n_bins: int = N_LOG_BINS) -> np.ndarray:
    """Integer-valued, strictly increasing log-spaced bin edges from 1 to t_max + 1."""
    return _log_bin_edges(t_max, n_bins)


def snapped_edges(fine: np.ndarray, t_max: int) -> np.ndarray:
    """:func:`log_bin_edges` (``t_max``) snapped down to edges of ``fine``, so that every bin is a
    union of fine bins (a per-sample bin mean is then sum / count of its fine-bin sums)."""
    snapped = fine[np.clip(np.searchsorted(fine, log_bin_edges(t_max), side="right") - 1, 0, len(fine) - 1)]
    return np.unique(np.append(snapped, fine[min(int(np.searchsorted(fine, t_max, side="right")), len(fine) - 1)]))


def curve_from_moments(frame: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """:func:`binned_curve`'s columns from per-bin moments over samples computed elsewhere (DuckDB):
    ``frame`` has bin, mass (mean over samples), sd (their standard deviation), n (samples), logt
    (mean ln step over the bin's rows), t_lo, t_hi."""
    cols = ["bin", "step", "t_lo", "t_hi", "mass", "ci_low", "ci_high", "n"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    out = frame.reset_index(drop=True)
    q = sps.t.ppf(0.5 + confidence / 2.0, np.maximum(out["n"] - 1, 1))
    half = np.where(out["n"] >= 2, q * out["sd"].fillna(0.0) / np.sqrt(out["n"]), np.nan)
    out = out.assign(ci_low=out["mass"] - half, ci_high=out["mass"] + half, step=np.exp(out["logt"]))
    return out[cols]


def binned_curve(per_sample: pd.DataFrame, edges: np.ndarray | None = None, confidence: float = 0.95,
                 cells: BinCells | None = None) -> pd.DataFrame:
    """Log-binned curve with a CI over samples.

    Each sample's values within a bin are averaged first (one value per sample and bin, so long
    samples do not weigh more), then per bin: ``mass`` = mean over samples, ``ci_low``/``ci_high``
    = mean -+ t(0.975, n-1) * sd / sqrt(n) (NaN when n < 2), ``n`` = samples with a value in the
    bin, ``step`` = geometric centre of the steps present, ``t_lo``/``t_hi`` = the bin's steps.
    ``cells``: :meth:`BinCells.of` of a frame with the same keys and steps (another layer band of
    the same generations), to reuse.
    """
    if per_sample.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    if edges is None:
        edges = log_bin_edges(int(per_sample["step"].max()))
    cells = cells if cells is not None else BinCells.of(per_sample, edges)
    if cells is not None:
        return cells.curve(per_sample["mass"].to_numpy(float), confidence)
    steps = per_sample["step"].to_numpy()
    idx = np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, len(edges) - 2)
    framed = per_sample.assign(bin=idx, logt=np.log(steps.astype(float)))
    per = framed.groupby(["bin", *sample_keys(per_sample)])["mass"].mean().reset_index()
    pos = framed.groupby("bin").agg(logt=("logt", "mean"), t_lo=("step", "min"), t_hi=("step", "max"))
    return _curve_of(per, pos, confidence)


CURVE_COLUMNS = ["bin", "step", "t_lo", "t_hi", "mass", "ci_low", "ci_high", "n"]


def _curve_of(per: pd.DataFrame, pos: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """:func:`binned_curve` from the per-(sample, bin) means ``per`` (bin, mass) and the bins'
    positions ``pos`` (logt, t_lo, t_hi, indexed by bin)."""
    g = per.groupby("bin")["mass"]
    out = pd.DataFrame({"mass": g.mean(), "sd": g.std(ddof=1), "n": g.size()})
    out = out.join(pos).reset_index()
    q = sps.t.ppf(0.5 + confidence / 2.0, np.maximum(out["n"] - 1, 1))
    half = np.where(out["n"] >= 2, q * out["sd"].fillna(0.0) / np.sqrt(out["n"]), np.nan)
    out["ci_low"], out["ci_high"] = out["mass"] - half, out["mass"] + half
    out["step"] = np.exp(out["logt"])
    return out[CURVE_COLUMNS]


@dataclass
class BinCells:
    """The (sample, bin) cells of a per-sample frame whose samples are sorted runs of integer steps
    (the aggregates' frames, :func:`sample_runs`): each row's cell, each cell's bin and the bins'
    positions. They depend on the keys and steps only, so the layer bands of one scope share them."""

    edges: np.ndarray
    run: np.ndarray
    cell_bin: np.ndarray
    pos: pd.DataFrame
    keys: tuple[np.ndarray, np.ndarray]
    """The frame's sample keys and steps (its own arrays, not copies)."""

    @classmethod
    def of(cls, per_sample: pd.DataFrame, edges: np.ndarray) -> BinCells | None:
        """The cells of ``per_sample`` over ``edges``; None for other frames (:func:`binned_curve`
        groups those with pandas)."""
        steps = per_sample["step"].to_numpy()
        runs = sample_runs(per_sample)
        if runs is None or steps.min() < 0:
            return None
        # integer steps: each row's bin by table lookup (13M rows at paper scale), the positions per
        # distinct step
        at_step = np.bincount(steps)
        lut = np.clip(np.searchsorted(edges, np.arange(at_step.size), side="right") - 1, 0, len(edges) - 2)
        idx = lut[steps]
        new_cell = np.empty(steps.size, dtype=bool)
        new_cell[0] = True
        np.not_equal(idx[1:], idx[:-1], out=new_cell[1:])
        new_cell[runs[1:-1]] = True  # a new sample starts a new cell
        cell_bin = idx[np.flatnonzero(new_cell)]
        run = np.cumsum(new_cell, dtype=np.intp) - 1
        del new_cell, idx
        present = np.flatnonzero(at_step)  # the distinct steps, ascending
        pbin = lut[present]
        n_rows = np.bincount(pbin, at_step[present], minlength=len(edges) - 1)
        at = np.flatnonzero(n_rows)
        logt = np.bincount(pbin, at_step[present] * np.log(present.astype(float)), minlength=len(edges) - 1)[at]
        pos = pd.DataFrame({"logt": logt / n_rows[at], "t_lo": present[np.searchsorted(pbin, at, side="left")],
                            "t_hi": present[np.searchsorted(pbin, at, side="right") - 1]},
                           index=pd.Index(at, name="bin"))
        return cls(edges, run, cell_bin, pos, (per_sample["task"].to_numpy(), steps))

    def matches(self, per_sample: pd.DataFrame) -> bool:
        """Whether ``per_sample`` has this frame's samples and steps (another layer band of them)."""
        task, step = self.keys
        return (len(per_sample) == task.size and sample_keys(per_sample) == ["task"]
                and np.array_equal(per_sample["task"].to_numpy(), task)
                and np.array_equal(per_sample["step"].to_numpy(), step))

    def curve(self, mass: np.ndarray, confidence: float = 0.95) -> pd.DataFrame:
        """:func:`binned_curve` of the frame's ``mass`` (one value per row)."""
        per = pd.DataFrame({"bin": self.cell_bin, "mass": np.bincount(self.run, mass) / np.bincount(self.run)})
        # within a bin the samples keep their order: the same values in the same order as the groupby
        return _curve_of(per.sort_values("bin", kind="stable"), self.pos, confidence)


@dataclass
class BandDecay:
    """Decay statistics of one layer band of one (task, variant).

    ``fit``: the per-sample fixed-effects fit; ``curve``: :func:`step_curve` (columns step, mass,
    n); ``half_life_obs``: :func:`~pvm_bench.report.fit.observed_half_life` of that curve;
    ``mass_at``: observed mass at the fixed positions (mean over a +-5% step window per sample,
    percentile bootstrap over samples; absent where no sample reached t); ``cohort_t``: the
    fixed-cohort length used, if any; ``fit_ci``: bootstrap CIs over samples of the fit and its
    half-life (:func:`~pvm_bench.report.fit_ci.decay_bootstrap`; EMPTY when not computed);
    ``stats``: the fit's statistics without the rows (what a pooled scope's fit starts from);
    ``window_means``: per fixed position, each sample's mean over the window (``mass_at``'s input).
    """

    fit: DecayFit
    curve: pd.DataFrame
    half_life_obs: float
    mass_at: dict[int, MeanCI] = field(default_factory=dict)
    cohort_t: int | None = None
    fit_ci: DecayCI = EMPTY
    stats: FitStats | None = None
    window_means: dict[int, np.ndarray] = field(default_factory=dict)

    def wide(self, band: str) -> dict[str, Any]:
        """The flat summary values of this band, named as summary.csv names them (``band`` is
        the band's name, e.g. ``"all"``):

        ``fit_{band}_{a,b,c,r2,t_max,n_samples,method,flags}``, ``half_life_{band}_fit``,
        ``half_life_{band}_fit_extrapolated`` (bool), ``half_life_{band}_fit_ci_low`` /
        ``_ci_high`` (95% bootstrap over samples; high = inf when "never halves" is not excluded),
        ``half_life_{band}_obs``,
        ``mass_{band}_t{t}`` with ``_ci_low``, ``_ci_high`` and ``n_{band}_t{t}`` (samples that
        reached t; 0 and NaN masses where none did).
        """
        f, pre = self.fit, f"{band}_"
        row: dict[str, Any] = {
            f"fit_{pre}a": f.a, f"fit_{pre}b": f.b, f"fit_{pre}c": f.c, f"fit_{pre}r2": f.r2,
            f"fit_{pre}t_max": f.t_max, f"fit_{pre}n_samples": f.n_samples, f"fit_{pre}method": f.method,
            f"fit_{pre}flags": ";".join(f.flags()),
            f"half_life_{pre}fit": f.half_life(), f"half_life_{pre}fit_extrapolated": f.extrapolated(),
            f"half_life_{pre}fit_ci_low": self.fit_ci.half_life[0],
            f"half_life_{pre}fit_ci_high": self.fit_ci.half_life[1],
            f"half_life_{pre}obs": self.half_life_obs,
        }
        for t in FIXED_POSITIONS:
            ci = self.mass_at.get(t)
            col = f"mass_{pre}t{t}"
            row[col] = ci.mean if ci else math.nan
            row[f"{col}_ci_low"] = ci.low if ci else math.nan
            row[f"{col}_ci_high"] = ci.high if ci else math.nan
            row[f"n_{pre}t{t}"] = ci.n if ci else 0
        return row


def _fit_samples(per_sample: pd.DataFrame, seed: int, bootstrap: bool, parts: Sequence[FitStats] | None = None,
                 ) -> tuple[DecayFit, DecayCI, FitStats]:
    gen = per_sample["task"].to_numpy()
    if sample_keys(per_sample) == ["task"] and bool(np.all(gen[1:] >= gen[:-1])):
        codes = gen  # the aggregates' frames: sorted generations, numbered in order of appearance
    else:
        codes = per_sample.groupby(sample_keys(per_sample), sort=False).ngroup().to_numpy()
        parts = None
    t, y = per_sample["step"].to_numpy(), per_sample["mass"].to_numpy()

    def rows() -> FitRows:  # cleaned and indexed once for the fit and its bootstrap
        return fit_rows(t, y, codes)

    stats = None
    if parts:  # a pooled scope: its task scopes' statistics one after another, when they are its rows
        heads = codes[runs_of(codes)[1]] if codes.size else codes
        stats = FitStats.pooled(parts, heads, int(codes.size), rows)
    if stats is None:
        stats = FitStats.of(rows())
    fit = fit_decay_per_sample(t, y, codes, stats=stats)
    if not (bootstrap and fit.ok):
        return fit, EMPTY, stats.released()
    ci = decay_bootstrap(t, y, codes, seed=seed, stats=stats)
    hl = fit.half_life()
    if math.isfinite(hl) and math.isfinite(ci.half_life[0]):
        # the replicates are solved on a grid: keep the exact estimate inside its interval
        ci = replace(ci, half_life=(min(ci.half_life[0], hl), max(ci.half_life[1], hl)))
    return fit, ci, stats.released()


def band_decay(
    vis: pd.DataFrame, layers: list[int] | None, seed: int = 0, cohort_t: int | None = None, bootstrap: bool = True,
) -> BandDecay:
    """Decay statistics of one band from visual rows of one (task, variant) scope.

    ``cohort_t``: restrict to the fixed cohort of samples that reached ``cohort_t`` tokens
    (:func:`fixed_cohort`) before everything else. ``bootstrap``: also compute ``fit_ci``.
    """
    return band_decay_from_samples(sample_curves(vis, layers), seed, cohort_t, bootstrap)


def band_decay_from_samples(
    per_sample: pd.DataFrame, seed: int = 0, cohort_t: int | None = None, bootstrap: bool = True,
    parts: Sequence[FitStats] | None = None, defer_mass_ci: bool = False,
) -> BandDecay:
    """:func:`band_decay` from :func:`sample_curves` output (reuse it when you also plot it).
    ``parts``: for a pooled scope, the :attr:`BandDecay.stats` of its task scopes (same band and
    variant) in generation order; the fit then starts from them where they are its rows
    (:meth:`~pvm_bench.report.fit_stats.FitStats.pooled`), with the same results.
    ``defer_mass_ci``: leave ``mass_at`` to :func:`fill_mass_at` (several bands' CIs in one call)."""
    if cohort_t is not None:
        per_sample = fixed_cohort(per_sample, cohort_t)
        parts = None
    fit, fit_ci, stats = _fit_samples(per_sample, seed, bootstrap, parts)
    if stats.keys is not None and stats.n_rows:  # every row went into the fit: its per-step sums are the curve's
        curve = pd.DataFrame({"step": stats.steps.astype(per_sample["step"].dtype), "mass": stats.y_t / stats.n_t,
                              "n": stats.n_t.astype(np.int64)})
    else:
        curve = step_curve(per_sample)
    hl_obs = observed_half_life(curve["step"].to_numpy(), curve["mass"].to_numpy()) if len(curve) else math.nan
    t_max = int(curve["step"].max()) if len(curve) else 0
    window_means = _window_means(per_sample, [t for t in FIXED_POSITIONS if t <= t_max])
    bd = BandDecay(fit, curve, hl_obs, {}, cohort_t, fit_ci, stats, window_means)
    if not defer_mass_ci:
        fill_mass_at([bd], seed)
    return bd


def _window_means(per_sample: pd.DataFrame, positions: Sequence[int]) -> dict[int, np.ndarray]:
    """Per fixed position t, each sample's mean over its steps in :func:`~pvm_bench.report.fit.window`
    (t), samples in key order (the samples that have a step there)."""
    out: dict[int, np.ndarray] = {}
    runs = sample_runs(per_sample) if positions else None
    step = per_sample["step"].to_numpy()
    mass = per_sample["mass"].to_numpy(float)
    for t in positions:
        lo, hi = window(t)
        inside = (step >= lo) & (step <= hi)
        if runs is not None and not np.isnan(mass[inside]).any():  # one integer key, sorted: runs, no groupby
            at = np.flatnonzero(inside)
            run = runs_of(per_sample["task"].to_numpy()[at])[0]
            out[t] = np.bincount(run, mass[at]) / np.bincount(run)
            continue
        w = per_sample[inside]
        out[t] = w.groupby(sample_keys(w))["mass"].mean().to_numpy()
    return out


def fill_mass_at(decays: Sequence[BandDecay], seed: int = 0) -> None:
    """Set each decay's ``mass_at`` from its ``window_means``: the bootstrap CIs of every band and
    position at once (:func:`~pvm_bench.report.stats.bootstrap_cis`, equal to one call each)."""
    keys = [(k, t) for k, bd in enumerate(decays) for t in bd.window_means]
    cis = bootstrap_cis([decays[k].window_means[t] for k, t in keys], seed=seed)
    for (k, t), ci in zip(keys, cis):
        decays[k].mass_at[t] = ci
