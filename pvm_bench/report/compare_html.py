"""compare.html: the leaderboard and the cross-run metric table of ``pvm-bench compare`` as one
self-contained page (same stylesheet as report.html; every cell escaped by ``to_html(escape=True)``):
warnings first (runs over different samples, an empty rank column), then the leaderboard with its
plot (:mod:`pvm_bench.report.plots_compare`, base64 PNG), then the paired metric table."""

from __future__ import annotations

import base64
import re

from markupsafe import Markup, escape

from pvm_bench.report.compare import DELTA_NOTE, Comparison
from pvm_bench.report.leaderboard import NOTE, readable
from pvm_bench.report.plots_compare import CAPTION, leaderboard_png
from pvm_bench.report.templating import environment, html_table

METRICS_NOTE = DELTA_NOTE
_FLAG = re.compile(r"(--[a-z][a-z0-9-]*)")


def prose(text: str) -> Markup:
    """``text`` escaped, with every ``--flag-name`` in ``<code class="flag">`` (the stylesheet keeps
    it on one line, so a narrow page never breaks ``--ablate-after`` at its hyphens)."""
    return Markup(_FLAG.sub(r'<code class="flag">\1</code>', str(escape(text))))  # noqa: S704


def render_compare_html(result: Comparison) -> str:
    """The page as a string."""
    title = " vs ".join(str(r) for r in result.runs["run id"]) if "run id" in result.runs else "runs"
    board = result.leaderboard
    png = leaderboard_png(board)
    return environment().get_template("compare.html.j2").render(
        title=title, runs_table=html_table(result.runs, "runs-table"),
        warnings=[prose(w) for w in result.warnings],
        leaderboard_table=html_table(readable(board), "leaderboard-table") if not board.empty else "",
        leaderboard_note=prose(NOTE.format(rank_by=board.attrs.get("rank_by", "accuracy"))),
        plot={"caption": CAPTION, "b64": base64.b64encode(png).decode("ascii")} if png else None,
        metrics_note=prose(" ".join([*(f"Not the same configuration: {n}." for n in result.notes), METRICS_NOTE])),
        metrics_table=html_table(result.readable, "compare-table"),
    )
