"""Task metrics reach the report end to end: `pvm-bench run` on the benchmark fixtures with a tiny
model, then summary.md / report.html / baseline / check / compare through the CLI."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from pvm_bench.cli.main import app

runner = CliRunner()


def test_mmbench_circular_eval_and_hallusionbench_groups_reach_the_report(tiny_qwen3_vl, fixture_data, tmp_path):
    out = tmp_path / "runs"
    res = runner.invoke(app, [
        "run", "--quiet", "--model", str(tiny_qwen3_vl), "--tasks", "mmbench_en,hallusionbench,mmstar",
        "--data-dir", str(fixture_data), "--out", str(out), "--run-id", "fx", "--max-new-tokens", "4",
        "--probes", "", "--variants", "base",
    ])
    assert res.exit_code == 0, res.output
    run = out / "fx"
    rows = pd.read_csv(run / "metrics.csv")
    head = rows[rows["headline"].astype(bool) & (rows["kind"] == "task")].set_index("task")["metric"].to_dict()
    assert head == {"hallusionbench": "aAcc", "mmbench_en": "circular_accuracy", "mmstar": "average"}
    metrics = set(zip(rows["task"], rows["metric"]))
    assert {("hallusionbench", "qAcc"), ("hallusionbench", "fAcc"), ("mmbench_en", "accuracy"),
            ("MACRO", "macro_average"), ("ALL", "accuracy")} <= metrics
    circ = rows[(rows["task"] == "mmbench_en") & (rows["metric"] == "circular_accuracy")].iloc[0]
    assert circ["n"] == 4  # 6 fixture rows, 4 questions (indices 0-3; 1000000/1000001 are circular shifts)
    md = (run / "summary.md").read_text()
    for word in ("circular_accuracy *", "qAcc", "fAcc", "aAcc *", "MACRO"):
        assert word in md, word
    html = (run / "report.html").read_text()
    assert "circular_accuracy" in html and "qAcc" in html and "fAcc" in html

    baseline = tmp_path / "fx.json"
    res = runner.invoke(app, ["baseline", str(run), "-o", str(baseline)])
    assert res.exit_code == 0, res.output
    gated = {(m["task"], m["metric"]) for m in json.loads(baseline.read_text())["metrics"]}
    assert {("mmbench_en", "circular_accuracy"), ("hallusionbench", "qAcc"), ("hallusionbench", "fAcc"),
            ("MACRO", "macro_average")} <= gated
    res = runner.invoke(app, ["check", str(run), "--baseline", str(baseline)])
    assert res.exit_code == 0 and "circular_accuracy" in res.output and "qAcc" in res.output, res.output
    res = runner.invoke(app, ["compare", str(run), str(run)])
    assert res.exit_code == 0 and "circular_accuracy" in res.output and "fAcc" in res.output, res.output
