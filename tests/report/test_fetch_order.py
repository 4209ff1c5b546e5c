"""_sort_order: the per-step rows' permutation to (generation, step) order equals a sort of the
combined key, whether the rows come in per-generation runs (the fast path) or not."""

from __future__ import annotations

import numpy as np
import pytest

from pvm_bench.report.attention_agg import _sort_order


def _runs(rng: np.random.Generator, n_gen: int = 50) -> tuple[np.ndarray, np.ndarray]:
    lengths = rng.integers(1, 40, n_gen)
    gen = np.repeat(rng.permutation(n_gen), lengths).astype(np.int32)  # runs in file order, not gen order
    step = np.concatenate([np.arange(k) for k in lengths]).astype(np.int32)
    return gen, step


def _reference(gen: np.ndarray, step: np.ndarray) -> np.ndarray:
    return np.argsort((gen.astype(np.int64) << 32) | step.astype(np.int64), kind="stable")


@pytest.mark.parametrize("case", ["runs", "sorted", "split_run", "steps_shuffled", "empty"])
def test_sort_order_equals_a_key_sort(case: str) -> None:
    rng = np.random.default_rng(4)
    gen, step = _runs(rng)
    if case == "sorted":
        o = _reference(gen, step)
        gen, step = gen[o], step[o]
    elif case == "split_run":  # one generation's rows in two places: not runs, the general sort
        gen = np.concatenate([gen, gen[:3]])
        step = np.concatenate([step, step[:3] + 1000])
    elif case == "steps_shuffled":
        o = rng.permutation(gen.size)
        gen, step = gen[o], step[o]
    elif case == "empty":
        gen, step = gen[:0], step[:0]
    order = _sort_order(gen, step)
    if case in ("sorted", "empty"):
        assert order is None
        return
    assert order is not None
    np.testing.assert_array_equal(order, _reference(gen, step))
    key = (gen[order].astype(np.int64) << 32) | step[order]
    assert np.all(np.diff(key) > 0)
