"""Cheap checks of user-supplied table files before a library parses them.

``datasets`` reports an empty JSON Lines file as a bare ``StopIteration``, logs a line of its own
for a binary one, and names the JSON parser's position rather than the file line. These checks
read the file once and raise one :class:`~pvm_bench.errors.FileFormatError` naming the file, the
line and the fix instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from pvm_bench.errors import FileFormatError, load_guard

#: Bytes of a file sniffed for NUL bytes (binary content).
_SNIFF = 8192
_PARQUET_MAGIC = b"PAR1"


def check_table_file(path: Path, fix: str = "fix or re-export the file") -> None:
    """Refuse an empty, binary or malformed ``.jsonl``/``.json`` file, or a ``.parquet`` file
    without the Parquet magic bytes; the message names ``path`` (and the line for JSON Lines)."""
    if path.suffix == ".parquet":  # only the magic bytes at both ends: these files can be large
        with load_guard("data file", path, fix), open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, path.stat().st_size - 4))
            tail = fh.read(4)
        if path.stat().st_size == 0:
            raise FileFormatError(f"data file {path} is empty; {fix}")
        if head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC or path.stat().st_size < 12:
            raise FileFormatError(f"data file {path} is not a Parquet file (truncated or another format); {fix}")
        return
    with load_guard("data file", path, fix):
        data = path.read_bytes()
    if not data.strip():
        raise FileFormatError(f"data file {path} is empty; {fix}")
    if b"\x00" in data[:_SNIFF]:
        raise FileFormatError(f"data file {path} is binary, not JSON text; {fix}")
    try:
        text = data.decode("utf-8-sig")  # a leading BOM (Windows editors) is fine: datasets reads it too
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileFormatError(f"data file {path} line {line} is not UTF-8 text; {fix}") from None
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise FileFormatError(
                    f"data file {path} line {number} is not valid JSON (column {err.colno}: {err.msg}); {fix}"
                ) from None
            if not isinstance(row, dict):
                raise FileFormatError(
                    f"data file {path} line {number} is a JSON {type(row).__name__}, not an object; {fix}"
                )
        return
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        raise FileFormatError(
            f"data file {path} is not valid JSON (line {err.lineno} column {err.colno}: {err.msg}); {fix}"
        ) from None
