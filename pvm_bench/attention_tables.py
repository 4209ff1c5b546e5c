"""The attention aggregate tables: one SQL per table, over any source of attention rows.

The report never needs the 460M raw rows of a paper-scale run: everything it shows is a function
of four small tables keyed by the generation (``variant, task, sample_id, repeat``). The runner
writes them for every attention part as it writes the part (:func:`write_part_tables`, from the
part file just written), and the report computes them from raw rows with the very same SQL when a
file has none (runs written before this format, or a part whose tables were lost):

- ``steps``: one row per (generation, step): the mean ``visual_mass`` over each layer band's layers
  (``m_all``, ``m_early``, ...; float32, as pandas' mean of the float32 column was) and the per-step
  mean of the step-level columns (``entropy``, ``margin``, ``visual_mass_img{i}``);
- ``layers``: one row per (generation, layer or NULL) over steps >= 1: row count and, per probe
  column, count, sum, mean, min and max (plus the visual-row count/sum of the ``VIS_MEASURES`` and
  the PVM gate);
- ``cells``: sum and count of ``visual_mass`` per (generation, layer, fixed log bin of
  :data:`HEATMAP_EDGES`) over steps >= 1 (the heatmap and its paired differences);
- ``pvm``: per (generation, layer, fixed bin): the sum and count of the per-step mean ``pvm_ratio``,
  the sum of ln(step) and the first/last step (the PVM-branch curve), only with a ``pvm_ratio`` column.

Every table is additive over generations, and a generation's rows never span two part files (a
part is one batch of whole samples), so the tables of a run are the concatenation of its parts'
tables. The one thing that is not per generation is the layer bands (thirds of the recorded layers):
each file's tables record the layers they were computed with (:data:`META_KEY`), and the report uses
them only when every file recorded the same layers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

AGG_VERSION = 2
"""Format of the aggregate tables; files of another version are recomputed from raw rows.
2: every table carries :data:`GKEY`."""
META_KEY = b"pvm_bench.attention_agg"
"""Parquet key-value metadata of every aggregate file: json {version, layers (the visual layers the
bands were cut from), columns (scalar columns of the attention file, DuckDB types), nonfinite (count of
inf/NaN per float column, read as NULL), samples (the file's sample keys), file (the attention file's
:func:`fingerprint`: tables of a file edited or replaced since are stale)}."""
KINDS = ("steps", "layers", "cells", "pvm")
KEYS = ("variant", "task", "sample_id", "repeat")
GKEY = "gkey"
"""Every table's 64-bit integer key of the generation (:func:`sample_gkey` of its four keys): the
report joins and groups by it instead of four text columns (28M heatmap cells at paper scale)."""
NUMERIC = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|"
                     r"DECIMAL.*)$")
FLOATING = re.compile(r"^(FLOAT|DOUBLE|REAL)$")
"""DuckDB types that can hold inf/NaN."""
IMAGE_COLUMN = re.compile(r"^visual_mass_img\d+$")
NOT_MEASURES = {*KEYS, "step", "layer", "visual_mass", "visual_mass_norm", "sink_mass", "n_keys", "n_visual",
                "entropy", "margin"}
"""Columns that are keys, counters or handled apart (same set as decay.NOT_MEASURES)."""
VIS_MEASURES = ("visual_mass_norm", "sink_mass")
"""Averaged over visual rows (rows with a layer and a visual_mass) only."""
#: Attention columns that must be numbers (a file holding text there is refused as unreadable).
NUMERIC_ATTENTION = ("repeat", "step", "layer", "visual_mass", "visual_mass_norm", "sink_mass", "entropy")


def sample_gkey(variant: str, task: str, sample_id: str, repeat: int) -> int:
    """The :data:`GKEY` of a generation: the first 8 bytes of a BLAKE2b hash of its keys, as a
    signed integer (the same in every process and DuckDB version)."""
    import hashlib

    text = f"{variant}\x00{task}\x00{sample_id}\x00{int(repeat)}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little", signed=True)


def keys_frame(samples: Iterable[Sequence[Any]]) -> Any:
    """A frame of generation keys (variant, task, sample_id, repeat) with their :data:`GKEY`."""
    import pandas as pd

    rows = [(str(v), str(t), str(s), int(r)) for v, t, s, r in samples]
    frame = pd.DataFrame(rows, columns=list(KEYS)).astype({"repeat": "int64"})
    frame[GKEY] = np.array([sample_gkey(*k) for k in rows], dtype=np.int64)
    return frame


def keyed_sql(sql: str, keys_table: str) -> str:
    """``sql`` (a table of :func:`table_sql`) with the :data:`GKEY` of its rows from ``keys_table``
    (a :func:`keys_frame` of its generations)."""
    return f"SELECT t.*, k.{GKEY} FROM ({sql}) t JOIN {keys_table} k USING ({', '.join(KEYS)})"


def log_bin_edges(t_max: int, n_bins: int = 40) -> np.ndarray:
    """Integer-valued, strictly increasing log-spaced bin edges from 1 to t_max + 1."""
    return np.unique(np.round(np.geomspace(1, max(t_max, 2) + 1, n_bins + 1))).astype(float)


HEATMAP_EDGES = log_bin_edges((1 << 17) - 1, 8 * 17)
"""Fixed bins of ``cells`` and ``pvm``: 8 per octave (edges round(2^(k/8)), duplicates dropped) up to 131072."""


def layer_bands(layers: Iterable[int]) -> dict[str, list[int]]:
    """Split the sorted recorded layers into early/middle/late thirds (``np.array_split``: the
    first bands get the extra layer) plus ``all``. Empty bands are omitted."""
    ls = sorted({int(x) for x in layers})
    bands: dict[str, list[int]] = {"all": ls} if ls else {}
    for name, part in zip(("early", "middle", "late"), np.array_split(np.array(ls, dtype=int), 3)):
        if part.size:
            bands[name] = [int(x) for x in part]
    return bands


def quote(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def path_list(files: Iterable[Path]) -> str:
    """A DuckDB list literal of file paths."""
    return "[" + ", ".join(literal(str(p)) for p in files) + "]"


def source_sql(files: list[Path], columns: dict[str, str], keys_table: str | None, with_parts: bool,
               nonfinite: Collection[str] = (), relation: str | None = None) -> str:
    """SELECT of the attention rows of ``files``: rows with a null ``step`` dropped, ``variant``/
    ``task``/``sample_id`` as text and ``repeat``/``step`` as integers. ``columns``: the scalar
    columns to read, name -> DuckDB type (``layer``/``visual_mass`` may be absent: they become
    NULL); ``nonfinite``: float columns whose inf/NaN are read as NULL (a value not measured).
    ``with_parts`` (a killed run's unmerged part files): only samples in ``keys_table`` (the
    samples.jsonl keys, when given), each sample's rows from the last file that has it, and the
    last copy of a (sample, step, layer). ``relation``: read the rows from this table instead of
    ``files`` (one file loaded once; not with ``with_parts``)."""
    paths = path_list(files)

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
        source = relation or f"read_parquet({paths}, union_by_name=true)"
        return f"SELECT {', '.join(select)} FROM {source} WHERE step IS NOT NULL"
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


def measures(columns: dict[str, str]) -> list[str]:
    """Probe columns averaged per layer / per scope: numeric, not bool, not a key or counter."""
    return sorted(c for c, t in columns.items() if c not in NOT_MEASURES and NUMERIC.match(t))


def step_columns(columns: dict[str, str]) -> list[str]:
    """Step-level columns averaged per (generation, step): entropy, margin, visual_mass_img{i}."""
    cols = [c for c in ("entropy", "margin") if c in columns and NUMERIC.match(columns[c])]
    return cols + sorted((c for c in columns if IMAGE_COLUMN.match(c)), key=lambda c: int(c[len("visual_mass_img"):]))


def _mean_sql(col: str, columns: dict[str, str], where: str = "") -> str:
    """avg of ``col``, rounded to float32 where the column is float32 (as pandas' mean is)."""
    avg = f"avg({quote(col)})" + (f" FILTER (WHERE {where})" if where else "")
    return f"CAST({avg} AS FLOAT)" if columns.get(col) == "FLOAT" else f"CAST({avg} AS DOUBLE)"


BIN_TABLE = "heat_bins"
"""The (step, bin) table :func:`register_bins` adds to a connection: the :data:`HEATMAP_EDGES` bin of
every step 1..131071 (a join is cheaper than a per-row search; longer steps have no bin)."""


def register_bins(con: Any) -> None:
    """Register :data:`BIN_TABLE` on ``con`` (the ``cells``/``pvm`` SQL joins it)."""
    import pandas as pd

    steps = np.arange(1, int(HEATMAP_EDGES[-1]), dtype=np.int32)
    bins = (np.searchsorted(HEATMAP_EDGES, steps, side="right") - 1).astype(np.int16)
    con.register(BIN_TABLE, pd.DataFrame({"step": steps, "bin": bins}))


def table_sql(kind: str, view: str, columns: dict[str, str], bands: dict[str, list[int]]) -> str | None:
    """The SELECT computing table ``kind`` from the attention rows in ``view`` (a
    :func:`source_sql` relation); None for ``pvm`` without a ``pvm_ratio`` column."""
    keys = ", ".join(KEYS)
    if kind == "steps":
        parts = []
        for band, layers in bands.items():
            cond = "layer IS NOT NULL" if band == "all" else f"layer IN ({', '.join(str(x) for x in layers)})"
            parts.append(f"CAST(avg(visual_mass) FILTER (WHERE {cond}) AS FLOAT) AS m_{band}")
        parts += [f"{_mean_sql(c, columns)} AS {quote(c)}" for c in step_columns(columns)]
        return f"SELECT {keys}, step{''.join(', ' + p for p in parts)} FROM {view} GROUP BY ALL"
    if kind == "layers":
        parts = ["count(*) AS _rows"]
        for c in measures(columns):
            q = quote(c)
            parts += [f"count({q}) AS {quote(c + '|n')}", f"sum(CAST({q} AS DOUBLE)) AS {quote(c + '|sum')}",
                      f"{_mean_sql(c, columns)} AS {quote(c + '|mean')}",
                      f"CAST(min({q}) AS DOUBLE) AS {quote(c + '|min')}",
                      f"CAST(max({q}) AS DOUBLE) AS {quote(c + '|max')}"]
        for c in VIS_MEASURES:
            if c in columns:
                q, vis = quote(c), "visual_mass IS NOT NULL"
                parts += [f"count({q}) FILTER (WHERE {vis}) AS {quote(c + '|vn')}",
                          f"sum(CAST({q} AS DOUBLE)) FILTER (WHERE {vis}) AS {quote(c + '|vsum')}"]
        if "pvm_ratio" in columns and "pvm_gate" in columns:  # the gate is constant per layer
            parts.append("CAST(min(pvm_gate) FILTER (WHERE pvm_ratio IS NOT NULL) AS DOUBLE) AS \"pvm_gate|gate\"")
        return f"SELECT {keys}, layer, {', '.join(parts)} FROM {view} WHERE step >= 1 GROUP BY ALL"
    if kind == "cells":
        return (f"SELECT {keys}, layer, bin, sum(CAST(visual_mass AS DOUBLE)) AS s, count(*) AS n FROM {view} "
                f"JOIN {BIN_TABLE} USING (step) WHERE layer IS NOT NULL AND visual_mass IS NOT NULL GROUP BY ALL")
    if kind == "pvm":
        if "pvm_ratio" not in columns:
            return None
        per_step = (f"SELECT {keys}, layer, step, {_mean_sql('pvm_ratio', columns)} AS r FROM {view} "
                    "WHERE pvm_ratio IS NOT NULL AND layer IS NOT NULL AND step >= 1 GROUP BY ALL")
        return (f"SELECT {keys}, layer, bin, sum(CAST(r AS DOUBLE)) AS s, count(*) AS n, sum(ln(step)) AS lsum, "
                f"min(step) AS t_lo, max(step) AS t_hi FROM ({per_step}) JOIN {BIN_TABLE} USING (step) GROUP BY ALL")
    raise ValueError(f"unknown aggregate table {kind!r}")


def scalar_columns(con: Any, files: list[Path]) -> dict[str, str]:
    """name -> DuckDB type of the scalar columns of ``files`` (nested ones, e.g. per-head lists, are
    never aggregated), in order of appearance."""
    columns: dict[str, str] = {}
    for path in files:
        for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(str(path))})").fetchall():
            name, kind = str(row[0]), str(row[1])
            if not any(mark in kind for mark in ("[", "STRUCT", "MAP", "UNION")):
                columns.setdefault(name, kind)
    return columns


