"""Fit the attention-decay law ``mass(t) = a + b / (c + t)`` and derive its summaries.

``t`` is the generated position (1 = first generated token). Three ways to fit, one law:

- :func:`fit_decay` on a curve (one value per position), optionally ``weights`` = the number of
  samples behind each point. Weighted by n it is the least-squares fit to every sample's value
  at every step (the same normal equations), so sparsely populated tail steps, where only a few
  long outputs survive, no longer count as much as the first steps that every sample reached.
- :func:`fit_decay_per_sample` on per-sample values with a level per sample (fixed effects):
  ``mass_i(t) = alpha_i + b / (c + t)``, ``a`` = mean of the ``alpha_i``. The survivors at late t
  are a selected group (the long outputs); when their level differs from the rest, any fit of the
  mean curve mistakes that selection for decay. Within-sample differences do not, so this fit
  recovers the law of the average sample. This is the recommended fit for reports.
- a fixed cohort (only the samples that reached T tokens, steps <= T; see
  :func:`pvm_bench.report.curves.fixed_cohort`) removes the selection by construction.

For fixed ``c`` the law is linear in the other parameters, so each fit scans a log-spaced ``c``
grid solved exactly by least squares (variable projection) and refines the best point (bounded
``curve_fit`` for curves, a bounded scalar search for the per-sample fit). No hand-tuned starts.

Flags (:meth:`DecayFit.flags`) say when the numbers must not be read at face value; tables and
plots show them: ``no_fit``, ``c_at_bound`` (``c`` ended at a bound: the shape is not identified),
``a_negative`` (negative asymptote: a mass cannot be negative, the law is extrapolating badly),
``no_decay`` (``b <= 0``), ``r2_low`` (R² < :data:`R2_MIN`) and ``extrapolated`` (the fitted
half-life lies beyond the longest observed output).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit, minimize_scalar

from pvm_bench.report.fit_rows import FitRows, RowIndex
from pvm_bench.report.fit_stats import FitStats

FIXED_POSITIONS: tuple[int, ...] = (64, 256, 1024, 4096)
"""Generated positions at which the report quotes the observed visual mass."""

MIN_POINTS = 4
"""Fewer distinct positions than this -> no fit (three parameters need a spare point)."""

START_STEPS = 8
"""Half-lives are measured from the mean level over steps 1..START_STEPS (the "start level"), not
from the single first token, whose mass is one noisy value and often atypical (the first
generated token attends differently from the rest)."""

R2_MIN = 0.5
"""Fits with R² below this are flagged ``r2_low``."""

FLAG_NOTES: dict[str, str] = {
    "no_fit": "no fit (fewer than 4 distinct positions)",
    "c_at_bound": "c at its bound: the curve's shape is not identified",
    "a_negative": "negative asymptote a: the law extrapolates below zero",
    "no_decay": "b <= 0: the fitted law does not decay",
    "r2_low": f"R² < {R2_MIN}: the law describes the curve poorly",
    "extrapolated": "fitted half-life beyond the longest observed output",
}
"""Every flag :meth:`DecayFit.flags` can return, with a one-line meaning for table legends."""


def decay_law(t: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray | float:
    """``a + b / (c + t)``: asymptote ``a``, amplitude ``b``, offset ``c`` (in tokens)."""
    return a + b / (c + np.asarray(t, dtype=float))


@dataclass(frozen=True)
class DecayFit:
    """Result of a decay fit. ``ok`` is False (and numbers NaN) when no fit was possible.

    ``r2`` is the coefficient of determination of the fitted law on the curve it was fitted on
    (1 - SS_res / SS_tot, weighted by ``weights`` when given; for the per-sample fit, on the
    n-weighted mean curve, see :func:`fit_decay_per_sample`); NaN when the data are constant.
    ``method``: ``"curve"`` (unweighted), ``"weighted"`` (weighted by n per step) or
    ``"per_sample"``. ``n_samples``: samples behind the fit (0 = unknown, a bare curve).
    ``c_bounds``: the bounds ``c`` was searched in (for the ``c_at_bound`` flag).
    """

    a: float
    b: float
    c: float
    r2: float
    n_points: int
    t_max: int
    ok: bool
    message: str = ""
    method: str = "curve"
    n_samples: int = 0
    c_bounds: tuple[float, float] = (math.nan, math.nan)

    def predict(self, t: np.ndarray | float) -> np.ndarray | float:
        """The fitted law at positions ``t``."""
        return decay_law(t, self.a, self.b, self.c)

    def start_level(self, start_steps: int = START_STEPS) -> float:
        """Mean of the fitted law over t = 1..k, k = min(start_steps, t_max) (NaN if no fit)."""
        if not self.ok:
            return math.nan
        k = max(1, min(start_steps, self.t_max))
        return float(np.mean(self.predict(np.arange(1, k + 1))))

    def half_life(self, start_steps: int = START_STEPS) -> float:
        """Position where the *fitted* law falls to half its :meth:`start_level`.

        Solved analytically: ``t = b / (m0 / 2 - a) - c`` with ``m0`` the start level. NaN when
        the law never reaches half (asymptote at or above half, or no decay) or the fit failed.
        The value may lie beyond ``t_max``: see :meth:`extrapolated`.
        """
        if not self.ok or self.b <= 0:
            return math.nan
        half = self.start_level(start_steps) / 2.0
        if not half > self.a:
            return math.nan
        return float(max(self.b / (half - self.a) - self.c, 1.0))

    def extrapolated(self, start_steps: int = START_STEPS) -> bool:
        """True when the fitted half-life exists but lies beyond the longest observed output."""
        hl = self.half_life(start_steps)
        return bool(math.isfinite(hl) and hl > self.t_max)

    def flags(self) -> tuple[str, ...]:
        """Warnings about this fit, in :data:`FLAG_NOTES` order (empty for a clean fit)."""
        if not self.ok:
            return ("no_fit",)
        out = []
        lo, hi = self.c_bounds
        span = abs(hi - lo) if math.isfinite(hi - lo) else 1.0
        if any(math.isfinite(x) and abs(self.c - x) <= 1e-4 * max(span, 1.0) for x in (lo, hi)):
            out.append("c_at_bound")
        if self.a < 0:
            out.append("a_negative")
        if self.b <= 0:
            out.append("no_decay")
        if math.isfinite(self.r2) and self.r2 < R2_MIN:
            out.append("r2_low")
        if self.extrapolated():
            out.append("extrapolated")
        return tuple(out)

    def as_dict(self, prefix: str = "") -> dict[str, float | int | bool | str]:
        """Flat dict of the fields plus ``half_life_fit``, ``start_level``, ``extrapolated`` and
        ``flags`` (a ``;``-joined string, "" when clean), keys prefixed with ``prefix``."""
        d: dict[str, float | int | bool | str] = {k: v for k, v in asdict(self).items() if k != "c_bounds"}
        d["half_life_fit"] = self.half_life()
        d["start_level"] = self.start_level()
        d["extrapolated"] = self.extrapolated()
        d["flags"] = ";".join(self.flags())
        return {f"{prefix}{k}": v for k, v in d.items()}


def _failed(n: int, t_max: int, message: str, method: str = "curve", n_samples: int = 0) -> DecayFit:
    return DecayFit(math.nan, math.nan, math.nan, math.nan, n, t_max, False, message, method, n_samples)


def _clean(t: object, y: object, extra: object = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    t_arr = np.asarray(t, dtype=float).ravel()
    y_arr = np.asarray(y, dtype=float).ravel()
    keep = np.isfinite(t_arr) & np.isfinite(y_arr) & (t_arr >= 1)
    e = None
    if extra is not None:
        e = np.asarray(extra).ravel()
        if e.shape != t_arr.shape:
            raise ValueError(f"decay fit needs aligned arrays, got {t_arr.shape} and {e.shape}")
        if e.dtype.kind == "f":
            keep &= np.isfinite(e) & (e > 0)
        if keep.all():  # the aggregates' rows always are: no copies of 13M rows
            return t_arr, y_arr, e
        e = e[keep]
    elif keep.all():
        return t_arr, y_arr, e
    return t_arr[keep], y_arr[keep], e


def c_grid(t_arr: np.ndarray, points: int = 80) -> tuple[np.ndarray, float, float]:
    """Log-spaced grid (``points`` before the bounds cut it) over ``c + t_min`` and the bounds of
    ``c``: ``(1 - min t, 10 max t]`` (so ``c + t > 0`` everywhere)."""
    t_min = float(t_arr.min())
    c_lo = -t_min + 1e-3 * max(t_min, 1.0)
    c_hi = 10.0 * float(t_arr.max())
    grid = np.geomspace(2e-3 * max(t_min, 1.0), c_hi + t_min, points) - t_min
    return grid[(grid > c_lo) & (grid <= c_hi)], c_lo, c_hi


def _linear_ab(t: np.ndarray, y: np.ndarray, c: float, sw: np.ndarray | None = None) -> tuple[float, float, float]:
    """(Weighted) least-squares (a, b) for fixed c, and the residual sum of squares; ``sw`` are
    the square roots of the weights."""
    design = np.column_stack([np.ones_like(t), 1.0 / (c + t)])
    yy = y
    if sw is not None:
        design, yy = design * sw[:, None], y * sw
    coef, *_ = np.linalg.lstsq(design, yy, rcond=None)
    resid = yy - design @ coef
    return float(coef[0]), float(coef[1]), float(resid @ resid)


def _r2(y: np.ndarray, pred: np.ndarray, w: np.ndarray | None = None) -> float:
    w = np.ones_like(y) if w is None else w
    mean = float((w * y).sum() / w.sum())
    ss_res = float((w * (y - pred) ** 2).sum())
    ss_tot = float((w * (y - mean) ** 2).sum())
    scale = float((w * y**2).sum()) + 1e-300
    return 1.0 - ss_res / ss_tot if ss_tot > 1e-12 * scale else math.nan


def fit_decay(
    t: Sequence[float] | np.ndarray,
    mass: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
) -> DecayFit:
    """Fit ``mass = a + b / (c + t)`` to points with ``t >= 1``.

    ``weights`` (optional, > 0): the number of samples behind each point; the fit then minimises
    ``sum w (mass - law)²``, which for a mean curve equals the fit to every sample's value (up to
    a constant). Bounds: ``c`` in ``(1 - min t, 10 * max t]``, ``a`` and ``b`` free. Non-finite
    points, ``t < 1`` and non-positive weights are ignored. Never raises on bad data: returns a
    :class:`DecayFit` with ``ok=False`` and a message instead.
    """
    t_arr, y_arr, w = _clean(t, mass, None if weights is None else np.asarray(weights, dtype=float))
    method = "curve" if w is None else "weighted"
    n = int(t_arr.size)
    t_max = int(t_arr.max()) if n else 0
    n_samples = int(round(float(w.max()))) if w is not None and n else 0
    if np.unique(t_arr).size < MIN_POINTS:
        msg = f"need >= {MIN_POINTS} distinct positions, got {np.unique(t_arr).size}"
        return _failed(n, t_max, msg, method, n_samples)
    sw = None if w is None else np.sqrt(w)
    grid, c_lo, c_hi = c_grid(t_arr)
    a0, b0, _, c0 = min((_linear_ab(t_arr, y_arr, c, sw) + (c,) for c in grid), key=lambda r: r[2])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(
                decay_law, t_arr, y_arr, p0=(a0, b0, c0),
                sigma=None if sw is None else 1.0 / sw,
                bounds=((-np.inf, -np.inf, c_lo), (np.inf, np.inf, c_hi)), maxfev=20000,
            )
        a, b, c = (float(v) for v in popt)
        message = "curve_fit"
    except (RuntimeError, ValueError) as exc:  # keep the grid solution
        a, b, c = a0, b0, c0
        message = f"grid only ({type(exc).__name__})"
    r2 = _r2(y_arr, np.asarray(decay_law(t_arr, a, b, c)), w)
    return DecayFit(a, b, c, r2, n, t_max, True, message, method, n_samples, (c_lo, c_hi))


def fit_rows(t: Sequence[float] | np.ndarray, mass: Sequence[float] | np.ndarray,
             sample: Sequence[object] | np.ndarray) -> FitRows:
    """The rows :func:`fit_decay_per_sample` fits (non-finite values and steps < 1 dropped), indexed
    once for the fit and its bootstrap (:func:`~pvm_bench.report.fit_ci.decay_bootstrap`)."""
    s_in = np.asarray(sample)
    t_arr, y_arr, s_opt = _clean(t, mass, s_in)
    s_arr = s_opt if s_opt is not None else np.zeros(0, dtype=int)
    return FitRows(t_arr, y_arr, RowIndex.of(t_arr, s_arr), complete=t_arr.size == s_in.size)


def fit_decay_per_sample(
    t: Sequence[float] | np.ndarray,
    mass: Sequence[float] | np.ndarray,
    sample: Sequence[object] | np.ndarray,
    rows: FitRows | None = None,
    stats: FitStats | None = None,
) -> DecayFit:
    """Fixed-effects fit ``mass[i, t] = alpha_i + b / (c + t)`` over per-sample values.

    ``t``, ``mass``, ``sample`` are aligned (one row per sample and step; ``sample`` any hashable
    sample key, e.g. a "task|id|repeat" string). ``b`` and ``c`` are shared, each sample has its
    own level ``alpha_i``; the reported asymptote ``a`` is the unweighted mean of the
    ``alpha_i`` (the law of the average sample, whatever its length). For fixed ``c`` this is
    ordinary least squares on within-sample deviations; ``c`` is searched on a log grid and then
    refined by a bounded scalar minimisation.

    ``r2``: R² of the fitted model on the mean curve, weighted by the number of samples per step;
    the model's mean at step t is ``mean(alpha_i over samples present at t) + b / (c + t)``.
    ``n_points`` counts rows, ``n_samples`` samples. Samples with a single step only inform the
    level. Never raises on bad data. ``rows``: :func:`fit_rows` of the same arrays, when already
    made; ``stats``: their :class:`~pvm_bench.report.fit_stats.FitStats` (the arrays are then not read).
    """
    if stats is None:
        stats = FitStats.of(rows if rows is not None else fit_rows(t, mass, sample))
    n, n_samples, steps = stats.n_rows, stats.n_samples, stats.steps
    t_max = int(steps[-1]) if n else 0
    if steps.size < MIN_POINTS:
        msg = f"need >= {MIN_POINTS} distinct positions, got {steps.size}"
        return _failed(n, t_max, msg, "per_sample", n_samples)
    count, y_bar, n_t, y_t, sums = stats.count, stats.y_bar, stats.n_t, stats.y_t, stats.sums
    syy = float(stats.syy.sum())
    # Sufficient statistics: x = 1/(c + t) depends on the step only, so every sum over rows is a
    # sum over steps (n_t, Y_t) except the per-sample means of x, one prefix sum per c.

    def solve(c: float) -> tuple[float, float, np.ndarray]:
        xs = 1.0 / (c + steps)
        x_bar = sums(xs) / count
        sxx = float(n_t @ (xs * xs) - count @ (x_bar * x_bar))
        sxy = float(xs @ y_t - count @ (x_bar * y_bar))
        b = sxy / sxx if sxx > 1e-300 else 0.0
        return max(syy - b * sxy, 0.0), b, y_bar - b * x_bar

    grid, c_lo, c_hi = c_grid(steps)
    t_min = float(steps[0])
    u = np.log(grid + t_min)  # search in log(c + t_min): the law's scale is multiplicative in c
    sse = np.array([solve(float(c))[0] for c in grid])
    k = int(np.argmin(sse))
    lo, hi = u[max(k - 1, 0)], u[min(k + 1, u.size - 1)]
    c = float(grid[k])
    message = "grid"
    if hi > lo:
        res = minimize_scalar(lambda v: solve(float(np.exp(v) - t_min))[0], bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-6})
        if res.success and res.fun <= sse[k]:
            c, message = float(np.exp(res.x) - t_min), "grid+bounded"
    c = min(max(c, c_lo), c_hi)
    _, b, alpha = solve(c)
    a = float(alpha.mean())
    # R² on the n-weighted mean curve, prediction = mean level of the samples present + b x
    pred_t = sums.per_step(alpha, steps.size) / n_t + b / (c + steps)
    r2 = _r2(y_t / n_t, pred_t, n_t)
    return DecayFit(a, b, c, r2, n, t_max, True, message, "per_sample", n_samples, (c_lo, c_hi))


def _running_median(y: np.ndarray, i: int) -> float:
    """Median of ``y`` over a centred window of +-max(2, 5% of i) indices around ``i`` (clipped
    at the ends). For a monotone noise-free curve this is exactly ``y[i]`` away from the ends."""
    h = max(2, round(0.05 * i))
    return float(np.median(y[max(0, i - h): i + h + 1]))


def observed_half_life(
    t: Sequence[float] | np.ndarray,
    mass: Sequence[float] | np.ndarray,
    start_steps: int = START_STEPS,
) -> float:
    """First *observed* position where the curve falls to half its start level (NaN if never, or
    if no step in 1..start_steps was observed).

    ``t``/``mass`` are a curve (e.g. a mean over samples and layers). The start level is the mean
    of the curve over steps 1..start_steps; the curve is read through a running median (window
    +-max(2, 5%) of the steps) so that one noisy step neither ends nor delays the count.
    """
    t_arr = np.asarray(t, dtype=float).ravel()
    y_arr = np.asarray(mass, dtype=float).ravel()
    keep = np.isfinite(t_arr) & np.isfinite(y_arr) & (t_arr >= 1)
    t_arr, y_arr = t_arr[keep], y_arr[keep]
    order = np.argsort(t_arr)
    t_arr, y_arr = t_arr[order], y_arr[order]
    start = y_arr[t_arr <= start_steps]
    if start.size == 0:
        return math.nan
    half = 0.5 * float(start.mean())
    # Which windows hold enough values <= half for their median to be <= half, by counting (O(n)):
    # more than half of them: yes; fewer than half: no; exactly half (even size): the median decides.
    i = np.arange(t_arr.size)
    h = np.maximum(2, np.round(0.05 * i)).astype(np.int64)
    lo, hi = np.maximum(0, i - h), np.minimum(t_arr.size, i + h + 1)
    below = np.concatenate([[0], np.cumsum(y_arr <= half)])
    k, m = below[hi] - below[lo], hi - lo
    for j in np.flatnonzero(2 * k >= m):
        if 2 * k[j] > m[j] or _running_median(y_arr, int(j)) <= half:
            return float(t_arr[j])
    return math.nan


def window(t: int, rel: float = 0.05) -> tuple[int, int]:
    """Inclusive step window ``[round(t*(1-rel)), round(t*(1+rel))]`` used for "mass at t"."""
    return round(t * (1 - rel)), round(t * (1 + rel))
