"""The run directory's files: probe parts, attention.parquet, rank shards, run metadata, reuse.

Written by the runner; every write goes through a temp file that is removed on failure, and a
full disk becomes :class:`~pvm_bench.errors.DiskFullError` naming the file.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pvm_bench.errors import DiskFullError, UserError, is_disk_full
from pvm_bench.results import (
    KEY_COLUMNS,
    JsonlAppender,
    RunRecord,
    compact_frame,
    read_jsonl,
    read_samples,
    remove_quietly,
    sample_files,
)
from pvm_bench.runguard import RunError, RunLock
from pvm_bench.safeio import ensure_dir, temp_beside


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """``compact_frame(frame)`` to ``path`` via a unique temp file + rename; the temp file never survives."""
    tmp = None
    try:
        fd, tmp = temp_beside(path)
        with os.fdopen(fd, "wb") as fh:
            compact_frame(frame).to_parquet(fh, index=False)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            remove_quietly(tmp)
        if is_disk_full(exc, by_message=True) and not isinstance(exc, DiskFullError):  # pyarrow: no errno
            raise DiskFullError(path) from exc
        raise


def remove_temp_files(run_dir: Path) -> None:
    """Delete temp files a failed write may have left (``*.tmp``, ``.*.tmp``) in the run dir."""
    for folder in (run_dir, run_dir / "attention"):
        if folder.is_dir():
            for tmp in list(folder.glob("*.tmp")) + list(folder.glob(".*.tmp")):
                remove_quietly(tmp)


def write_probe_part(run_dir: Path, frames: list[pd.DataFrame]) -> None:
    """One new ``attention/part-*.parquet`` holding ``frames``."""
    if not frames:
        return
    parts = ensure_dir(run_dir / "attention")
    write_parquet_atomic(pd.concat(frames, ignore_index=True), parts / f"part-{time.time_ns()}-{uuid.uuid4().hex[:6]}.parquet")


def probe_frame(records: dict[str, list[dict[str, Any]]]) -> pd.DataFrame | None:
    """Merge the records of several probes for one generation into one long frame.

    Frames are outer-joined on their shared index columns (``step``, and ``layer`` when both
    have it); step-only measures (e.g. entropy) are broadcast to every layer row of a step.
    """
    frames = [pd.DataFrame(rows) for rows in records.values() if rows]
    if not frames:
        return None
    frames.sort(key=lambda f: -len(f.columns.intersection(["step", "layer"])))
    merged = frames[0]
    for frame in frames[1:]:
        keys = [k for k in ("step", "layer") if k in merged.columns and k in frame.columns]
        merged = merged.merge(frame, on=keys, how="outer")
    return merged.sort_values([c for c in ("step", "layer") if c in merged.columns], kind="stable")


def merge_sample_shards(run_dir: Path) -> None:
    """Append the records of ``samples.rank*.jsonl`` missing from samples.jsonl, then drop the shards."""
    main = run_dir / "samples.jsonl"
    have = {(r["variant"], r["task"], r["sample_id"], r["repeat"]) for r in read_jsonl(main)}
    with JsonlAppender(main) as sink:
        for shard in sample_files(run_dir)[1:]:
            for row in read_jsonl(shard):
                key = (row["variant"], row["task"], row["sample_id"], row["repeat"])
                if key not in have:
                    sink.append(row)
                    have.add(key)
    for shard in sample_files(run_dir)[1:]:
        shard.unlink()


def merge_attention(run_dir: Path) -> Path | None:
    """Merge attention parts (and an earlier attention.parquet) into attention.parquet.

    Only rows whose (variant, task, sample_id, repeat) is in samples.jsonl are kept, and a
    re-run sample's rows replace the old ones, so resume never duplicates rows.
    """
    parts_dir = run_dir / "attention"
    target = run_dir / "attention.parquet"
    parts = sorted(parts_dir.glob("part-*.parquet")) if parts_dir.is_dir() else []
    if not parts:
        return target if target.exists() else None
    frames = [pd.read_parquet(target)] if target.exists() else []
    unreadable: list[str] = []
    for part in parts:
        try:
            frames.append(pd.read_parquet(part))
        except Exception:  # noqa: BLE001 -- a damaged part must not block every later merge
            part.rename(part.with_name(part.name + ".unreadable"))
            unreadable.append(part.name)
    parts = [p for p in parts if p.exists()]
    if not frames:
        raise RunError(f"attention parts {', '.join(unreadable)} in {parts_dir} are unreadable (kept as *.unreadable)")
    frame = pd.concat(frames, ignore_index=True)
    keep = {rec.key for rec in read_samples(run_dir)}
    keys = list(zip(frame["variant"], frame["task"], frame["sample_id"], frame["repeat"]))
    frame = frame[[k in keep for k in keys]]
    index_cols = KEY_COLUMNS + [c for c in ("step", "layer") if c in frame.columns]
    frame = frame.drop_duplicates(subset=index_cols, keep="last").sort_values(index_cols, kind="stable")
    write_parquet_atomic(frame.reset_index(drop=True), target)
    for part in parts:
        part.unlink()
    if not any(parts_dir.iterdir()):
        parts_dir.rmdir()
    if unreadable:
        raise RunError(
            f"attention parts {', '.join(unreadable)} in {parts_dir} are unreadable and were left out of "
            "attention.parquet (kept as *.unreadable); their samples have no attention rows"
        )
    return target


# ----------------------------------------------------------------- run metadata and run-id reuse
def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("pvm-bench", "torch", "transformers", "datasets", "pandas", "pyarrow", "lmms-eval"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the pvm-bench checkout (empty when installed from a wheel)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": bool(dirty)}


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"output directory {directory} is not writable ({exc.strerror}); pass --out DIR") from exc


def reusable_run_dir(run_dir: Path, *, probe_lock: bool = True) -> bool:
    """A run that never wrote a sample (it failed or died before the first) may be started again."""
    try:
        record = RunRecord.load(run_dir)
        free = RunLock(run_dir).is_free() if probe_lock else True
        return record.status != "completed" and not read_samples(run_dir) and free
    except (ValueError, OSError, UserError):
        return False


def clear_outputs(run_dir: Path) -> None:
    """Remove what a sample-less earlier attempt may have left (before it is started again)."""
    for path in [run_dir / "samples.jsonl", run_dir / "attention.parquet", *run_dir.glob("samples.rank*.jsonl")]:
        path.unlink(missing_ok=True)
    shutil.rmtree(run_dir / "attention", ignore_errors=True)
    remove_temp_files(run_dir)
