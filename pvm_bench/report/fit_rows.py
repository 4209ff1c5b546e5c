"""Row indexing of the per-sample decay fits: sample codes, distinct steps and per-sample sums.

The fits (:func:`~pvm_bench.report.fit.fit_decay_per_sample`, :func:`~pvm_bench.report.fit_ci.decay_bootstrap`)
see one row per (sample, step); at paper scale a scope holds 13 million of them. Everything here
gives exactly what ``np.unique(..., return_inverse=True)`` and ``scipy.sparse.csr_matrix((v, (i, j)))``
give, but in O(rows) instead of sorting, when the rows come as the report's aggregates hold them:
integer sample codes in order, each sample's steps ascending (:meth:`RowIndex.ordered`), integer steps.
Other inputs take the general (sorting) path with the same results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

MAX_DIRECT_STEP = 1 << 24
"""Integer steps up to this are indexed by a counting pass (a table of this size at most)."""


def runs_of(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal consecutive ``keys`` (a sorted array: the runs are its distinct values): each
    row's run number (0..) and the first row of each run."""
    change = np.empty(keys.size, dtype=bool)
    change[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    return np.cumsum(change, dtype=np.intp) - 1, np.flatnonzero(change)


def sample_codes(sample: np.ndarray) -> np.ndarray:
    """``np.unique(sample, return_inverse=True)[1]`` (codes 0.. in sorted order of the keys); O(n)
    for integer keys that are already sorted (a run of equal keys is one sample)."""
    if sample.dtype.kind in "iu":
        if sample.size and bool(np.all(sample[1:] >= sample[:-1])):
            return runs_of(sample)[0]
        return np.unique(sample, return_inverse=True)[1]
    return np.unique(sample.astype(str), return_inverse=True)[1]


def distinct_steps(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(t, return_inverse=True)`` of steps >= 1 (floats); a counting pass when they are
    integers up to :data:`MAX_DIRECT_STEP`."""
    if t.size:
        top = float(t.max())
        if top <= MAX_DIRECT_STEP and float(t.min()) >= 0:
            ti = t.astype(np.intp)
            if np.array_equal(ti, t):
                present = np.bincount(ti, minlength=int(top) + 1) > 0
                rank = np.cumsum(present, dtype=np.intp) - 1
                return np.flatnonzero(present).astype(t.dtype), rank[ti]
    steps, idx = np.unique(t, return_inverse=True)
    return steps, idx.ravel()


@dataclass
class RowIndex:
    """Rows of (sample code, step index): ``codes`` (0 .. n_samples - 1), ``steps`` (distinct,
    ascending), ``step_idx`` (each row's index into ``steps``). ``ordered``: rows sorted by
    (code, step) with no (code, step) twice, as the aggregates' per-sample frames come. ``keys``:
    each sample's key when the keys were sorted integers (the aggregates' generations), else None."""

    codes: np.ndarray
    n_samples: int
    steps: np.ndarray
    step_idx: np.ndarray
    ordered: bool
    keys: np.ndarray | None = None

    @classmethod
    def of(cls, t: np.ndarray, sample: np.ndarray) -> RowIndex:
        """The index of rows with steps ``t`` (floats >= 1) and sample keys ``sample``."""
        codes = sample_codes(sample)
        steps, step_idx = distinct_steps(t)
        n_samples = int(codes.max()) + 1 if codes.size else 0
        dc = np.diff(codes)
        ordered = bool(np.all(dc >= 0) and np.all((dc > 0) | (np.diff(step_idx) > 0)))
        keys = None
        if sample.dtype.kind in "iu" and ordered and codes.size:  # ordered codes of integers: sorted keys
            keys = sample[np.r_[0, np.flatnonzero(dc) + 1]]
        return cls(codes, n_samples, steps, step_idx, ordered, keys)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_samples, int(self.steps.size)

    def indptr(self) -> np.ndarray:
        """CSR row pointers of an ordered index (where each sample's rows start)."""
        counts = np.bincount(self.codes, minlength=self.n_samples)
        return np.concatenate([[0], np.cumsum(counts)])

    def matrix(self, values: np.ndarray) -> sparse.csr_matrix:
        """The (samples x steps) CSR matrix of per-row ``values`` (equal to scipy's COO construction:
        in an ordered index each row's entries are already sorted and unique)."""
        if self.ordered:
            return sparse.csr_matrix((values, self.step_idx, self.indptr()), shape=self.shape)
        return sparse.csr_matrix((values, (self.codes, self.step_idx)), shape=self.shape)

    def sums(self) -> PerSampleSums:
        """Per-sample sums over each sample's steps of per-step values."""
        return PerSampleSums(self)


@dataclass
class FitRows:
    """The rows of one per-sample fit: steps ``t`` (floats >= 1), values ``y`` and their :class:`RowIndex`;
    ``complete``: no input row was dropped (non-finite, step < 1) on the way."""

    t: np.ndarray
    y: np.ndarray
    index: RowIndex
    complete: bool = False


class PerSampleSums:
    """``incidence @ values``: per-sample sums over each sample's steps of per-step ``values`` (one
    row per step index; a vector or a matrix). When every sample holds each step from the first one
    up to its last (a generation's steps), by prefix sums: O(steps) instead of O(rows) per call (for
    a matrix, sums between consecutive last steps and then their running sum, equal to the sparse
    product up to rounding); else the sparse product. ``last``: each sample's last step
    index in the prefix case, else None."""

    def __init__(self, index: RowIndex | None, last: np.ndarray | None = None) -> None:
        self.index = index
        self._incidence: sparse.csr_matrix | None = None
        self._segments: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if index is None:  # :meth:`prefix`
            self.last = last
            return
        if index.ordered:
            ptr = index.indptr()
            counts = np.diff(ptr)
            last = np.where(counts > 0, index.step_idx[np.maximum(ptr[1:] - 1, 0)], -1)
            contiguous = bool(np.all(counts == last + 1))
        else:
            last = np.zeros(index.n_samples, dtype=np.int64)
            np.maximum.at(last, index.codes, index.step_idx)
            self._incidence = index.matrix(np.ones(index.codes.size))
            contiguous = self._incidence.nnz == index.codes.size and np.array_equal(
                np.diff(self._incidence.indptr), last + 1)
        self.last = last if contiguous else None

    @classmethod
    def prefix(cls, last: np.ndarray | None) -> PerSampleSums:
        """The sums of samples that hold every step index 0 .. ``last[i]`` (None: no sums; calling raises)."""
        return cls(None, last)

    def _matrix(self) -> sparse.csr_matrix:
        if self._incidence is None:
            if self.index is None:
                raise ValueError("per-sample sums without their rows: only prefix sums")
            self._incidence = self.index.matrix(np.ones(self.index.codes.size))
        return self._incidence

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if self.last is None:
            return np.asarray(self._matrix() @ values)
        if self.last.size == 0:
            return np.zeros((0, *values.shape[1:]), dtype=float)
        if values.ndim == 1:  # the fit's search: the running sum itself is cheap, and exact
            return np.cumsum(values)[self.last]
        if self._segments is None:  # the distinct last steps, where each segment between them starts
            ends, which = np.unique(self.last, return_inverse=True)
            self._segments = (ends, np.r_[0, ends[:-1] + 1], which.ravel())
        ends, starts, which = self._segments
        # a running sum over the steps only at the samples' ends: numpy's cumsum along the steps of
        # a (steps x grid) matrix costs ~10 ns an element, reduceat over the segments ~1
        return np.cumsum(np.add.reduceat(values[: ends[-1] + 1], starts, axis=0), axis=0)[which]

    def per_step(self, values: np.ndarray, n_steps: int) -> np.ndarray:
        """The transpose: per step index, the sum of the per-sample ``values`` of the samples that
        hold it."""
        if self.last is None:
            return np.asarray(self._matrix().T @ values)
        return np.cumsum(np.bincount(self.last, values, n_steps)[::-1])[::-1]
