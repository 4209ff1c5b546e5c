"""Bootstrap CIs of the per-sample decay fit: they contain the truth, move with the data, and
say "never" when the data allow no half-life."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_report_fit import _survivor_panel

from pvm_bench.report.fit import DecayFit, decay_law, fit_decay_per_sample
from pvm_bench.report.fit_ci import EMPTY, decay_bootstrap

TRUE_HALF_LIFE = DecayFit(0.05, 1.0, 10.0, 1.0, 1, 600, True).half_life()  # 86.3


def test_intervals_cover_the_truth_and_the_estimate() -> None:
    t, y, s = _survivor_panel(0, correlated=True)
    fit = fit_decay_per_sample(t, y, s)
    ci = decay_bootstrap(t, y, s, seed=1)
    assert ci.n_replicates == 200
    for (lo, hi), est, truth in ((ci.a, fit.a, 0.05), (ci.b, fit.b, 1.0), (ci.c, fit.c, 10.0),
                                 (ci.half_life, fit.half_life(), TRUE_HALF_LIFE)):
        assert lo <= est <= hi and lo <= truth <= hi
    assert 60 < ci.half_life[0] < TRUE_HALF_LIFE < ci.half_life[1] < 120
    assert decay_bootstrap(t, y, s, seed=1) == ci  # deterministic in the seed


def test_coverage_of_the_half_life_over_repeated_experiments() -> None:
    hits = 0
    for seed in range(20):
        t, y, s = _survivor_panel(100 + seed, correlated=True, n=60)
        lo, hi = decay_bootstrap(t, y, s, seed=seed, n_replicates=100).half_life
        hits += lo <= TRUE_HALF_LIFE <= hi
    assert hits >= 17  # nominal 95%: 19 of 20 expected, >= 17 with high probability


def test_fewer_samples_give_wider_intervals() -> None:
    t, y, s = _survivor_panel(3, correlated=False, n=200)
    wide = decay_bootstrap(*_survivor_panel(3, correlated=False, n=30))
    narrow = decay_bootstrap(t, y, s)
    assert (wide.half_life[1] - wide.half_life[0]) > 1.5 * (narrow.half_life[1] - narrow.half_life[0])


def test_half_life_upper_bound_is_infinite_when_never_halving_is_plausible() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 60, 30)
    t = np.concatenate([np.arange(1, k + 1) for k in lengths])
    s = np.repeat(np.arange(lengths.size), lengths)
    # asymptote just under half the start level, lots of noise: "never" is not excluded
    y = decay_law(t, 0.06, 0.5, 5.0) + 0.03 * rng.standard_normal(t.size)
    ci = decay_bootstrap(t, y, s)
    assert math.isinf(ci.half_life[1])


def test_degenerate_inputs() -> None:
    assert decay_bootstrap([], [], []) == EMPTY
    assert decay_bootstrap([1, 2, 3, 4, 5], [0.5, 0.4, 0.3, 0.3, 0.2], [0] * 5) == EMPTY  # one sample
    assert decay_bootstrap([1, 2, 3], [0.3, 0.2, 0.1], [0, 1, 2]) == EMPTY


@pytest.mark.parametrize("key", ["str", "int"])
def test_sample_keys_of_any_type(key: str) -> None:
    t, y, s = _survivor_panel(5, correlated=True, n=40)
    keys = s.astype(str) if key == "str" else s
    assert decay_bootstrap(t, y, keys, n_replicates=50).n_replicates == 50
