"""The stratified, weighted bootstrap of grouped estimates (report/estimate.py) through scipy."""

from __future__ import annotations

import numpy as np
import pytest

from pvm_bench.report.estimate import grouped_estimate, grouped_paired


def _groups(*arrays: np.ndarray, weights: tuple[float, ...]) -> dict:
    return {g: (w, dict(enumerate(x.tolist()))) for g, (w, x) in enumerate(zip(weights, arrays))}


def test_stratified_ci_matches_the_normal_approximation_of_the_weighted_mean() -> None:
    """Units are resampled within each group: the interval's width is that of sum_g w_g mean(x_g)
    with each group's own variance and size (a pooled resample would mix the strata)."""
    rng = np.random.default_rng(1)
    a, b = rng.random(400), (rng.random(900) < 0.3).astype(float)
    est = grouped_estimate(_groups(a, b, weights=(1.0, 3.0)))
    value = 0.25 * a.mean() + 0.75 * b.mean()
    se = np.sqrt(0.25**2 * a.var(ddof=1) / a.size + 0.75**2 * b.var(ddof=1) / b.size)
    assert est.value == pytest.approx(value) and est.n == 1300
    assert est.low == pytest.approx(value - 1.96 * se, abs=0.15 * se)
    assert est.high == pytest.approx(value + 1.96 * se, abs=0.15 * se)
    assert grouped_estimate(_groups(a, b, weights=(1.0, 3.0))) == est  # seeded


def test_a_one_unit_group_is_a_constant_of_the_resampled_statistic() -> None:
    one, many = np.array([1.0]), np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    est = grouped_estimate(_groups(one, many, weights=(1.0, 1.0)))
    assert est.value == pytest.approx(0.75) and est.n == 7
    # the single unit always adds 0.5; the other group's mean ranges over [0, 1] / 2
    assert 0.5 <= est.low < 0.75 < est.high <= 1.0


def test_constant_groups_fall_back_to_wilson_half_widths() -> None:
    est = grouped_estimate(_groups(np.ones(2), np.zeros(3), weights=(1.0, 1.0)))
    assert est.value == 0.5 and 0.0 < est.low < 0.5 < est.high < 1.0


def test_paired_difference_over_groups_resamples_the_pairs_within_groups() -> None:
    rng = np.random.default_rng(2)
    ref = [rng.random(300), rng.random(200)]
    other = [ref[0] + 0.1 + rng.normal(0, 0.05, 300), ref[1] - 0.2 + rng.normal(0, 0.05, 200)]
    diff = grouped_paired(_groups(*ref, weights=(1.0, 1.0)), _groups(*other, weights=(1.0, 1.0)))
    d = [o - r for o, r in zip(other, ref)]
    value = 0.5 * d[0].mean() + 0.5 * d[1].mean()
    se = np.sqrt(sum(0.25 * x.var(ddof=1) / x.size for x in d))
    assert diff.diff == pytest.approx(value) and diff.n == 500
    assert diff.low == pytest.approx(value - 1.96 * se, abs=0.15 * se)
    assert diff.high == pytest.approx(value + 1.96 * se, abs=0.15 * se)
