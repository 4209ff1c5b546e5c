"""RowIndex: the O(rows) indexing of the decay fits equals np.unique / scipy's COO construction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from pvm_bench.report.fit import fit_decay_per_sample
from pvm_bench.report.fit_ci import decay_bootstrap
from pvm_bench.report.fit_rows import RowIndex, distinct_steps, sample_codes


def _generations(rng: np.random.Generator, n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = rng.integers(1, 300, n)
    gen = np.repeat(np.arange(n) * 3 + 5, lengths)  # sorted integer keys with gaps
    t = np.concatenate([np.arange(1, k + 1) for k in lengths]).astype(float)
    y = 0.2 + 1.0 / (4.0 + t) + rng.normal(0, 0.01, t.size)
    return t, y, gen


@pytest.mark.parametrize("shuffle", [False, True])
def test_index_equals_unique_and_coo(shuffle: bool) -> None:
    rng = np.random.default_rng(3)
    t, y, gen = _generations(rng)
    if shuffle:
        order = rng.permutation(t.size)
        t, y, gen = t[order], y[order], gen[order]
    index = RowIndex.of(t, gen)
    assert index.ordered is (not shuffle)
    np.testing.assert_array_equal(index.codes, np.unique(gen, return_inverse=True)[1])
    steps, idx = np.unique(t, return_inverse=True)
    np.testing.assert_array_equal(index.steps, steps)
    np.testing.assert_array_equal(index.step_idx, idx)
    coo = sparse.csr_matrix((y, (index.codes, idx)), shape=index.shape)
    mine = index.matrix(y)
    np.testing.assert_array_equal(mine.indptr, coo.indptr)
    np.testing.assert_array_equal(mine.indices, coo.indices)
    np.testing.assert_array_equal(mine.data, coo.data)
    xs = np.random.default_rng(0).random((steps.size, 7))
    incidence = sparse.csr_matrix((np.ones(t.size), (index.codes, idx)), shape=index.shape)
    np.testing.assert_allclose(index.sums()(xs), np.asarray(incidence @ xs), rtol=1e-12)


def test_fits_are_the_same_in_any_row_order() -> None:
    rng = np.random.default_rng(5)
    t, y, gen = _generations(rng)
    order = rng.permutation(t.size)
    a, b = fit_decay_per_sample(t, y, gen), fit_decay_per_sample(t[order], y[order], gen[order])
    assert a.ok and abs(a.c - 4.0) < 1.0
    assert (a.a, a.b, a.c, a.n_samples) == pytest.approx((b.a, b.b, b.c, b.n_samples), rel=1e-9)
    ci_a, ci_b = decay_bootstrap(t, y, gen, n_replicates=50), decay_bootstrap(t[order], y[order], gen[order],
                                                                              n_replicates=50)
    assert ci_a.half_life == pytest.approx(ci_b.half_life, rel=1e-9)


def test_fallbacks() -> None:
    keys = np.array(["b", "a", "b", "c"])
    np.testing.assert_array_equal(sample_codes(keys), [1, 0, 1, 2])
    steps, idx = distinct_steps(np.array([2.5, 1.0, 2.5]))  # not integer steps: np.unique
    np.testing.assert_array_equal(steps, [1.0, 2.5])
    np.testing.assert_array_equal(idx, [1, 0, 1])
