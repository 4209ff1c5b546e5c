"""The visual-dependence plot: accuracy(K) with the image taken away from generated token K on.

One panel per task; one line per un-ablated variant (its colour), points at the tested K with
their 95% CIs, the un-ablated value as a dashed line with its CI band on the right ("no
ablation"), and the variant's dependence K marked with a vertical tick. The x axis is symlog so
K = 0 (the text-only prior) sits at the left edge.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pvm_bench.report.dependence import BEYOND, DEPENDENCE_K, KIND, curve_points
from pvm_bench.report.plot_style import save_figure, setup_style, variant_colors

CAPTION = ("Visual dependence: accuracy when the image is removed from generated token K on (K = 0: text-only "
           "prior), 95% CI; dashed line and band = the un-ablated variant; ▲ = dependence K (smallest K from "
           "which the ablation no longer changes accuracy significantly; at the right edge = beyond tested).")


def plot_dependence(rows: pd.DataFrame, variants: list[str], out: Path) -> Path | None:
    """Write ``out`` (PNG); None when the run has no ``V+blind:after=K`` variants."""
    pts = curve_points(rows)
    if pts.empty or pts["K"].dropna().empty:
        return None
    tasks = sorted(set(pts["task"]))
    setup_style()
    colors = variant_colors(variants)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.8), squeeze=False)
    ks_all = sorted(pts["K"].dropna().unique())
    x_right = max(ks_all) * 2 + 2
    for ax, task in zip(axes[0], tasks):
        p = pts[pts["task"] == task]
        for variant in [v for v in variants if v in set(p["variant"])]:
            d = p[p["variant"] == variant]
            c = colors.get(variant, "C0")
            ref = d[d["K"].isna()]
            cur = d.dropna(subset=["K"]).sort_values("K")
            if len(ref):
                r = ref.iloc[0]
                ax.axhline(r["value"], color=c, ls="--", lw=1)
                ax.axhspan(r["ci_low"], r["ci_high"], color=c, alpha=0.08)
            err = np.vstack([cur["value"] - cur["ci_low"], cur["ci_high"] - cur["value"]])
            ax.errorbar(cur["K"], cur["value"], yerr=np.nan_to_num(err), color=c, marker="o", capsize=3,
                        label=variant)
            k = rows[(rows["kind"] == KIND) & (rows["task"] == task) & (rows["variant"] == variant)
                     & (rows["metric"] == DEPENDENCE_K)]
            if len(k) and math.isfinite(k["value"].iloc[0]):
                kx = x_right if BEYOND in str(k["flags"].iloc[0]) else k["value"].iloc[0]
                ax.plot([kx], [0.02], marker="^", color=c, ms=9, clip_on=False)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(-0.3, x_right * 1.2)
        ax.set_xticks(ks_all, [str(int(k)) for k in ks_all])
        ax.set_ylim(0, 1.05)
        ax.set_title(task)
        ax.set_xlabel("K = first generated token without the image")
        ax.set_ylabel("accuracy (95% CI)")
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, out)
