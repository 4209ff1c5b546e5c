"""Media for the sample browser: image thumbnails and per-sample visual-mass curves.

Neither is stored per sample by the runner, so both are rebuilt here:

- thumbnails: read from ``thumbnails.json``, which the runner writes while it has the samples
  (:mod:`pvm_bench.runner.media`); the report never re-loads a task (no plugin code runs);
- curves: ``visual_mass`` from attention.parquet, mean over the recorded layers at each
  generated step, then averaged into at most ``points`` equal-width step bins.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pvm_bench.errors import FileFormatError
from pvm_bench.report.attention_agg import AttentionAggregates
from pvm_bench.report.fit_rows import runs_of
from pvm_bench.results import KEY_COLUMNS, RunRecord
from pvm_bench.runner.media import read_thumbnails, thumbnail_uri

__all__ = ["Curves", "Thumbs", "load_thumbnails", "thumbnail_uri", "visual_mass_curves"]

#: (task, sample_id) -> list of image data URIs.
Thumbs = dict[tuple[str, str], list[str]]
#: (variant, task, sample_id, repeat) -> {"t": steps, "m": mean visual mass}.
Curves = dict[tuple[str, str, str, int], dict[str, list[float]]]


def load_thumbnails(run: RunRecord | None, wanted: Iterable[tuple[str, str]], px: int = 96,
                    run_dir: Path | None = None) -> tuple[Thumbs, list[str]]:
    """Thumbnails for the (task, sample_id) pairs in ``wanted`` from the run's
    ``thumbnails.json`` (written at run time, :mod:`pvm_bench.runner.media`), and notes on what was
    omitted. Never loads a task nor reads an image file: a report executes nothing from the run.
    ``px`` is kept for the caller's signature; the run decides the thumbnail size."""
    wanted = set(wanted)
    if not wanted or run_dir is None:
        return {}, []
    try:
        stored = read_thumbnails(run_dir)
    except FileFormatError as exc:
        return {}, [f"Images not shown: {exc}"]
    if stored is None:
        return {}, ["Images not shown: the run has no thumbnails.json (runs made by an older pvm-bench)."]
    thumbs: Thumbs = {}
    notes: list[str] = []
    for task in sorted({t for t, _ in wanted}):
        entry = stored.tasks.get(task)
        if entry is None:
            continue
        if entry.note:
            notes.append(entry.note)
        thumbs.update({(task, sid): uris for sid, uris in entry.images.items() if (task, sid) in wanted})
    return thumbs, notes


def visual_mass_curves(agg: AttentionAggregates | None, points: int = 64) -> Curves:
    """Per generation (variant, task, sample_id, repeat): the mean ``visual_mass`` over all recorded
    layers at each step (the aggregates' ``m_all``), averaged into at most ``points`` equal-width step
    bins (``t`` = mean step of the bin). Empty without attention aggregates or visual-mass rows."""
    if agg is None or "m_all" not in agg.steps:
        return {}
    mass, gen, step = agg.steps["m_all"].to_numpy(), agg.steps["gen"].to_numpy(), agg.steps["step"].to_numpy()
    keys = [(str(v), str(t), str(s), int(r)) for v, t, s, r in agg.gens[list(KEY_COLUMNS)].itertuples(index=False)]
    out: Curves = {}
    # whole generations at a time, about CHUNK_ROWS rows each: the temporaries of 13M rows (paper
    # scale) would take ~500 MB at once
    cuts = np.searchsorted(gen, gen[np.arange(CHUNK_ROWS, gen.size, CHUNK_ROWS)], side="left") if gen.size else []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, gen.size]):
        keep = ~np.isnan(mass[lo:hi])
        if keep.any():
            values = mass[lo:hi][keep].astype(float)
            out.update(binned_curves(keys, gen[lo:hi][keep], step[lo:hi][keep], values, points))
    return out


CHUNK_ROWS = 1 << 21
"""Rows of per-step values per :func:`binned_curves` call in :func:`visual_mass_curves`."""


def binned_curves(keys: list[tuple[str, str, str, int]], code: np.ndarray, step: np.ndarray, mass: np.ndarray,
                  points: int) -> Curves:
    """The curves of per-step values: ``code`` (index into ``keys``) sorted, each code's steps
    ascending and distinct; per code, its steps cut into at most ``points`` equal-width bins from its
    first to its last step, each bin's mean step and mean value."""
    # int32 throughout and temporaries dropped early: 13M rows at paper scale
    step = step.astype(np.int32, copy=False)
    starts = runs_of(code)[1]
    ends = np.r_[starts[1:], code.size]
    sizes = ends - starts
    first = np.repeat(step[starts], sizes)
    span = np.repeat(step[ends - 1], sizes) - first + 1
    offset = step - first
    del first
    bins = np.where(span > points, offset * points // np.maximum(span, 1), offset).astype(np.int32)
    del span, offset
    cell = np.repeat(np.arange(starts.size, dtype=np.int32), sizes) * np.int32(points) + bins  # (code, bin), ascending
    del bins
    run, first_rows = runs_of(cell)
    cells = cell[first_rows]
    del cell, first_rows
    counts = np.bincount(run)
    t = np.bincount(run, step) / counts
    m = np.bincount(run, mass) / counts
    del run
    bounds = np.r_[0, np.flatnonzero(np.diff(cells // points)) + 1, cells.size]
    t_list, m_list = np.round(t, 1).tolist(), significant(m).tolist()
    out: Curves = {}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = keys[int(code[starts[int(cells[lo] // points)]])]
        out[key] = {"t": FiniteList(t_list[lo:hi]), "m": FiniteList(m_list[lo:hi])}
    return out


class FiniteList(list):  # type: ignore[type-arg]
    """A list of finite floats: JSON as it is (the browser's JSON cleaning passes it unread)."""


def significant(x: np.ndarray, digits: int = 4) -> np.ndarray:
    """``x`` rounded to ``digits`` significant digits, each the double nearest its short decimal
    (``k / 10**d``: both exact, one correctly rounded division), so JSON writes it short."""
    out = np.asarray(x, dtype=float).copy()
    live = np.isfinite(out) & (out != 0)
    d = (digits - 1 - np.floor(np.log10(np.abs(out[live])))).astype(int)
    scale = 10.0 ** np.abs(d)
    k = np.where(d >= 0, np.round(out[live] * scale), np.round(out[live] / scale))
    out[live] = np.where(d >= 0, k / scale, k * scale)
    return out
