"""Bootstrap CIs, paired differences and McNemar against scipy and hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from pvm_bench.report.stats import bootstrap_ci, mcnemar_exact, paired_difference, sign_flip_pvalue


def test_bootstrap_ci_matches_scipy_with_same_seed() -> None:
    x = np.random.default_rng(3).normal(0.6, 0.2, size=40)
    ours = bootstrap_ci(x, n_resamples=3000, seed=11)
    ref = sps.bootstrap((x,), np.mean, n_resamples=3000, method="percentile", vectorized=True,
                        rng=np.random.default_rng(11)).confidence_interval
    assert ours.mean == pytest.approx(x.mean())
    assert ours.low == pytest.approx(ref.low) and ours.high == pytest.approx(ref.high)
    assert ours.low < ours.mean < ours.high


def test_bootstrap_ci_hand_case_two_points() -> None:
    # Resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% percentiles are 0 and 1.
    ci = bootstrap_ci([0.0, 1.0], n_resamples=4000, seed=0)
    assert (ci.mean, ci.low, ci.high) == (0.5, 0.0, 1.0)


def test_bootstrap_ci_degenerate_inputs() -> None:
    assert np.isnan(bootstrap_ci([]).mean)
    one = bootstrap_ci([0.7])
    assert (one.low, one.high, one.n) == (0.7, 0.7, 1)
    const = bootstrap_ci([1.0] * 10)
    assert const.half_width == 0.0


def _exact_sign_flip(d: list[float]) -> float:
    """Reference: enumerate all 2**n sign patterns by hand."""
    obs = abs(np.mean(d))
    hits = sum(abs(np.mean(np.array(s) * d)) >= obs - 1e-12 for s in itertools.product((1, -1), repeat=len(d)))
    return hits / 2 ** len(d)


@pytest.mark.parametrize("d", [[1, 2, 3], [1, 2, 3, 4], [1, -1, 2], [0.5, -0.2, 0.3, 0.9, -0.1]])
def test_sign_flip_pvalue_exact_enumeration(d: list[float]) -> None:
    p, method = sign_flip_pvalue(d)
    assert method == "sign-flip-exact"
    assert p == pytest.approx(_exact_sign_flip(d))
    if d == [1, 2, 3]:
        assert p == 0.25  # only all-plus and all-minus reach |mean| >= 2: 2 / 8


def test_sign_flip_matches_scipy_permutation_test_monte_carlo() -> None:
    rng = np.random.default_rng(5)
    d = rng.normal(0.15, 1.0, size=60)
    p, method = sign_flip_pvalue(d, n_resamples=2000, seed=2)
    ref = sps.permutation_test((d, np.zeros_like(d)), lambda x, y, axis: np.mean(x - y, axis=axis),
                               permutation_type="samples", vectorized=True, n_resamples=2000,
                               rng=np.random.default_rng(2)).pvalue
    assert method == "sign-flip-mc" and p == pytest.approx(ref)
    # and close to the paired t-test for this near-normal data
    assert abs(p - sps.ttest_1samp(d, 0).pvalue) < 0.05


def test_mcnemar_matches_binomtest() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(5, 80))
        ref = rng.random(n) < rng.random()
        other = rng.random(n) < rng.random()
        b = int(np.sum(ref & ~other))
        c = int(np.sum(~ref & other))
        expected = sps.binomtest(c, b + c, 0.5).pvalue if b + c else 1.0
        assert mcnemar_exact(ref, other) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_hand_case() -> None:
    # 7 pairs only the reference got right, 3 only the other: 2 * P[Binom(10, .5) <= 3] = 0.34375
    ref = [1] * 10 + [0] * 3
    other = [0] * 7 + [1] * 6
    assert mcnemar_exact(ref, other) == pytest.approx(2 * (1 + 10 + 45 + 120) / 1024)


def test_paired_difference_picks_the_test() -> None:
    ref = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1, 0], dtype=float)
    other = np.array([1, 1, 1, 1, 0, 1, 1, 0, 1, 1], dtype=float)
    binary = paired_difference(ref, other)
    assert binary.method == "mcnemar-exact" and binary.diff == pytest.approx(0.4)
    assert binary.p_value == pytest.approx(sps.binomtest(4, 4, 0.5).pvalue)
    assert binary.low <= binary.diff <= binary.high
    cont = paired_difference(ref * 0.5 + 0.1, other * 0.5)
    assert cont.method.startswith("sign-flip")
    empty = paired_difference([np.nan], [1.0])
    assert empty.n == 0 and empty.method == "none"
