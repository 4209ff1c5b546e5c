"""Training data for ``pvm-bench pvm train``: reading rows and turning them into examples.

Rows come from a local ``.json`` / ``.jsonl`` / ``.parquet`` file or directory, a hub dataset, or
a list of dicts. Every row must have an image (``image``/``images``), a prompt and a response
column; :func:`check_rows` refuses a row without one before any model work, and a malformed
line or an unreadable image is one :class:`TrainError`/``FileFormatError`` line naming the file
line or the data row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from pvm_bench.data.images import CorruptImageError, load_image, to_rgb
from pvm_bench.errors import UserError, load_guard

IMAGE_COLUMNS = ("images", "image")
PROMPT_COLUMNS = ("prompt", "question", "query", "instruction")
RESPONSE_COLUMNS = ("response", "answer", "output", "solution")


class TrainError(UserError, RuntimeError):
    """Training cannot start or resume; the message says why."""

def _first(row: dict[str, Any], names: Sequence[str], what: str) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise TrainError(f"data row has no {what} column (looked for {', '.join(names)}; has {', '.join(row)})")


def _to_image(value: Any, base_dir: Path | None) -> Image.Image:
    if isinstance(value, Image.Image):
        return to_rgb(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return load_image(value["bytes"], "training image")
        if value.get("path"):
            value = value["path"]
    if isinstance(value, (bytes, bytearray)):
        return load_image(value, "training image")
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return load_image(path, str(path))
    raise TrainError(f"cannot read an image from a {type(value).__name__}")


@dataclass
class Example:
    """One training sample: images, prompt text and response text."""

    images: list[Image.Image]
    prompt: str
    response: str


def _row_to_example(row: dict[str, Any], base_dir: Path | None, index: int | None = None) -> Example:
    where = f"data row {index}" if index is not None else "data row"
    raw = None
    for name in IMAGE_COLUMNS:
        if row.get(name) is not None:
            raw = row[name]
            break
    if raw is None:
        raise TrainError(
            f"{where} has no image (columns {', '.join(row)}; PVM training needs an 'image' or 'images' column)"
        )
    values = (
        list(raw)
        if isinstance(raw, (list, tuple)) or (hasattr(raw, "tolist") and not isinstance(raw, (dict, bytes)))
        else [raw]
    )
    with load_guard(f"the image of {where}", _image_label(values[0] if values else raw), "fix or drop that row"):
        try:
            images = [_to_image(v, base_dir) for v in values]
        except CorruptImageError as exc:
            raise TrainError(f"cannot read the image of {where}: {exc}; fix or drop that row") from None
    return Example(images, str(_first(row, PROMPT_COLUMNS, "prompt")), str(_first(row, RESPONSE_COLUMNS, "response")))


def _image_label(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("path") or "(bytes)"
    return value if isinstance(value, str) else f"({type(value).__name__})"


def check_rows(rows: Sequence[dict[str, Any]], source: str) -> None:
    """Refuse, before any model work, rows without an image, prompt or response column."""
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TrainError(f"{source}: row {i} is a {type(row).__name__}, not an object with image/prompt/response")
        for names, what in ((IMAGE_COLUMNS, "image"), (PROMPT_COLUMNS, "prompt"), (RESPONSE_COLUMNS, "response")):
            if not any(row.get(n) is not None for n in names):
                empty = [n for n in names if n in row]
                if empty:
                    raise TrainError(
                        f"{source}: row {i} has an empty {what} ({empty[0]} is null); fill it or drop the row"
                    )
                raise TrainError(
                    f"{source}: row {i} has no {what} column (looked for {', '.join(names)}; has "
                    f"{', '.join(map(str, row))})"
                )


def _read_data_file(f: Path) -> list[dict[str, Any]]:
    """Rows of one local data file; a malformed line or file is one error naming it."""
    fix = "fix the file (one JSON object per line for .jsonl)"
    if f.suffix == ".jsonl":
        rows = []
        with load_guard("data file", f, fix):
            lines = f.read_bytes().split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:  # JSONDecodeError or bad UTF-8
                where = f"column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
                raise TrainError(f"data file {f} line {number} is not valid JSON ({where}); {fix}") from None
        return rows
    with load_guard("data file", f, fix):
        if f.suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(f).to_dict(orient="records")
        obj = json.loads(f.read_text(encoding="utf-8"))
    return obj["data"] if isinstance(obj, dict) and "data" in obj else obj


def load_rows(
    data: str | Sequence[dict[str, Any]], split: str = "train", limit: int | None = None
) -> tuple[list[dict[str, Any]], Path | None]:
    """Rows of a local json/jsonl/parquet file or directory, a list of dicts, or a hub dataset."""
    if not isinstance(data, str):
        rows = list(data)
        return (rows[:limit] if limit else rows), None
    path = Path(data).expanduser()
    if path.exists():
        files = [path] if path.is_file() else sorted(
            f for f in path.rglob("*") if f.suffix in (".json", ".jsonl", ".parquet") and (split in f.stem or not any(
                s in f.stem for s in ("train", "validation", "test", "dev")))
        )
        if not files:
            raise TrainError(f"'{data}' has no .json/.jsonl/.parquet files for split '{split}'")
        rows = []
        for f in files:
            found = _read_data_file(f)
            if not isinstance(found, list):
                raise TrainError(
                    f"data file {f} holds a JSON {type(found).__name__}; expected a list of rows (or {{'data': [...]}})"
                )
            rows.extend(found)
        base = path if path.is_dir() else path.parent
    else:
        from pvm_bench.data.tables import load_hub_split  # the one hub access, shared with the tasks

        try:
            ds = load_hub_split(data, None, split)
        except Exception as exc:  # datasets raises many types; the message is what matters
            raise TrainError(f"'{data}' is not a local file and cannot be loaded from the hub: {exc}") from exc
        rows = [dict(r) for r in ds]
        base = None
    if limit:
        rows = rows[:limit]
    if not rows:
        raise TrainError(f"'{data}' ({split}) has no rows")
    check_rows(rows, f"'{data}'")
    return rows, base
