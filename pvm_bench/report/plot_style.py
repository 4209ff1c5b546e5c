"""Shared look of the report's PNG plots: resolution, seaborn theme, stable variant colours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import seaborn as sns

REFERENCE_VARIANT = "base"
DPI = 110


def setup_style() -> None:
    """Seaborn whitegrid theme at notebook scale (called by every plot function)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)


def save_figure(fig: Any, out: Path) -> Path:
    """Write ``fig`` to ``out`` as PNG at :data:`DPI` and close it (pyplot keeps open figures alive).
    The file is written atomically through :func:`pvm_bench.results.atomic_write_bytes` (unique temp
    name, never through a symlink)."""
    import io

    from pvm_bench.results import atomic_write_bytes

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    atomic_write_bytes(Path(out), buf.getvalue())
    return out


def inch_margins(fig: Any, left: float = 0.8, right: float = 0.2, bottom: float = 0.75, top: float = 0.45,
                 hspace: float = 0.9, wspace: float = 0.6) -> None:
    """Fixed margins and gaps between panels, in inches, for a grid of panels. ``tight_layout``
    draws the whole figure once to measure its text (for an 8-panel figure with thousands of
    labels, as long as the PNG itself), so figures whose text is known keep these instead."""
    width, height = fig.get_figwidth(), fig.get_figheight()
    axes = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    nrows, ncols = axes[0].get_subplotspec().get_gridspec().get_geometry() if axes else (1, 1)
    panel_w = (width - left - right - (ncols - 1) * wspace) / ncols
    panel_h = (height - bottom - top - (nrows - 1) * hspace) / nrows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wspace / panel_w, hspace=hspace / panel_h)


def variant_colors(variants: list[str]) -> dict[str, tuple[float, float, float] | str]:
    """Stable colours: ``base`` dark grey, the others from seaborn's colour-blind palette."""
    palette = sns.color_palette("colorblind", max(len(variants), 1))
    others = [v for v in variants if v != REFERENCE_VARIANT]
    colors: dict[str, tuple[float, float, float] | str] = {REFERENCE_VARIANT: "#404040"}
    for v, c in zip(others, palette):
        colors[v] = c
    return colors
