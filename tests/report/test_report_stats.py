"""Bootstrap CIs, paired differences and McNemar against scipy and hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from pvm_bench.report.stats import (
    SMALL_N,
    accuracy_ci,
    bootstrap_ci,
    bootstrap_cis,
    mcnemar_exact,
    newcombe_paired_ci,
    nondegenerate_ci,
    paired_difference,
    sign_flip_pvalue,
    wilson_ci,
)


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


# ---------------------------------------------------------------- accuracy CIs that do not collapse


def test_wilson_hand_values_at_the_ends_and_middle() -> None:
    zero = wilson_ci(0, 10)
    assert (zero.mean, zero.low) == (0.0, 0.0) and zero.high == pytest.approx(0.2775, abs=1e-4)
    full = wilson_ci(10, 10)
    assert full.high == 1.0 and full.low == pytest.approx(1 - 0.2775, abs=1e-4)
    # textbook case (Newcombe 1998, table I): 15/148 -> [0.0624, 0.1605]
    mid = wilson_ci(15, 148)
    assert (mid.low, mid.high) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert np.isnan(wilson_ci(0, 0).mean) and wilson_ci(0, 0).method == "none"


def test_wilson_matches_statsmodels_formula_via_scipy_binomtest() -> None:
    # scipy's binomtest(...).proportion_ci(method="wilson") is the same interval
    for k, n in [(0, 5), (3, 7), (29, 30), (50, 100)]:
        ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        ours = wilson_ci(k, n)
        assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_accuracy_ci_never_zero_width_at_0_or_1() -> None:
    for values in ([0.0] * 10, [1.0] * 10, [1.0] * 200):
        ci = accuracy_ci(values)
        assert ci.method == "wilson" and ci.high - ci.low > 0.01
    assert accuracy_ci([0.0] * 10).high == pytest.approx(0.2775, abs=1e-4)
    # the old bootstrap path collapses there
    assert bootstrap_ci([1.0] * 10).half_width == 0.0


def test_accuracy_ci_non_binary_bootstrap_and_stated_fallback() -> None:
    x = np.array([0.0, 0.5, 1.0, 0.25] * 10)
    ci = accuracy_ci(x, seed=3)
    assert ci.method == "bootstrap" and (ci.low, ci.high) == (bootstrap_ci(x, seed=3).low, bootstrap_ci(x, seed=3).high)
    const = accuracy_ci([0.5] * 8)  # e.g. every sample right in 1 of 2 repeats
    assert const.method == "wilson-fallback" and const.mean == 0.5
    assert (const.low, const.high) == pytest.approx((wilson_ci(4, 8).low, wilson_ci(4, 8).high))
    outside = accuracy_ci([2.0, 2.0])  # not a [0, 1] score: no basis for a fallback
    assert outside.method == "degenerate" and outside.half_width == 0.0
    assert accuracy_ci([]).method == "none"


def test_small_n_marker() -> None:
    assert accuracy_ci([1.0] * 29).small_n
    assert not accuracy_ci([1.0] * SMALL_N).small_n
    assert not accuracy_ci([]).small_n  # n = 0 is "no data", not "small"


# ---------------------------------------------------------------- paired 0/1 differences


def test_newcombe_paired_ci_does_not_collapse_when_all_pairs_agree() -> None:
    low, high = newcombe_paired_ci([1] * 50, [1] * 50)
    assert low == pytest.approx(-0.0713, abs=1e-4) and high == pytest.approx(0.0713, abs=1e-4)
    d = paired_difference([1.0] * 50, [1.0] * 50)
    assert d.ci_method == "newcombe" and d.diff == 0.0 and d.high - d.low > 0.1 and d.p_value == 1.0
    assert bootstrap_ci(np.zeros(50)).half_width == 0.0  # what the bootstrap of differences gave


def test_newcombe_paired_ci_is_antisymmetric_and_covers() -> None:
    ref = [1, 1] + [0] * 19
    other = [1, 0] + [1] * 7 + [0] * 12  # 2x2 table (1, 1; 7, 12): difference +6/21
    low, high = newcombe_paired_ci(ref, other)
    back = newcombe_paired_ci(other, ref)
    assert (back[0], back[1]) == pytest.approx((-high, -low))
    assert low < 6 / 21 < high and 0 < low
    # coverage: correlated pairs with p_ref = 0.7, p_other = 0.8, n = 40
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(1000):
        u = rng.random(40)
        r = (u < 0.7).astype(float)
        o = ((u < 0.8) ^ (rng.random(40) < 0.1)).astype(float)  # 10% of pairs flip on the other side
        truth = 0.8 * 0.9 + 0.2 * 0.1 - 0.7
        lo, hi = newcombe_paired_ci(r, o)
        hits += lo <= truth <= hi
    assert 0.93 <= hits / 1000 <= 0.99


def test_nondegenerate_ci_for_externally_computed_intervals() -> None:
    macro = nondegenerate_ci(0.5, 0.5, 0.5, 110)  # e.g. task A all right, task B all wrong
    assert macro.method == "wilson-fallback" and macro.low < 0.5 < macro.high
    assert (macro.low, macro.high) == pytest.approx((wilson_ci(55, 110).low, wilson_ci(55, 110).high))
    kept = nondegenerate_ci(0.5, 0.4, 0.6, 110)
    assert (kept.low, kept.high, kept.method) == (0.4, 0.6, "bootstrap")
    assert nondegenerate_ci(3.0, 3.0, 3.0, 5).half_width == 0.0  # not a [0, 1] metric


def test_bootstrap_ci_in_batches_gives_the_same_interval() -> None:
    """Large inputs are resampled in batches of bounded memory; one sample's numbers do not change."""
    from pvm_bench.report.stats import RESAMPLE_CELLS, resample_batch

    x = np.random.default_rng(1).random(3000)
    assert resample_batch(3000, 2000) == RESAMPLE_CELLS // 3000 and resample_batch(100, 2000) is None
    whole = sps.bootstrap((x,), np.mean, n_resamples=2000, method="percentile", vectorized=True,
                          rng=np.random.default_rng(0)).confidence_interval
    ci = bootstrap_ci(x, seed=0)
    assert (ci.low, ci.high) == (whole.low, whole.high)


@pytest.mark.parametrize("n", [1, 7, 50, 2_500])
def test_bootstrap_cis_equal_one_call_each(n: int) -> None:
    """Several samples of one size share one scipy call and get exactly the interval each gets
    alone (2,500 x 4 rows also crosses the batching threshold); constant, NaN-holding and other-size
    samples go their own way."""
    rng = np.random.default_rng(n)
    samples = [rng.random(n) for _ in range(4)] + [np.full(n, 0.25), np.r_[rng.random(n), np.nan], rng.random(n + 1)]
    assert bootstrap_cis(samples, seed=3) == [bootstrap_ci(x, seed=3) for x in samples]
    assert bootstrap_cis([]) == []
