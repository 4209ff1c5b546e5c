"""Small, seeded statistics for reports: bootstrap CIs, paired differences, McNemar.

Every function is deterministic for a given ``seed`` (numpy ``default_rng``), returns plain
floats, and degrades gracefully on tiny inputs (n = 0 gives NaN, n = 1 or constant data gives a
zero-width interval) instead of raising, so a partial run still produces a report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

DEFAULT_RESAMPLES = 2000
"""Bootstrap / permutation resamples; enough for stable 95% percentile bounds at report scale."""


@dataclass(frozen=True)
class MeanCI:
    """A mean with a two-sided confidence interval ``[low, high]`` (NaN when n == 0)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval width; 0.0 for a degenerate interval, NaN when undefined."""
        return (self.high - self.low) / 2.0


@dataclass(frozen=True)
class PairedDiff:
    """Mean of ``other - reference`` over pairs, its CI, and a two-sided p-value."""

    diff: float
    low: float
    high: float
    p_value: float
    n: int
    method: str
    """How ``p_value`` was computed: ``"mcnemar-exact"``, ``"sign-flip-exact"``,
    ``"sign-flip-mc"`` (Monte-Carlo sign-flip permutation) or ``"none"`` (no pairs)."""


def _as_array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> MeanCI:
    """Percentile bootstrap CI of the mean (``scipy.stats.bootstrap``, ``method="percentile"``).

    Non-finite values are dropped. n == 0 -> all NaN; n == 1 or constant values -> a zero-width
    interval at the mean (scipy would warn and return NaN there).
    """
    x = _as_array(values)
    n = int(x.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1 or float(np.ptp(x)) == 0.0:
        return MeanCI(mean, mean, mean, n)
    res = sps.bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return MeanCI(mean, float(ci.low), float(ci.high), n)


def mcnemar_exact(ref: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray) -> float:
    """Exact two-sided McNemar p-value for paired binary outcomes (1 = correct).

    With ``b`` = pairs where only ``ref`` is correct and ``c`` = pairs where only ``other`` is,
    p = min(1, 2 * P[Binom(b + c, 1/2) <= min(b, c)]), identical to
    ``scipy.stats.binomtest(c, b + c, 0.5).pvalue``. No discordant pairs -> 1.0.
    """
    r = np.asarray(ref, dtype=float).ravel() > 0.5
    o = np.asarray(other, dtype=float).ravel() > 0.5
    if r.shape != o.shape:
        raise ValueError(f"mcnemar_exact needs paired arrays, got {r.shape} and {o.shape}")
    b = int(np.sum(r & ~o))
    c = int(np.sum(~r & o))
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * sps.binom.cdf(min(b, c), n, 0.5)))


def sign_flip_pvalue(
    diffs: Sequence[float] | np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, str]:
    """Two-sided paired permutation (sign-flip) test of mean(diffs) == 0.

    Uses ``scipy.stats.permutation_test`` with ``permutation_type="samples"`` on the pairs
    (exact enumeration when 2**n <= n_resamples, otherwise seeded Monte-Carlo). Returns
    ``(p_value, method)``. All-zero differences -> p = 1.0.
    """
    d = _as_array(diffs)
    if d.size == 0:
        return math.nan, "none"
    if np.all(d == 0):
        return 1.0, "sign-flip-exact"
    exact = 2 ** d.size <= n_resamples
    res = sps.permutation_test(
        (d, np.zeros_like(d)),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=np.inf if exact else n_resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(min(1.0, res.pvalue)), "sign-flip-exact" if exact else "sign-flip-mc"


def paired_difference(
    ref: Sequence[float] | np.ndarray,
    other: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedDiff:
    """Paired difference ``other - ref``: bootstrap CI of the mean difference over pairs, and a
    p-value from McNemar's exact test when both arrays are binary (0/1), otherwise from the
    sign-flip permutation test. Arrays must be aligned pair by pair; pairs with a non-finite
    value on either side are dropped.
    """
    r = np.asarray(ref, dtype=float).ravel()
    o = np.asarray(other, dtype=float).ravel()
    if r.shape != o.shape:
        raise ValueError(f"paired_difference needs aligned arrays, got {r.shape} and {o.shape}")
    keep = np.isfinite(r) & np.isfinite(o)
    r, o = r[keep], o[keep]
    if r.size == 0:
        return PairedDiff(math.nan, math.nan, math.nan, math.nan, 0, "none")
    ci = bootstrap_ci(o - r, confidence=confidence, n_resamples=n_resamples, seed=seed)
    binary = bool(np.all(np.isin(r, (0.0, 1.0))) and np.all(np.isin(o, (0.0, 1.0))))
    if binary:
        p, method = mcnemar_exact(r, o), "mcnemar-exact"
    else:
        p, method = sign_flip_pvalue(o - r, n_resamples=n_resamples, seed=seed)
    return PairedDiff(ci.mean, ci.low, ci.high, p, int(r.size), method)
