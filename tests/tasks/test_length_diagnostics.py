"""The synthetic length-controlled colour_recall tasks and their trainer contract."""

from __future__ import annotations

import string
import sys

import pytest

from pvm_bench.tasks import get_registry

REG = get_registry(entry_points=False)
ld = sys.modules[type(REG.tasks["colour_recall"]).__module__]  # tasks/length_diagnostics.py, as loaded


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


def test_swatch_design_counts_down_with_fine_palette() -> None:
    """swatch_recall: a one-colour image, 12-colour palette, filler counted down to 1."""
    task = REG.tasks["swatch_recall"]
    assert ld.task_design("swatch_recall") == ld.SWATCH and repr(task.design) == repr(ld.SWATCH)
    samples = task.load("test", limit=60)
    assert len(set(s.target for s in samples)) > 5 and {s.target for s in samples} <= set(ld.FINE_PALETTE)
    s = next(s for s in samples if s.metadata["n_filler"] >= 12)
    n = s.metadata["n_filler"]
    assert s.question == f"Count down from {n} to 1, then name the colour of the image."
    assert s.metadata["response"] == " ".join(str(i) for i in range(n, 0, -1)) + f"\nAnswer: {s.target}"
    img = s.images[0].load()
    assert set(img.getdata()) == {ld.FINE_PALETTE[s.target]}
    ok = task.score(s, s.metadata["response"])
    assert ok.value == 1.0 and ok.details["filler_ok"]
    up = task.score(s, ld.filler(n, "up") + f"\nAnswer: {s.target}")
    assert up.value == 1.0 and not up.details["filler_ok"]
    given = REG.tasks["swatch_recall_given"].load("test", limit=5)
    assert all(g.question.endswith("Name the colour of the image.") for g in given)


def test_design_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="count"):
        ld.Design(count="sideways")
    with pytest.raises(ValueError, match="palette"):
        ld.make_examples(2, 0, palette="neon")
    with pytest.raises(KeyError, match="swatch_recall"):
        ld.task_design("nope")
