"""Per-image visual mass vs generated position (``--per-image`` runs).

One panel per task; colour = variant, line style = image (solid = the first image, dashed = the
most recently shown one, dotted = others), mean over samples and layers, log-spaced x.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pvm_bench.report.curves import log_bin_edges
from pvm_bench.report.per_image import mean_curves, per_sample_curves
from pvm_bench.report.plot_style import save_figure, setup_style, variant_colors

CAPTION = ("Visual mass per image vs generated position (each sample's mean over layers and the steps of a "
           "log-spaced bin, then the mean over samples; band = 95% CI over samples, normal approximation): solid = "
           "first image of the prompt, dashed = the most recently shown image of each sample, dotted = other images.")


def binned_with_ci(d: pd.DataFrame, edges: np.ndarray) -> pd.DataFrame:
    """Per log-spaced bin of one (task, variant, image) long frame (:func:`per_sample_curves`):
    step (mean), mass (mean over samples of each sample's bin mean), half (95% normal half-width,
    0 for a bin with one sample), n."""
    d = d.assign(bin=pd.cut(d["step"], edges, right=False))
    per = d.groupby(["bin", "sample_id", "repeat"], observed=True).agg(step=("step", "mean"), mass=("mass", "mean"))
    b = per.groupby(level="bin", observed=True).agg(step=("step", "mean"), mass=("mass", "mean"),
                                                    sd=("mass", "std"), n=("mass", "size"))
    b["half"] = (1.96 * b["sd"] / np.sqrt(b["n"])).fillna(0.0)
    return b.reset_index(drop=True)


def _same_as_last(curves: pd.DataFrame, image: str) -> bool:
    """True when image ``image`` is the last image of every sample (so its line is the "last" line)."""
    last = curves[curves["image"] == "last"]["mass"].to_numpy()
    mine = curves[curves["image"] == image]["mass"].to_numpy()
    return len(mine) == len(last) and bool(np.array_equal(mine, last))


def plot_per_image(attention: pd.DataFrame | None, variants: list[str], out: Path) -> Path | None:
    """Write ``out`` (PNG); None when attention.parquet has no per-image columns."""
    curves = mean_curves(attention)
    if curves.empty:
        return None
    tasks = sorted(set(curves["task"]))
    setup_style()
    colors = variant_colors(variants)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.6 * len(tasks), 3.8), squeeze=False)
    styles = {"0": "-", "last": "--"}
    edges = log_bin_edges(int(curves["step"].max()), n_bins=23)
    per = per_sample_curves(attention)  # type: ignore[arg-type]
    per = per[per["step"] >= 1]
    for ax, task in zip(axes[0], tasks):
        c = curves[curves["task"] == task]
        for variant in [v for v in variants if v in set(c["variant"])]:
            cv = c[c["variant"] == variant]
            for image in dict.fromkeys(cv["image"]):
                if image != "last" and image != "0" and _same_as_last(cv, image):
                    continue  # every sample's last image: drawn once, as "last"
                # log-spaced bins: per-step means of a character-level task are spiky
                sel = per[(per["task"] == task) & (per["variant"] == variant) & (per["image"] == image)]
                binned = binned_with_ci(sel, edges)
                color = colors.get(variant, "C0")
                ax.fill_between(binned["step"], binned["mass"] - binned["half"], binned["mass"] + binned["half"],
                                color=color, alpha=0.15, lw=0)
                ax.plot(binned["step"], binned["mass"], ls=styles.get(str(image), ":"),
                        color=color, lw=1.5, marker=".", label=f"{variant} img {image}")
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("generated position t")
        ax.set_ylabel("visual mass on the image's keys")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, out)
