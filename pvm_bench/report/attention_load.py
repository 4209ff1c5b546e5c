"""Find and aggregate a run's attention files (the store and unmerged part files).

:func:`load_attention` turns them into :class:`~pvm_bench.report.attention_agg.AttentionAggregates`
with one DuckDB connection (:mod:`pvm_bench.report.attention_engine`). It reads the aggregate tables
the runner wrote beside every part (``attention-agg/``, :mod:`pvm_bench.attention_tables`), never
the raw rows; a file without valid tables (a run written before them, another format version) gets
them computed from its rows by the same function the runner uses. Only when the files recorded
different layers (so their layer bands differ) are all tables computed again over every raw row.

What went wrong is said in one line per file: a torn or foreign file is "unreadable" (a warning and
a failure), running out of memory is a :class:`~pvm_bench.report.attention_engine.ReportMemoryError`
(or a failure with ``allow_partial``), never "unreadable".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pvm_bench.attention_store import AttentionSources, agg_root, attention_sources
from pvm_bench.attention_tables import (
    FLOATING,
    KINDS,
    agg_paths,
    keys_frame,
    path_list,
    read_metas,
    register_bins,
    valid_tables,
    write_part_tables,
)
from pvm_bench.report.attention_agg import AttentionAggregates, aggregate_attention, assemble
from pvm_bench.report.attention_engine import (
    KEYS,
    connect,
    is_memory_error,
    memory_error,
    release_freed_memory,
    source_sql,
)


def attention_files(run_dir: Path) -> tuple[list[Path], int]:
    """The store's files then the unmerged part files in order, and the count of the latter."""
    sources = attention_sources(run_dir)
    return sources.files, len(sources.parts)


def _tables(sources: AttentionSources, engine: Any, warn: list[str], failures: list[str]
            ) -> dict[Path, tuple[dict[str, Any], dict[str, Path]]]:
    """Per readable file: its aggregate metadata and table paths (stored, or computed now into the
    engine's temp directory)."""
    import duckdb
    from pyarrow import ArrowException

    stored, computed = agg_root(sources.run_dir), Path(engine.tmp.name) / "agg"
    try:
        metas = read_metas(engine.con, [agg_paths(stored, p)["steps"] for p in sources.files])
    except duckdb.Error as exc:  # a damaged table file: read them one by one
        if is_memory_error(exc):
            raise
        metas = {}
    out = {}
    for path in sources.files:
        valid = valid_tables(stored, path, metas.get(agg_paths(stored, path)["steps"]))  # None: read alone
        if valid is not None:
            meta, paths = valid
        else:
            try:
                meta, paths = write_part_tables(path, computed, engine.con), agg_paths(computed, path)
            except Exception as exc:
                if is_memory_error(exc) or not isinstance(exc, (duckdb.Error, OSError, ValueError, ArrowException)):
                    raise
                _unreadable(sources, [path], exc, warn, failures)
                continue
        out[path] = (meta, paths)
    return out


def _views(
    engine: Any, tables: dict[Path, tuple[dict[str, Any], dict[str, Path]]], winners: pd.DataFrame | None
) -> None:
    """``agg_<kind>`` views over the tables' files; with ``winners`` (unmerged parts), only the rows
    of each recorded sample from the last file holding it."""
    con = engine.con
    if winners is not None:
        con.register("agg_winners", winners)
    for kind in KINDS:
        files = [(i, paths[kind]) for i, (_, paths) in enumerate(tables.values()) if paths[kind].exists()]
        if not files:
            continue
        read = f"read_parquet({path_list(p for _, p in files)}, union_by_name=true"
        if winners is None:
            con.execute(f"CREATE TEMP VIEW agg_{kind} AS SELECT * FROM {read})")
            continue
        con.register(
            f"agg_files_{kind}", pd.DataFrame({"filename": [str(p) for _, p in files], "_src": [i for i, _ in files]})
        )
        con.execute(
            f"CREATE TEMP VIEW agg_{kind} AS SELECT * EXCLUDE (filename, _src) FROM "
            f"(SELECT t.*, f._src FROM {read}, filename=true) t JOIN agg_files_{kind} f USING (filename)) "
            f"SEMI JOIN agg_winners USING ({', '.join(KEYS)}, _src)"
        )


