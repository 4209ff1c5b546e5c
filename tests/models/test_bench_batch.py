"""``pvm-bench bench batch``: batched generation gives the same outputs as batch 1, and numbers."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pvm_bench.cli.main import app


def test_bench_batch_same_outputs_and_speedups(tiny_qwen3_vl, tmp_path):
    out = tmp_path / "batch.json"
    result = CliRunner().invoke(app, [
        "bench", "batch", "--model", str(tiny_qwen3_vl), "--samples", "4", "--batch-sizes", "1,4",
        "--new-tokens", "3", "--threads", "1", "--probes", "attention", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "outputs identical" in result.output and "DIFFER" not in result.output
    res = json.loads(out.read_text())
    one, four = res["rows"]
    assert (one["batch_size"], four["batch_size"]) == (1, 4)
    assert one["speedup"] == 1.0 and four["speedup"] > 0 and four["cpu_speedup"] > 0
    assert all(r["same_outputs"] and r["samples_per_s"] > 0 for r in res["rows"])


def test_bench_batch_rejects_bad_sizes():
    result = CliRunner().invoke(app, ["bench", "batch", "--batch-sizes", "1,x"])
    assert result.exit_code != 0 and "--batch-sizes" in result.output
