"""The attention aggregates of one report, assembled once by DuckDB (:mod:`.attention_engine`).

Everything summary, plots, compare, check and baseline need from the attention store is a function
of the tables of :mod:`pvm_bench.attention_tables` (per generation: ``steps``, ``layers``, ``cells``,
``pvm``), so no report module holds attention rows (issue 22: a paper-scale run has hundreds of
millions of them). The tables come from the files the runner wrote beside each part or, for files
without them, from raw rows by the same SQL; :func:`assemble` turns them into
:class:`AttentionAggregates`:

- ``steps``: per (generation, step) band means and step-level columns (``gen`` = row of ``gens``);
- ``by_layer``: per (generation, layer or NULL) over steps >= 1: row count and, per probe column,
  count, sum, mean, min and max;
- the heatmap: mean ``visual_mass`` per (variant, layer, fixed log bin) and the paired
  ``variant - base`` difference per (layer, bin) over the same samples (:data:`HEATMAP_EDGES`);
- with a ``pvm_ratio`` column: ``pvm``, its binned curve per (variant, layer) (moments over
  samples, see :func:`_pvm`), and the gates.

A generation is an integer ``gen`` (row of ``gens``), numbered in (variant, task, sample_id,
repeat) order, so frames sorted by ``gen`` list samples in the order the pandas code sorted them.
:meth:`AttentionAggregates.band_samples` gives :func:`~pvm_bench.report.curves.sample_curves`'s
frame with ``task`` = ``gen`` (the sample identity within a variant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pvm_bench.attention_tables import (  # noqa: F401 (FLOATING, NOT_MEASURES, VIS_MEASURES, layer_bands: public names)
    FLOATING,
    GKEY,
    HEATMAP_EDGES,
    KEYS,
    KINDS,
    NOT_MEASURES,
    NUMERIC,
    VIS_MEASURES,
    keyed_sql,
    keys_frame,
    layer_bands,
    measures,
    register_bins,
    step_columns,
    table_sql,
)
from pvm_bench.report.attention_engine import Engine, quote
from pvm_bench.report.attention_heatmap import Heatmap, heatmap
from pvm_bench.report.curves import snapped_edges


def gen_range(mask: np.ndarray) -> tuple[int, int] | None:
    """(first, last + 1) when the generations in ``mask`` are consecutive (a task or variant scope:
    ``gens`` is sorted by variant, task, ...), else None."""
    chosen = np.flatnonzero(mask)
    if chosen.size and chosen[-1] - chosen[0] + 1 == chosen.size:
        return int(chosen[0]), int(chosen[-1]) + 1
    return None


@dataclass
class AttentionAggregates:
    """See the module docstring. ``columns``: the scalar columns of the files (name -> DuckDB type)."""

    columns: dict[str, str]
    bands: dict[str, list[int]]
    gens: pd.DataFrame
    steps: pd.DataFrame
    by_layer: pd.DataFrame
    heatmap: Heatmap | None = None
    pvm: pd.DataFrame | None = None
    pvm_gates: dict[tuple[str, int], float] = field(default_factory=dict)

    @property
    def variants(self) -> set[str]:
        return set(self.gens["variant"].unique())

    @property
    def tasks(self) -> set[str]:
        return set(self.gens["task"].unique())

    @property
    def has_visual(self) -> bool:
        return "m_all" in self.steps and bool(self.steps["m_all"].notna().any())

    def measures(self) -> list[str]:
        """Probe columns averaged per layer / per scope: numeric, not bool, not a key or counter."""
        return measures(self.columns)

    def is_float32(self, column: str) -> bool:
        return self.columns.get(column) == "FLOAT"

    def gen_mask(self, task: str | None = None, variant: str | None = None) -> np.ndarray:
        """Boolean mask over ``gens`` of one task (None: all) and variant (None: all)."""
        mask = np.ones(len(self.gens), dtype=bool)
        if task is not None:
            mask &= (self.gens["task"] == task).to_numpy()
        if variant is not None:
            mask &= (self.gens["variant"] == variant).to_numpy()
        return mask

    def select(self, frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
        """Rows of ``frame`` (with a ``gen`` column) whose generation is in ``mask``."""
        return frame[mask[frame["gen"].to_numpy()]] if len(frame) else frame

    def band_samples(self, band: str, mask: np.ndarray, column: str | None = None) -> pd.DataFrame:
        """:func:`~pvm_bench.report.curves.sample_curves` of ``band`` for the generations in
        ``mask``: columns task (= gen), sample_id, repeat (0), step >= 1, mass (float64)."""
        col = column or f"m_{band}"
        cols = ["task", "sample_id", "repeat", "step", "mass"]
        if col not in self.steps:
            return pd.DataFrame(columns=cols)
        rows, starts = self._band_rows(col)
        span = gen_range(mask)
        if span is not None:  # a task/variant scope: a slice
            rows = rows[int(starts[span[0]]): int(starts[span[1]])]
        else:
            rows = rows[mask[self.steps["gen"].to_numpy()[rows]]]
        zeros = np.zeros(rows.size, dtype=np.int8)  # constant keys: 1 byte a row, not 8
        return pd.DataFrame({"task": self.steps["gen"].to_numpy()[rows], "sample_id": zeros, "repeat": zeros,
                             "step": self.steps["step"].to_numpy()[rows],
                             "mass": self.steps[col].to_numpy()[rows].astype(float)}, columns=cols, copy=False)

    def _band_rows(self, col: str) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``steps`` with step >= 1 and a value of ``col`` (int32 row numbers) and where
        each generation's rows start among them: computed once per column (``steps`` is sorted by
        gen, so a scope of consecutive generations is a slice, not a filtered copy of 13M rows)."""
        cache = self.__dict__.setdefault("_band_cache", {})
        if col not in cache:
            gen, step = self.steps["gen"].to_numpy(), self.steps["step"].to_numpy()
            rows = np.flatnonzero((step >= 1) & ~np.isnan(self.steps[col].to_numpy())).astype(np.int32)
            for known in cache.values():  # bands measured at the same steps share one array (51 MB at paper scale)
                if np.array_equal(known[0], rows):
                    cache[col] = known
                    break
            else:
                cache[col] = (rows, np.searchsorted(gen[rows], np.arange(len(self.gens) + 1)))
        return cache[col]

    def _visual_last_step(self) -> np.ndarray:
        """Per generation, its largest step with a visual row (a layer and a visual_mass), -1 when
        none: computed once (13M rows), so scope questions cost one pass over the generations."""
        if "_visual_last" not in self.__dict__:
            last = np.full(len(self.gens), -1, dtype=np.int64)
            if "m_all" in self.steps:
                vis = ~np.isnan(self.steps["m_all"].to_numpy())
                gen, step = self.steps["gen"].to_numpy()[vis], self.steps["step"].to_numpy()[vis]
                if gen.size:  # sorted by (gen, step): each generation's last visual row ends its run
                    ends = np.append(np.flatnonzero(gen[1:] != gen[:-1]), gen.size - 1)
                    last[gen[ends]] = step[ends]
            self.__dict__["_visual_last"] = last
        return self.__dict__["_visual_last"]

    def visual_lengths(self, mask: np.ndarray) -> np.ndarray:
        """The last generated step (>= 1) with a visual row of each generation in ``mask`` that has
        one: :func:`~pvm_bench.report.curves.sample_lengths` of ``band_samples("all", mask)``."""
        last = self._visual_last_step()[mask]
        return last[last >= 1]

    def has_visual_in(self, mask: np.ndarray) -> bool:
        """Whether any generation in ``mask`` has a visual row (a layer and a visual_mass) at any step."""
        return bool(np.any(self._visual_last_step()[mask] >= 0))

    def _gen_rows(self, mask: np.ndarray) -> slice | np.ndarray:
        """The rows of ``steps`` of the generations in ``mask``: a slice for a range of generations
        (a task/variant scope; ``steps`` is sorted by gen), else a boolean mask."""
        span = gen_range(mask)
        if span is not None:
            starts = self.__dict__.get("_gen_starts")
            if starts is None:
                starts = np.searchsorted(self.steps["gen"].to_numpy(), np.arange(len(self.gens) + 1))
                self.__dict__["_gen_starts"] = starts
            return slice(int(starts[span[0]]), int(starts[span[1]]))
        return mask[self.steps["gen"].to_numpy()]

    def step_frame(self, mask: np.ndarray, columns: list[str]) -> pd.DataFrame:
        """The per-step values of ``columns`` (all steps) of the generations in ``mask``, keyed as
        :meth:`band_samples` keys them (task = gen, sample_id = repeat = 0)."""
        keep = self._gen_rows(mask)
        gen = self.steps["gen"].to_numpy()[keep]
        zeros = np.zeros(gen.size, dtype=np.int8)
        out = {"task": gen, "sample_id": zeros, "repeat": zeros, "step": self.steps["step"].to_numpy()[keep]}
        out.update({c: self.steps[c].to_numpy()[keep] for c in columns})
        return pd.DataFrame(out, copy=False)

    def mean_of(self, column: str, sums: np.ndarray | float, counts: np.ndarray | float) -> float:
        """sum / count, rounded to float32 for a float32 column (as pandas' mean was); NaN when empty."""
        n = float(np.nansum(counts))
        if n == 0:
            return float("nan")
        value = float(np.nansum(sums)) / n
        return float(np.float32(value)) if self.is_float32(column) else value

    def max_visual_step(self, mask: np.ndarray) -> int:
        """The largest step with a visual row among the generations in ``mask`` (0 when none)."""
        return max(0, int(self._visual_last_step()[mask].max(initial=-1)))

    def keyed_steps(self, columns: list[str]) -> pd.DataFrame:
        """``steps`` with the real keys (variant, task, sample_id, repeat) and ``columns``, all steps."""
        gen = self.steps["gen"].to_numpy()
        # categorical keys (sorted categories: same groups and order as the strings): 13M rows of four
        # string keys would take gigabytes at paper scale
        keys = {}
        for k in KEYS[:3]:
            per_gen = pd.Categorical(self.gens[k].astype(str))  # categories sorted
            keys[k] = pd.Categorical.from_codes(per_gen.codes[gen], per_gen.categories)
        keys["repeat"] = self.gens["repeat"].to_numpy()[gen]
        return pd.concat([pd.DataFrame(keys), self.steps[["step", *columns]].reset_index(drop=True)], axis=1)


