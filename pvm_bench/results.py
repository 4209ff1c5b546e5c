"""Run records and their on-disk format (see reports/README.md).

``samples.jsonl`` is append-only: every line is written with a single ``write`` followed by
``fsync``, so a killed run leaves at most one partial trailing line, which readers ignore and
:meth:`JsonlAppender.open` truncates before appending again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from pvm_bench.errors import (
    DiskFullError,
    FileFormatError,
    describe_exception,
    is_disk_full,
    load_guard,
    validation_summary,
)
from pvm_bench.safeio import open_nofollow, refuse_symlink, temp_beside

SCHEMA_VERSION = 1

RunStatus = Literal["running", "completed", "failed", "interrupted"]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Timings(BaseModel):
    """Wall-clock seconds for one sample's generation (shared by the samples of one batch)."""

    prefill_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0
    tokens_per_s: float = 0.0
    batch_size: int = 1


class ScoreDetail(BaseModel):
    """The typed part of a record's score next to ``SampleRecord.score`` (the value in [0, 1]).

    ``extractor``: the answer-extraction path (``"none"``: nothing extracted; None: not reported,
    e.g. an error record); ``sub_scores``: named numeric scores; ``flags``: boolean details
    (reported as rates); ``details``: the scorer's other JSON details (e.g. grouping keys).
    """

    extractor: str | None = None
    sub_scores: dict[str, float] = Field(default_factory=dict)
    flags: dict[str, bool] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_details(cls, details: dict[str, Any] | None, sub_scores: dict[str, float] | None = None) -> ScoreDetail:
        """Split a scorer's ``Score.details`` dict into extractor / flags / other details."""
        details = dict(details or {})
        extractor = details.pop("extractor", None)
        flags = {k: v for k, v in details.items() if isinstance(v, bool)}
        rest = {k: v for k, v in details.items() if k not in flags}
        return cls(extractor=None if extractor is None else str(extractor), sub_scores=dict(sub_scores or {}),
                   flags=flags, details=rest)

    @classmethod
    def from_score(cls, score: Any) -> ScoreDetail:
        """From a :class:`pvm_bench.tasks.base.Score` (duck-typed: ``details``, ``sub_scores``)."""
        return cls.from_details(getattr(score, "details", None), getattr(score, "sub_scores", None))


class SampleRecord(BaseModel):
    """One line of samples.jsonl: one (variant, task, sample, repeat)."""

    variant: str
    task: str
    sample_id: str
    repeat: int = 0
    seed: int
    #: The variant's resolved composition (pvm_bench.variants.Composition.canonical), e.g. ``base+pai(alpha=0.2,...)``.
    composition: str | None = None
    prompt: str
    output: str
    parsed: str | None = None
    target: Any = None
    score: float = 0.0
    truncated: bool = False
    n_generated: int = 0
    max_new_tokens: int = 0
    finish_reason: Literal["eos", "length", "error"] = "eos"
    error: str | None = None
    timings: Timings = Field(default_factory=Timings)
    metadata: dict[str, Any] = Field(default_factory=dict)
    score_detail: ScoreDetail = Field(default_factory=ScoreDetail)

    @model_validator(mode="before")
    @classmethod
    def _score_detail_from_metadata(cls, data: Any) -> Any:
        """Records written before ``score_detail`` existed keep the scorer's details in
        ``metadata["score"]``: read them from there (also when ``score_detail`` is present but
        empty, i.e. written by a runner that filled only the metadata)."""
        if not isinstance(data, dict):
            return data
        current = data.get("score_detail")
        if isinstance(current, BaseModel):
            current = current.model_dump()
        if not any((current or {}).values()):
            meta = data.get("metadata") or {}
            details = meta.get("score") if isinstance(meta, dict) else None
            if isinstance(details, dict):
                data = {**data, "score_detail": ScoreDetail.from_details(details)}
        return data

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.variant, self.task, self.sample_id, self.repeat)


