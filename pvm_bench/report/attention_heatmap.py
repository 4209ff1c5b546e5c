"""The layer x position heatmap of visual mass and its paired differences between variants.

From the ``cells`` table of :mod:`pvm_bench.attention_tables` (per generation, layer and fixed log
bin: the sum and count of ``visual_mass``): the mean per (variant, layer, bin) over every row, and
per variant the mean over samples of its cell minus the reference variant's cell of the same sample
(only cells both have). At paper scale the table holds 28M cells; they stream once out of DuckDB,
with each row's place computed there, into one dense (sample x layer x bin) array per variant, so
the pairing is an array difference (a hash join or grouping of 28M cells took ~10 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pvm_bench.attention_tables import GKEY, HEATMAP_EDGES
from pvm_bench.report.attention_engine import Engine


@dataclass
class Heatmap:
    """Layer x bin matrices (NaN where empty) over ``edges`` (cropped to the run's longest step)."""

    edges: np.ndarray
    layers: list[int]
    grids: dict[str, np.ndarray]
    diffs: dict[str, np.ndarray] = field(default_factory=dict)


def heatmap(engine: Engine, layers: list[int], t_max: int, reference: str, batch_rows: int = 1 << 21) -> Heatmap:
    """Mean visual mass per (variant, layer, fixed bin) of the relations ``agg_cells`` and ``gens``
    on ``engine``, and the paired differences vs ``reference`` (see the module docstring). Memory:
    variants x samples x layers x bins x 8 bytes (2 x 8,803 x 36 x 47: 238 MB at paper scale)."""
    con = engine.con
    n_edges = int(np.searchsorted(HEATMAP_EDGES, t_max, side="right")) + 1  # the bins up to the longest step
    edges = HEATMAP_EDGES[: min(n_edges, len(HEATMAP_EDGES))]
    n_bins, n_layers = len(edges) - 1, len(layers)
    gens = con.execute(f"SELECT {GKEY}, variant, task, sample_id, repeat FROM gens").df()
    names = sorted(gens["variant"].astype(str).unique())
    n_samples = 0
    if len(gens):  # each generation's variant and sample (task, sample_id, repeat) as numbers
        pid = gens.groupby(["task", "sample_id", "repeat"], sort=True).ngroup().to_numpy()
        n_samples = int(pid.max()) + 1
        vid = pd.Categorical(gens["variant"].astype(str), names).codes.astype(np.int64)
        con.register("heat_ids", pd.DataFrame({GKEY: gens[GKEY], "vid": vid, "cell0": (vid * n_samples + pid)}))
        con.register("heat_layers", pd.DataFrame({"layer": np.asarray(layers, dtype=np.int32),
                                                  "li": np.arange(n_layers, dtype=np.int64)}))
    per_sample = n_layers * n_bins
    cell_mass = np.full(len(names) * n_samples * per_sample, np.nan)
    sums = np.zeros((2, len(names) * per_sample))  # (s, n) per (variant, layer, bin)
    if len(gens):
        # each row's place: its cell in the dense arrays and its (variant, layer, bin)
        reader = con.sql(
            f"SELECT g.cell0 * {per_sample} + l.li * {n_bins} + c.bin AS cell, "
            f"g.vid * {per_sample} + l.li * {n_bins} + c.bin AS vlb, c.s, CAST(c.n AS DOUBLE) AS n "
            f"FROM agg_cells c JOIN heat_ids g USING ({GKEY}) JOIN heat_layers l USING (layer) "
            f"WHERE c.bin BETWEEN 0 AND {n_bins - 1}"
        ).to_arrow_reader(batch_rows)
        for batch in reader:
            cell, vlb, s, n = (col.to_numpy(zero_copy_only=False) for col in batch.columns)
            cell_mass[cell] = s / n
            sums[0] += np.bincount(vlb, s, sums.shape[1])
            sums[1] += np.bincount(vlb, n, sums.shape[1])
        con.unregister("heat_ids")
        con.unregister("heat_layers")
    shape = (len(names), n_layers, n_bins)
    s_tot, n_tot = sums[0].reshape(shape), sums[1].reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n_tot > 0, s_tot / n_tot, np.nan)
    grids = {v: mean[i] for i, v in enumerate(names) if bool((n_tot[i] > 0).any())}
    diffs: dict[str, np.ndarray] = {}
    if reference in grids:
        by_variant = cell_mass.reshape(len(names), n_samples, per_sample)
        ref = by_variant[names.index(reference)]
        for i, v in enumerate(names):
            if v == reference:
                continue
            d = by_variant[i] - ref  # NaN unless both have the cell
            paired = (~np.isnan(d)).sum(axis=0)
            if paired.any():
                total = np.nan_to_num(d, copy=False, nan=0.0).sum(axis=0)
                with np.errstate(invalid="ignore"):
                    diffs[v] = (total / np.where(paired > 0, paired, np.nan)).reshape(n_layers, n_bins)
    return Heatmap(edges, layers, grids, diffs)


__all__ = ["Heatmap", "heatmap"]
