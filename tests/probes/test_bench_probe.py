"""``pvm-bench bench probe`` on a tiny model (structure of the numbers, not their values)."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

import pvm_bench.bench.probe as bench_probe
from pvm_bench.bench.probe import naive_attention_bytes, register_bench


def test_naive_attention_bytes():
    # prefill [H, P, P] + decode steps t = 1..N-1 of [H, 1, P + t], per layer, float32
    assert naive_attention_bytes(2, 3, 10, 1) == 2 * 3 * 100 * 4
    assert naive_attention_bytes(2, 3, 10, 3) == 2 * 3 * (100 + 11 + 12) * 4


def test_bench_probe_cli(tiny_dirs, tmp_path, monkeypatch):
    # In-process measurements: the subprocess per measurement only isolates peak memory, and
    # starting fresh interpreters would dominate the test's time.
    monkeypatch.setattr(
        bench_probe, "_measure_in_subprocess",
        lambda *args: bench_probe.measure(*args),
    )
    bench = typer.Typer()
    register_bench(bench)
    bench.command("noop")(lambda: None)  # a second command keeps `probe` a named subcommand
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        bench,
        ["probe", "--model", str(tiny_dirs["qwen3_vl"]), "--new-tokens", "3,5", "--repeats", "1",
         "--threads", "1", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [row["new_tokens"] for row in data["rows"]] == [3, 5]
    for row in data["rows"]:
        for mode in ("plain", "probe", "naive"):
            assert row[mode]["tokens_per_s"] > 0 and row[mode]["peak_mb"] >= 0, row
        assert row["probe_speed_ratio"] > 0 and row["naive_speed_ratio"] > 0
    assert "probe cost" in result.output  # the rich table (columns wrap at 80 chars)
    bad = CliRunner().invoke(bench, ["probe", "--new-tokens", "x"])
    assert bad.exit_code == 2
