"""Media for the sample browser: image thumbnails and per-sample visual-mass curves.

Neither is stored per sample by the runner, so both are rebuilt here:

- thumbnails: the runner does not keep images, so the tasks are re-loaded through the task
  registry from run.json's config (tasks, split, limit, data_dir, include_paths). This is done
  only when it is cheap and offline-safe -- tasks generated locally (``hub_id`` is None) or runs
  that used a ``--data-dir`` -- and only when the re-loaded data has the fingerprint run.json
  recorded; otherwise the images are omitted and a note says why;
- curves: ``visual_mass`` from attention.parquet, mean over the recorded layers at each
  generated step, then averaged into at most ``points`` equal-width step bins.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pvm_bench.results import KEY_COLUMNS, RunRecord

#: (task, sample_id) -> list of image data URIs.
Thumbs = dict[tuple[str, str], list[str]]
#: (variant, task, sample_id, repeat) -> {"t": steps, "m": mean visual mass}.
Curves = dict[tuple[str, str, str, int], dict[str, list[float]]]


def thumbnail_uri(image: Any, px: int = 96) -> str:
    """A data URI of ``image`` (PIL) shrunk to fit ``px`` x ``px``: PNG or JPEG, whichever is
    smaller (flat synthetic images compress best as PNG, photos as JPEG)."""
    img = image.convert("RGB")
    img.thumbnail((px, px))
    encoded = []
    for fmt, mime, kwargs in (("PNG", "image/png", {}), ("JPEG", "image/jpeg", {"quality": 75})):
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kwargs)
        encoded.append((len(buf.getvalue()), mime, buf.getvalue()))
    _, mime, raw = min(encoded, key=lambda e: e[0])
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def load_thumbnails(run: RunRecord | None, wanted: Iterable[tuple[str, str]], px: int = 96) -> tuple[Thumbs, list[str]]:
    """Thumbnails for the (task, sample_id) pairs in ``wanted``, and notes on what was omitted.

    Never raises for a task that cannot be re-loaded: that task's images are left out and a note
    names the task and the reason.
    """
    wanted = set(wanted)
    if not wanted:
        return {}, []
    if run is None or not run.config.get("tasks"):
        return {}, ["Images not shown: run.json (with the run's task config) is missing."]
    from pvm_bench.errors import UserError
    from pvm_bench.tasks import get_registry

    cfg = run.config
    data_dir = Path(cfg["data_dir"]) if cfg.get("data_dir") else None
    notes: list[str] = []
    try:
        tasks = get_registry(cfg.get("include_paths") or []).resolve(cfg["tasks"])
    except (UserError, OSError, ImportError) as exc:
        reason = str(exc).split(";")[0][:200]  # the registry appends the list of every known task
        return {}, [f"Images not shown: the run's tasks cannot be re-loaded ({reason})."]
    thumbs: Thumbs = {}
    needed = {t for t, _ in wanted}
    for task in tasks:
        if task.name not in needed:
            continue
        if task.hub_id and data_dir is None:
            notes.append(f"Images of task '{task.name}' not shown: its data comes from the Hugging Face hub and "
                         "the runner does not store images (runs with --data-dir get thumbnails).")
            continue
        try:
            samples = task.load(cfg.get("split"), cfg.get("limit"), data_dir)
        except Exception as exc:  # a task's loader may fail in many ways; the report must still be written
            notes.append(f"Images of task '{task.name}' not shown: re-loading its data failed "
                         f"({type(exc).__name__}: {exc}).")
            continue
        recorded = (run.datasets.get(task.name) or {}).get("fingerprint")
        if recorded and task.fingerprint(samples) != recorded:
            notes.append(f"Images of task '{task.name}' not shown: its data changed since the run "
                         "(dataset fingerprint differs from run.json).")
            continue
        bad = 0
        for sample in samples:
            if (task.name, sample.id) not in wanted or not sample.images:
                continue
            try:
                thumbs[(task.name, sample.id)] = [thumbnail_uri(img.load(), px) for img in sample.images]
            except Exception:  # a corrupt image: the runner scored it as an error already
                bad += 1
        if bad:
            notes.append(f"{bad} sample(s) of task '{task.name}' have images that cannot be decoded.")
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
