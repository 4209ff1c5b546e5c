"""Bootstrap CIs of the per-sample decay fit: resample *samples*, refit, take percentiles.

A half-life quoted without an interval invites reading 175 vs 250 tokens as a difference when
both are compatible with the data. :func:`decay_bootstrap` resamples whole samples (the unit of
:func:`pvm_bench.report.fit.fit_decay_per_sample`) with replacement and refits every replicate.

It is cheap because the fixed-effects fit only needs per-sample sums: for each ``c`` on the log
grid, ``sum_t x_t``, ``sum_t x_t^2`` and ``sum_t x_t y_t`` per sample (three sparse products,
``x_t = 1 / (c + t)``); a replicate is then a vector of sample multiplicities ``w`` and its least
squares solution for every grid ``c`` is a weighted sum of those per-sample sums. The best grid
point of each replicate is refined by a parabola through its neighbours in ``log(c + t_min)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pvm_bench.report.fit import MIN_POINTS, START_STEPS, c_grid
from pvm_bench.report.fit_rows import FitRows, RowIndex
from pvm_bench.report.fit_stats import FitStats

DEFAULT_REPLICATES = 200
"""Bootstrap replicates for the fit CIs (percentile intervals; the half-life's 95% bounds are
stable to a few percent at this count)."""

N_GRID = 120
"""Log-spaced ``c`` grid points for the replicates (about 10% apart over six decades; refined)."""


@dataclass(frozen=True)
class DecayCI:
    """Percentile bootstrap intervals of the per-sample fit (NaN when not computable).

    ``half_life_high`` is ``inf`` when more than ``(1 - confidence) / 2`` of the replicates never
    fall to half (the data do not exclude "no half-life"). ``n_replicates``: replicates used.
    """

    a: tuple[float, float]
    b: tuple[float, float]
    c: tuple[float, float]
    half_life: tuple[float, float]
    n_replicates: int


NAN_PAIR = (math.nan, math.nan)
EMPTY = DecayCI(NAN_PAIR, NAN_PAIR, NAN_PAIR, NAN_PAIR, 0)


def _half_lives(a: np.ndarray, b: np.ndarray, c: np.ndarray, t_max: int, start_steps: int) -> np.ndarray:
    """Vectorised :meth:`DecayFit.half_life` (NaN where the law never halves)."""
    k = max(1, min(start_steps, t_max))
    t = np.arange(1, k + 1, dtype=float)
    start = a + b * np.mean(1.0 / (c[:, None] + t[None, :]), axis=1)
    half = start / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        hl = b / (half - a) - c
    ok = (b > 0) & (half > a)
    return np.where(ok, np.maximum(hl, 1.0), np.nan)


@lru_cache(maxsize=2)
def _grid_values(steps_bytes: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The replicates' ``c`` grid for these distinct steps (ascending floats, as bytes), and
    ``x = 1 / (c + t)`` and ``x^2`` (steps x grid, read-only): the same for a scope's layer bands
    and for every scope with the same steps (2M values, computed once instead of per fit)."""
    steps = np.frombuffer(steps_bytes, dtype=float)
    grid = c_grid(steps, N_GRID)[0]
    xs = 1.0 / (grid[None, :] + steps[:, None])  # (T, G)
    xx = xs * xs
    for a in (grid, xs, xx):
        a.flags.writeable = False
    return grid, xs, xx


@lru_cache(maxsize=4)
def _replicate_weights(n_samples: int, n_replicates: int, seed: int) -> np.ndarray:
    """The replicates' sample multiplicities (read-only): one multinomial draw per replicate, shared
    by every fit over the same number of samples (a scope's layer bands: the draws of 8,800 samples
    cost 0.2 s each)."""
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_samples, np.full(n_samples, 1.0 / n_samples), size=n_replicates).astype(float)
    weights.flags.writeable = False
    return weights


