"""The random model every ``pvm-bench bench`` command builds when ``--model`` is not given.

One builder (:func:`pvm_bench.bench.model.bench_model`); its default path is exercised here
through each command's CLI with ``--random-size tiny`` (the same code as the ~87M default, in
seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvm_bench.bench.model import bench_model, random_label
from pvm_bench.cli import app

#: Each bench command with the smallest arguments that still measure something.
COMMANDS = {
    "batch": ["--samples", "2", "--batch-sizes", "1,2", "--new-tokens", "2", "--threads", "1"],
    "pvm": ["--new-tokens", "3", "--repeats", "1", "--dim", "16", "--device", "cpu", "--threads", "1"],
    "probe": ["--new-tokens", "4", "--repeats", "1", "--device", "cpu", "--threads", "1", "--naive-max-gb", "0"],
    "replay": ["--new-tokens", "4", "--chunk", "2", "--device", "cpu", "--threads", "1"],
}


#: ``probe`` and ``replay`` measure in fresh subprocesses (a torch import each, ~30-45 s on 2 busy cores).
SLOW = {"probe", "replay"}


@pytest.mark.parametrize(
    "command", [pytest.param(c, marks=pytest.mark.slow(seconds=15)) if c in SLOW else c for c in sorted(COMMANDS)]
)
def test_bench_commands_build_the_random_model_when_no_model_is_given(command, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app, ["bench", command, "--random-size", "tiny", *COMMANDS[command], "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    assert res["model"] == random_label("tiny") == "testing:qwen3_vl/tiny (random)"


def test_bench_model_builds_seeded_weights_and_removes_them(tmp_path):
    """Seed 0 every time (same bytes), a temp dir removed on exit; a given model passes through."""
    with bench_model(None, "tiny") as (first, label):
        weights = tmp_path / "first.safetensors"
        weights.write_bytes(next(iter(sorted(Path(first).glob("*.safetensors")))).read_bytes())
    with bench_model(None, "tiny") as (second, _):
        again = next(iter(sorted(Path(second).glob("*.safetensors")))).read_bytes()
    assert label == "testing:qwen3_vl/tiny (random)"
    assert again == weights.read_bytes()
    assert not Path(first).exists() and not Path(second).exists()
    with bench_model("org/model", "tiny") as pair:
        assert pair == ("org/model", "org/model")


def test_unknown_random_size_is_one_error_line():
    result = CliRunner().invoke(app, ["bench", "batch", "--random-size", "huge"])
    assert result.exit_code == 2
    assert "unknown --random-size 'huge'; use one of tiny, small, bench" in result.output
