"""DuckDB over a run's attention files: one connection per report, bounded memory, one thread.

The report never holds attention rows in pandas: :mod:`pvm_bench.report.attention_agg` asks
this engine for the aggregate tables of the run's attention files (read from the files the runner
wrote, or computed from raw rows) and works on their small results.

- :func:`connect`: a DuckDB connection with ``threads`` (default 1), ``memory_limit`` (default
  :data:`DEFAULT_MEMORY`) and a temp directory to spill to, from ``PVM_BENCH_REPORT_THREADS`` /
  ``PVM_BENCH_REPORT_MEMORY`` / ``PVM_BENCH_REPORT_TMP``;
- :func:`~pvm_bench.attention_tables.source_sql` (re-exported): the attention rows as one SQL relation;
- :func:`is_memory_error` / :class:`ReportMemoryError`: running out of memory (DuckDB's
  OutOfMemoryException, pyarrow's ArrowMemoryError, MemoryError) is never a damaged file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvm_bench.attention_tables import KEYS, NUMERIC_ATTENTION, literal, quote, source_sql  # noqa: F401 (re-exported)
from pvm_bench.errors import UserError

MEMORY_ENV, THREADS_ENV, TMP_ENV = "PVM_BENCH_REPORT_MEMORY", "PVM_BENCH_REPORT_THREADS", "PVM_BENCH_REPORT_TMP"
DEFAULT_MEMORY = "1GB"
"""DuckDB's memory limit for the attention group-bys (it spills to the temp directory beyond it)."""



def release_freed_memory() -> None:
    """Hand memory that was freed back to the operating system (glibc's ``malloc_trim``; a no-op
    elsewhere). Called between report phases: numpy, pandas and DuckDB free hundreds of megabytes
    in pieces there, which glibc keeps in its heaps for reuse and which then count in the process's
    resident size (a 460M-row report peaked at 1.9 GB with them kept, 1.7 GB without). Written by
    hand: no library in the stack exposes it."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
        except OSError:
            libc = None
        _LIBC = libc if libc is not None and hasattr(libc, "malloc_trim") else False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None


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
    # every aggregate table is scanned several times: read each of the thousands of footers once
    con.execute("SET parquet_metadata_cache = true")
    return Engine(con, tmp)
