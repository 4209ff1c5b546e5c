"""The 2-image length diagnostic (issue 15 item 3): two swatches, asked about the first."""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd
import pytest
from typer.testing import CliRunner

from pvm_bench.cli import app
from pvm_bench.organism import ORGANISM_TASKS
from pvm_bench.results import read_jsonl
from pvm_bench.tasks.registry import builtin_task_module

_LD = builtin_task_module("length_diagnostics")
TASKS, Design, make_examples = _LD.TASKS, _LD.Design, _LD.make_examples


def _task(name):
    return next(t for t in TASKS if t.name == name)


def test_two_swatches_ask_about_the_first():
    task = _task("two_swatch_recall")
    samples = task.load("test", limit=20)
    assert task.name in ORGANISM_TASKS
    for s in samples:
        assert len(s.images) == 2
        first, second = (img.load().getpixel((5, 5)) for img in s.images)
        assert first != second
        assert s.metadata["colours"][0] == s.target != s.metadata["colours"][1]
        assert s.question.endswith("name the colour of the first image.")
    content = task.messages(samples[0])[0]["content"]
    assert [p["type"] for p in content] == ["image", "image", "text"]
    right = task.score(samples[0], f"3 2 1\nAnswer: {samples[0].target}")
    wrong = task.score(samples[0], f"Answer: {samples[0].metadata['colours'][1]}")
    assert right.value == 1.0 and wrong.value == 0.0


def test_one_image_designs_unchanged():
    """Adding n_images left the single-swatch draws as they were (same rng sequence)."""
    one = make_examples(30, 1, (0, 64), _task("swatch_recall").design)
    two = make_examples(30, 1, (0, 64), _task("two_swatch_recall").design)
    assert all(len(e["images"]) == 1 for e in one)
    # the two-image design draws one extra colour per example, so only the first example shares N
    assert one[0]["n_filler"] == two[0]["n_filler"] and one[0]["answer"] == two[0]["answer"]
    with pytest.raises(ValueError, match="n_images"):
        Design(n_images=2)


def test_score_names_which_swatch_the_answer_names():
    """Every scored two-swatch record has the four answer_<kind> sub-scores, exactly one of them 1."""
    task = _task("two_swatch_recall")
    s = task.load("test", limit=1)[0]
    first, second = s.metadata["colours"]
    other = next(c for c in task.design.colours if c not in (first, second))
    cases = {f"1\nAnswer: {first}": "first", f"Answer: {second}": "second", f"Answer: {other}": "other",
             "Answer: the": "none", "": "none"}
    for output, kind in cases.items():
        subs = task.score(s, output).sub_scores
        assert subs == {f"answer_{k}": float(k == kind) for k in _LD.ANSWER_KINDS}, output
    assert task.score(s, "3 2", truncated=True).sub_scores["answer_none"] == 1.0
    assert [m.name for m in task.metrics()][1:] == [f"answer_{k}" for k in _LD.ANSWER_KINDS]
    assert [m.name for m in _task("swatch_recall").metrics()] == ["accuracy"]  # one image: no new rows
    assert not _task("swatch_recall").score(s, f"Answer: {first}").sub_scores


@pytest.mark.slow  # a CLI run of the organism and its report: ~40 s on 2 loaded cores
def test_run_writes_answer_kind_rows_that_match_the_outputs(tmp_path, monkeypatch):
    """`pvm-bench run --tasks two_swatch_recall` on the organism: metrics.csv's answer_<kind> rows are the
    shares counted here from samples.jsonl's outputs (an independent parse), and sum to 1 per variant."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["run", "--tasks", "two_swatch_recall", "--limit", "8", "--max-new-tokens",
                                      "40", "--quiet", "--out", str(tmp_path), "--run-id", "two"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "two"
    rows = pd.read_csv(run / "metrics.csv")
    rows = rows[(rows["task"] == "two_swatch_recall") & rows["metric"].str.startswith("answer_")]
    palette = set(_task("two_swatch_recall").design.colours)
    counts: dict[str, Counter] = {}
    for rec in read_jsonl(run / "samples.jsonl"):
        parts = re.split(r"answer\s*:", rec["output"], flags=re.IGNORECASE)  # the word after the last marker,
        found = re.search(r"[a-z]+", parts[-1], flags=re.IGNORECASE)  # the first word without one,
        cut = len(parts) == 1 and rec["truncated"]  # nothing when cut off before a marker
        word = found.group(0).lower() if found and not cut else None
        colours = rec["metadata"]["colours"]
        kind = ("first" if word == colours[0] else "second" if word == colours[1]
                else "other" if word in palette else "none")
        counts.setdefault(rec["variant"], Counter())[kind] += 1
    assert set(rows["variant"]) == set(counts) == {"base", "pvm"}
    for variant, counted in counts.items():
        mine = rows[rows["variant"] == variant].set_index("metric")
        assert sorted(mine.index) == sorted(f"answer_{k}" for k in _LD.ANSWER_KINDS)
        assert (mine["n"] == 8).all()
        for kind in _LD.ANSWER_KINDS:
            assert round(mine.loc[f"answer_{kind}", "value"] * 8) == counted[kind], (variant, kind)
        assert mine["value"].sum() == pytest.approx(1.0)
    assert sum(counts["base"].values()) == 8 and counts["base"]["none"] < 8  # some answers were given
