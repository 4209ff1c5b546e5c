"""Estimates over groups of units: a metric value with a bootstrap CI, and paired differences.

A *grouped estimate* is ``value = sum_g w_g * mean(x_g)`` over groups ``g`` of unit values
``x_g`` with weights ``w_g`` summing to 1. It covers every metric row of the report:

- a plain task metric: one group (the units: samples, CircularEval questions, ...), w = 1;
- a stratified task metric (MMStar's mean over L2 categories): one group per stratum, equal weights;
- the macro average over tasks: the groups of every task's headline metric, each task weighted
  1/T and split equally over its strata.

The CI resamples units *within each group* (percentile bootstrap, ``scipy.stats.bootstrap`` with
the groups as independent samples); a single group goes through
:func:`pvm_bench.report.stats.accuracy_ci` (Wilson for 0/1 units) /
:func:`~pvm_bench.report.stats.paired_difference` so it matches every other CI of the report.
When the multi-group bootstrap is degenerate (every group constant, e.g. all right in one task and
all wrong in another) and the values lie in [0, 1], the interval is the value +- the root sum of
squares of the weighted per-group Wilson half-widths, so it never collapses at 0 or 1. Paired differences pair units
by their key inside
each group; the p-value of a multi-group difference is a sign-flip permutation test of the
weighted statistic (seeded Monte-Carlo, or exact when 2**n <= resamples).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np

from pvm_bench.report.stats import (
    DEFAULT_RESAMPLES,
    MeanCI,
    PairedDiff,
    accuracy_ci,
    paired_difference,
    resample_batch,
    wilson_ci,
)

#: group key -> (weight, {unit key: value})
Groups = Mapping[Hashable, tuple[float, Mapping[Hashable, float]]]


@dataclass(frozen=True)
class Estimate:
    """A grouped estimate with its 95% CI and the number of units."""

    value: float
    low: float
    high: float
    n: int


def _stratified_interval(
    arrays: list[np.ndarray], weights: list[float], seed: int, n_resamples: int,
) -> tuple[float, float]:
    """95% percentile interval of ``sum_g w_g * mean(x_g)``, resampling units within each group.

    A stratified, weighted bootstrap is ``scipy.stats.bootstrap`` with the groups as independent
    samples and the weights in the statistic: with ``paired=False`` it resamples "for each sample
    in data ... a random sample of the original sample (with replacement) of the same size"
    (docs.scipy.org/doc/scipy-1.16.2/reference/generated/scipy.stats.bootstrap.html, the same text
    since 1.7). Also checked (issue 25): arch's ``IndependentSamplesBootstrap`` ("each input is
    independently resampled", bashtage.github.io/arch/bootstrap/iid-bootstraps.html) does the
    same but would be one more dependency; statsmodels has no bootstrap of an arbitrary statistic
    over strata (only ``GenericLikelihoodModelResults.bootstrap`` of a fitted model). scipy refuses
    a sample of one unit; such a group never varies when resampled, so it enters as a constant.
    """
    import scipy.stats as sps

    const = sum(w * float(x[0]) for x, w in zip(arrays, weights) if x.size < 2)
    live = [(x, w) for x, w in zip(arrays, weights) if x.size >= 2]
    if not live:
        return const, const
    ws = [w for _, w in live]

    def statistic(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
        return const + sum(w * x.mean(axis=axis) for w, x in zip(ws, xs))

    res = sps.bootstrap(tuple(x for x, _ in live), statistic, n_resamples=n_resamples, method="percentile",
                        vectorized=True, paired=False, confidence_level=0.95, rng=np.random.default_rng(seed),
                        batch=resample_batch(sum(x.size for x, _ in live), n_resamples))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def grouped_estimate(groups: Groups, seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES) -> Estimate:
    """Value and 95% percentile-bootstrap CI of a grouped estimate (NaN when there are no units)."""
    live = [(w, np.asarray(list(units.values()), dtype=float)) for w, units in groups.values() if len(units)]
    if not live:
        return Estimate(math.nan, math.nan, math.nan, 0)
    wsum = sum(w for w, _ in live)
    weights, arrays = [w / wsum for w, _ in live], [x for _, x in live]
    n = int(sum(x.size for x in arrays))
    if len(arrays) == 1:
        ci: MeanCI = accuracy_ci(arrays[0], seed=seed, n_resamples=n_resamples)
        return Estimate(ci.mean, ci.low, ci.high, n)
    value = float(sum(w * x.mean() for w, x in zip(weights, arrays)))
    lo, hi = _stratified_interval(arrays, weights, seed, n_resamples)
    if hi - lo <= 1e-12 and all(float(x.min()) >= 0.0 and float(x.max()) <= 1.0 for x in arrays):
        half = math.sqrt(sum((w * wilson_ci(float(x.sum()), int(x.size)).half_width) ** 2
                             for w, x in zip(weights, arrays)))
        return Estimate(value, max(0.0, value - half), min(1.0, value + half), n)
    return Estimate(value, float(min(lo, value)), float(max(hi, value)), n)


def grouped_paired(
    ref: Groups, other: Groups, seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
) -> PairedDiff:
    """Paired difference ``other - ref`` of two grouped estimates over the units both have.

    Groups and units are matched by key; the weights are ``other``'s, renormalised over the groups
    with at least one pair. One group: :func:`paired_difference` (McNemar for 0/1 values).
    """
    pairs: list[tuple[float, np.ndarray, np.ndarray]] = []
    for g, (w, units) in other.items():
        if g not in ref:
            continue
        base_units = ref[g][1]
        common = [u for u in units if u in base_units]
        if common:
            pairs.append(
                (w, np.array([base_units[u] for u in common], float), np.array([units[u] for u in common], float))
            )
    if not pairs:
        return PairedDiff(math.nan, math.nan, math.nan, math.nan, 0, "none")
    if len(pairs) == 1:
        return paired_difference(pairs[0][1], pairs[0][2], seed=seed, n_resamples=n_resamples)
    wsum = sum(w for w, _, _ in pairs)
    weights = [w / wsum for w, _, _ in pairs]
    diffs = [o - r for _, r, o in pairs]
    value = float(sum(w * d.mean() for w, d in zip(weights, diffs)))
    lo, hi = _stratified_interval(diffs, weights, seed, n_resamples)
    p, method = _sign_flip(diffs, weights, seed, n_resamples)
    n = int(sum(d.size for d in diffs))
    return PairedDiff(value, float(min(lo, value)), float(max(hi, value)), p, n, method)


def _sign_flip(diffs: list[np.ndarray], weights: list[float], seed: int, n_resamples: int) -> tuple[float, str]:
    """Two-sided sign-flip test of sum_g w_g mean(d_g) == 0 (units exchangeable in sign)."""
    coef = np.concatenate([np.full(d.size, w / d.size) for w, d in zip(weights, diffs)])
    d = np.concatenate(diffs) * coef
    observed = abs(d.sum())
    if not np.any(d):
        return 1.0, "sign-flip-exact"
    if 2 ** d.size <= n_resamples:
        grid = np.array(np.meshgrid(*[[-1.0, 1.0]] * d.size)).reshape(d.size, -1).T
        stats = np.abs(grid @ d)
        return float(np.mean(stats >= observed - 1e-12)), "sign-flip-exact"
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_resamples, d.size))
    stats = np.abs(signs @ d)
    # the observed labelling counts as one permutation (never p = 0)
    return float((np.sum(stats >= observed - 1e-12) + 1) / (n_resamples + 1)), "sign-flip-mc"
