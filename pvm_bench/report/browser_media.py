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
import pandas as pd

from pvm_bench.errors import FileFormatError
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


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def visual_mass_curves(attention: pd.DataFrame | None, points: int = 64) -> Curves:
    """Per generation (variant, task, sample_id, repeat): mean ``visual_mass`` over layers at each
    step, averaged into at most ``points`` equal-width step bins (``t`` = mean step of the bin).
    Empty when attention is missing or has no visual-mass rows."""
    cols = [*KEY_COLUMNS, "step", "visual_mass"]
    if attention is None or any(c not in attention for c in cols):
        return {}
    rows = attention[cols].dropna(subset=["visual_mass", "step"])
    if rows.empty:
        return {}
    per_step = rows.groupby([*KEY_COLUMNS, "step"], observed=True, sort=False)["visual_mass"].mean().reset_index()
    keys = per_step.groupby(KEY_COLUMNS, observed=True, sort=False)["step"]
    first, last = keys.transform("min"), keys.transform("max")
    span = (last - first + 1).to_numpy()
    offset = (per_step["step"] - first).to_numpy()
    per_step["bin"] = np.where(span > points, offset * points // np.maximum(span, 1), offset)
    binned = (per_step.groupby([*KEY_COLUMNS, "bin"], observed=True, sort=True)
              .agg(t=("step", "mean"), m=("visual_mass", "mean")).reset_index())
    code = binned.groupby(KEY_COLUMNS, observed=True, sort=False).ngroup().to_numpy()
    bounds = np.flatnonzero(np.diff(code)) + 1
    t_all, m_all = binned["t"].to_numpy(float), binned["m"].to_numpy(float)
    out: Curves = {}
    for idx in np.split(np.arange(len(binned)), bounds):
        r = binned.iloc[idx[0]]
        key = (str(r["variant"]), str(r["task"]), str(r["sample_id"]), int(r["repeat"]))
        out[key] = {"t": [round(float(t), 1) for t in t_all[idx]], "m": [_sig(m) for m in m_all[idx]]}
    return out
