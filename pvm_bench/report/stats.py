"""Small, seeded statistics for reports: accuracy CIs, bootstrap CIs, paired differences, McNemar.

Every function is deterministic for a given ``seed`` (numpy ``default_rng``), returns plain
floats, and degrades gracefully on tiny inputs (n = 0 gives NaN) instead of raising, so a partial
run still produces a report.

Accuracy intervals (:func:`accuracy_ci`) never collapse to zero width at 0 or 1: 0/1 scores get a
Wilson score interval; other scores a percentile bootstrap, with the Wilson interval on the mean as
the stated fallback when the bootstrap is degenerate (n = 1 or constant scores). The raw
:func:`bootstrap_ci` keeps its zero-width behaviour for constant data (it is also used for
non-accuracy quantities such as visual mass). ``MeanCI.small_n`` marks n < :data:`SMALL_N`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

DEFAULT_RESAMPLES = 2000
"""Bootstrap / permutation resamples; enough for stable 95% percentile bounds at report scale."""

RESAMPLE_CELLS = 1 << 22
"""At most this many resampled values at once (32 MB of float64): :func:`resample_batch`."""


def resample_batch(n: int, n_resamples: int) -> int | None:
    """``batch`` of ``scipy.stats.bootstrap`` for ``n`` values in all: None (one batch) up to
    :data:`RESAMPLE_CELLS` resampled values, else batches of at most that many (at 17,000 samples
    one batch of 2,000 resamples would hold 272 MB). For one sample the numbers are the same
    either way (one random stream drawn in order); with several independent samples scipy draws
    them batch by batch, so large inputs get another (equally valid) set of resamples."""
    if n * n_resamples <= RESAMPLE_CELLS:
        return None
    return max(1, RESAMPLE_CELLS // max(n, 1))


SMALL_N = 30
"""Cells with fewer samples than this are marked ``small_n``: their CIs are wide and the normal /
bootstrap approximations behind them are rough. Tables should show the mark next to n."""


@dataclass(frozen=True)
class MeanCI:
    """A mean with a two-sided confidence interval ``[low, high]`` (NaN when n == 0)."""

    mean: float
    low: float
    high: float
    n: int
    method: str = "bootstrap"
    """How the interval was computed: ``"wilson"``, ``"bootstrap"`` (percentile),
    ``"wilson-fallback"`` (degenerate bootstrap of scores in [0, 1]), ``"degenerate"`` (n = 1 or
    constant values outside [0, 1]: zero width) or ``"none"`` (n = 0)."""

    @property
    def half_width(self) -> float:
        """Half the interval width; 0.0 for a degenerate interval, NaN when undefined."""
        return (self.high - self.low) / 2.0

    @property
    def small_n(self) -> bool:
        """True when 0 < n < :data:`SMALL_N` (mark the cell; see :data:`SMALL_N`)."""
        return 0 < self.n < SMALL_N


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
    ci_method: str = "bootstrap"
    """How ``[low, high]`` was computed: ``"newcombe"`` (0/1 pairs, :func:`newcombe_paired_ci`),
    ``"bootstrap"`` (percentile bootstrap of the differences) or ``"none"``."""


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
    return bootstrap_cis([values], confidence, n_resamples, seed)[0]


def _row_means(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``np.mean`` over the last axis, one leading row at a time: a (rows, resamples, n) mean sums
    in another order than each row's (resamples, n) mean, one ulp apart."""
    if x.ndim <= 2:
        return np.mean(x, axis=axis)
    return np.stack([np.mean(r, axis=axis) for r in x])