def aggregate_attention(engine: Engine, source: str, columns: dict[str, str], reference: str) -> AttentionAggregates:
    """The aggregates of the raw rows in ``source`` (:func:`~pvm_bench.attention_tables.source_sql`):
    the tables of :mod:`pvm_bench.attention_tables` over every row at once (layer bands from all
    recorded layers), then :func:`assemble`. ``reference``: the variant of the heatmap's differences."""
    con = engine.con
    register_bins(con)
    con.execute(f"CREATE TEMP VIEW attn AS {source}")
    layers = [
        int(r[0])
        for r in con.execute(
            "SELECT DISTINCT layer FROM attn WHERE layer IS NOT NULL AND visual_mass IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    con.register("attn_keys", keys_frame(con.execute(f"SELECT DISTINCT {', '.join(KEYS)} FROM attn").fetchall()))
    for kind in KINDS:
        sql = table_sql(kind, "attn", columns, layer_bands(layers))
        if sql is not None:
            con.execute(f"CREATE TEMP TABLE agg_{kind} AS {keyed_sql(sql, 'attn_keys')}")
    return assemble(engine, columns, layers, reference)


def assemble(engine: Engine, columns: dict[str, str], layers: list[int], reference: str,
             keys: pd.DataFrame | None = None) -> AttentionAggregates:
    """:class:`AttentionAggregates` from the relations ``agg_steps``, ``agg_layers``, ``agg_cells``
    and (with a ``pvm_ratio`` column) ``agg_pvm`` on ``engine`` (tables or views, keyed by the
    generation keys and their :data:`~pvm_bench.attention_tables.GKEY`;
    :mod:`pvm_bench.attention_tables`), computed from the raw rows or read from the files the runner
    wrote: both give the same numbers. ``keys``: a :func:`~pvm_bench.attention_tables.keys_frame` of
    every generation the relations may hold (from the files' metadata; default: read from ``agg_steps``)."""
    con = engine.con
    bands = layer_bands(layers)
    if keys is None:
        keys = keys_frame(con.execute(f"SELECT DISTINCT {', '.join(KEYS)} FROM agg_steps").fetchall())
    # the generations with a step row, numbered in (variant, task, sample_id, repeat) order
    present = {str(r[0]) for r in con.execute("DESCRIBE agg_steps").fetchall()}
    visual = "max(step) FILTER (WHERE m_all IS NOT NULL)" if "m_all" in present else "NULL"
    per_gen = con.execute(f"SELECT {GKEY}, {visual} FROM agg_steps GROUP BY ALL").fetchall()  # one scan for both
    stepped = {int(g) for g, _ in per_gen}
    t_max = max((int(t) for _, t in per_gen if t is not None), default=0)  # the longest step with a visual row
    gens = keys[keys[GKEY].isin(stepped)].drop_duplicates(list(KEYS)).sort_values(list(KEYS)).reset_index(drop=True)
    if not gens[GKEY].is_unique:  # 17,606 generations: a chance of 1e-11
        raise ValueError("two generations share a 64-bit key (gkey): report this run to pvm-bench")
    gens.insert(0, "gen", np.arange(len(gens), dtype=np.int64))
    con.register("gens", gens)
    gens = gens[list(KEYS)].copy()
    agg = AttentionAggregates(columns, bands, gens, pd.DataFrame(), pd.DataFrame())
    # DuckDB's big joins first, while Python holds no per-step rows: the two never peak together
    if layers:
        agg.heatmap = heatmap(engine, layers, t_max, reference)
    if "pvm_ratio" in columns:
        _pvm(engine, agg)
    names = [n for n in [f"m_{b}" for b in bands] + step_columns(columns) if n in present]
    agg.steps = _fetch_columns(con, (
        f"SELECT CAST(g.gen AS INTEGER) AS gen, CAST(s.step AS INTEGER) AS step"
        f"{''.join(', s.' + quote(n) for n in names)} "
        f"FROM agg_steps s JOIN gens g USING ({GKEY})"
    ), order_by=("gen", "step"))
    agg.by_layer = _by_layer(engine, agg)
    return agg


def _fetch_columns(con: Any, sql: str, order_by: tuple[str, str] | None = None,
                   batch_rows: int = 1 << 20) -> pd.DataFrame:
    """The result of ``sql`` as a frame of numpy columns, filled batch by batch: one copy of the
    rows in Python (13M per-step rows at paper scale), where ``.df()`` holds an Arrow copy and a
    pandas copy at once. ``order_by``: two non-negative int32 columns, unique together, to sort the
    rows by, here in numpy (an ORDER BY in DuckDB would hold a sorted copy of every row while they
    stream out)."""
    reader = con.sql(sql).to_arrow_reader(batch_rows)  # a relation streams; execute() would copy the rows first
    schema = reader.schema
    chunks: dict[str, list[np.ndarray]] = {f.name: [] for f in schema}
    for batch in reader:
        for name, column in zip(schema.names, batch.columns):
            chunks[name].append(column.to_numpy(zero_copy_only=False))
    columns = {}
    for f in schema:  # one column's chunks at a time: they are freed as its array is built
        parts = chunks.pop(f.name)
        columns[f.name] = np.concatenate(parts) if parts else np.zeros(0, dtype=f.type.to_pandas_dtype())
        del parts
    if order_by is not None:
        order = _sort_order(columns[order_by[0]], columns[order_by[1]])
        if order is not None:
            for name in columns:  # one column's copy at a time
                columns[name] = columns[name][order]
    return pd.DataFrame(columns, copy=False)


def _sort_order(major: np.ndarray, minor: np.ndarray) -> np.ndarray | None:
    """The permutation that sorts the rows by (major, minor); None when they already are. The rows
    of one ``major`` value usually come together with ``minor`` ascending (a table file holds each
    generation's steps in order): then the runs are put in order, O(rows) in int32, instead of
    sorting 13M 64-bit keys (three key arrays and the int64 order: 400 MB at paper scale)."""
    n = major.size
    if n == 0:
        return None
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    np.not_equal(major[1:], major[:-1], out=new_run[1:])
    starts = np.flatnonzero(new_run)
    rising = np.diff(minor) > 0
    rising |= new_run[1:]
    heads = major[starts]
    run_order = np.argsort(heads, kind="stable")
    if bool(rising.all()) and bool(np.all(np.diff(heads[run_order]) > 0)) and n < (1 << 31):
        if bool(np.all(run_order[1:] > run_order[:-1])):
            return None  # sorted already
        lengths = np.diff(np.append(starts, n))[run_order]
        shift = starts[run_order] - (np.cumsum(lengths) - lengths)  # where each run moves from
        order = np.arange(n, dtype=np.int32)
        order += np.repeat(shift.astype(np.int32), lengths)
        return order
    key = major.astype(np.int64)
    key <<= 32
    key |= minor.astype(np.int64)
    return np.argsort(key)


def _by_layer(engine: Engine, agg: AttentionAggregates) -> pd.DataFrame:
    keys = ", ".join(KEYS)
    frame = engine.con.execute(
        f"SELECT CAST(g.gen AS INTEGER) AS gen, b.* EXCLUDE ({keys}, {GKEY}) FROM agg_layers b "
        f"JOIN gens g USING ({GKEY}) ORDER BY g.gen, b.layer"
    ).df()
    frame = frame.drop(columns=["pvm_gate|gate"], errors="ignore")
    for col in frame.columns:  # a file without the column (base has no pvm_ratio): no values, count 0
        if col == "_rows" or col.endswith(("|n", "|vn")):
            frame[col] = frame[col].fillna(0).astype("int64")
    return frame


def _pvm(engine: Engine, agg: AttentionAggregates) -> None:
    """``agg.pvm``: the binned ``pvm_ratio`` curve per (variant, layer) (:func:`curve_from_moments`'s
    input: per bin the mean and sd over samples of each sample's bin mean, n, mean ln step, first and
    last step), on the 40 log bins snapped to the fixed bins (:func:`snapped_edges`), in SQL: the
    per-sample cells never reach pandas. ``agg.pvm_gates``: each PVM layer's gate."""
    con = engine.con
    t_max = con.execute("SELECT max(t_hi) FROM agg_pvm").fetchall()[0][0]
    if t_max is None:
        agg.pvm = pd.DataFrame()
    else:
        edges = snapped_edges(HEATMAP_EDGES, int(t_max))
        fine = np.arange(len(HEATMAP_EDGES) - 1)
        coarse = np.clip(np.searchsorted(edges, HEATMAP_EDGES[:-1], side="right") - 1, 0, len(edges) - 2)
        con.register("pvm_bins", pd.DataFrame({"bin": fine.astype(np.int16), "cbin": coarse.astype(np.int32)}))
        agg.pvm = con.execute(
            "SELECT g.variant, CAST(layer AS INTEGER) AS layer, cbin AS bin, avg(s / n) AS mass, "
            "stddev_samp(s / n) AS sd, count(*) AS n, sum(l) / sum(n) AS logt, min(lo) AS t_lo, max(hi) AS t_hi "
            f"FROM (SELECT {GKEY}, layer, cbin, sum(s) AS s, sum(n) AS n, sum(lsum) AS l, min(t_lo) AS lo, "
            f"max(t_hi) AS hi FROM agg_pvm JOIN pvm_bins USING (bin) GROUP BY ALL) JOIN gens g USING ({GKEY}) "
            "GROUP BY ALL ORDER BY g.variant, layer, bin"
        ).df()
    if "pvm_gate" in agg.columns:
        rows = con.execute(
            'SELECT variant, layer, min("pvm_gate|gate") FROM agg_layers WHERE layer IS NOT NULL '
            'AND "pvm_gate|gate" IS NOT NULL GROUP BY ALL'
        ).fetchall()
        agg.pvm_gates = {(str(v), int(layer)): float(g) for v, layer, g in rows}


__all__ = ["HEATMAP_EDGES", "AttentionAggregates", "Heatmap", "aggregate_attention", "assemble", "layer_bands"]
