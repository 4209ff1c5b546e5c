"""FitStats.pooled: the pooled scope's fit and bootstrap started from its task scopes' statistics
equal the fit and bootstrap of its rows; anything that is not a tiling falls back (None)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pvm_bench.report.curves import band_decay_from_samples
from pvm_bench.report.fit import fit_decay_per_sample, fit_rows
from pvm_bench.report.fit_ci import N_GRID, decay_bootstrap
from pvm_bench.report.fit_stats import FitStats


def _task(rng: np.random.Generator, first_gen: int, n: int, cap: int) -> pd.DataFrame:
    """One task's per-sample frame as the aggregates give it: task = generation, steps 1..length."""
    lengths = np.minimum(rng.integers(2, 400, n), cap)
    lengths[0] = cap  # every task has an output at the cap: the bootstrap grids coincide
    gen = np.repeat(np.arange(first_gen, first_gen + n), lengths)
    t = np.concatenate([np.arange(1, k + 1) for k in lengths])
    level = np.repeat(rng.normal(0.3, 0.05, n), lengths)
    y = level + 1.5 / (6.0 + t) + rng.normal(0, 0.01, t.size)
    zeros = np.zeros(t.size, dtype=np.int8)
    return pd.DataFrame({"task": gen, "sample_id": zeros, "repeat": zeros, "step": t, "mass": y})


def _close(a: float, b: float) -> bool:
    """Equal up to the fit's own precision: the bounded search for c stops within 1e-6 in
    log(c + t_min), and sums taken in another order move its end point inside that tolerance."""
    if not (np.isfinite(a) and np.isfinite(b)):
        return (np.isnan(a) and np.isnan(b)) or a == b
    return abs(a - b) <= 1e-5 * max(abs(a), abs(b), 1e-12)


@pytest.mark.parametrize("same_cap", [True, False])
def test_pooled_scope_equals_its_rows(same_cap: bool) -> None:
    rng = np.random.default_rng(7)
    tasks = [_task(rng, 0, 30, 500), _task(rng, 30, 25, 500 if same_cap else 350), _task(rng, 55, 40, 500)]
    parts = [band_decay_from_samples(t, seed=0).stats for t in tasks]
    assert all(p is not None and p.rows_of is None for p in parts)  # released: no rows held
    pooled_frame = pd.concat(tasks, ignore_index=True)
    direct = band_decay_from_samples(pooled_frame, seed=0)
    pooled = band_decay_from_samples(pooled_frame, seed=0, parts=parts)
    for name in ("a", "b", "c", "r2", "n_points", "t_max", "n_samples"):
        assert _close(getattr(pooled.fit, name), getattr(direct.fit, name)), name
    assert pooled.fit.message == direct.fit.message
    for name in ("a", "b", "c", "half_life"):
        for x, y in zip(getattr(pooled.fit_ci, name), getattr(direct.fit_ci, name)):
            assert _close(x, y), name
    assert direct.fit.ok and 0.0 < direct.fit.a < 0.6 and direct.fit.b > 0


def test_pooled_reuses_the_task_grid_sums_only_when_grids_coincide() -> None:
    rng = np.random.default_rng(1)
    tasks = [_task(rng, 0, 20, 300), _task(rng, 20, 20, 300)]
    stats = []
    for frame in tasks:
        s = FitStats.of(fit_rows(frame["step"].to_numpy(), frame["mass"].to_numpy(), frame["task"].to_numpy()))
        decay_bootstrap([], [], [], stats=s)
        stats.append(s.released())
    frame = pd.concat(tasks, ignore_index=True)
    gen = frame["task"].to_numpy()

    def no_rows():  # the pooled grid is the tasks' grid: the rows are never needed
        raise AssertionError("rows rebuilt")

    pooled = FitStats.pooled(stats, np.unique(gen), gen.size, no_rows)
    assert pooled is not None and list(pooled.sxy) == [(1.0, 300.0, N_GRID)]
    ci = decay_bootstrap([], [], [], stats=pooled)
    direct = decay_bootstrap(frame["step"].to_numpy(), frame["mass"].to_numpy(), gen)
    for name in ("a", "b", "c", "half_life"):
        for x, y in zip(getattr(ci, name), getattr(direct, name)):
            assert _close(x, y), name
    fit = fit_decay_per_sample([], [], [], stats=pooled)
    assert _close(fit.c, fit_decay_per_sample(frame["step"], frame["mass"], gen).c)


def test_not_a_tiling_falls_back() -> None:
    rng = np.random.default_rng(2)
    a, b = _task(rng, 0, 10, 200), _task(rng, 10, 10, 200)
    sa = FitStats.of(fit_rows(a["step"].to_numpy(), a["mass"].to_numpy(), a["task"].to_numpy())).released()
    sb = FitStats.of(fit_rows(b["step"].to_numpy(), b["mass"].to_numpy(), b["task"].to_numpy())).released()
    keys = np.arange(20)
    rows = len(a) + len(b)
    assert FitStats.pooled([sa, sb], keys, rows, lambda: None) is not None
    assert FitStats.pooled([sb, sa], keys, rows, lambda: None) is None  # out of order
    assert FitStats.pooled([sa], keys, rows, lambda: None) is None  # a task missing
    assert FitStats.pooled([sa, sb], keys, rows - 1, lambda: None) is None  # other rows
    # a sample that lacks a step another task has (its steps are not 1..last in the pooled scope)
    gappy = b[~((b["task"] == 10) & (b["step"] == 3))]
    sg = FitStats.of(fit_rows(gappy["step"].to_numpy(), gappy["mass"].to_numpy(), gappy["task"].to_numpy()))
    assert sg.sums.last is None  # its own scope has step 3 in other samples
    assert FitStats.pooled([sa, sg.released()], keys, len(a) + len(gappy), lambda: None) is None
    # rows dropped on the way (a NaN): no keys, never pooled
    holed = a.assign(mass=a["mass"].where(a.index != 5))
    sh = FitStats.of(fit_rows(holed["step"].to_numpy(), holed["mass"].to_numpy(), holed["task"].to_numpy()))
    assert sh.keys is None
    assert FitStats.pooled([sh.released(), sb], keys, rows, lambda: None) is None
