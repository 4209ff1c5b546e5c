"""The run directory's files: probe parts and their aggregate tables, the attention store, rank shards,
run metadata, reuse.

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
import pyarrow as pa
import pyarrow.parquet as pq

from pvm_bench.attention_store import AGG, PARTS, STORE, agg_root, part_files
from pvm_bench.errors import DiskFullError, UserError, is_disk_full, one_line
from pvm_bench.results import (
    JsonlAppender,
    RunRecord,
    compact_frame,
    read_jsonl,
    read_samples,
    remove_quietly,
    sample_files,
)
from pvm_bench.runner.attention_merge import (
    MergeMemoryError,
    connect,
    env_memory_limit,
    footer_unreadable,
    is_disk_error,
    is_memory_error,
    merge_store,
    remove_temp,
)
from pvm_bench.runner.guard import RunError, RunLock
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
    """Delete temp files a failed write may have left (``*.tmp``, ``.*.tmp``) in the run dir, its
    attention folders and aggregate tables."""
    folders = [run_dir, run_dir / PARTS, run_dir / STORE, *(agg_root(run_dir).glob("*"))]
    for folder in folders:
        if folder.is_dir():
            for tmp in list(folder.glob("*.tmp")) + list(folder.glob(".*.tmp")):
                remove_quietly(tmp)
    remove_temp(run_dir)  # a killed merge's DuckDB spill files


def part_name() -> str:
    """A new part's file name: write order is name order (the merge's "last file wins")."""
    return f"part-{time.time_ns()}-{uuid.uuid4().hex[:6]}.parquet"


def write_probe_part(run_dir: Path, frames: list[pd.DataFrame] | pa.Table, name: str | None = None) -> Path | None:
    """One new ``attention/part-*.parquet`` holding ``frames`` (one batch of whole samples), then its
    aggregate tables under ``attention-agg/`` (:func:`pvm_bench.attention_tables.write_part_tables`,
    computed from the file just written so that they equal what the report computes from it).

    ``frames``: the probe frames (written as :func:`write_parquet_atomic` writes them), or an arrow
    table already in that schema (the bench's synthetic runs). ``name``: the file name (default
    :func:`part_name`). Returns the part (None without frames)."""
    from pvm_bench.attention_tables import write_part_tables

    if isinstance(frames, list) and not frames:
        return None
    path = ensure_dir(run_dir / PARTS) / (name or part_name())
    if isinstance(frames, pa.Table):
        _write_table_atomic(frames, path)
    else:
        write_parquet_atomic(pd.concat(frames, ignore_index=True), path)
    try:
        write_part_tables(path, agg_root(run_dir))
    except Exception as exc:  # the part is safe; the merge (or the report) computes the tables again
        if is_disk_full(exc, by_message=True) and not isinstance(exc, DiskFullError):
            raise DiskFullError(agg_root(run_dir)) from exc
        raise
    return path


def _write_table_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        remove_quietly(tmp)
        if is_disk_full(exc, by_message=True) and not isinstance(exc, DiskFullError):
            raise DiskFullError(path) from exc
        raise


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


def merge_sample_shards(run_dir: Path, world: int = 1) -> None:
    """Append the records of ``samples.rank*.jsonl`` missing from samples.jsonl, then drop the shards.

    ``world``: the ranks of the run that just finished; each opened its shard at its start, so a
    missing one means that rank wrote to another filesystem (node-local disks): RunError naming
    the ranks and the fix, and nothing is merged or deleted.
    """
    missing = [r for r in range(world) if world > 1 and not (run_dir / f"samples.rank{r}.jsonl").exists()]
    if missing:
        from pvm_bench.runner.distributed import SHARED_FIX

        raise RunError(
            f"the sample shards of rank(s) {', '.join(map(str, missing))} (samples.rank<r>.jsonl) are not in "
            f"{run_dir}: "
            f"those ranks wrote to a run directory this node does not see; {SHARED_FIX}"
        )
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


def merge_attention(run_dir: Path, *, memory_limit: str | None = None, threads: int = 1) -> Path | None:
    """Merge the attention parts into the store ``attention.parquet/`` (:mod:`pvm_bench.runner.attention_merge`).

    Only samples in samples.jsonl are kept, and a re-run sample's rows (a later part) replace the
    old ones, so resume never duplicates rows. Parts are moved, not rewritten (a part holding
    superseded samples is rewritten alone); memory is bounded by one part, never the run.

    A part that cannot be read is renamed ``*.unreadable`` and named in a RunError after the
    others are merged. Running out of memory raises :class:`MergeMemoryError` (the parts stay and
    are read by ``pvm-bench report``); a full disk, DiskFullError.
    """
    parts_dir, target = run_dir / PARTS, run_dir / STORE
    parts = part_files(parts_dir)
    if not parts:
        return target if target.exists() else None
    limit = memory_limit or env_memory_limit()
    unreadable = _set_aside(footer_unreadable(parts))
    keep = {rec.key for rec in read_samples(run_dir)}
    con = connect(run_dir, limit, threads)
    try:
        merge_store(run_dir, keep, con, lambda path: unreadable.extend(_set_aside([path])))
    except BaseException as exc:
        # disk before memory: DuckDB's temp cap says "Out of Memory"
        if is_disk_error(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(target) from exc
        if is_memory_error(exc):
            raise MergeMemoryError(
                f"out of memory merging the attention parts of {run_dir} (merge memory limit {limit}): "
                f"{one_line(str(exc), 160)}; nothing was lost: the parts are kept in {parts_dir} and read by "
                f"`pvm-bench report`; to merge them free memory (or set PVM_BENCH_MERGE_MEMORY, e.g. 4GB) and "
                f"run `pvm-bench run --resume {run_dir}`"
            ) from exc
        raise
    finally:
        con.close()
        remove_temp(run_dir)
    if parts_dir.is_dir() and not any(parts_dir.iterdir()):
        parts_dir.rmdir()
    if unreadable:
        raise RunError(
            f"attention parts {', '.join(unreadable)} in {parts_dir} are unreadable and were left out of "
            f"{STORE} (kept as *.unreadable); their samples have no attention rows"
        )
    return target


def _set_aside(parts: list[Path]) -> list[str]:
    """Rename damaged parts to ``*.unreadable`` (a damaged part must not block every later merge)."""
    for part in parts:
        part.rename(part.with_name(part.name + ".unreadable"))
    return [p.name for p in parts]


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
    for path in [run_dir / "samples.jsonl", *run_dir.glob("samples.rank*.jsonl")]:
        path.unlink(missing_ok=True)
    for name in (STORE, PARTS, AGG):  # the store is a file in runs written before issue 22
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    remove_temp_files(run_dir)
