"""Image thumbnails of a run's samples, made at run time and stored in ``RUN/thumbnails.json``.

The runner does not keep images, and a report must never re-load a task (that would run a
plugin's ``load()``, and re-read data files outside the run). So the runner writes the thumbnails
the sample browser shows when it has the samples in hand (:func:`write_thumbnails`), and the
report only reads them back (:func:`read_thumbnails`): each entry is validated as a base64
``data:image/png`` or ``data:image/jpeg`` URI, nothing else is embedded.

Thumbnails are made for tasks whose images are cheap to decode again -- generated locally
(``hub_id`` is None) or read from ``--data-dir`` -- as the report did before; a task whose data
fingerprint is unchanged since the file was written is not redone on resume.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from pvm_bench.errors import FileFormatError, read_model_file

if TYPE_CHECKING:
    from pvm_bench.tasks import Sample, Task

THUMBS_FILE = "thumbnails.json"
THUMB_PX = 96
_DATA_URI = re.compile(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/]+={0,2}")


class TaskThumbs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprint: str = ""
    images: dict[str, list[str]] = {}
    note: str | None = None

    @field_validator("images")
    @classmethod
    def _uris(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for sid, uris in value.items():
            for uri in uris:
                if not _DATA_URI.fullmatch(uri):
                    raise ValueError(f"sample {sid!r}: not a base64 PNG/JPEG data URI")
        return value


class ThumbFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["pvm-bench-thumbnails"] = "pvm-bench-thumbnails"
    version: Literal[1] = 1
    px: int = THUMB_PX
    tasks: dict[str, TaskThumbs] = {}


def thumbnail_uri(image: Any, px: int = THUMB_PX) -> str:
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


def _task_thumbs(task: Task, samples: Sequence[Sample], fingerprint: str, px: int) -> TaskThumbs:
    images: dict[str, list[str]] = {}
    bad = 0
    for sample in samples:
        if not sample.images:
            continue
        try:
            images[str(sample.id)] = [thumbnail_uri(img.load(), px) for img in sample.images]
        except Exception:  # noqa: BLE001 -- a bad image fails its sample in the run; here it has no thumbnail
            bad += 1
    note = f"{bad} sample(s) of task '{task.name}' have images that cannot be decoded." if bad else None
    return TaskThumbs(fingerprint=fingerprint, images=images, note=note)


def write_thumbnails(run_dir: Path, loaded: Sequence[tuple[Task, Sequence[Sample]]], fingerprints: dict[str, Any],
                     *, data_dir: Any = None, px: int = THUMB_PX) -> Path:
    """Write ``RUN/thumbnails.json`` for the loaded tasks (see the module docstring);
    ``fingerprints``: ``{task: dataset fingerprint}`` as recorded in run.json."""
    from pvm_bench.results import atomic_write_text

    path = run_dir / THUMBS_FILE
    try:
        old = read_thumbnails(run_dir) or ThumbFile()
    except FileFormatError:
        old = ThumbFile()
    out = ThumbFile(px=px)
    for task, samples in loaded:
        fp = str(fingerprints.get(task.name) or "")
        previous = old.tasks.get(task.name)
        if previous is not None and fp and previous.fingerprint == fp and old.px == px:
            out.tasks[task.name] = previous
        elif task.hub_id and data_dir is None:
            out.tasks[task.name] = TaskThumbs(fingerprint=fp, note=(
                f"Images of task '{task.name}' not shown: its data comes from the Hugging Face hub and the runner "
                "does not store images (runs with --data-dir get thumbnails)."))
        else:
            out.tasks[task.name] = _task_thumbs(task, samples, fp, px)
    atomic_write_text(path, out.model_dump_json() + "\n")
    return path


def read_thumbnails(run_dir: Path) -> ThumbFile | None:
    """``RUN/thumbnails.json`` validated, or None when absent; :class:`FileFormatError` when invalid."""
    return read_model_file(Path(run_dir) / THUMBS_FILE, ThumbFile, "delete it (the report then shows no images)")