def decay_bootstrap(
    t: Sequence[float] | np.ndarray,
    mass: Sequence[float] | np.ndarray,
    sample: Sequence[object] | np.ndarray,
    n_replicates: int = DEFAULT_REPLICATES,
    confidence: float = 0.95,
    seed: int = 0,
    start_steps: int = START_STEPS,
    rows: FitRows | None = None,
    stats: FitStats | None = None,
) -> DecayCI:
    """Percentile bootstrap CIs (over samples) of ``a``, ``b``, ``c`` and the fitted half-life
    of :func:`~pvm_bench.report.fit.fit_decay_per_sample` on the same rows. Deterministic in
    ``seed``. Fewer than 2 samples or :data:`~pvm_bench.report.fit.MIN_POINTS` distinct steps:
    :data:`EMPTY`. ``rows``: the fit's :func:`~pvm_bench.report.fit.fit_rows` of the same arrays
    (integer sample keys), when already made; ``stats``: their
    :class:`~pvm_bench.report.fit_stats.FitStats` (the arrays are then not read)."""
    if stats is None:
        if rows is None:
            t_arr = np.asarray(t, dtype=float).ravel()
            y_arr = np.asarray(mass, dtype=float).ravel()
            s_arr = np.asarray(sample).ravel()
            keep = np.isfinite(t_arr) & np.isfinite(y_arr) & (t_arr >= 1)
            t_arr, y_arr, s_arr = t_arr[keep], y_arr[keep], s_arr[keep]
            rows = FitRows(t_arr, y_arr, RowIndex.of(t_arr, s_arr))
        if rows.t.size == 0:
            return EMPTY
        stats = FitStats.of(rows)
    n_s, steps = stats.n_samples, stats.steps
    if stats.n_rows == 0 or steps.size < MIN_POINTS or n_s < 2:
        return EMPTY
    count, y_bar, syy_i = stats.count, stats.y_bar, stats.syy
    weights = _replicate_weights(n_s, n_replicates, seed)  # (B, S)
    w_tot = weights.sum(axis=1)
    t_min, t_max = float(steps[0]), int(steps[-1])
    grid, xs, xx = _grid_values(np.asarray(steps, dtype=float).tobytes())
    syy = weights @ syy_i
    wy = weights @ y_bar
    # every grid c at once: per-sample sums of x = 1/(c + t) and x^2 (prefix sums when every sample
    # holds the steps from the first one on, as generations do: the same sums in the same order),
    # of x*y (one sparse product, or the task scopes' when pooled), then one product with the
    # replicate weights per statistic
    x_sum, xx_sum = stats.sums(xs), stats.sums(xx)
    x_bar = x_sum / count[:, None]
    sxx_i = xx_sum - count[:, None] * x_bar * x_bar
    sxy_i = stats.grid_sums((t_min, float(t_max), N_GRID), xs) - count[:, None] * x_bar * y_bar[:, None]
    sxx, sxy, wx = weights @ sxx_i, weights @ sxy_i, weights @ x_bar  # (B, G)
    b_all = np.divide(sxy, sxx, out=np.zeros_like(sxy), where=sxx > 1e-300)
    sse = np.maximum(syy[:, None] - b_all * sxy, 0.0)
    a_all = (wy[:, None] - b_all * wx) / w_tot[:, None]
    rep = np.arange(n_replicates)
    k = np.argmin(sse, axis=1)
    u = np.log(grid + t_min)
    # parabola through (k-1, k, k+1) in u for interior minima; edges keep the grid point
    inner = (k > 0) & (k < grid.size - 1)
    kk = np.clip(k, 1, grid.size - 2)
    f0, f1, f2 = sse[rep, kk - 1], sse[rep, kk], sse[rep, kk + 1]
    denom = f0 - 2 * f1 + f2
    shift = np.where(inner & (denom > 0), 0.5 * (f0 - f2) / np.where(denom > 0, denom, 1.0), 0.0)
    shift = np.clip(shift, -1.0, 1.0)
    step_u = np.where(shift >= 0, u[np.minimum(kk + 1, grid.size - 1)] - u[kk], u[kk] - u[kk - 1])
    c_rep = np.where(inner, np.exp(u[kk] + shift * step_u) - t_min, grid[k])
    # linear interpolation of a, b at the refined c (they vary smoothly along the grid)
    frac = np.abs(shift)
    nb = np.where(shift >= 0, kk + 1, kk - 1)
    b_rep = np.where(inner, (1 - frac) * b_all[rep, kk] + frac * b_all[rep, nb], b_all[rep, k])
    a_rep = np.where(inner, (1 - frac) * a_all[rep, kk] + frac * a_all[rep, nb], a_all[rep, k])
    hl = _half_lives(a_rep, b_rep, c_rep, t_max, start_steps)
    q = 100.0 * np.array([(1 - confidence) / 2, (1 + confidence) / 2])

    def pct(x: np.ndarray) -> tuple[float, float]:
        lo, hi = np.percentile(x, q)
        return float(lo), float(hi)

    # "never halves" ranks above every finite half-life; no interpolation next to inf
    hl_inf = np.where(np.isnan(hl), np.inf, hl)
    hl_ci = (float(np.quantile(hl_inf, q[0] / 100, method="lower")),
             float(np.quantile(hl_inf, q[1] / 100, method="higher")))
    return DecayCI(pct(a_rep), pct(b_rep), pct(c_rep), hl_ci, n_replicates)
