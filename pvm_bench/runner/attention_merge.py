"""Streaming merge of attention parts into attention.parquet (DuckDB sort, pyarrow writer).

The merged file is what the earlier in-memory merge (concat every part, keep rows of recorded
samples, ``drop_duplicates(keep="last")`` on the row index, stable sort) wrote, value for value:
same columns in the same order, the same arrow types and pandas metadata (the schema is built by
:func:`pvm_bench.results.compact_frame` from one row of every source, concatenated as pandas
would), rows sorted by (variant, task, sample_id, repeat, step, layer), and of duplicate rows the
one from the latest source (attention.parquet first, then the parts in name order, which is
write order) and, within a source, the latest row wins.

DuckDB sorts by that order plus (source, row) descending, spilling to a temp folder inside the
run directory beyond ``memory_limit``; the rows then stream through pyarrow, where the first row
of each index value is kept (vectorised, batch by batch) and written in row groups of
:data:`ROW_GROUP_ROWS`. Peak memory is DuckDB's limit plus one batch, never the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pvm_bench.errors import UserError, is_disk_full
from pvm_bench.results import compact_frame

#: Rows per row group of attention.parquet (about 15 MB in memory): readers stream it group by group.
ROW_GROUP_ROWS = 262_144
#: DuckDB's memory for the sort; beyond it the sort spills to ``RUN/.merge-tmp``.
MEMORY_LIMIT = "1GB"
#: The merge's temp folder inside the run directory (removed afterwards, also by remove_temp_files).
TEMP_DIR = ".merge-tmp"


class MergeMemoryError(UserError, MemoryError):
    """The merge ran out of memory; the parts are kept (nothing was lost or marked unreadable)."""


def is_memory_error(exc: BaseException) -> bool:
    """Python's and pyarrow's MemoryError, and DuckDB's OutOfMemoryException."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryException"


def is_disk_error(exc: BaseException) -> bool:
    """A full disk, also as DuckDB reports it (an IOException, or its temp-size cap as OutOfMemory)."""
    text = str(exc).lower()
    return is_disk_full(exc, by_message=True) or "no space left" in text or "max_temp_directory_size" in text


def merged_schema(sources: list[Path]) -> pa.Schema:
    """The schema the in-memory merge would write: one row (or none) of every source,
    concatenated by pandas (column union in order of appearance, dtype promotion), compacted."""
    heads = []
    for path in sources:
        pf = pq.ParquetFile(path)
        batch = next(pf.iter_batches(batch_size=1), None)
        table = pa.Table.from_batches([batch]) if batch is not None else pf.schema_arrow.empty_table()
        heads.append(table.to_pandas())
    frame = compact_frame(pd.concat(heads, ignore_index=True))
    return pa.Schema.from_pandas(frame, preserve_index=False)


def _differs(a: pa.Array, b: pa.Array) -> pa.Array:
    """Element-wise ``a != b`` with nulls equal to each other (pandas' duplicate semantics)."""
    ne = pc.fill_null(pc.not_equal(a, b), False)
    return pc.or_(ne, pc.xor(pc.is_null(a), pc.is_null(b)))


def _first_of_each(batch: pa.RecordBatch, index_cols: list[str], previous: list[pa.Scalar] | None) -> pa.Array:
    """Mask of the rows whose index differs from the row before (the previous batch's last row
    for the first one): in a batch sorted by index, the first row of every index value."""
    n = batch.num_rows
    keep = None
    for col in index_cols:
        arr = batch.column(col)
        before = pa.concat_arrays([pa.array([previous[index_cols.index(col)].as_py()] if previous else [None],
                                            type=arr.type), arr.slice(0, n - 1)])
        diff = _differs(arr, before)
        keep = diff if keep is None else pc.or_(keep, diff)
    assert keep is not None
    if previous is None:  # the very first row is always kept
        keep = pc.or_(keep, pa.array([True] + [False] * (n - 1)))
    return keep


