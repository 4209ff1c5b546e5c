"""compare.html: the leaderboard and the cross-run metric table of ``pvm-bench compare`` as one
self-contained page (same stylesheet as report.html; every cell escaped by ``to_html(escape=True)``)."""

from __future__ import annotations

from pvm_bench.report.compare import DELTA_NOTE, Comparison
from pvm_bench.report.leaderboard import NOTE, readable
from pvm_bench.report.templating import environment, html_table

METRICS_NOTE = DELTA_NOTE


def render_compare_html(result: Comparison) -> str:
    """The page as a string."""
    title = " vs ".join(str(r) for r in result.runs["run id"]) if "run id" in result.runs else "runs"
    board = result.leaderboard
    return environment().get_template("compare.html.j2").render(
        title=title, runs_table=html_table(result.runs, "runs-table"),
        leaderboard_table=html_table(readable(board), "leaderboard-table") if not board.empty else "",
        leaderboard_note=NOTE.format(rank_by=board.attrs.get("rank_by", "accuracy")),
        metrics_note=" ".join([*(f"Not the same configuration: {n}." for n in result.notes), METRICS_NOTE]),
        metrics_table=html_table(result.readable, "compare-table"),
    )
