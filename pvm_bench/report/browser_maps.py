"""Spatial maps for the sample browser: the ``--maps`` files of a run as a compact page payload.

For each record with a map file (:mod:`pvm_bench.runner.maps`; read with safetensors, numpy only,
nothing executed) the browser gets ``maps``:

- ``tokens`` / ``mass``: every stored step's generated token and its visual mass (band mean,
  4 significant digits), which the page shades the output text by (hover shows the value);
- ``images``: per image, the grid of its whole-image view (``rows``, ``cols``, ``label``, ``note``)
  and ``q``: per shown step, the view's cells as bytes 0..255 relative to the step's largest cell of any image
  (base64, row-major), with ``peak`` (top level) the step's largest cell value over all images -- the
  heat map drawn over the image at the slider's step. At most :data:`SLIDER_STEPS` steps are shown (the first ones; a
  note
  says so when there are more) so a report stays small;
- ``layers``, ``steps``, ``n_generated``, ``note``.

Images whose tokens have no whole-image view (a family without a grid rule) are shown as their
token row (``rows`` 1). A file that cannot be read gives a note, never a failed report.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pvm_bench.report.browser_media import significant
from pvm_bench.runner.maps import MAPS_DIR, MapsError, map_path, read_maps

#: Slider positions per sample (the first steps): bounds the page size for long generations.
SLIDER_STEPS = 256


def _overlay_view(image: dict[str, Any]) -> dict[str, Any]:
    views = image.get("views") or []
    return next((v for v in views if v.get("whole")), views[0] if views else
                {"start": 0, "rows": 1, "cols": int(image.get("n_tokens", 0)), "label": "tokens", "whole": False})


def map_payload(tensors: dict[str, np.ndarray], meta: dict[str, Any], max_steps: int = SLIDER_STEPS) -> dict[str, Any]:
    """The browser payload of one map file (see the module docstring)."""
    att = tensors["attention"].astype(np.float32)
    mass = tensors.get("visual_mass", att.sum(-1)).astype(np.float64)
    shown = min(att.shape[0], max_steps)
    views, blocks = [], []
    for image in meta.get("images", []):
        view = _overlay_view(image)
        lo = int(image["start"]) + int(view["start"])
        views.append((image, view))
        blocks.append(att[:shown, lo : lo + int(view["rows"]) * int(view["cols"])])
    # One scale per step for all images of the sample, so a glance compares images too.
    peak = np.max([b.max(axis=1, initial=0.0) for b in blocks], axis=0) if blocks else np.zeros(shown)
    denom = np.where(peak > 0, peak, 1.0)[:, None]
    images = []
    for (image, view), cells in zip(views, blocks):
        q = np.clip(np.rint(cells / denom * 255), 0, 255).astype(np.uint8)
        images.append({
            "index": int(image.get("index", len(images))), "rows": int(view["rows"]), "cols": int(view["cols"]),
            "label": str(view.get("label", "")), "note": str(view.get("note", "")),
            "views": len(image.get("views") or []), "q": base64.b64encode(q.tobytes()).decode("ascii"),
        })
    steps = int(att.shape[0])
    notes = []
    if steps > shown:
        notes.append(f"heat map for the first {shown} of {steps} stored steps")
    if int(meta.get("n_generated", steps)) > steps:
        notes.append(
            f"{steps} of {meta['n_generated']} generated steps stored (--maps keeps the first {meta.get('max_steps')})"
        )
    return {
        "tokens": [str(t) for t in meta.get("tokens", [])][:steps],
        "mass": significant(np.asarray(mass, dtype=float)).tolist(),
        "images": images, "peak": significant(np.asarray(peak, dtype=float)).tolist(), "layers": meta.get("layers", []),
        "steps": steps, "shown": shown,
        "n_generated": int(meta.get("n_generated", steps)), "note": "; ".join(notes),
    }


def attach_maps(run_dir: Path, groups: Iterable[dict[str, Any]]) -> list[str]:
    """Add ``maps`` to every browser record (group rows of :func:`~pvm_bench.report.browser.build_browser_data`)
    that has a map file; returns notes on files that could not be read."""
    if not (Path(run_dir) / MAPS_DIR).is_dir():
        return []
    notes = []
    for group in groups:
        for row in group["records"]:
            path = map_path(run_dir, row["variant"], group["task"], group["id"], group["repeat"])
            if not path.is_file():
                continue
            try:
                row["maps"] = map_payload(*read_maps(path))
            except (MapsError, KeyError, ValueError, TypeError) as exc:
                notes.append(f"Spatial map of {row['variant']} {group['task']}/{group['id']} not shown: {exc}")
    return notes
