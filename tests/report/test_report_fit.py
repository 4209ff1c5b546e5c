"""The decay-law fit recovers known parameters; half-lives are consistent."""

from __future__ import annotations

import numpy as np
import pytest

from pvm_bench.report.fit import decay_law, fit_decay, observed_half_life


# Noise levels are chosen so that the parameters are identifiable: their standard errors
# (curve_fit covariance at the truth) are <= ~1.5%, so a 5% criterion tests the fitter, not luck.
@pytest.mark.parametrize(
    ("a", "b", "c", "t_max", "noise"),
    [(0.05, 2.0, 10.0, 2048, 0.02), (0.02, 0.6, 8.0, 4096, 0.02), (0.1, 3.0, 100.0, 4096, 0.01),
     (0.3, 0.5, 2.0, 1024, 0.004)],
)
def test_fit_recovers_parameters_within_5_percent(a: float, b: float, c: float, t_max: int, noise: float) -> None:
    rng = np.random.default_rng(1234)
    t = np.arange(1, t_max + 1)
    y = decay_law(t, a, b, c) * (1 + noise * rng.standard_normal(t.size))
    fit = fit_decay(t, y)
    assert fit.ok
    for got, want in ((fit.a, a), (fit.b, b), (fit.c, c)):
        assert got == pytest.approx(want, rel=0.05)
    assert fit.r2 > 0.9


@pytest.mark.parametrize(("a", "b", "c", "t_max"), [(0.15, 0.9, 40.0, 1024), (0.3, 0.5, 2.0, 512)])
def test_fit_reaches_least_squares_optimum_when_poorly_identified(a: float, b: float, c: float, t_max: int) -> None:
    """With 2% noise these parameters have ~10% standard errors; the fit must still find a
    residual no worse than the true parameters' (i.e. the optimum, not a local stall)."""
    rng = np.random.default_rng(1234)
    t = np.arange(1, t_max + 1)
    y = decay_law(t, a, b, c) * (1 + 0.02 * rng.standard_normal(t.size))
    fit = fit_decay(t, y)
    sse_fit = float(((y - fit.predict(t)) ** 2).sum())
    sse_true = float(((y - decay_law(t, a, b, c)) ** 2).sum())
    assert sse_fit <= sse_true * (1 + 1e-9)


def test_fit_recovers_from_scattered_samples() -> None:
    """Several noisy samples per position (as in attention.parquet), not a clean mean curve."""
    rng = np.random.default_rng(7)
    t = np.repeat(np.arange(1, 1025), 4)
    y = decay_law(t, 0.04, 1.2, 15.0) + 0.004 * rng.standard_normal(t.size)
    fit = fit_decay(t, y)
    assert (fit.a, fit.b, fit.c) == pytest.approx((0.04, 1.2, 15.0), rel=0.05)


def test_half_life_fit_is_where_the_law_halves() -> None:
    fit = fit_decay(np.arange(1, 3000), decay_law(np.arange(1, 3000), 0.02, 1.0, 5.0))
    hl = fit.half_life()
    target = fit.predict(1.0) / 2
    assert fit.predict(hl) == pytest.approx(target, rel=1e-6)
    # observed half-life: first integer t at or below half
    t = np.arange(1, 3000)
    y = decay_law(t, 0.02, 1.0, 5.0)
    assert observed_half_life(t, y) == float(np.ceil(hl))


def test_half_life_never_when_asymptote_above_half() -> None:
    t = np.arange(1, 500)
    fit = fit_decay(t, decay_law(t, 0.5, 0.3, 4.0))
    assert fit.ok and np.isnan(fit.half_life())
    assert np.isnan(observed_half_life(t, decay_law(t, 0.5, 0.3, 4.0)))


def test_fit_degenerate_inputs_do_not_raise() -> None:
    assert not fit_decay([1, 2, 3], [0.3, 0.2, 0.1]).ok
    assert not fit_decay([], []).ok
    flat = fit_decay(np.arange(1, 100), np.full(99, 0.25))
    assert flat.ok and np.isnan(flat.r2) and flat.predict(50) == pytest.approx(0.25)
    noisy = fit_decay(np.arange(1, 50), np.random.default_rng(0).random(49))
    assert noisy.ok  # a fit exists, R² just says it is poor
