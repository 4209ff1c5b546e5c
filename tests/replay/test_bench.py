"""``pvm-bench bench replay`` on a tiny model: rows, ratios, and replay agreeing with decode."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from pvm_bench.bench import replay as bench_replay


def test_bench_replay_cli(replay_tiny_dirs, tmp_path, monkeypatch):
    # In-process: the subprocess per measurement only isolates peak memory.
    monkeypatch.setattr(bench_replay, "_in_subprocess", lambda *args: bench_replay.measure(*args))
    bench = typer.Typer()
    bench_replay.register_bench(bench)
    bench.command("noop")(lambda: None)  # a second command keeps `replay` a named subcommand
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(bench, ["replay", "--model", str(replay_tiny_dirs["qwen3_vl"]), "--new-tokens", "6,12",
                                        "--chunk", "4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [row["new_tokens"] for row in data["rows"]] == [6, 12]
    for row in data["rows"]:
        assert row["speedup"] > 0 and row["cpu_speedup"] > 0
        assert row["replay"]["max_abs_diff"] < 1e-5  # the same outputs, the same masses
        assert row["decode"]["peak_mb"] >= 0 and row["replay"]["kv_cache_mb"] > 0
    assert "replay vs decode-time probing" in result.output
    assert CliRunner().invoke(bench, ["replay", "--new-tokens", "x"]).exit_code == 2
