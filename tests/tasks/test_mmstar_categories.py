"""MMStar's six category metrics (issue 23 item 5) and the unfinished-reasoning share (item 6), end to
end: ``pvm-bench run`` on the MMStar fixture with a tiny model, then metrics.csv, summary.md,
report.html, baseline, check and compare through the CLI.

lmms-eval 0.7.3 (``tasks/mmstar/_default_template_yaml`` lines 7-24, ``utils.py`` lines 109-146):
each category metric is the mean over that category's L2 categories of the per-L2 mean score.
The fixture has coarse perception (two L2), math (two L2) and logical reasoning (one L2).
"""

from __future__ import annotations

import json
from collections import defaultdict

import pandas as pd
import pytest
from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.tasks.registry import builtin_task_module

CATEGORIES = builtin_task_module("mmstar").CATEGORIES

runner = CliRunner()


def _lmms_category_means(records: list[dict]) -> dict[str, float]:
    """lmms-eval's mmstar_aggregate_results per category, written out from utils.py lines 126-146."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        per[r["metadata"]["category"]][r["metadata"]["l2_category"]].append(r["score"])
    return {cat: sum(sum(v) / len(v) for v in l2.values()) / len(l2) for cat, l2 in per.items()}


@pytest.mark.slow
def test_mmstar_categories_and_unfinished_share_reach_every_report(tiny_qwen3_vl, fixture_data, tmp_path):
    out = tmp_path / "runs"
    res = runner.invoke(app, [
        "run", "--quiet", "--model", str(tiny_qwen3_vl), "--tasks", "mmstar", "--data-dir", str(fixture_data),
        "--out", str(out), "--run-id", "star", "--max-new-tokens", "4", "--probes", "", "--variants", "base",
    ])
    assert res.exit_code == 0, res.output
    run = out / "star"
    lines = (run / "samples.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    # forced scores (the tiny model's outputs are noise): rows 0, 3 right, the rest wrong
    for i, r in enumerate(records):
        r["score"] = 1.0 if i in (0, 3) else 0.0
    records[1]["output"] = "<think>The image is mostly green, so the answer is"  # cut inside <think>
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output

    rows = pd.read_csv(run / "metrics.csv")
    star = rows[(rows["task"] == "mmstar") & (rows["kind"] == "task")].set_index("metric")
    expected = _lmms_category_means(records)
    assert set(expected) == {"coarse perception", "math", "logical reasoning"}
    # coarse perception: L2 "scene" rows 0, 2 -> 0.5, L2 "style" row 1 -> 0: 0.25; math: 1 and 0: 0.5
    assert expected == {"coarse perception": 0.25, "math": 0.5, "logical reasoning": 0.0}
    for cat, value in expected.items():
        assert star.loc[cat, "value"] == pytest.approx(value), cat
    assert not {"fine-grained perception", "instance reasoning", "science & technology"} & set(star.index)
    assert star.loc["average", "value"] == pytest.approx((0.5 + 0 + 1 + 0 + 0) / 5)  # five L2 categories
    assert list(CATEGORIES) == ["coarse perception", "fine-grained perception", "instance reasoning",
                                "logical reasoning", "science & technology", "math"]
    unfinished = rows[(rows["metric"] == "unfinished_reasoning_rate") & (rows["task"] == "mmstar")]
    assert unfinished["value"].tolist() == [pytest.approx(1 / 6)]

    md = (run / "summary.md").read_text()
    assert all(c in md for c in ("coarse perception", "logical reasoning", "| math")), md
    assert "unfinished reasoning" in md
    assert "coarse perception" in (run / "report.html").read_text()

    baseline = tmp_path / "star.json"
    res = runner.invoke(app, ["baseline", str(run), "-o", str(baseline)])
    assert res.exit_code == 0, res.output
    gated = {(m["task"], m["metric"]) for m in json.loads(baseline.read_text())["metrics"]}
    assert {("mmstar", "coarse perception"), ("mmstar", "math"), ("mmstar", "logical reasoning")} <= gated
    res = runner.invoke(app, ["check", str(run), "--baseline", str(baseline)])
    assert res.exit_code == 0 and "coarse perception" in res.output, res.output
    res = runner.invoke(app, ["compare", str(run), str(run)])
    assert res.exit_code == 0 and "coarse perception" in res.output and "logical reasoning" in res.output, res.output