def check_columns(columns: dict[str, str]) -> None:
    """ValueError naming the problem when ``columns`` cannot be attention rows (a foreign or edited
    file: no key columns, or numbers stored as text, which would fail deep in the decay code)."""
    missing = [k for k in (*KEYS, "step") if k not in columns]
    if missing:
        raise ValueError(f"missing columns {missing}")
    text = [k for k in NUMERIC_ATTENTION if k in columns and columns[k].startswith(("VARCHAR", "BLOB"))]
    if text:
        raise ValueError(f"column {text[0]!r} holds {columns[text[0]]} values, not numbers")


def agg_paths(agg_root: Path, part: Path) -> dict[str, Path]:
    """Where the tables of the attention file ``part`` live: ``agg_root/<kind>/<part name>``."""
    return {kind: agg_root / kind / part.name for kind in KINDS}


MATERIALIZE_ROWS = 8_000_000
"""Files up to this many rows (every runner part: one batch) are loaded once into a DuckDB table
for the queries of :func:`write_part_tables` (about 60 B a row); larger ones (an old single-file
store) are scanned per query."""


def write_part_tables(part: Path, agg_root: Path, con: Any = None) -> dict[str, Any]:
    """Compute the tables of one attention file and write them under ``agg_root`` (each via a temp
    file + rename, ``steps`` last: its presence means the set is complete); returns the metadata.
    ``con``: a DuckDB connection (default: a fresh one-thread in-memory connection)."""
    import duckdb
    import pyarrow.parquet as pq

    own = con is None
    if own:
        con = duckdb.connect(config={"threads": 1, "memory_limit": "1GB"})
        con.execute("SET enable_progress_bar = false")
        register_bins(con)
    try:
        columns = scalar_columns(con, [part])
        check_columns(columns)
        floats = [c for c, t in columns.items() if FLOATING.match(t)]
        raw = f"read_parquet({literal(str(part))})"
        if pq.read_metadata(part).num_rows <= MATERIALIZE_ROWS:  # one parquet scan for the queries below
            con.execute(f"CREATE OR REPLACE TEMP TABLE part_data AS SELECT {', '.join(map(quote, columns))} FROM {raw}")
            raw = "part_data"
        counts = con.execute(
            "SELECT " + ", ".join(f"count(*) FILTER (WHERE NOT isfinite({quote(c)}))" for c in floats)
            + f" FROM {raw}").fetchall()[0] if floats else ()
        nonfinite = {c: int(n) for c, n in zip(floats, counts or ()) if n}
        con.execute(f"CREATE OR REPLACE TEMP VIEW part_rows AS "
                    f"{source_sql([part], columns, None, False, floats, relation=raw)}")
        layers = [int(r[0]) for r in con.execute(
            "SELECT DISTINCT layer FROM part_rows WHERE layer IS NOT NULL AND visual_mass IS NOT NULL ORDER BY 1"
        ).fetchall()]
        samples = con.execute(  # every sample of the file, also one without a step (the merge's unit)
            "SELECT DISTINCT CAST(variant AS VARCHAR), CAST(task AS VARCHAR), CAST(sample_id AS VARCHAR), "
            f"CAST(repeat AS BIGINT) FROM {raw} ORDER BY ALL").fetchall()
        meta = {"version": AGG_VERSION, "layers": layers, "columns": columns, "nonfinite": nonfinite,
                "samples": [list(k) for k in samples], "file": fingerprint(part)}
        blob = json.dumps(meta).encode()
        paths = agg_paths(agg_root, part)
        con.register("part_keys", keys_frame(samples))
        for kind in (*KINDS[1:], KINDS[0]):
            sql = table_sql(kind, "part_rows", columns, layer_bands(layers))
            if sql is None:
                paths[kind].unlink(missing_ok=True)
                continue
            relation = con.sql(keyed_sql(sql, "part_keys"))  # DuckDB >= 2 names it to_arrow_table, 1.x arrow
            table = (getattr(relation, "to_arrow_table", None) or relation.arrow)()
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: blob})
            paths[kind].parent.mkdir(parents=True, exist_ok=True)
            tmp = paths[kind].with_name(paths[kind].name + ".tmp")
            pq.write_table(table, tmp)
            tmp.replace(paths[kind])
        return meta
    finally:
        con.execute("DROP VIEW IF EXISTS part_rows")
        con.execute("DROP TABLE IF EXISTS part_data")
        con.unregister("part_keys")
        if own:
            con.close()


