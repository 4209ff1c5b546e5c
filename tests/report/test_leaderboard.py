"""The visual-forgetting leaderboard of ``pvm-bench compare`` (issue 15 item 4), through the CLI."""

from __future__ import annotations

import pandas as pd
import pytest
import report_synth
from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.report.rundata import load_run
from pvm_bench.report.summary import build_summary

pytestmark = pytest.mark.slow(seconds=20)  # two synthetic runs, two compares: ~20 s quiet


def test_compare_ranks_runs_and_variants_and_exports(make_run, tmp_path, monkeypatch):
    monkeypatch.setitem(report_synth.ACCURACY, "pvm+blind:after=0", 0.1)
    a = make_run("a", variants=("base", "pvm", "pvm+blind:after=0"), n_samples=40, max_len=300, seed=1)
    b = make_run("b", variants=("base", "pvm"), n_samples=40, max_len=300, seed=2)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    board = pd.read_csv(out / "compare_leaderboard.csv")
    # ablated variants are not ranked; four (run, variant) lines, ranked by macro (two tasks)
    assert sorted(zip(board["run"], board["variant"])) == [("A", "base"), ("A", "pvm"), ("B", "base"), ("B", "pvm")]
    assert board["rank"].tolist() == [1, 2, 3, 4] and set(board["task"]) == {"ALL (2 tasks)"}
    assert board["macro"].is_monotonic_decreasing
    metrics = {r: build_summary(load_run(d)).rows for r, d in (("A", a), ("B", b))}
    for line in board.to_dict("records"):
        m = metrics[line["run"]]
        macro = m[(m["task"] == "MACRO") & (m["variant"] == line["variant"]) & (m["kind"] == "macro")].iloc[0]
        assert line["macro"] == pytest.approx(macro["value"])
        mass = m[(m["task"] == "ALL") & (m["variant"] == line["variant"]) & (m["kind"] == "decay")
                 & (m["band"] == "all") & (m["metric"] == "visual_mass") & (m["t"] == 64)].iloc[0]
        assert line["mass@64"] == pytest.approx(mass["value"]) and line["mass@64_ci_low"] <= mass["value"]
        assert line["half_life"] > 0
    # synthetic truth: pvm keeps more mass (a = 0.08 vs 0.02)
    pvm_mass = board[board["variant"] == "pvm"]["mass@256"].min()
    assert pvm_mass > board[board["variant"] == "base"]["mass@256"].max()
    a_pvm = board[(board["run"] == "A") & (board["variant"] == "pvm")].iloc[0]
    assert a_pvm["dependence_k"] >= 0  # from the pvm+blind:after=0 variant
    md = (out / "compare.md").read_text()
    assert "## Leaderboard" in md and "Ranked by macro" in md and "| rank | run | model | task | variant |" in md
    page = (out / "compare.html").read_text()
    assert 'id="leaderboard-table"' in page and 'id="compare-table"' in page and "<script" not in page
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--rank-by", "mass@256", "-o", str(out)])
    assert result.exit_code == 0, result.output
    board = pd.read_csv(out / "compare_leaderboard.csv")
    assert board["mass@256"].is_monotonic_decreasing and board["variant"].iloc[0] == "pvm"
    bad = CliRunner().invoke(app, ["compare", str(a), str(b), "--rank-by", "speed"])
    assert bad.exit_code == 2 and "--rank-by 'speed'" in bad.output
