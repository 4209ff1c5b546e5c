"""Fit the attention-decay law ``mass(t) = a + b / (c + t)`` and derive its summaries.

``t`` is the generated position (1 = first generated token). The fit is done in two stages:
for a log-spaced grid of ``c`` values the model is linear in ``(a, b)``, so each grid point is
solved exactly by least squares (variable projection); the best grid point seeds a bounded
``scipy.optimize.curve_fit``. This makes the fit independent of hand-tuned starting values and
robust on flat or noisy curves.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

FIXED_POSITIONS: tuple[int, ...] = (64, 256, 1024, 4096)
"""Generated positions at which the report quotes the observed visual mass."""

MIN_POINTS = 4
"""Fewer distinct positions than this -> no fit (three parameters need a spare point)."""


def decay_law(t: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray | float:
    """``a + b / (c + t)``: asymptote ``a``, amplitude ``b``, offset ``c`` (in tokens)."""
    return a + b / (c + np.asarray(t, dtype=float))


@dataclass(frozen=True)
class DecayFit:
    """Result of :func:`fit_decay`. ``ok`` is False (and numbers NaN) when no fit was possible.

    ``r2`` is the coefficient of determination of the fitted law on the points it was fitted on
    (1 - SS_res / SS_tot; 1.0 for a perfect fit, NaN when the data are constant).
    """

    a: float
    b: float
    c: float
    r2: float
    n_points: int
    t_max: int
    ok: bool
    message: str = ""

    def predict(self, t: np.ndarray | float) -> np.ndarray | float:
        """The fitted law at positions ``t``."""
        return decay_law(t, self.a, self.b, self.c)

    def half_life(self) -> float:
        """First position ``t >= 1`` where the *fitted* law falls to half its value at t = 1.

        Solved analytically: ``t = 2 b / (b / (c + 1) - a) - c``. NaN when the law never reaches
        half (it decays to an asymptote above half, or rises) or the fit failed. The value may
        lie beyond ``t_max`` (an extrapolation); compare with ``t_max`` before quoting it.
        """
        if not self.ok:
            return math.nan
        drop = self.b / (self.c + 1.0) - self.a
        if self.b <= 0 or drop <= 0:
            return math.nan
        t = 2.0 * self.b / drop - self.c
        return float(max(t, 1.0))

    def as_dict(self, prefix: str = "") -> dict[str, float | int | bool | str]:
        """Flat dict of the fields (plus ``half_life_fit``), keys prefixed with ``prefix``."""
        d = asdict(self)
        d["half_life_fit"] = self.half_life()
        return {f"{prefix}{k}": v for k, v in d.items()}


def _failed(n: int, t_max: int, message: str) -> DecayFit:
    return DecayFit(math.nan, math.nan, math.nan, math.nan, n, t_max, False, message)


def _linear_ab(t: np.ndarray, y: np.ndarray, c: float) -> tuple[float, float, float]:
    """Least-squares (a, b) for fixed c, and the residual sum of squares."""
    design = np.column_stack([np.ones_like(t), 1.0 / (c + t)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return float(coef[0]), float(coef[1]), float(resid @ resid)


def fit_decay(t: Sequence[float] | np.ndarray, mass: Sequence[float] | np.ndarray) -> DecayFit:
    """Fit ``mass = a + b / (c + t)`` to points with ``t >= 1``.

    Bounds: ``c`` in ``(1 - min t, 10 * max t]`` (so ``c + t > 0`` everywhere), ``a`` and ``b``
    free. Non-finite points and ``t < 1`` are ignored. Never raises on bad data: returns a
    :class:`DecayFit` with ``ok=False`` and a message instead.
    """
    t_arr = np.asarray(t, dtype=float).ravel()
    y_arr = np.asarray(mass, dtype=float).ravel()
    keep = np.isfinite(t_arr) & np.isfinite(y_arr) & (t_arr >= 1)
    t_arr, y_arr = t_arr[keep], y_arr[keep]
    n = int(t_arr.size)
    t_max = int(t_arr.max()) if n else 0
    if np.unique(t_arr).size < MIN_POINTS:
        return _failed(n, t_max, f"need >= {MIN_POINTS} distinct positions, got {np.unique(t_arr).size}")
    t_min = float(t_arr.min())
    c_lo = -t_min + 1e-3 * max(t_min, 1.0)
    c_hi = 10.0 * float(t_arr.max())
    # Grid over c + t_min (log-spaced), solved exactly in (a, b).
    grid = np.geomspace(2e-3 * max(t_min, 1.0), c_hi + t_min, 80) - t_min
    grid = grid[(grid > c_lo) & (grid <= c_hi)]
    best = min((_linear_ab(t_arr, y_arr, c) + (c,) for c in grid), key=lambda r: r[2])
    a0, b0, _, c0 = best
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(
                decay_law,
                t_arr,
                y_arr,
                p0=(a0, b0, c0),
                bounds=((-np.inf, -np.inf, c_lo), (np.inf, np.inf, c_hi)),
                maxfev=20000,
            )
        a, b, c = (float(v) for v in popt)
        message = "curve_fit"
    except (RuntimeError, ValueError) as exc:  # keep the grid solution
        a, b, c = a0, b0, c0
        message = f"grid only ({type(exc).__name__})"
    resid = y_arr - decay_law(t_arr, a, b, c)
    ss_res = float(resid @ resid)
    ss_tot = float(((y_arr - y_arr.mean()) ** 2).sum())
    scale = float((y_arr**2).sum()) + 1e-300
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 1e-12 * scale else math.nan
    return DecayFit(a, b, c, r2, n, t_max, True, message)


def observed_half_life(t: Sequence[float] | np.ndarray, mass: Sequence[float] | np.ndarray) -> float:
    """First *observed* position where ``mass`` falls to half its value at t = 1 (NaN if never,
    or if t = 1 is missing). ``t``/``mass`` are a curve (e.g. a mean over samples and layers)."""
    t_arr = np.asarray(t, dtype=float).ravel()
    y_arr = np.asarray(mass, dtype=float).ravel()
    order = np.argsort(t_arr)
    t_arr, y_arr = t_arr[order], y_arr[order]
    at_one = y_arr[t_arr == 1]
    if at_one.size == 0 or not np.isfinite(at_one[0]):
        return math.nan
    below = np.nonzero((t_arr >= 1) & (y_arr <= 0.5 * at_one[0]))[0]
    return float(t_arr[below[0]]) if below.size else math.nan


def window(t: int, rel: float = 0.05) -> tuple[int, int]:
    """Inclusive step window ``[round(t*(1-rel)), round(t*(1+rel))]`` used for "mass at t"."""
    return round(t * (1 - rel)), round(t * (1 + rel))
