"""The MathVerse/MathVision rule scorer agrees with a person on a hand-written corpus."""

from __future__ import annotations

import sys
from pathlib import Path

from pvm_bench.scoring.mathscore import score_free_form

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mathverse_corpus as mv  # noqa: E402


def test_free_form_scorer_agrees_with_person() -> None:
    results = []
    for key, output, verdict in mv.CASES:
        doc = mv.DOCS[key]
        v = score_free_form(output, doc["answer"], doc["options"], multi_choice=doc["mc"])
        results.append((key, output, verdict, v.correct))
    agree = sum(ok == verdict for _, _, verdict, ok in results)
    false_correct = [r for r in results if r[3] and not r[2]]
    print(
        f"\nfree-form rule scorer: n={len(results)} agreement={agree}/{len(results)} false_correct={len(false_correct)}"
    )
    assert len(results) >= 40
    assert agree / len(results) >= 0.95, [r for r in results if r[2] != r[3]]
    assert len(false_correct) <= 1, false_correct
