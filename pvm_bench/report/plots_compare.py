"""The plot of compare.html: every ranked (run, variant) with its headline value and 95% CI.

Drawn from the leaderboard frame (:func:`pvm_bench.report.leaderboard.rank`), so the picture
and the table show the same numbers; returned as PNG bytes (compare.html embeds it as base64).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pvm_bench.report.plot_style import DPI, setup_style, variant_colors

CAPTION = ("Headline value per run and variant (the leaderboard's accuracy, or macro with several tasks), "
           "95% CI; one row per ranked line, best first.")


def leaderboard_png(board: pd.DataFrame) -> bytes | None:
    """PNG bytes of the leaderboard's headline column with CI bars, or None when nothing is finite."""
    if board.empty:
        return None
    col = "macro" if "macro" in board and board["macro"].notna().any() else "accuracy"
    b = board[board[col].notna()]
    if b.empty:
        return None
    setup_style()
    colors = variant_colors(list(dict.fromkeys(b["variant"])))
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(b) + 1.2))
    y = np.arange(len(b))[::-1]
    lo = (b[col] - b[f"{col}_ci_low"]).clip(lower=0).fillna(0)
    hi = (b[f"{col}_ci_high"] - b[col]).clip(lower=0).fillna(0)
    for yi, (_, r), l_, h_ in zip(y, b.iterrows(), lo, hi):
        ax.errorbar(r[col], yi, xerr=[[l_], [h_]], fmt="o", color=colors.get(r["variant"], "#1f77b4"), capsize=3)
    ax.set_yticks(y, [f"{r['run']}: {r['variant']}" for _, r in b.iterrows()])
    ax.set_xlabel(col)
    ax.set_xlim(max(0.0, float(b[f"{col}_ci_low"].min()) - 0.05), min(1.0, float(b[f"{col}_ci_high"].max()) + 0.05)
                if b[f"{col}_ci_high"].max() <= 1 else None)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return buf.getvalue()


__all__ = ["CAPTION", "leaderboard_png"]
