"""The synthetic length-controlled colour_recall tasks and their trainer contract."""

from __future__ import annotations

import importlib.util
import string
from pathlib import Path

import pytest

from pvm_bench.tasks import get_registry

REG = get_registry(entry_points=False)
_spec = importlib.util.spec_from_file_location("length_diagnostics_under_test", Path(__file__).resolve().parents[2] / "tasks" / "length_diagnostics.py")
ld = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ld)  # type: ignore[union-attr]


@pytest.mark.parametrize("variant", ["generated", "given"])
def test_make_examples_contract(variant: str) -> None:
    ex = ld.make_examples(50, seed=7, distance_range=(3, 20), variant=variant)
    assert all(
        a["prompt"] == b["prompt"] and a["response"] == b["response"]
        for a, b in zip(ex, ld.make_examples(50, seed=7, distance_range=(3, 20), variant=variant))
    )
    assert len(ex) == 50
    printable = set(string.printable)
    for e in ex:
        assert set(e["prompt"]) <= printable and set(e["response"]) <= printable
        assert e["image"].size == (64, 64) and e["image"].mode == "RGB"
        assert 3 <= e["n_filler"] <= 20 and e["answer"] in ld.PALETTE
        assert e["response"].endswith("Answer: " + e["answer"])
        assert e["answer"] == e["colours"][e["cell"] - 1]
        assert e["distance"] == len(e["prompt"]) + len(e["response"]) - len(e["answer"])
        # the cell really has that colour in the picture
        r, c = divmod(e["cell"] - 1, 2)
        assert e["image"].getpixel((c * 32 + 16, r * 32 + 16)) == ld.PALETTE[e["answer"]]
    if variant == "generated":
        assert ex[0]["response"].startswith("1 2 3")
    else:
        assert ex[0]["prompt"].startswith("Numbers: 1 2 3")


def test_splits_control_distance() -> None:
    task = REG.tasks["colour_recall"]
    train = task.load("train", limit=200)
    long = task.load("long", limit=50)
    assert max(s.metadata["n_filler"] for s in train) <= 16
    assert min(s.metadata["n_filler"] for s in long) >= 65
    assert max(s.metadata["distance"] for s in train) < min(s.metadata["distance"] for s in long)
    assert [s.id for s in task.load("test", limit=3)] == [s.id for s in task.load("test", limit=3)]


def test_scoring_and_distance_buckets() -> None:
    task = REG.tasks["colour_recall"]
    samples = task.load("test")
    right = [task.score(s, s.metadata["response"]) for s in samples]
    assert all(sc.value == 1.0 and sc.details["filler_ok"] for sc in right)
    s = samples[0]
    wrong = next(c for c in ld.PALETTE if c != s.target)
    assert task.score(s, f"1 2\nAnswer: {wrong}").value == 0.0
    assert task.score(s, f"<think>count</think>Answer: {s.target}.").value == 1.0
    cut = task.score(s, "1 2 3 4 5 6", truncated=True)
    assert cut.truncated and cut.value == 0.0
    metrics = task.aggregate(right)
    assert metrics["accuracy"] == 1.0 and any(k.startswith("accuracy@d") for k in metrics)
    given = REG.tasks["colour_recall_given"]
    g = given.load("long", limit=1)[0]
    assert "Numbers: 1 2 3" in g.question and given.score(g, f"Answer: {g.target}").value == 1.0
