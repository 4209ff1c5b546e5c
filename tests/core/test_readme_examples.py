"""The README's "Adding a task" example, run exactly as written through the CLI."""

from __future__ import annotations

import io
import re
from pathlib import Path

import datasets
from PIL import Image
from typer.testing import CliRunner

from pvm_bench.cli import app
from pvm_bench.results import read_jsonl

README = Path(__file__).resolve().parents[2] / "README.md"


def _task_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```python\n# my_tasks/colour_quiz.py\n(.*?)```", text, re.S)
    assert match, "README lost its task example"
    return match.group(1)


def _png(colour: str) -> dict:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def test_readme_task_example_runs_through_the_cli(tiny_qwen3_vl, tmp_path):
    plugins = tmp_path / "my_tasks"
    plugins.mkdir()
    (plugins / "colour_quiz.py").write_text(_task_example())
    rows = [{"id": f"q{i}", "question": "What colour is the square?", "answer": c, "image": _png(c)}
            for i, c in enumerate(["red", "blue", "green"])]
    features = datasets.Features({"id": datasets.Value("string"), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string"), "image": datasets.Image()})
    (tmp_path / "data" / "colour_quiz").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp_path / "data" / "colour_quiz" / "test.parquet"))

    runner = CliRunner()
    listing = runner.invoke(app, ["tasks", "--include-path", str(plugins)])
    assert listing.exit_code == 0 and "colour_quiz" in listing.output and "my-suite" in listing.output
    result = runner.invoke(app, [
        "run", "--quiet", "--no-report", "--probes", "", "--model", str(tiny_qwen3_vl), "--tasks", "my-suite",
        "--include-path", str(plugins), "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
        "--run-id", "r", "--max-new-tokens", "6",
    ])
    assert result.exit_code == 0, result.output
    records = read_jsonl(tmp_path / "out" / "r" / "samples.jsonl")
    assert sorted(r["sample_id"] for r in records) == ["q0", "q1", "q2"]
    assert {r["target"] for r in records} == {"red", "blue", "green"}
    assert all(r["task"] == "colour_quiz" and r["score"] in (0.0, 1.0) for r in records)