class RunRecord(BaseModel):
    """run.json: everything needed to reproduce and audit a run."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: RunStatus = "running"
    started_at: str = Field(default_factory=utc_now)
    ended_at: str | None = None
    seed: int = 0
    config: dict[str, Any] = Field(default_factory=dict)
    variants: list[str] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    git: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    adapter: dict[str, Any] | None = None
    datasets: dict[str, Any] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    resumed: list[str] = Field(default_factory=list)
    #: Resolved generation settings per task (what was actually used), compared on resume.
    generation: dict[str, Any] = Field(default_factory=dict)
    #: ``--force-resume`` uses: when, and which inputs had changed.
    forced_resumes: list[dict[str, Any]] = Field(default_factory=list)
    #: Effective decoding settings per task with their sources (models.decoding.effective_decoding).
    decoding: dict[str, Any] | None = None
    #: Variant name -> its resolved composition with model-dependent settings (pvm_bench.variants.compositions).
    variant_compositions: dict[str, Any] = Field(default_factory=dict)
    #: One entry per process start of the run (the first part, then each resume): ``started_at``, the torch
    #: ``threads`` it really used and its ``processes``; ``config.threads`` is only what the first part asked.
    segments: list[dict[str, Any]] = Field(default_factory=list)

    def save(self, run_dir: Path) -> None:
        atomic_write_text(run_dir / "run.json", self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord:
        return cls.model_validate_json((run_dir / "run.json").read_text(encoding="utf-8"))


#: Columns identifying one generation in attention.parquet.
KEY_COLUMNS = ["variant", "task", "sample_id", "repeat"]
#: Integer columns stored narrower than the int32 default.
_NARROW_INTS = {"layer": "int16"}


def compact_frame(df: pd.DataFrame) -> pd.DataFrame:
    """attention.parquet's dtype policy: float32 measures (and per-head lists), int32 counters,
    int16 layer, string ids. Keeps 1000 steps x 36 layers at a few MB."""
    out = df.copy()
    for col in out.columns:
        if col in KEY_COLUMNS[:3]:
            out[col] = out[col].astype("string")
        elif pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].astype("float32")
        elif pd.api.types.is_integer_dtype(out[col]) and col not in KEY_COLUMNS:
            out[col] = out[col].astype(_NARROW_INTS.get(col, "int32"))
        elif out[col].dtype == object and len(out) and isinstance(out[col].iloc[0], (list, tuple, np.ndarray)):
            out[col] = [np.asarray(v, dtype=np.float32) for v in out[col]]
    return out


def remove_quietly(path: Path) -> None:
    """Delete ``path``, ignoring any OSError (cleanup of a temp file must not hide the real error)."""
    try:
        path.unlink()
    except OSError:
        pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + fsync + rename, so readers never see half a
    file. On any failure the temp file is removed and ``path`` is left as it was; a full disk
    (ENOSPC, or a short write) raises :class:`~pvm_bench.errors.DiskFullError` naming ``path``."""
    tmp = None
    try:
        fd, tmp = temp_beside(path)  # a unique name: two writers of one file never share a temp
        try:
            write_all(fd, data, path)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            remove_quietly(tmp)
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(path) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_all(fd: int, data: bytes, path: Path) -> None:
    """``os.write`` until every byte of ``data`` is written.

    A write that makes no progress means the device is full (POSIX allows a short write
    instead of ENOSPC), so it raises :class:`DiskFullError` naming ``path``.
    """
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(path) from exc
            raise
        if n <= 0:
            raise DiskFullError(path)
        view = view[n:]


class JsonlCorruptError(FileFormatError):
    """A complete line of a JSONL file is not a valid record; names the file line number."""

    def __init__(self, path: Path, line: int, reason: str, good: int) -> None:
        self.path, self.line, self.good = path, line, good
        fix = (
            f"to keep the {good} good line(s) before it and redo the rest, truncate the file: "
            f"`head -n {good} {path} > {path}.fixed && mv {path}.fixed {path}`"
        )
        super().__init__(f"{path} line {line} is not a valid record ({reason}); {fix}")


def read_jsonl(path: Path, validate: Callable[[dict[str, Any]], Any] | None = None) -> list[dict[str, Any]]:
    """All complete lines of a JSONL file; a partial trailing line (killed writer) is skipped.

    Every complete line must be a JSON object (and pass ``validate`` when given): otherwise
    :class:`JsonlCorruptError` names the file line number (1-based, blank lines counted) and
    how to truncate the file after the last good line.
    """
    if not path.exists():
        return []
    with load_guard("run file", path, "move it aside and --resume (or start a new run)"):
        data = path.read_bytes()
    end = data.rfind(b"\n")
    if end < 0:
        return []
    rows: list[dict[str, Any]] = []
    for number, raw in enumerate(data[: end + 1].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
            if not isinstance(row, dict):
                raise ValueError(f"a JSON {type(row).__name__}, not an object")
            if validate is not None:
                validate(row)
        except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, pydantic's ValidationError
            if isinstance(exc, json.JSONDecodeError):
                reason = f"invalid JSON at column {exc.colno}: {exc.msg}"
            elif isinstance(exc, UnicodeDecodeError):
                reason = describe_exception(exc)
            else:  # pydantic: name the fields, not the docs URL
                reason = validation_summary(exc)
            raise JsonlCorruptError(path, number, reason, number - 1) from exc
        rows.append(row)
    return rows


def sample_files(run_dir: Path) -> list[Path]:
    """samples.jsonl followed by the per-rank shard files of a data-parallel run."""
    return [run_dir / "samples.jsonl", *sorted(run_dir.glob("samples.rank*.jsonl"))]


def read_samples(run_dir: Path) -> list[SampleRecord]:
    """The sample records of a run (including unmerged rank shards); last write wins per key."""
    parsed: list[SampleRecord] = []

    def keep(row: dict[str, Any]) -> None:  # read_jsonl's validation, kept (each line is validated once)
        parsed.append(SampleRecord.model_validate(row))

    for path in sample_files(run_dir):
        read_jsonl(path, keep)
    return list({rec.key: rec for rec in parsed}.values())


class JsonlAppender:
    """Durable line appender: each record is written whole, then ``fsync``'d.

    A failed append (full disk, short write) truncates the file back to its previous size,
    so the file never keeps half a record, and raises :class:`DiskFullError`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> JsonlAppender:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        refuse_symlink(self.path)  # never truncate or append to a file outside the run directory
        if self.path.exists():
            data = self.path.read_bytes()
            keep = data.rfind(b"\n") + 1
            if keep != len(data):  # drop a partial line left by a kill
                with open(self.path, "r+b") as fh:
                    fh.truncate(keep)
        self._fd = open_nofollow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return self

    def append(self, record: BaseModel | dict[str, Any]) -> None:
        if self._fd is None:
            raise RuntimeError("JsonlAppender.append called before open()")
        payload = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
        line = (json.dumps(payload, ensure_ascii=False) + "\n").encode("utf-8")
        size = os.fstat(self._fd).st_size
        try:
            write_all(self._fd, line, self.path)
            os.fsync(self._fd)
        except BaseException:
            try:
                os.ftruncate(self._fd, size)  # never leave half a record behind
            except OSError:
                pass
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonlAppender:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
