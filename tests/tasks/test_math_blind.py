"""An independent, blind check of the default MathVista scorer (issue 13 item 3 acceptance).

``math_corpus_blind.py`` was written and committed before its author read the scorer: 200+
realistic outputs with a person's verdict on the final answer. Here every output is scored through
the Task API exactly as a run does (registry task ``mathvista``, ``sample_from_row`` on a
testmini-schema row, ``task.score(sample, output, truncated=...)``) and compared with the verdict.
Run with ``-s`` to print the figures and every disagreement.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from pvm_bench.tasks import Sample, get_registry

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import math_corpus_blind as blind  # noqa: E402

TASK = get_registry(entry_points=False).tasks["mathvista"]
MIN_AGREEMENT = 0.95
MAX_FALSE_CORRECT = 2


def _samples() -> dict[str, Sample]:
    return {key: TASK.sample_from_row({**row, "decoded_image": {"bytes": b"-", "path": None}}, i)
            for i, (key, row) in enumerate(blind.PROBLEMS.items())}


def score_corpus() -> list[tuple[blind.Case, bool, str]]:
    """(case, scorer says correct, extractor path) for every case of the blind corpus."""
    samples = _samples()
    out = []
    for case in blind.CASES:
        score = TASK.score(samples[case.problem], case.output, truncated=case.truncated)
        out.append((case, score.value == 1.0, str(score.details.get("extractor"))))
    return out


def test_blind_corpus_is_large_balanced_and_varied() -> None:
    cases = blind.CASES
    assert len(cases) >= 160
    share = sum(c.correct for c in cases) / len(cases)
    assert 0.5 <= share <= 0.6, share
    kinds = Counter((blind.PROBLEMS[c.problem]["question_type"], blind.PROBLEMS[c.problem]["answer_type"])
                    for c in cases)
    assert set(kinds) == {("multi_choice", "text"), ("free_form", "integer"), ("free_form", "float"),
                          ("free_form", "list")}
    assert sum(c.truncated for c in cases) >= 3
    assert len({(c.problem, c.output) for c in cases}) == len(cases), "duplicate cases"


def test_default_scorer_agrees_with_the_blind_verdicts() -> None:
    results = score_corpus()
    disagree = [(case, said, how) for case, said, how in results if said != case.correct]
    false_correct = [d for d in disagree if d[1] and not d[0].correct]
    agreement = 1 - len(disagree) / len(results)
    print(f"\nblind corpus: n={len(results)} agreement={agreement:.4f} ({len(results) - len(disagree)}/"
          f"{len(results)}) false_correct={len(false_correct)} false_wrong={len(disagree) - len(false_correct)}")
    for case, said, how in disagree:
        print(f"  [{case.problem}] verdict={case.correct} scorer={said} via={how} ({case.note}): {case.output!r}")
    assert agreement >= MIN_AGREEMENT, [(c.problem, c.output) for c, _, _ in disagree]
    assert len(false_correct) <= MAX_FALSE_CORRECT, [(c.problem, c.output) for c, _, _ in false_correct]


def test_truncated_cases_are_reported_as_truncated() -> None:
    """Cut-off outputs without a final answer score 0 and carry the truncated flag."""
    samples = _samples()
    for case in blind.CASES:
        if case.truncated and not case.correct:
            score = TASK.score(samples[case.problem], case.output, truncated=True)
            assert score.value == 0.0, case.output
            assert score.truncated, case.output


# Each rule added after the first blind measurement, with the guard that keeps it from reading a
# wrong answer: (problem, output, expected value, expected extractor or None for "don't care").
RULES = [
    # quoted letter (lmms-eval's own 'The answer is "C".' format)
    ("angle", 'The answer is "C".', 1.0, "answer_marker"),
    ("angle", "Answer: `A`", 0.0, "answer_marker"),
    # "the closest option is D" is a choice, not a number somewhere in the line
    ("digits", "x = 3 at first, but the 5 is a leg, so x ≈ 6.4. The closest option is D.", 0.0, "answer_marker"),
    ("digits", "x ≈ 2.9, so the closest option is C.", 1.0, "answer_marker"),
    # a bare answer on the first line, explained below
    ("count", "4\n\nExplanation: after removing the 2 red balls and the 1 tiny cylinder, 1 sphere remains.", 1.0,
     "first_line"),
    ("yesno", "B\n\nMedium Seafoam is above Dark Orchid at every x from 0 to 100.", 1.0, "first_line"),
    ("list", "[2007, 2008]\n\nOnly these two years exceed 50 (55 and 61).", 1.0, "first_line"),
    ("count", "3\n\nWait, one red ball is hidden behind the cube, so 4 objects are left.", 1.0, "last_line"),
    ("count", "Step 1: count all objects.\nThere are 7 objects; 3 are removed.\nSo 7 - 3 = 4", 1.0, "last_line"),
    ("shape", "Not a circle\nIt has four equal sides and right angles, so it is a square.", 1.0, "last_line"),
    ("count", "5\n\nAfter removing the 2 red balls and the tiny cylinder, 4 objects remain.", 0.0, "first_line"),
    # a closing parenthetical aside after the stated number
    ("neg", "So y = 3x - 2 and the y-intercept is -2 (the line crosses the x-axis at 2/3).", 1.0, "last_line"),
    ("age", "The gap is 12 years (42 - 30), not 7.", 0.0, "last_line"),
    ("age", "So the gap is (7)", 1.0, "last_line"),
    # a list stated in prose after "are"
    ("list", "The years with values above 50 are 2007 and 2008.", 1.0, "last_line"),
    ("list", "The years with values above 50 are 2007, 2008 and 2009.", 0.0, None),
]


def test_rules_added_after_the_blind_measurement() -> None:
    samples = _samples()
    for problem, output, value, extractor in RULES:
        score = TASK.score(samples[problem], output)
        assert score.value == value, (problem, output, score)
        if extractor is not None:
            assert score.details["extractor"] == extractor, (problem, output, score)


def test_truncated_output_read_from_its_cut_off_line_is_truncated_but_a_stated_answer_counts() -> None:
    samples = _samples()
    cut = TASK.score(
        samples["age"], "The man is about 42 and the woman 35, so the gap is around 7 years, but", truncated=True
    )
    assert (cut.value, cut.truncated) == (0.0, True)
    stated = TASK.score(
        samples["age"], "The answer is 7.\n\nTo double-check, the man's hair suggests he is", truncated=True
    )
    assert (stated.value, stated.truncated) == (1.0, False)
    first = TASK.score(samples["count"], "4\n\nExplanation: after removing the 2 red balls and the", truncated=True)
    assert (first.value, first.truncated) == (1.0, False)