def bootstrap_cis(
    samples: Sequence[Sequence[float] | np.ndarray],
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[MeanCI]:
    """:func:`bootstrap_ci` of each sample, with one ``scipy.stats.bootstrap`` call per sample size.
    scipy draws the resampled indices from the size and the seed only (scipy 1.17.1,
    scipy/stats/_resampling.py line 79 in ``_bootstrap_resample``: ``rng_integers(rng, 0, n,
    (n_resamples, n))``, then ``sample[..., i]``), so each row of a (k, n) array gets the resamples
    it would get alone: a scope's four layer bands at one position draw 2,000 x n indices once."""
    clean = [_as_array(v) for v in samples]
    out: list[MeanCI | None] = [None] * len(clean)
    by_size: dict[int, list[int]] = {}
    for k, x in enumerate(clean):
        mean = float(x.mean()) if x.size else math.nan
        if x.size == 0:
            out[k] = MeanCI(math.nan, math.nan, math.nan, 0, "none")
        elif x.size == 1 or float(np.ptp(x)) == 0.0:
            out[k] = MeanCI(mean, mean, mean, int(x.size), "degenerate")
        else:
            by_size.setdefault(int(x.size), []).append(k)
    for n, ks in by_size.items():
        rows = np.stack([clean[k] for k in ks])
        res = sps.bootstrap(
            (rows,), _row_means, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
            vectorized=True, rng=np.random.default_rng(seed), batch=resample_batch(n * len(ks), n_resamples),
            axis=-1,
        )
        low, high = np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)
        for j, k in enumerate(ks):
            out[k] = MeanCI(float(clean[k].mean()), float(low[j]), float(high[j]), n)
    return [ci for ci in out if ci is not None]


def wilson_ci(successes: float, n: int, confidence: float = 0.95) -> MeanCI:
    """Wilson score interval for a proportion ``successes / n`` (Wilson 1927).

    ``low, high = (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``z`` the two-sided
    normal quantile. Unlike the percentile bootstrap (and the Wald interval) it does not collapse
    at p = 0 or 1: 0/10 gives [0, 0.278], 10/10 gives [0.722, 1]. ``successes`` may be fractional
    (the fallback for scores in [0, 1], see :func:`accuracy_ci`). n = 0 -> NaN.
    """
    if n <= 0:
        return MeanCI(math.nan, math.nan, math.nan, 0, "none")
    p = float(successes) / n
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"wilson_ci needs 0 <= successes <= n, got {successes} of {n}")
    z = float(sps.norm.ppf(0.5 + confidence / 2.0))
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    # the exact ends are 0 at p = 0 and 1 at p = 1; float arithmetic misses them by an ulp
    low = 0.0 if p == 0.0 else max(0.0, centre - half)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return MeanCI(p, low, high, int(n), "wilson")


def is_binary(values: Sequence[float] | np.ndarray) -> bool:
    """True when every finite value is exactly 0 or 1 (and there is at least one)."""
    x = _as_array(values)
    return bool(x.size) and bool(np.all((x == 0.0) | (x == 1.0)))


def accuracy_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> MeanCI:
    """CI of a mean score that does not collapse to zero width at 0 or 1.

    - 0/1 scores: :func:`wilson_ci` (method ``"wilson"``);
    - other scores (fractional credit, means over repeats): percentile :func:`bootstrap_ci`
      (method ``"bootstrap"``); when that is degenerate (n = 1 or all scores equal) and the scores
      lie in [0, 1], the Wilson interval of the mean with the same n (method
      ``"wilson-fallback"``): a score in [0, 1] with mean p has variance <= p(1 - p), so this is no
      narrower than the binary case; scores outside [0, 1] keep the zero-width interval
      (``"degenerate"``).

    Non-finite values are dropped; n == 0 -> NaN (method ``"none"``). ``small_n`` on the result
    marks n < :data:`SMALL_N`.
    """
    x = _as_array(values)
    if x.size == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0, "none")
    if is_binary(x):
        return wilson_ci(float(x.sum()), int(x.size), confidence)
    ci = bootstrap_ci(x, confidence=confidence, n_resamples=n_resamples, seed=seed)
    if ci.method == "degenerate" and 0.0 <= float(x.min()) and float(x.max()) <= 1.0:
        w = wilson_ci(float(x.sum()), int(x.size), confidence)
        return MeanCI(ci.mean, w.low, w.high, ci.n, "wilson-fallback")
    return ci