def _winners(tables: dict[Path, tuple[dict[str, Any], dict[str, Path]]], samples: pd.DataFrame) -> pd.DataFrame:
    """Each sample's last file (index into ``tables``), only for samples in samples.jsonl (when any)."""
    owner: dict[tuple[str, str, str, int], int] = {}
    for i, (meta, _) in enumerate(tables.values()):
        owner.update(dict.fromkeys(((str(v), str(t), str(s), int(r)) for v, t, s, r in meta["samples"]), i))
    if len(samples):
        recorded = set(
            zip(
                samples["variant"].astype(str),
                samples["task"].astype(str),
                samples["sample_id"].astype(str),
                samples["repeat"].astype(int),
            )
        )
        owner = {k: i for k, i in owner.items() if k in recorded}
    rows = [(*k, i) for k, i in owner.items()]
    return pd.DataFrame(rows, columns=[*KEYS, "_src"]).astype({"repeat": "int64", "_src": "int64"})


def load_attention(
    run_dir: Path,
    samples: pd.DataFrame,
    warn: list[str],
    failures: list[str],
    allow_partial: bool = True,
    reference: str = "base",
) -> AttentionAggregates | None:
    """The attention aggregates of ``run_dir`` (None without readable attention files);
    ``samples``: the records of samples.jsonl (part-file samples not recorded there are dropped);
    ``reference``: the variant of the heatmap's paired differences.

    A file that is torn or foreign (not parquet, no key columns, text in a numeric column) is left
    out with a warning and a failure. Running out of memory raises
    :class:`~pvm_bench.report.attention_engine.ReportMemoryError` unless ``allow_partial`` (then a
    failure); it is never reported as an unreadable file."""
    import duckdb

    sources = attention_sources(run_dir)
    if not sources.files:
        return None
    engine = connect()
    try:
        register_bins(engine.con)
        tables = _tables(sources, engine, warn, failures)
        if not tables:
            return None
        columns: dict[str, str] = {}
        nonfinite: dict[str, int] = {}
        for meta, _ in tables.values():
            for name, kind in meta["columns"].items():
                columns.setdefault(name, kind)
            for name, n in meta["nonfinite"].items():
                nonfinite[name] = nonfinite.get(name, 0) + int(n)
        if nonfinite:  # inf never comes from a softmax; NaN is "not measured": both are left out
            warn.append(
                f"{sum(nonfinite.values())} non-finite value(s) in {', '.join(sorted(nonfinite))} left out "
                "(attention masses are finite)"
            )
        parts = sum(1 for p in tables if p in sources.parts)
        if parts:
            warn.append(
                f"{parts} unmerged attention part file(s) (killed or running run) read together with "
                "the attention store; `pvm-bench run --resume` merges them"
            )
        layer_sets = {tuple(meta["layers"]) for meta, _ in tables.values() if meta["layers"]}
        try:
            if len(layer_sets) > 1:  # bands cut from different layers: compute every table from raw rows
                return _from_raw(engine, list(tables), columns, samples, bool(parts), reference)
            winners = _winners(tables, samples) if parts else None
            _views(engine, tables, winners)
            keys = keys_frame(
                winners[list(KEYS)].itertuples(index=False, name=None) if winners is not None
                else (k for meta, _ in tables.values() for k in meta["samples"])
            )
            return assemble(engine, columns, list(next(iter(layer_sets), ())), reference, keys)
        except duckdb.Error as exc:
            if is_memory_error(exc):
                raise
            _unreadable(sources, list(tables), exc, warn, failures)
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
        release_freed_memory()


def _from_raw(
    engine: Any, files: list[Path], columns: dict[str, str], samples: pd.DataFrame, with_parts: bool, reference: str
) -> AttentionAggregates:
    keys_table = None
    if with_parts and len(samples):
        engine.con.register(
            "sample_keys",
            samples[list(KEYS)].astype({"variant": str, "task": str, "sample_id": str, "repeat": "int64"}),
        )
        keys_table = "sample_keys"
    floats = [c for c, t in columns.items() if FLOATING.match(t)]
    return aggregate_attention(engine, source_sql(files, columns, keys_table, with_parts, floats), columns, reference)


def _unreadable(
    sources: AttentionSources, paths: list[Path], exc: BaseException, warn: list[str], failures: list[str]
) -> None:
    names = ", ".join(sources.label(p) for p in paths)
    first = str(exc).splitlines()[0] if str(exc) else ""
    warn.append(f"{names} unreadable ({exc.__class__.__name__}: {first}); its attention records are left out")
    failures.append(f"{names} unreadable ({exc.__class__.__name__}: {first})")
