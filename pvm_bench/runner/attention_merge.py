"""The end-of-run merge of attention parts into the store, without rewriting rows.

The store ``RUN/attention.parquet/`` is a directory of part files (:mod:`pvm_bench.attention_store`).
A part holds one batch of whole samples, so deduplication works on samples, not rows: for every
(variant, task, sample_id, repeat) the rows of the LAST file holding it win (files in name order,
which is write order), and only samples recorded in samples.jsonl are kept. Then, per file:

- every sample it holds wins and is recorded (the common case): the part is moved into the store
  (a rename; a file already in the store stays);
- none does: the file and its aggregate tables are deleted;
- some do (after a crash and ``--resume``, rare): it is rewritten with those samples' rows only,
  streaming batch by batch (memory bounded by one row group), and its aggregate tables recomputed.

The sample keys of a file come from its aggregate tables' metadata (written with the part); a file
without valid tables (a part written before this format, or whose tables were lost in a crash) gets
them first, computed from its rows by :func:`pvm_bench.attention_tables.write_part_tables`. An old
single-file ``attention.parquet`` becomes the store's first part (:data:`~.attention_store.LEGACY_PART`).
Every step is a rename or a temp-file write + rename, so a merge killed at any point leaves a
state the next merge (or the report) reads correctly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pvm_bench.attention_store import LEGACY_PART, PARTS, STORE, agg_root, part_files
from pvm_bench.attention_tables import agg_paths, register_bins, valid_tables, write_part_tables
from pvm_bench.errors import UserError, is_disk_full

#: DuckDB's memory for computing a file's missing aggregate tables.
MEMORY_LIMIT = "1GB"
#: A temp folder inside the run directory for DuckDB spills (removed afterwards, also by remove_temp_files).
TEMP_DIR = ".merge-tmp"
Key = tuple[str, str, str, int]


class MergeMemoryError(UserError, MemoryError):
    """The merge ran out of memory; the parts are kept (nothing was lost or marked unreadable)."""


def is_memory_error(exc: BaseException) -> bool:
    """Python's and pyarrow's MemoryError, and DuckDB's OutOfMemoryException."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryException"


def is_disk_error(exc: BaseException) -> bool:
    """A full disk, also as DuckDB reports it (an IOException, or its temp-size cap as OutOfMemory)."""
    text = str(exc).lower()
    return is_disk_full(exc, by_message=True) or "no space left" in text or "max_temp_directory_size" in text


def footer_unreadable(parts: list[Path]) -> list[Path]:
    """The parts whose parquet footer cannot be read (cheap: the footer only)."""
    bad = []
    for part in parts:
        try:
            pq.read_metadata(part)
        except Exception as exc:  # noqa: BLE001
            if is_memory_error(exc):
                raise
            bad.append(part)
    return bad


def env_memory_limit() -> str:
    """``PVM_BENCH_MERGE_MEMORY`` (e.g. ``4GB``) or :data:`MEMORY_LIMIT`."""
    return os.environ.get("PVM_BENCH_MERGE_MEMORY", MEMORY_LIMIT)


def connect(run_dir: Path, memory_limit: str, threads: int) -> Any:
    """A DuckDB connection for the merge (spills to ``RUN/.merge-tmp``) with the bins table registered."""
    import duckdb

    tmp = run_dir / TEMP_DIR
    tmp.mkdir(exist_ok=True)
    con = duckdb.connect(config={"threads": threads, "memory_limit": memory_limit, "temp_directory": str(tmp)})
    con.execute("SET enable_progress_bar = false")  # a session option (the bar would print on stdout)
    register_bins(con)
    return con


def adopt_legacy(run_dir: Path) -> None:
    """Turn an old single-file ``attention.parquet`` into the store's first part (two renames; a
    merge killed between them is finished by the next one)."""
    store, moved = run_dir / STORE, run_dir / (STORE + ".legacy")
    if store.is_file():
        store.rename(moved)
    if moved.is_file():
        store.mkdir(exist_ok=True)
        moved.rename(store / LEGACY_PART)


def ensure_tables(path: Path, root: Path, con: Any) -> dict[str, Any]:
    """The aggregate metadata of ``path``, computing its tables first when any is missing or stale."""
    valid = valid_tables(root, path)
    return valid[0] if valid is not None else write_part_tables(path, root, con)


def rewrite_keeping(path: Path, keep: Collection[Key]) -> int:
    """Rewrite ``path`` in place with the rows of the samples in ``keep`` only (same schema and
    metadata, batch by batch, via a temp file); returns the rows written."""
    wanted = pa.array(sorted({"\x1f".join(map(str, k)) for k in keep}), pa.string())
    tmp = path.with_name(path.name + ".tmp")
    written = 0
    try:
        source = pq.ParquetFile(path)
        with pq.ParquetWriter(tmp, source.schema_arrow) as writer:
            for batch in source.iter_batches():
                parts = [pc.cast(batch.column(k), pa.string()) for k in ("variant", "task", "sample_id", "repeat")]
                mask = pc.is_in(pc.binary_join_element_wise(*parts, "\x1f"), value_set=wanted)
                table = pa.Table.from_batches([batch]).filter(mask)
                if table.num_rows:
                    writer.write_table(table)
                    written += table.num_rows
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def merge_store(run_dir: Path, keep: Collection[Key], con: Any, on_damaged: Any) -> None:
    """Merge the unmerged parts into the store (see the module docstring). ``keep``: the recorded
    sample keys; ``on_damaged(path)``: called for a file whose rows cannot be read (it sets the file
    aside); DuckDB, pyarrow and OS errors of anything else propagate."""
    adopt_legacy(run_dir)
    store, root = run_dir / STORE, agg_root(run_dir)
    parts = part_files(run_dir / PARTS)
    files = part_files(store) + parts
    samples: dict[Path, set[Key]] = {}
    for path in files:
        try:
            meta = ensure_tables(path, root, con)
        except Exception as exc:
            if is_memory_error(exc) or is_disk_error(exc) or readable(path):  # a bug is not a damaged file
                raise
            on_damaged(path)
            continue
        samples[path] = {(str(v), str(t), str(s), int(r)) for v, t, s, r in meta["samples"]}
    owner: dict[Key, Path] = {}
    for path, keys in samples.items():  # in reading order: the last file holding a sample wins
        owner.update(dict.fromkeys(keys, path))
    recorded = set(keep)
    store.mkdir(exist_ok=True)
    for path, keys in samples.items():
        wanted = {k for k in keys if owner[k] == path and k in recorded}
        if not wanted:
            path.unlink()
            for table in agg_paths(root, path).values():
                table.unlink(missing_ok=True)
            continue
        if wanted != keys:
            rewrite_keeping(path, wanted)
            write_part_tables(path, root, con)
        if path.parent != store:
            path.rename(store / path.name)


def readable(path: Path) -> bool:
    """Whether pyarrow reads every row of ``path`` (memory bounded by one row group)."""
    try:
        for _ in pq.ParquetFile(path).iter_batches():
            pass
    except Exception as exc:  # noqa: BLE001 -- any read failure but memory marks the file damaged
        if is_memory_error(exc):
            raise
        return False
    return True


def remove_temp(run_dir: Path) -> None:
    shutil.rmtree(run_dir / TEMP_DIR, ignore_errors=True)
