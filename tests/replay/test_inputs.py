"""Replay inputs: token checks, variant plans, source parsing and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.organism import BASE_DIR
from pvm_bench.replay.plan import plan_for
from pvm_bench.replay.sources import ReplaySourceError, read_source
from pvm_bench.replay.tokens import output_tokens

cli = CliRunner()


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(BASE_DIR))


def test_log_token_ids_are_used_as_given(tokenizer):
    tokens = output_tokens(tokenizer, "ignored", token_ids=[5, 6, 7], finish_reason=None, n_generated=None, eos_id=7)
    assert tokens.ids == [5, 6, 7] and tokens.exact and tokens.how == "log" and tokens.finish_reason == "eos"


def test_retokenised_round_trip_and_count(tokenizer):
    text = "62 61 60 59"
    ids = tokenizer.encode(text, add_special_tokens=False)
    ok = output_tokens(tokenizer, text, token_ids=None, finish_reason="eos", n_generated=len(ids) + 1, eos_id=99)
    assert ok.exact and ok.ids == [*ids, 99] and ok.metadata() == {"tokens_exact": True, "tokens_from": "retokenised"}
    # The engine says it made more tokens than the text re-tokenises to: flagged, not shifted.
    off = output_tokens(tokenizer, text, token_ids=None, finish_reason="eos", n_generated=len(ids) + 5, eos_id=99)
    assert not off.exact and "engine produced" in off.why and off.ids == [*ids, 99]
    # Unknown finish reason (lmms-eval): the count decides whether a stop token was generated.
    cut = output_tokens(tokenizer, text, token_ids=None, finish_reason=None, n_generated=len(ids), eos_id=99)
    assert cut.exact and cut.finish_reason == "length" and cut.ids == ids


def test_text_that_does_not_round_trip_is_flagged(tokenizer):
    text = "62 61 \u2603 snowman"  # a character the organism's vocabulary does not hold
    tokens = output_tokens(tokenizer, text, token_ids=None, finish_reason="length", n_generated=None, eos_id=None)
    assert not tokens.exact and tokens.metadata()["tokens_check"].startswith("decode(encode(output))")


def test_plans():
    assert plan_for("base").boundaries == () and not plan_for("pvm").one_row
    assert plan_for("pvm+blind:after=16").boundaries == (16,) and not plan_for("pvm+blind:after=16").one_row
    assert plan_for("blind").boundaries == (0,)
    for name in ("pai:alpha=0.2", "memvr", "reinject", "my_plugin"):
        plan = plan_for(name)
        assert plan.one_row and "one row per forward" in plan.note


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_lmms_eval_rows(tmp_path):
    path = write(tmp_path / "20261206_samples_mmstar.jsonl", [
        {"doc_id": 0, "filtered_resps": "B", "target": "B", "input": "Q?"},  # flattened single response
        {"doc_id": 1, "resps": "<think>x</think>B", "filtered_resps": "B", "token_counts": [{"output_tokens": 9}]},
        {"doc_id": 2, "filtered_resps": [["A"], ["C"]]},  # two responses: repeats 0 and 1
    ])
    source = read_source(path)
    assert source.kind == "lmms-eval" and source.tasks == ["mmstar"]
    got = [(r.doc_index, r.repeat, r.text, r.n_generated, r.finish_reason) for r in source.rows]
    assert got == [(0, 0, "B", None, None), (1, 0, "<think>x</think>B", 9, None), (2, 0, "A", None, None),
                   (2, 1, "C", None, None)]
    assert read_source(write(tmp_path / "x_samples_mmmu_val.jsonl", [{"doc_id": 0, "filtered_resps": "A"}])).tasks == [
        "mmmu"
    ]


@pytest.mark.parametrize(("rows", "message"), [
    (['{"doc_id": 0, "filtered_resps": "A"}', "not json"], ":2: not JSON"),
    ([{"doc_id": "zero", "filtered_resps": "A"}], ":1: not an lmms-eval --log_samples row"),
    ([{"doc_id": 0, "filtered_resps": [0.5, 0.1]}], "only generate_until tasks"),
])
def test_bad_lmms_rows_name_the_line(tmp_path, rows, message):
    with pytest.raises(ReplaySourceError, match=message):
        read_source(write(tmp_path / "d_samples_mmstar.jsonl", rows))


def test_plain_jsonl_rows(tmp_path):
    source = read_source(
        write(
            tmp_path / "outs.jsonl",
            [
                {"task": "swatch_recall", "sample_id": "a", "output": "red", "token_ids": [1, 2]},
                {
                    "task": "swatch_recall",
                    "sample_id": "b",
                    "output": "blue",
                    "variant": "pvm",
                    "repeat": 1,
                    "finish_reason": "length",
                },
            ],
        )
    )
    assert source.kind == "jsonl"
    assert [(r.sample_id, r.variant, r.repeat, r.token_ids, r.finish_reason) for r in source.rows] == [
        ("a", None, 0, [1, 2], "eos"), ("b", "pvm", 1, None, "length")]
    with pytest.raises(ReplaySourceError, match=r"outs2.jsonl:1: missing sample_id"):
        read_source(write(tmp_path / "outs2.jsonl", [{"task": "t", "output": "x"}]))


def test_cli_bad_input_is_one_line(tmp_path):
    bad = write(tmp_path / "outs.jsonl", [{"task": "swatch_recall", "sample_id": "nope", "output": "red"}])
    result = cli.invoke(app, ["replay", str(bad), "--score-only", "--split", "test", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "has no sample 'nope'" in result.output and len(result.output.strip().splitlines()) == 1
    result = cli.invoke(app, ["replay", str(tmp_path / "missing.jsonl"), "--score-only"])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = cli.invoke(app, ["replay", str(bad), "--out", str(tmp_path)])  # no model for a JSONL
    assert result.exit_code == 2 and "--model" in result.output


def test_cli_score_only_plain_jsonl(tmp_path):
    from pvm_bench.tasks import get_registry

    task = get_registry().resolve(["swatch_recall"])[0]
    sample = task.load(split="test", limit=1)[0]
    good = write(tmp_path / "outs.jsonl", [
        {"task": "swatch_recall", "sample_id": sample.id, "output": f"Answer: {sample.target}"},
        {"task": "swatch_recall", "sample_id": sample.id, "output": "no idea", "repeat": 1},
    ])
    result = cli.invoke(app, ["replay", str(good), "--score-only", "--split", "test", "--out", str(tmp_path),
                              "--run-id", "so", "--no-report"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "so" / "samples.jsonl").read_text().splitlines()]
    assert sorted((r["repeat"], r["score"]) for r in rows) == [(0, 1.0), (1, 0.0)]
    assert json.loads((tmp_path / "so" / "run.json").read_text())["status"] == "completed"


def test_plain_jsonl_messages_and_images(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "img" / "a.png")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}]
    row = {"task": "swatch_recall", "sample_id": "x", "output": "red", "messages": messages}
    source = read_source(write(tmp_path / "ok.jsonl", [{**row, "images": ["img/a.png"]}]))
    assert source.rows[0].messages == messages and source.rows[0].images == [(tmp_path / "img" / "a.png").resolve()]
    for images, message in (
        (["../a.png"], "not a file inside"),
        ([], "1 image part"),
        (["img/none.png"], "not a file"),
    ):
        with pytest.raises(ReplaySourceError, match=message):
            read_source(write(tmp_path / "bad.jsonl", [{**row, "images": images}]))