def read_meta(path: Path) -> dict[str, Any] | None:
    """The metadata of one aggregate file (None when absent, unreadable or of another version)."""
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
        meta = json.loads(raw) if raw else None
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("version") == AGG_VERSION else None


def fingerprint(path: Path) -> str:
    """Size and a hash of the parquet footer (row counts, offsets, column statistics) of ``path``:
    changes when the file is edited or replaced, not when it is moved or copied; cheap (a few KB)."""
    import hashlib

    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size < 12:
            return f"{size}:"
        fh.seek(size - 8)
        n = min(int.from_bytes(fh.read(4), "little"), size - 8)
        fh.seek(size - 8 - n)
        return f"{size}:{hashlib.blake2b(fh.read(n), digest_size=16).hexdigest()}"


def valid_tables(agg_root: Path, part: Path, meta: dict[str, Any] | None = None
                 ) -> tuple[dict[str, Any], dict[str, Path]] | None:
    """The metadata and table paths of ``part`` when its tables are complete, of this version and
    computed from the file as it is now (same fingerprint); else None (compute them again).
    ``meta``: the ``steps`` table's metadata when already read (:func:`read_metas`)."""
    paths = agg_paths(agg_root, part)
    meta = meta if meta is not None else read_meta(paths["steps"])
    if meta is None or meta.get("version") != AGG_VERSION or meta.get("file") != fingerprint(part):
        return None
    needed = [k for k in KINDS if k != "pvm" or "pvm_ratio" in meta["columns"]]
    return (meta, paths) if all(paths[k].exists() for k in needed) else None


def read_metas(con: Any, paths: list[Path]) -> dict[Path, dict[str, Any]]:
    """The metadata of many aggregate files in one DuckDB call (footers only; thousands of files at
    paper scale); files without it are left out."""
    present = [p for p in paths if p.exists()]
    if not present:
        return {}
    rows = con.execute(f"SELECT file_name, CAST(value AS VARCHAR) FROM parquet_kv_metadata({path_list(present)}) "
                       f"WHERE CAST(key AS VARCHAR) = {literal(META_KEY.decode())}").fetchall()
    by_name = {str(p): p for p in present}
    out = {}
    for name, value in rows:
        try:
            meta = json.loads(value)
        except ValueError:
            continue
        if isinstance(meta, dict) and str(name) in by_name:
            out[by_name[str(name)]] = meta
    return out
