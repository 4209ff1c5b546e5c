"""Find and aggregate a run's attention files (attention.parquet and unmerged part files).

:func:`load_attention` turns them into :class:`~pvm_bench.report.attention_agg.AttentionAggregates`
with one DuckDB connection (:mod:`pvm_bench.report.attention_engine`), and says what went wrong
in one line per file: a torn or foreign file is "unreadable" (a warning and a failure), running out
of memory is a :class:`~pvm_bench.report.attention_engine.ReportMemoryError` (or a failure with
``allow_partial``), never "unreadable".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from pvm_bench.report.attention_agg import FLOATING, AttentionAggregates, aggregate_attention
from pvm_bench.report.attention_engine import (
    KEYS,
    NUMERIC_ATTENTION,
    connect,
    is_memory_error,
    literal,
    memory_error,
    source_sql,
)


def attention_files(run_dir: Path) -> tuple[list[Path], int]:
    """attention.parquet (if present) then the unmerged part files in order, and their count."""
    merged, parts_dir = run_dir / "attention.parquet", run_dir / "attention"
    parts = sorted(parts_dir.glob("part-*.parquet")) if parts_dir.is_dir() else []
    return ([merged] if merged.exists() else []) + parts, len(parts)


def _file_label(run_dir: Path, path: Path) -> str:
    return path.name if path.parent == run_dir else f"attention/{path.name}"


def nonfinite_columns(engine: Any, files: list[Path], floats: list[str], warn: list[str]) -> list[str]:
    """The float columns of ``files`` that hold inf or NaN, with a warning counting them. The parquet
    footers' min/max statistics say which could (free); only those are counted (one scan)."""
    import pyarrow.parquet as pq

    suspects: set[str] = set()
    for path in files:
        meta = pq.ParquetFile(path).metadata
        index = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
        for group in range(meta.num_row_groups):
            for name in floats:
                if name in index and name not in suspects:
                    stats = meta.row_group(group).column(index[name]).statistics
                    if stats is None or not stats.has_min_max or not all(map(math.isfinite, (stats.min, stats.max))):
                        suspects.add(name)
    if not suspects:
        return []
    paths = "[" + ", ".join(literal(str(p)) for p in files) + "]"
    counts = engine.con.execute(
        "SELECT " + ", ".join(f'count(*) FILTER (WHERE NOT isfinite("{c}"))' for c in sorted(suspects))
        + f" FROM read_parquet({paths}, union_by_name=true)").fetchone()
    bad = {c: int(n) for c, n in zip(sorted(suspects), counts) if n}
    if bad:  # inf never comes from a softmax; NaN is "not measured": both are left out
        warn.append(
            f"{sum(bad.values())} non-finite value(s) in {', '.join(bad)} left out (attention masses are finite)"
        )
    return sorted(bad)


def load_attention(
    run_dir: Path, samples: pd.DataFrame, warn: list[str], failures: list[str], allow_partial: bool = True,
    reference: str = "base",
) -> AttentionAggregates | None:
    """The attention aggregates of ``run_dir`` (None without readable attention files);
    ``samples``: the records of samples.jsonl (part-file rows of other samples are dropped);
    ``reference``: the variant of the heatmap's paired differences.

    Each file's footer is read first: a torn or foreign file (not parquet, no key columns) is
    left out with a warning and a failure. A file that fails while it is aggregated (a damaged
    page) is named the same way. Running out of memory raises
    :class:`~pvm_bench.report.attention_engine.ReportMemoryError` unless ``allow_partial`` (then a
    failure); it is never reported as an unreadable file."""
    import duckdb

    files, n_parts = attention_files(run_dir)
    engine = connect()
    try:
        good: list[Path] = []
        columns: dict[str, str] = {}
        for path in files:
            try:
                described = engine.con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(str(path))})").fetchall()
                names = {str(r[0]): str(r[1]) for r in described}
                missing = [k for k in (*KEYS, "step") if k not in names]
                if missing:
                    raise ValueError(f"missing columns {missing}")
                text = [k for k in NUMERIC_ATTENTION if k in names and names[k].startswith(("VARCHAR", "BLOB"))]
                if text:  # a foreign or edited file: numbers stored as text would fail deep in the decay code
                    raise ValueError(f"column {text[0]!r} holds {names[text[0]]} values, not numbers")
            except Exception as exc:
                if is_memory_error(exc):
                    raise
                if not isinstance(exc, (duckdb.Error, OSError, ValueError)):
                    raise
                _unreadable(run_dir, [path], exc, warn, failures)
                continue
            good.append(path)
            for name, kind in names.items():  # nested (per-head lists, structs) are not read
                if not any(mark in kind for mark in ("[", "STRUCT", "MAP", "UNION")):
                    columns.setdefault(name, kind)
        if not good:
            return None
        parts = n_parts - sum(1 for f in files if f not in good and f.name != "attention.parquet")
        if parts:
            warn.append(
                f"{parts} unmerged attention part file(s) (killed or running run) read together with "
                "attention.parquet; `pvm-bench run --resume` merges them"
            )
        keys_table = None
        if parts and len(samples):
            engine.con.register("sample_keys", samples[list(KEYS)].astype(
                {"variant": str, "task": str, "sample_id": str, "repeat": "int64"}))
            keys_table = "sample_keys"
        nonfinite = nonfinite_columns(engine, good, [c for c, t in columns.items() if FLOATING.match(t)], warn)
        try:
            return aggregate_attention(engine, source_sql(good, columns, keys_table, bool(parts), nonfinite), columns,
                                       reference)
        except duckdb.Error as exc:
            if is_memory_error(exc):
                raise
            _unreadable(run_dir, good, exc, warn, failures)
            return None
    except Exception as exc:
        if not is_memory_error(exc):
            raise
        err = memory_error(exc, "the attention aggregates (decay, heatmap and probe sections)")
        if not allow_partial:
            raise err from exc
        failures.append(str(err))
        return None
    finally:
        engine.close()


def _unreadable(run_dir: Path, paths: list[Path], exc: BaseException, warn: list[str], failures: list[str]) -> None:
    names = ", ".join(_file_label(run_dir, p) for p in paths)
    first = str(exc).splitlines()[0] if str(exc) else ""
    warn.append(f"{names} unreadable ({exc.__class__.__name__}: {first}); its attention records are left out")
    failures.append(f"{names} unreadable ({exc.__class__.__name__}: {first})")
