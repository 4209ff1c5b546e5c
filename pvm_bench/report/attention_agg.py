"""The attention aggregates of one report, computed once by DuckDB (:mod:`.attention_engine`).

Everything summary, plots, compare, check and baseline need from attention.parquet is a function
of these small tables, so no report module holds attention rows (issue 22: a paper-scale run has
hundreds of millions of them). :func:`aggregate_attention` runs three streaming group-bys:

- ``steps``: one row per (generation, step): the mean ``visual_mass`` over each layer band's
  layers (``m_all``, ``m_early``, ...; float32, as pandas' mean of the float32 column was) and the
  per-step mean of the step-level columns (``entropy``, ``margin``, ``visual_mass_img{i}``);
- ``by_layer``: one row per (generation, layer or NULL) over steps >= 1: row count and, per probe
  column (every numeric non-key column), count, sum, mean, min and max;
- the heatmap: mean ``visual_mass`` per (variant, layer, fixed log bin) and the paired
  ``variant - base`` difference per (layer, bin) over the same samples (:data:`HEATMAP_EDGES`,
  independent of the run, so the group-by needs no first pass);
- with a ``pvm_ratio`` column: ``pvm``, its per (generation, layer, step) mean, and the gates.

A generation is an integer ``gen`` (row of ``gens``), numbered in (variant, task, sample_id,
repeat) order, so frames sorted by ``gen`` list samples in the order the pandas code sorted them.
:meth:`AttentionAggregates.band_samples` gives :func:`~pvm_bench.report.curves.sample_curves`'s
frame with ``task`` = ``gen`` (the sample identity within a variant).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pvm_bench.report.attention_engine import KEYS, Engine, quote
from pvm_bench.report.curves import log_bin_edges

HEATMAP_EDGES = log_bin_edges((1 << 17) - 1, 8 * 17)
"""Fixed heatmap bins: 8 per octave (edges round(2^(k/8)), duplicates dropped) up to 131072."""
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


def layer_bands(layers: Iterable[int]) -> dict[str, list[int]]:
    """Split the sorted recorded layers into early/middle/late thirds (``np.array_split``: the
    first bands get the extra layer) plus ``all``. Empty bands are omitted."""
    ls = sorted({int(x) for x in layers})
    bands: dict[str, list[int]] = {"all": ls} if ls else {}
    for name, part in zip(("early", "middle", "late"), np.array_split(np.array(ls, dtype=int), 3)):
        if part.size:
            bands[name] = [int(x) for x in part]
    return bands


@dataclass
class Heatmap:
    """Layer x bin matrices (NaN where empty) over ``edges`` (cropped to the run's longest step)."""

    edges: np.ndarray
    layers: list[int]
    grids: dict[str, np.ndarray]
    diffs: dict[str, np.ndarray] = field(default_factory=dict)


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
        return set(self.gens["variant"])

    @property
    def tasks(self) -> set[str]:
        return set(self.gens["task"])

    @property
    def has_visual(self) -> bool:
        return "m_all" in self.steps and bool(self.steps["m_all"].notna().any())

    def measures(self) -> list[str]:
        """Probe columns averaged per layer / per scope: numeric, not bool, not a key or counter."""
        return sorted(c for c, t in self.columns.items() if c not in NOT_MEASURES and NUMERIC.match(t))

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
        s = self.select(self.steps, mask)
        s = s[(s["step"] >= 1) & s[col].notna()]
        return pd.DataFrame({"task": s["gen"].to_numpy(), "sample_id": 0, "repeat": 0, "step": s["step"].to_numpy(),
                             "mass": s[col].to_numpy(dtype=float)}, columns=cols).reset_index(drop=True)

    def has_visual_in(self, mask: np.ndarray) -> bool:
        """Whether any generation in ``mask`` has a visual row (a layer and a visual_mass) at any step."""
        if "m_all" not in self.steps:
            return False
        return bool(self.select(self.steps, mask)["m_all"].notna().any())

    def step_frame(self, mask: np.ndarray, columns: list[str]) -> pd.DataFrame:
        """The per-step values of ``columns`` (all steps) of the generations in ``mask``, keyed as
        :meth:`band_samples` keys them (task = gen, sample_id = repeat = 0)."""
        s = self.select(self.steps, mask)
        out = pd.DataFrame({"task": s["gen"].to_numpy(), "sample_id": 0, "repeat": 0, "step": s["step"].to_numpy()})
        for c in columns:
            out[c] = s[c].to_numpy()
        return out

    def mean_of(self, column: str, sums: np.ndarray | float, counts: np.ndarray | float) -> float:
        """sum / count, rounded to float32 for a float32 column (as pandas' mean was); NaN when empty."""
        n = float(np.nansum(counts))
        if n == 0:
            return float("nan")
        value = float(np.nansum(sums)) / n
        return float(np.float32(value)) if self.is_float32(column) else value

    def max_visual_step(self, mask: np.ndarray) -> int:
        """The largest step with a visual row among the generations in ``mask`` (0 when none)."""
        s = self.select(self.steps, mask)
        s = s[s["m_all"].notna()] if "m_all" in s else s.iloc[:0]
        return int(s["step"].max()) if len(s) else 0

    def visual_mass_steps(self) -> pd.DataFrame:
        """(variant, task, sample_id, repeat, step, visual_mass): the mean over all recorded layers
        at every step (what the sample browser's curves average), from ``steps``."""
        if "m_all" not in self.steps:
            return pd.DataFrame(columns=[*KEYS, "step", "visual_mass"])
        return self.keyed_steps(["m_all"]).rename(columns={"m_all": "visual_mass"})

    def keyed_steps(self, columns: list[str]) -> pd.DataFrame:
        """``steps`` with the real keys (variant, task, sample_id, repeat) and ``columns``, all steps."""
        keys = self.gens.iloc[self.steps["gen"].to_numpy()].reset_index(drop=True)
        return pd.concat([keys, self.steps[["step", *columns]].reset_index(drop=True)], axis=1)


def _band_sql(bands: dict[str, list[int]]) -> list[str]:
    out = []
    for band, layers in bands.items():
        cond = "layer IS NOT NULL" if band == "all" else f"layer IN ({', '.join(str(x) for x in layers)})"
        out.append(f"CAST(avg(visual_mass) FILTER (WHERE {cond}) AS FLOAT) AS m_{band}")
    return out


def _mean_sql(col: str, columns: dict[str, str], where: str = "") -> str:
    """avg of ``col``, rounded to float32 where the column is float32 (as pandas' mean is)."""
    avg = f"avg({quote(col)})" + (f" FILTER (WHERE {where})" if where else "")
    return f"CAST({avg} AS FLOAT)" if columns.get(col) == "FLOAT" else f"CAST({avg} AS DOUBLE)"


def aggregate_attention(engine: Engine, source: str, columns: dict[str, str], reference: str) -> AttentionAggregates:
    """Run the group-bys of the module docstring over ``source`` (:func:`~.attention_engine.source_sql`);
    ``reference``: the variant the heatmap's paired differences are taken against."""
    con = engine.con
    con.execute(f"CREATE TEMP VIEW attn AS {source}")
    layers = [int(r[0]) for r in con.execute(
        "SELECT DISTINCT layer FROM attn WHERE layer IS NOT NULL AND visual_mass IS NOT NULL ORDER BY 1").fetchall()]
    bands = layer_bands(layers)
    step_cols = [c for c in ("entropy", "margin") if c in columns and NUMERIC.match(columns[c])]
    step_cols += sorted((c for c in columns if IMAGE_COLUMN.match(c)), key=lambda c: int(c[len("visual_mass_img"):]))
    parts = [*_band_sql(bands), *(f"{_mean_sql(c, columns)} AS {quote(c)}" for c in step_cols)]
    keys = ", ".join(KEYS)
    con.execute(f"CREATE TEMP TABLE steps AS SELECT {keys}, step{''.join(', ' + p for p in parts)} "
                f"FROM attn GROUP BY ALL")
    con.execute(f"CREATE TEMP TABLE gens AS SELECT row_number() OVER (ORDER BY {keys}) - 1 AS gen, * "
                f"FROM (SELECT DISTINCT {keys} FROM steps)")
    gens = con.execute(f"SELECT {keys} FROM gens ORDER BY gen").df()
    gens["repeat"] = gens["repeat"].astype(int)
    names = [f"m_{b}" for b in bands] + step_cols
    steps = con.execute(f"SELECT CAST(g.gen AS INTEGER) AS gen, s.step{''.join(', s.' + quote(n) for n in names)} "
                        f"FROM steps s JOIN gens g USING ({keys}) ORDER BY g.gen, s.step").df()
    agg = AttentionAggregates(columns, bands, gens, steps, pd.DataFrame())
    agg.by_layer = _by_layer(engine, agg)
    if layers:
        agg.heatmap = _heatmap(engine, layers, agg.max_visual_step(np.ones(len(gens), dtype=bool)), reference)
    if "pvm_ratio" in columns:
        _pvm(engine, agg)
    return agg


def _by_layer(engine: Engine, agg: AttentionAggregates) -> pd.DataFrame:
    cols = agg.columns
    parts = ["count(*) AS _rows"]
    for c in agg.measures():
        q = quote(c)
        parts += [
            f"count({q}) AS {quote(c + '|n')}",
            f"sum(CAST({q} AS DOUBLE)) AS {quote(c + '|sum')}",
            f"{_mean_sql(c, cols)} AS {quote(c + '|mean')}",
            f"CAST(min({q}) AS DOUBLE) AS {quote(c + '|min')}",
            f"CAST(max({q}) AS DOUBLE) AS {quote(c + '|max')}",
        ]
    for c in VIS_MEASURES:
        if c in cols:
            q, vis = quote(c), "visual_mass IS NOT NULL"
            parts += [f"count({q}) FILTER (WHERE {vis}) AS {quote(c + '|vn')}",
                      f"sum(CAST({q} AS DOUBLE)) FILTER (WHERE {vis}) AS {quote(c + '|vsum')}"]
    keys = ", ".join(KEYS)
    return engine.con.execute(
        f"SELECT CAST(g.gen AS INTEGER) AS gen, b.* EXCLUDE ({keys}) FROM (SELECT {keys}, layer, {', '.join(parts)} "
        f"FROM attn WHERE step >= 1 GROUP BY ALL) b JOIN gens g USING ({keys}) ORDER BY g.gen, b.layer").df()


def _heatmap(engine: Engine, layers: list[int], t_max: int, reference: str) -> Heatmap:
    """Mean visual mass per (variant, layer, fixed bin) and the paired differences vs ``reference``."""
    con = engine.con
    n_edges = int(np.searchsorted(HEATMAP_EDGES, t_max, side="right")) + 1  # the bins up to the longest step
    edges = HEATMAP_EDGES[: min(n_edges, len(HEATMAP_EDGES))]
    steps = np.arange(1, max(t_max, 1) + 1)
    bins = pd.DataFrame({"step": steps.astype(np.int32),
                         "bin": np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, len(edges) - 2)})
    con.register("heat_bins", bins)
    keys = ", ".join(KEYS)
    con.execute(f"CREATE TEMP TABLE cells AS SELECT {keys}, layer, bin, sum(CAST(visual_mass AS DOUBLE)) AS s, "
                f"count(*) AS n FROM attn JOIN heat_bins USING (step) WHERE layer IS NOT NULL AND "
                f"visual_mass IS NOT NULL GROUP BY ALL")
    grid = con.execute("SELECT variant, layer, bin, sum(s) / sum(n) AS m FROM cells GROUP BY ALL").df()
    diff = con.execute(
        "SELECT c.variant, c.layer, c.bin, avg(c.s / c.n - r.s / r.n) AS m FROM cells c JOIN cells r "
        "ON c.task = r.task AND c.sample_id = r.sample_id AND c.repeat = r.repeat AND c.layer = r.layer "
        "AND c.bin = r.bin AND r.variant = ? WHERE c.variant <> ? GROUP BY ALL",
        [reference, reference]).df()
    con.unregister("heat_bins")

    def matrices(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        out = {}
        for v, g in frame.groupby("variant", sort=False):
            m = g.set_index(["layer", "bin"])["m"].unstack("bin")
            out[str(v)] = m.reindex(index=layers, columns=range(len(edges) - 1)).to_numpy(dtype=float)
        return out

    return Heatmap(edges, layers, matrices(grid), matrices(diff) if reference in set(grid["variant"]) else {})


def _pvm(engine: Engine, agg: AttentionAggregates) -> None:
    keys = ", ".join(KEYS)
    gate = "pvm_gate" in agg.columns
    agg.pvm = engine.con.execute(
        f"SELECT CAST(g.gen AS INTEGER) AS gen, a.layer, a.step, {_mean_sql('pvm_ratio', agg.columns)} AS pvm_ratio "
        f"FROM attn a JOIN gens g USING ({keys}) WHERE a.pvm_ratio IS NOT NULL AND a.layer IS NOT NULL "
        f"AND a.step >= 1 GROUP BY ALL ORDER BY 1, 2, 3").df()
    if gate:
        rows = engine.con.execute(
            "SELECT variant, layer, first(pvm_gate) FROM attn WHERE pvm_ratio IS NOT NULL AND layer IS NOT NULL "
            "AND step >= 1 AND pvm_gate IS NOT NULL GROUP BY ALL").fetchall()
        agg.pvm_gates = {(str(v), int(layer)): float(g) for v, layer, g in rows}


__all__ = ["HEATMAP_EDGES", "AttentionAggregates", "Heatmap", "aggregate_attention", "layer_bands"]
