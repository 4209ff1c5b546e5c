"""The README's default job and CI check: `pvm-bench run` with no arguments, then `check` against
the committed organism baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvm_bench.cli.main import app

pytestmark = pytest.mark.slow
BASELINE = Path(__file__).resolve().parents[2] / "reports" / "baselines" / "organism.json"


def test_default_run_passes_the_committed_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--quiet", "--out", str(tmp_path), "--run-id", "ci"])
    assert result.exit_code == 0, result.output
    # 100 samples x 2 variants: the closing line counts records and says so (it once said "200 samples").
    assert "200 records over 2 variant(s)" in result.output
    run_dir = tmp_path / "ci"
    for name in ("run.json", "samples.jsonl", "summary.csv", "summary.md", "report.html"):
        assert (run_dir / name).is_file(), name
    # the attention store is a directory of parts, each with its aggregate tables
    parts = sorted(p.name for p in (run_dir / "attention.parquet").glob("part-*.parquet"))
    assert parts and parts == sorted(p.name for p in (run_dir / "attention-agg" / "steps").glob("part-*.parquet"))
    assert {p.name for p in (run_dir / "plots").glob("*.png")} >= {"decay.png", "heatmap.png"}
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["variants"] == ["base", "pvm"]
    assert "branch" in record["config"]["probes"]

    check = runner.invoke(app, ["check", str(run_dir), "--baseline", str(BASELINE)])
    assert check.exit_code == 0, check.output