def newcombe_paired_ci(
    ref: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray, confidence: float = 0.95,
) -> tuple[float, float]:
    """CI of ``mean(other) - mean(ref)`` for paired 0/1 outcomes: Newcombe's square-and-add
    interval for paired proportions (Newcombe 1998, Stat Med 17:2635, method 10), built from the
    two Wilson intervals and the continuity-corrected correlation ``psi`` of the 2x2 table, as in
    Fagerland, Lydersen & Laake (ch. 8) and R's contingencytables
    ``Newcombe_square_and_add_CI_paired_2x2``. It does not collapse when every pair agrees
    (e.g. 50 pairs all correct on both sides: about [-0.071, 0.071]) and stays inside [-1, 1].
    """
    r = np.asarray(ref, dtype=float).ravel() > 0.5
    o = np.asarray(other, dtype=float).ravel() > 0.5
    n = int(r.size)
    if n == 0:
        return math.nan, math.nan
    n11, n12 = int(np.sum(r & o)), int(np.sum(r & ~o))
    n21, n22 = int(np.sum(~r & o)), int(np.sum(~r & ~o))
    row1, row2, col1, col2 = n11 + n12, n21 + n22, n11 + n21, n12 + n22
    p_ref, p_other = row1 / n, col1 / n
    w_ref, w_other = wilson_ci(row1, n, confidence), wilson_ci(col1, n, confidence)
    psi = 0.0
    if min(row1, row2, col1, col2) > 0:
        a = n11 * n22 - n12 * n21
        denom = math.sqrt(float(row1) * row2 * col1 * col2)
        psi = (a - n / 2) / denom if a > n / 2 else (0.0 if a >= 0 else a / denom)
    d1, u2 = p_ref - w_ref.low, w_other.high - p_other
    u1, d2 = w_ref.high - p_ref, p_other - w_other.low
    est = p_ref - p_other
    low = est - math.sqrt(max(d1 * d1 + u2 * u2 - 2 * psi * d1 * u2, 0.0))
    high = est + math.sqrt(max(d2 * d2 + u1 * u1 - 2 * psi * d2 * u1, 0.0))
    return max(-1.0, -high), min(1.0, -low)


def nondegenerate_ci(mean: float, low: float, high: float, n: int, confidence: float = 0.95) -> MeanCI:
    """``[low, high]`` unless it has zero width for a [0, 1] metric: then the Wilson interval of
    ``mean`` with ``n`` units (method ``"wilson-fallback"``), the same rule as :func:`accuracy_ci`.
    For CIs computed elsewhere (e.g. a weighted bootstrap over strata or tasks, where every
    resample can be constant: a macro average of tasks at 0 and 1)."""
    if n > 0 and math.isfinite(mean) and low == high and 0.0 <= mean <= 1.0:
        w = wilson_ci(mean * n, n, confidence)
        return MeanCI(mean, w.low, w.high, n, "wilson-fallback")
    return MeanCI(mean, low, high, n, "bootstrap" if n else "none")


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
    """Paired difference ``other - ref`` with a CI and a p-value.

    Both arrays 0/1: Newcombe's paired interval (:func:`newcombe_paired_ci`, never zero width)
    and McNemar's exact test. Otherwise: percentile bootstrap CI of the mean difference and the
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
        return PairedDiff(math.nan, math.nan, math.nan, math.nan, 0, "none", "none")
    binary = bool(np.all(np.isin(r, (0.0, 1.0))) and np.all(np.isin(o, (0.0, 1.0))))
    if binary:
        low, high = newcombe_paired_ci(r, o, confidence)
        diff = float(np.mean(o - r))
        return PairedDiff(diff, low, high, mcnemar_exact(r, o), int(r.size), "mcnemar-exact", "newcombe")
    ci = bootstrap_ci(o - r, confidence=confidence, n_resamples=n_resamples, seed=seed)
    p, method = sign_flip_pvalue(o - r, n_resamples=n_resamples, seed=seed)
    return PairedDiff(ci.mean, ci.low, ci.high, p, int(r.size), method, "bootstrap")
