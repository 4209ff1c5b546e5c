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


def variant_colors(variants: list[str]) -> dict[str, tuple[float, float, float] | str]:
    """Stable colours: ``base`` dark grey, the others from seaborn's colour-blind palette."""
    palette = sns.color_palette("colorblind", max(len(variants), 1))
    others = [v for v in variants if v != REFERENCE_VARIANT]
    colors: dict[str, tuple[float, float, float] | str] = {REFERENCE_VARIANT: "#404040"}
    for v, c in zip(others, palette):
        colors[v] = c
    return colors
