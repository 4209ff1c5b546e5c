"""Visual-dependence rows, table and plot (issue 15 item 1) on synthetic runs, through the CLI."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import report_synth
from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.report.dependence import BEYOND, ablation_map, dependence_k, split_ablated


def test_dependence_k_is_the_start_of_the_non_significant_tail():
    assert dependence_k([0, 16, 64], [0.001, 0.01, 0.5], longest=300) == (64.0, "")
    assert dependence_k([0, 16, 64], [0.001, 0.2, 0.5], longest=300) == (16.0, "")
    # a non-significant K followed by a significant one does not count
    assert dependence_k([0, 16, 64], [0.5, 0.01, 0.5], longest=300) == (64.0, "")
    assert dependence_k([0, 16], [0.5, 0.9], longest=300) == (0.0, "")
    assert dependence_k([0, 16], [0.001, 0.01], longest=300) == (300.0, BEYOND)
    assert dependence_k([0, 16], [0.001, math.nan], longest=10) == (17.0, BEYOND)


def test_names():
    assert split_ablated("pvm+blind:after=16") == ("pvm", 16)
    assert split_ablated("pai:alpha=0.2+blind:after=0") == ("pai:alpha=0.2", 0)
    assert split_ablated("blind:after=3") is None and split_ablated("pvm") is None
    amap = ablation_map(["base", "pvm", "pvm+blind:after=64", "pvm+blind:after=0", "x+blind:after=1"])
    assert amap == {"pvm": {0: "pvm+blind:after=0", 64: "pvm+blind:after=64"}}


def test_report_has_dependence_rows_table_and_plot(make_run, monkeypatch):
    monkeypatch.setitem(report_synth.ACCURACY, "base", 0.8)
    monkeypatch.setitem(report_synth.ACCURACY, "base+blind:after=0", 0.0)
    monkeypatch.setitem(report_synth.ACCURACY, "base+blind:after=64", 0.8)
    run = make_run(variants=("base", "base+blind:after=0", "base+blind:after=64"), tasks=("colour",),
                   n_samples=40, attention=False)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(run / "metrics.csv")
    dep = rows[rows["kind"] == "dependence"]
    k0 = dep[(dep["metric"] == "accuracy") & (dep["t"] == 0)].iloc[0]
    assert k0["variant"] == "base" and k0["band"] == "base+blind:after=0" and k0["value"] == 0.0
    base = rows[(rows["kind"] == "task") & (rows["variant"] == "base") & (rows["metric"] == "accuracy")].iloc[0]
    assert k0["diff"] == pytest.approx(-base["value"]) and k0["p_value"] < 0.05 and k0["n_pairs"] == 40
    k64 = dep[(dep["metric"] == "accuracy") & (dep["t"] == 64)].iloc[0]
    assert k64["p_value"] >= 0.05
    dk = dep[dep["metric"] == "dependence_k"].iloc[0]
    assert dk["value"] == 64 and (pd.isna(dk["flags"]) or dk["flags"] == "")
    md = (run / "summary.md").read_text()
    assert "## Visual dependence" in md and "| colour | base | accuracy |" in md
    line = next(x for x in md.splitlines() if x.startswith("| colour | base | accuracy |"))
    assert line.rstrip().endswith("| 64 |")
    html = (run / "report.html").read_text()
    assert 'id="dependence-table"' in html and "Visual dependence" in html
    assert (run / "plots" / "visual_dependence.png").stat().st_size > 5000
