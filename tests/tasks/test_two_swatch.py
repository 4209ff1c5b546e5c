"""The 2-image length diagnostic (issue 15 item 3): two swatches, asked about the first."""

from __future__ import annotations

import pytest

from pvm_bench.organism import ORGANISM_TASKS
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
