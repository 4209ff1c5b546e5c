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