def _connect(run_dir: Path, memory_limit: str, threads: int):  # noqa: ANN202 -- duckdb is imported lazily
    import duckdb

    tmp = run_dir / TEMP_DIR
    tmp.mkdir(exist_ok=True)
    con = duckdb.connect(config={"threads": threads, "memory_limit": memory_limit, "temp_directory": str(tmp),
                                 "preserve_insertion_order": False})
    con.execute("SET enable_progress_bar = false")  # a session option (the bar would print on stdout)
    return con


def stream_merge(run_dir: Path, sources: list[Path], keep: Iterable[tuple[str, str, str, int]], out: Path, *,
                 memory_limit: str = MEMORY_LIMIT, threads: int = 1) -> int:
    """Write the merge of ``sources`` restricted to the ``keep`` keys to ``out``; returns its rows.

    DuckDB and pyarrow errors propagate (the caller tells memory, disk and damaged files apart).
    """
    schema = merged_schema(sources)
    # rows are equal on the merge's index (sample key, step, layer) iff equal on (sample rank, step, layer)
    index_cols = ["__rank"] + [c for c in ("step", "layer") if c in schema.names]
    # the recorded samples in the merged order (Python's string order = pandas' sort order); the
    # sort then compares one integer per sample instead of three strings
    ordered = sorted(set(keep))
    key_schema = pa.schema([("variant", pa.string()), ("task", pa.string()), ("sample_id", pa.string()),
                            ("repeat", pa.int64()), ("rank", pa.int64())])
    cols = list(zip(*ordered)) if ordered else [[], [], [], []]
    keys = pa.table(
        [*(pa.array(c, type=f.type) for c, f in zip(cols, key_schema)), pa.array(range(len(ordered)), pa.int64())],
        schema=key_schema,
    )
    files = pa.table({"filename": [str(p) for p in sources], "src": list(range(len(sources)))})
    con = _connect(run_dir, memory_limit, threads)
    try:
        con.register("keep_keys", keys)
        con.register("source_files", files)
        quoted = ", ".join(f'p."{c}"' for c in schema.names)
        paths = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in sources) + "]"
        order = ", ".join(["k.rank", *(f'p."{c}"' for c in index_cols[1:])])
        sql = (
            f"SELECT {quoted}, k.rank AS __rank FROM read_parquet({paths}, union_by_name = true, filename = true, "
            "file_row_number = true) p "
            "JOIN source_files f ON p.filename = f.filename "
            "JOIN keep_keys k ON p.variant = k.variant AND p.task = k.task AND p.sample_id = k.sample_id "
            'AND p."repeat" = k."repeat" '
            f"ORDER BY {order}, f.src DESC, p.file_row_number DESC"
        )
        relation = con.sql(sql)
        # a streaming reader: DuckDB >= 2 names it to_arrow_reader, 1.x fetch_arrow_reader
        reader = (getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader)(ROW_GROUP_ROWS)
        written = 0
        previous: list[pa.Scalar] | None = None
        # dictionary pages only where they pay (ids, counters): float measures are near-unique, and
        # trying a dictionary on them first cost 2.5x the write time and a 45% larger file (3M rows)
        dictionary = [f.name for f in schema if not (pa.types.is_floating(f.type) or pa.types.is_list(f.type))]
        with pq.ParquetWriter(out, schema, use_dictionary=dictionary) as writer:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                mask = _first_of_each(batch, index_cols, previous)
                previous = [batch.column(c)[batch.num_rows - 1] for c in index_cols]
                table = pa.Table.from_batches([batch]).filter(mask)
                table = pa.table([table.column(f.name).cast(f.type, safe=False) for f in schema], schema=schema)
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                written += table.num_rows
        return written
    finally:
        con.close()
        shutil.rmtree(run_dir / TEMP_DIR, ignore_errors=True)


def unreadable_parts(parts: list[Path]) -> list[Path]:
    """The parts pyarrow cannot read in full (each is read alone: memory bounded by one part)."""
    bad = []
    for part in parts:
        try:
            pq.read_table(part)
        except Exception as exc:  # noqa: BLE001 -- any read failure but memory marks the part damaged
            if is_memory_error(exc):
                raise
            bad.append(part)
    return bad


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
