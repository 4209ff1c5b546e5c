"""DuckDB over a run's attention files: one connection per report, bounded memory, one thread.

The report never holds attention rows in pandas: :mod:`pvm_bench.report.attention_agg` asks
this engine for a few group-bys over ``attention.parquet`` (plus the unmerged
``attention/part-*.parquet`` of a killed run) and works on their small results.

- :func:`connect`: a DuckDB connection with ``threads`` (default 1), ``memory_limit`` (default
  :data:`DEFAULT_MEMORY`) and a temp directory to spill to, from ``PVM_BENCH_REPORT_THREADS`` /
  ``PVM_BENCH_REPORT_MEMORY`` / ``PVM_BENCH_REPORT_TMP``;
- :func:`source_sql`: the attention rows as one SQL relation, with the same rules as the old pandas
  reader: rows with a null ``step`` dropped, ``variant``/``task``/``sample_id`` as text and
  ``repeat``/``step`` as integers; with part files, only rows of samples present in samples.jsonl,
  each sample's rows from the last file that has it, and the last copy of a (sample, step, layer);
- :func:`is_memory_error` / :class:`ReportMemoryError`: running out of memory (DuckDB's
  OutOfMemoryException, pyarrow's ArrowMemoryError, MemoryError) is never a damaged file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvm_bench.errors import UserError

MEMORY_ENV, THREADS_ENV, TMP_ENV = "PVM_BENCH_REPORT_MEMORY", "PVM_BENCH_REPORT_THREADS", "PVM_BENCH_REPORT_TMP"
DEFAULT_MEMORY = "1GB"
"""DuckDB's memory limit for the attention group-bys (it spills to the temp directory beyond it)."""
KEYS = ("variant", "task", "sample_id", "repeat")
#: Attention columns that must be numbers (a file holding text there is refused as unreadable).
NUMERIC_ATTENTION = ("repeat", "step", "layer", "visual_mass", "visual_mass_norm", "sink_mass", "entropy")



class ReportMemoryError(UserError, MemoryError):
    """The attention aggregates did not fit in memory; the message names the limit and the fix."""


class ReportIncompleteError(UserError):
    """A report section could not be computed (a damaged attention file, memory): without
    ``--allow-partial`` the report is not written; the message lists the sections and the fix."""


def is_memory_error(exc: BaseException) -> bool:
    """True for an out-of-memory failure of DuckDB, pyarrow or Python (never a damaged file)."""
    import duckdb
    from pyarrow import ArrowMemoryError

    return isinstance(exc, (MemoryError, ArrowMemoryError, duckdb.OutOfMemoryException))


def memory_error(exc: BaseException, what: str) -> ReportMemoryError:
    """The one-line error for an out-of-memory failure while computing ``what``."""
    limit = os.environ.get(MEMORY_ENV, DEFAULT_MEMORY)
    return ReportMemoryError(
        f"out of memory computing {what} (DuckDB memory_limit {limit}; {exc.__class__.__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''}): raise it with {MEMORY_ENV}=4GB, free memory, "
        "or pass --allow-partial to write the report without that section"
    )


@dataclass
class Engine:
    """An open DuckDB connection and its temp directory (removed by :meth:`close`)."""

    con: Any
    tmp: tempfile.TemporaryDirectory[str]

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            self.tmp.cleanup()


def connect() -> Engine:
    """A DuckDB connection backed by a database file in a fresh temp directory (so large
    intermediate tables live on disk, not in memory)."""
    import duckdb

    tmp = tempfile.TemporaryDirectory(prefix="pvm-bench-report-", dir=os.environ.get(TMP_ENV) or None)
    threads = int(os.environ.get(THREADS_ENV) or 1)
    con = duckdb.connect(str(Path(tmp.name) / "agg.duckdb"), config={
        "threads": threads, "memory_limit": os.environ.get(MEMORY_ENV, DEFAULT_MEMORY),
        "temp_directory": str(Path(tmp.name) / "spill"), "preserve_insertion_order": False,
    })
    return Engine(con, tmp)


def quote(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def source_sql(files: list[Path], columns: dict[str, str], keys_table: str | None, with_parts: bool,
               nonfinite: Collection[str] = ()) -> str:
    """SELECT of the attention rows (see the module docstring). ``columns``: the scalar columns to
    read, name -> DuckDB type (``layer``/``visual_mass`` may be absent: they become NULL);
    ``keys_table``: a table of the samples.jsonl keys to keep (part files only); ``nonfinite``: float
    columns holding inf/NaN, read as NULL (left out, as a value that was not measured)."""
    paths = "[" + ", ".join(literal(str(p)) for p in files) + "]"

    def value(c: str) -> str:
        return f"CASE WHEN isfinite({quote(c)}) THEN {quote(c)} END AS {quote(c)}" if c in nonfinite else quote(c)

    select = [
        "CAST(variant AS VARCHAR) AS variant", "CAST(task AS VARCHAR) AS task",
        "CAST(sample_id AS VARCHAR) AS sample_id", "CAST(repeat AS BIGINT) AS repeat", "CAST(step AS INTEGER) AS step",
        "CAST(layer AS INTEGER) AS layer" if "layer" in columns else "CAST(NULL AS INTEGER) AS layer",
        value("visual_mass") if "visual_mass" in columns else "CAST(NULL AS FLOAT) AS visual_mass",
    ]
    select += [value(c) for c in columns if c not in (*KEYS, "step", "layer", "visual_mass")]
    if not with_parts:
        return f"SELECT {', '.join(select)} FROM read_parquet({paths}, union_by_name=true) WHERE step IS NOT NULL"
    order = "list_position(" + paths + ", filename)"
    src = (f"SELECT {', '.join(select)}, {order} AS _file, file_row_number AS _row FROM "
           f"read_parquet({paths}, union_by_name=true, filename=true, file_row_number=true) WHERE step IS NOT NULL")
    key_list = ", ".join(KEYS)
    if keys_table:
        src = f"SELECT * FROM ({src}) SEMI JOIN {keys_table} USING ({key_list})"
    last_file = f"SELECT * FROM ({src}) QUALIFY _file = max(_file) OVER (PARTITION BY {key_list})"
    names = ", ".join(s.rsplit(" AS ", 1)[-1] for s in select)
    return (f"SELECT {names} FROM ({last_file}) QUALIFY row_number() OVER "
            f"(PARTITION BY {key_list}, step, layer ORDER BY _file DESC, _row DESC) = 1")
