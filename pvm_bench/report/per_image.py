"""Per-image visual mass (``--per-image``): how the attention to each image of a prompt decays.

The attention probe run with ``per_image`` writes ``visual_mass_img{i}`` columns to
attention.parquet (image i in prompt order, NaN for rows with fewer images). This module turns
them into metric rows (``kind="image"``, descriptive: ``higher_is_better=None``):

- per (task, variant, image i, step window): ``metric = "visual_mass_img{i}"``, ``band`` =
  ``"steps:{lo}-{hi}"``, ``t`` = hi, value = mean over samples of each sample's mean over layers
  and steps in the window, 95% bootstrap CI over samples, ``n`` = samples;
- ``image = "last"`` (``metric = "visual_mass_img_last"``) = the most recently shown image of
  every sample (image n-1 of a sample with n images), so "first vs most recent" is one
  comparison even when samples hold different numbers of images.

Steps count as in attention.parquet: 0 is the prefill (the first generated token), step t
feeds generated token t; windows cover generated steps 1.. .
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from pvm_bench.report.attention_agg import AttentionAggregates
from pvm_bench.report.dependence import split_ablated
from pvm_bench.report.rows import row
from pvm_bench.report.rundata import RunData
from pvm_bench.report.stats import bootstrap_ci
from pvm_bench.report.views import SMALL_N_MARK, fmt_ci, mark

KIND = "image"
WINDOWS: tuple[tuple[int, int], ...] = ((1, 16), (17, 64), (65, 256), (257, 1024), (1025, 4096))
"""Generated-step windows (inclusive) the per-image mass is averaged over."""
NOTE = ("Visual mass on each image's keys (mean over layers and the steps of the window; 95% bootstrap CI over "
        "samples). img0 = the first image of the prompt, last = the most recently shown image of each sample. "
        "† = fewer than 30 samples; one sample has no CI.")
_COL = re.compile(r"^visual_mass_img(\d+)$")


def metric_name(image: str) -> str:
    """``"0"`` -> ``visual_mass_img0``; ``"last"`` -> ``visual_mass_img_last``."""
    return "visual_mass_img_last" if image == "last" else f"visual_mass_img{image}"


def image_label(metric: str) -> str:
    """Inverse of :func:`metric_name`: ``"0"`` or ``"last"``."""
    return metric.replace("visual_mass_img", "").lstrip("_")


def image_columns(frame: pd.DataFrame | None) -> list[str]:
    """The ``visual_mass_img{i}`` columns present, by image index."""
    if frame is None:
        return []
    from natsort import natsorted  # img2 before img10

    return natsorted(c for c in frame.columns if _COL.match(str(c)))


def image_frame(agg: AttentionAggregates | None) -> pd.DataFrame | None:
    """The per-step means of the ``visual_mass_img{i}`` columns (keys variant, task, sample_id,
    repeat, step) from the run's attention aggregates; None without per-image columns."""
    if agg is None:
        return None
    cols = image_columns(agg.steps)
    return agg.keyed_steps(cols) if cols else None


def per_sample_curves(attn: pd.DataFrame) -> pd.DataFrame:
    """Long frame (task, variant, sample_id, repeat, step, image, mass): per-image mass averaged over
    layers; ``image`` is the index as a string, plus ``"last"``."""
    cols = image_columns(attn)
    if not cols:
        return pd.DataFrame(columns=["task", "variant", "sample_id", "repeat", "step", "image", "mass"])
    keys = ["task", "variant", "sample_id", "repeat", "step"]
    by_step = attn.groupby(keys, sort=False)[cols].mean().reset_index()
    long = by_step.melt(id_vars=keys, value_vars=cols, var_name="image", value_name="mass").dropna(subset=["mass"])
    long["image"] = long["image"].str.replace("visual_mass_img", "", regex=False)
    idx = long["image"].astype(int)
    n_img = idx.groupby([long[k] for k in keys[:4]]).transform("max")
    last = long[idx == n_img].assign(image="last")
    return pd.concat([long, last], ignore_index=True)


def image_rows(data: RunData, seed: int = 0) -> list[dict[str, Any]]:
    """The ``kind="image"`` rows of a run (empty without per-image columns)."""
    attn = image_frame(data.agg)
    if not image_columns(attn):
        return []
    curves = per_sample_curves(attn)  # type: ignore[arg-type]
    out: list[dict[str, Any]] = []
    for (task, variant, image), c in curves.groupby(["task", "variant", "image"], sort=False):
        for lo, hi in WINDOWS:
            w = c[(c["step"] >= lo) & (c["step"] <= hi)]
            if w.empty:
                continue
            per_sample = w.groupby(["sample_id", "repeat"])["mass"].mean().to_numpy(dtype=float)
            ci = bootstrap_ci(per_sample, seed=seed)
            out.append(row(task, variant, metric_name(str(image)), ci.mean, band=f"steps:{lo}-{hi}", t=float(hi),
                           ci_low=ci.low, ci_high=ci.high, n=int(per_sample.size), kind=KIND,
                           higher_is_better=None, flags="small_n" if 0 < per_sample.size < 30 else ""))
    return out


def image_view(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """One line per (task, un-ablated variant, image): "mean [CI] (n)" per step window."""
    d = rows[rows["kind"] == KIND]
    d = d[[split_ablated(v) is None for v in d["variant"]]]  # V+blind:after=K: in metrics.csv only
    if d.empty:
        return pd.DataFrame()
    order = {v: i for i, v in enumerate(variants)}

    def image_key(metric: str) -> float:
        tail = image_label(metric)
        return math.inf if tail == "last" else float(tail)

    lines = []
    keys = sorted({(t, v, m) for t, v, m in zip(d["task"], d["variant"], d["metric"])},
                  key=lambda k: (k[0], order.get(k[1], 1e9), image_key(k[2])))
    windows = [f"steps:{lo}-{hi}" for lo, hi in WINDOWS if f"steps:{lo}-{hi}" in set(d["band"])]
    for task, variant, metric in keys:
        r = d[(d["task"] == task) & (d["variant"] == variant) & (d["metric"] == metric)].set_index("band")
        line: dict[str, Any] = {"task": task, "variant": variant, "image": image_label(metric)}
        for w in windows:
            line[w.replace("steps:", "t ")] = _cell(r.loc[w]) if w in r.index else "–"
        lines.append(line)
    return pd.DataFrame(lines)


def _cell(r: pd.Series) -> str:
    """"mean [CI] (n=N)", n marked † when small; one sample has no interval ("no CI"), not a
    zero-width one."""
    n = int(r["n"])
    if n == 1:
        return f"{fmt_ci(r['value'], None, None, digits=4)} (n=1{SMALL_N_MARK}, no CI)"
    return f"{fmt_ci(r['value'], r['ci_low'], r['ci_high'], digits=4)} (n={n}{mark(n)})"


def mean_curves(attn: pd.DataFrame | None) -> pd.DataFrame:
    """(task, variant, image, step, mass) mean over samples, for the plot."""
    if not image_columns(attn):
        return pd.DataFrame(columns=["task", "variant", "image", "step", "mass"])
    c = per_sample_curves(attn)  # type: ignore[arg-type]
    c = c[c["step"] >= 1]
    return c.groupby(["task", "variant", "image", "step"], sort=False)["mass"].mean().reset_index()


__all__ = [
    "KIND",
    "NOTE",
    "WINDOWS",
    "image_columns",
    "image_label",
    "metric_name",
    "image_rows",
    "image_view",
    "mean_curves",
    "per_sample_curves",
    "image_frame",
]
