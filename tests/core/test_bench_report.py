"""``pvm-bench bench report``: synthetic runs in the writer's exact format, timed phases, ratios."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pvm_bench.attention_store import read_store
from pvm_bench.bench.synth_run import SynthSpec, plan_samples, write_synthetic_run
from pvm_bench.cli.main import app
from pvm_bench.results import read_samples
from pvm_bench.runner.files import write_parquet_atomic


def test_synthetic_parts_are_what_the_writer_writes(tmp_path: Path) -> None:
    info = write_synthetic_run(tmp_path / "r", SynthSpec(rows=20_000, layers=4, cap=256, tasks=2))
    parts = sorted((tmp_path / "r" / "attention").glob("part-*.parquet"))
    assert len(parts) == info["parts"] >= 4 and info["rows"] >= 20_000
    for part in parts:  # a part re-written by the runner's own writer is the same file content
        write_parquet_atomic(pd.read_parquet(part), tmp_path / "again.parquet")
        mine, theirs = pq.read_table(part), pq.read_table(tmp_path / "again.parquet")
        assert mine.schema.equals(theirs.schema, check_metadata=True) and mine.equals(theirs)
    frame = pd.concat(pd.read_parquet(p) for p in parts)
    assert set(frame["variant"]) == {"base", "pvm"} and sorted(frame["layer"].unique()) == [0, 1, 2, 3]
    # samples.jsonl and the attention rows describe the same generations, n_generated steps each
    steps = frame.groupby(["variant", "task", "sample_id", "repeat"])["step"].agg(["max", "size"])
    records = {r.key: r for r in read_samples(tmp_path / "r")}
    assert set(steps.index) == set(records)
    for key, row in steps.iterrows():
        assert row["max"] + 1 == records[key].n_generated and row["size"] == 4 * records[key].n_generated
    base = frame[frame["variant"] == "base"]
    assert "pvm_ratio" not in pd.read_parquet(parts[0]).columns and base["visual_mass"].between(0, 1).all()


def test_lengths_are_lognormal_with_the_cap_share() -> None:
    spec = SynthSpec(rows=40_000_000, layers=36)
    lengths = pd.Series(list(plan_samples(spec).values())).explode().astype(int)
    assert 185 <= lengths.median() <= 215
    assert 0.002 <= (lengths == spec.cap).mean() <= 0.007


@pytest.mark.slow  # four subprocesses, one of them a full report (~25 s on 2 shared cores)
def test_bench_report_prints_ratios_to_the_anchor(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, [
        "bench", "report", "--rows", "30000", "--layers", "4", "--cap", "256", "--out", str(tmp_path),
        "--keep", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "vs anchor" in result.output and "merge:" in result.output and "report:" in result.output
    res = json.loads(out.read_text())
    run = Path(res["run_dir"])
    assert {"merge", "report", "anchor"} == set(res["phases"])
    assert all(p["rc"] == 0 and p["wall_s"] > 0 and p["rss_bytes"] > 1e6 for p in res["phases"].values())
    merged = read_store(run)
    assert len(merged) == res["generated"]["rows"] and not (run / "attention").exists()
    assert (run / "report.html").is_file() and "unreadable" not in (run / "summary.md").read_text()
