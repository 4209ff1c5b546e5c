"""Per-image visual mass vs generated position (``--per-image`` runs).

One panel per task; colour = variant, line style = image (solid = the first image, dashed = the
most recently shown one, dotted = others), mean over samples and layers, log-spaced x.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from pvm_bench.report.per_image import mean_curves
from pvm_bench.report.plot_style import DPI, setup_style, variant_colors

CAPTION = ("Visual mass per image vs generated position (mean over samples and layers): solid = first image of "
           "the prompt, dashed = the most recently shown image of each sample, dotted = other images.")


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
    for ax, task in zip(axes[0], tasks):
        c = curves[curves["task"] == task]
        for variant in [v for v in variants if v in set(c["variant"])]:
            for image, d in c[c["variant"] == variant].groupby("image", sort=False):
                d = d.sort_values("step")
                ax.plot(d["step"], d["mass"], ls=styles.get(str(image), ":"), color=colors.get(variant, "C0"),
                        lw=1.4, label=f"{variant} img {image}")
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("generated position t")
        ax.set_ylabel("visual mass on the image's keys")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out
