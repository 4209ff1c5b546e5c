"""The sufficient statistics of the per-sample decay fit, and their pooling across scopes.

The fixed-effects fit (:func:`~pvm_bench.report.fit.fit_decay_per_sample`) and its bootstrap
(:func:`~pvm_bench.report.fit_ci.decay_bootstrap`) see a scope's rows only through sums: per sample
its row count, mean and within-sample sum of squares; per step its row count and value sum;
per-sample sums of functions of the step (:class:`~pvm_bench.report.fit_rows.PerSampleSums`); and,
for the bootstrap, per sample ``sum y / (c + t)`` over its grid of ``c``. :class:`FitStats` holds them.

A variant's pooled scope (all tasks) is its task scopes' samples one after another, so
:meth:`FitStats.pooled` builds its statistics from theirs in O(samples + steps) instead of
O(rows) (13M rows per band at paper scale, as many as all task scopes together). The bootstrap's
per-sample sums over the ``c`` grid are taken over when the grids coincide (the same first and last
step, as when every task has an output at the token cap), else computed from the pooled rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pvm_bench.report.fit_rows import FitRows, PerSampleSums

GridKey = tuple[float, float, int]
"""A bootstrap ``c`` grid: (first step, last step, points); the grid is a function of these."""


@dataclass
class FitStats:
    """Per-sample and per-step sums of the rows of one per-sample fit.

    ``keys``: each sample's key (ascending integers: the aggregates' generations) when every input
    row was kept, else None (such statistics are not pooled). ``count``, ``y_bar``, ``syy``: per
    sample the rows, the mean and ``sum (y - y_bar)^2``. ``steps`` (distinct, ascending), ``n_t``,
    ``y_t``: per step the rows and ``sum y``. ``sxy``: per :data:`GridKey`, the (samples x grid)
    ``sum y / (c + t)``; ``rows_of`` gives the rows for a grid not held (None once released).
    """

    keys: np.ndarray | None
    count: np.ndarray
    y_bar: np.ndarray
    syy: np.ndarray
    steps: np.ndarray
    n_t: np.ndarray
    y_t: np.ndarray
    n_rows: int
    sums: PerSampleSums
    rows_of: Callable[[], FitRows] | None = None
    sxy: dict[GridKey, np.ndarray] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.count.size)

    @classmethod
    def of(cls, rows: FitRows) -> FitStats:
        """The statistics of ``rows``."""
        index = rows.index
        codes, n_s, n_steps = index.codes, index.n_samples, int(index.steps.size)
        count = np.bincount(codes, minlength=n_s).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            y_bar = np.bincount(codes, rows.y, n_s) / count
        dev = rows.y - y_bar[codes]
        syy = np.bincount(codes, dev * dev, n_s)
        del dev
        n_t = np.bincount(index.step_idx, minlength=n_steps).astype(float)
        y_t = np.bincount(index.step_idx, rows.y, n_steps)
        keys = index.keys if rows.complete else None
        return cls(keys, count, y_bar, syy, index.steps, n_t, y_t, int(rows.t.size), index.sums(), lambda: rows)

    def grid_sums(self, key: GridKey, xs: np.ndarray) -> np.ndarray:
        """Per sample ``sum y * xs[t]`` over its rows, for the per-step values ``xs`` (steps x grid)
        of grid ``key``: held, or computed from the rows and kept."""
        held = self.sxy.get(key)
        if held is None:
            if self.rows_of is None:
                raise ValueError("these fit statistics were released without their rows")
            rows = self.rows_of()
            held = np.asarray(rows.index.matrix(rows.y) @ xs)
            self.sxy[key] = held
        return held

    def released(self) -> FitStats:
        """The same statistics without the rows and their index (what a pooled scope needs from a
        task scope: O(samples + steps) memory). Without prefix sums (``sums.last`` is None) they can
        no longer be fitted; :meth:`pooled` does not take them."""
        return replace(self, rows_of=None, sums=PerSampleSums.prefix(self.sums.last))

    @classmethod
    def pooled(cls, parts: Sequence[FitStats], keys: np.ndarray, n_rows: int,
               rows_of: Callable[[], FitRows]) -> FitStats | None:
        """The statistics of the rows of ``parts`` one after another, when those are the pooled
        scope's rows: its input has ``n_rows`` rows and the sample ``keys``, the parts' keys in
        order. None when they are not, or when a sample does not hold every pooled step from the
        first to its last (the prefix sums would not hold): compute from the rows then.
        ``rows_of``: the pooled rows, for a bootstrap grid the parts do not share."""
        if not parts or any(p.keys is None or p.sums.last is None for p in parts):
            return None
        if sum(p.n_rows for p in parts) != n_rows or not np.array_equal(np.concatenate([p.keys for p in parts]), keys):
            return None
        steps = np.unique(np.concatenate([p.steps for p in parts]))
        n_t, y_t = np.zeros(steps.size), np.zeros(steps.size)
        last = []
        for p in parts:
            at = np.searchsorted(steps, p.steps)  # distinct within a part: += adds once per step
            n_t[at] += p.n_t
            y_t[at] += p.y_t
            last.append(at[p.sums.last])
        count = np.concatenate([p.count for p in parts])
        last_idx = np.concatenate(last)
        if not np.array_equal(count, last_idx + 1):
            return None
        sxy = {k: np.concatenate([p.sxy[k] for p in parts]) for k in parts[0].sxy if all(k in p.sxy for p in parts)}
        return cls(keys, count, np.concatenate([p.y_bar for p in parts]), np.concatenate([p.syy for p in parts]),
                   steps, n_t, y_t, n_rows, PerSampleSums.prefix(last_idx), rows_of, sxy)


__all__ = ["FitStats", "GridKey"]
