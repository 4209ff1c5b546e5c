"""New instances of issue 23 item 4's classes found in review (each failed before the fix).

A sign written as a word ("negative 4", "is minus 4"), a spaced minus on the marker's line
("Answer: - 4"), full-width/figure minus signs, a braceless ``\\frac12`` and a negated boxed answer
("the answer is not $\\boxed{4}$") were read as the positive number / the negated value, on
MathVista, MathVerse and MathVision alike.
"""

from __future__ import annotations

import pytest

from pvm_bench.scoring.answers import numbers_in
from pvm_bench.scoring.mathscore import score_free_form
from pvm_bench.tasks import get_registry


def _vista(answer: str, output: str) -> float:
    task = get_registry(entry_points=False).tasks["mathvista"]
    row = {"pid": "1", "question": "What is the value of y?", "query": "What is the value of y?",
           "answer": answer, "answer_type": "integer", "question_type": "free_form", "precision": None,
           "unit": None, "choices": None, "decoded_image": {"bytes": b"-", "path": None}}
    return task.score(task.sample_from_row(row, 0), output).value


@pytest.mark.parametrize(("text", "value"), [
    ("negative 4", -4.0), ("the answer is minus 4", -4.0), ("negative four", -4.0), ("－4", -4.0), ("‒4", -4.0),
    ("10 minus 4 is 6", 10.0), ("\\frac12", 0.5), ("-\\frac34", -0.75),
])
def test_numbers_keep_signs_and_braceless_fractions(text: str, value: float) -> None:
    assert numbers_in(text)[0][0] == value


@pytest.mark.parametrize(("output", "gold", "correct"), [
    ("The answer is negative 4.", "4", False),
    ("The answer is negative 4.", "-4", True),
    ("Answer: - 4", "-4", True),
    ("Answer: - 4", "4", False),
    ("The answer is not $\\boxed{4}$; it is 5.", "4", False),
    ("The answer is no longer 4; it is 5.", "4", False),
    ("Compute.\nSo 10 minus 4 is 6", "6", True),
])
def test_mathvista_sign_words_spaced_minus_and_negations(output: str, gold: str, correct: bool) -> None:
    assert _vista(gold, output) == float(correct)


@pytest.mark.parametrize(("output", "gold", "correct"), [
    ("The answer is negative 3.", "3", False),
    ("The answer is negative 3.", "-3", True),
    ("Answer: $\\frac12$", "\\frac{1}{2}", True),
])
def test_free_form_tasks_read_the_sign_word(output: str, gold: str, correct: bool) -> None:
    assert score_free_form(output, gold, question="Find the value.").correct is correct


@pytest.mark.parametrize(("output", "gold", "correct"), [
    ("The final answer should not be 6.", "6", False),
    ("The answer is not (B).", "5", False),
    ("The answer is not B; it is C.", "7", True),
])
def test_negated_answers_are_not_read_back_by_the_last_line(output: str, gold: str, correct: bool) -> None:
    task = get_registry(entry_points=False).tasks["mathvista"]
    row = {"pid": "1", "question": "Which value is the mode?", "query": "Which value is the mode?",
           "answer": gold, "answer_type": "integer" if gold == "6" else "text",
           "question_type": "free_form" if gold == "6" else "multi_choice", "precision": None, "unit": None,
           "choices": None if gold == "6" else ["3", "5", "7", "9"], "decoded_image": {"bytes": b"-", "path": None}}
    assert task.score(task.sample_from_row(row, 0), output).value == float(correct)
