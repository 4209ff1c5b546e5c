"""MathVision/MathVerse scoring: symbolic equality as lmms-eval (latex2sympy2), rule-based finding."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvm_bench.scoring.answer_options import infer_option
from pvm_bench.scoring.answers import find_final_answer, numbers_in, parse_number
from pvm_bench.scoring.mathscore import choices_from_question, score_free_form
from pvm_bench.scoring.symbolic import SYMBOLIC, is_equal, numeric_value
from pvm_bench.tasks import Sample, get_registry

REG = get_registry(entry_points=False)


@pytest.mark.parametrize(("pred", "gold"), [("3.0", "3"), ("\\frac{1}{2}", "0.5"), ("(1,2)", "(1, 2)"), ("1/2", "0.5"),
                                            ("10\\%", "0.1"), ("[1, 2.50]", "[1,2.5]")])
def test_symbolic_equal_as_lmms_eval(pred: str, gold: str) -> None:
    assert SYMBOLIC == "latex2sympy2"
    assert is_equal(pred, gold) and is_equal(gold, pred)


@pytest.mark.parametrize(("pred", "gold"), [("4", "3"), ("\\frac{1}{3}", "0.5"), ("(1,3)", "(1, 2)"), ("", "3"),
                                            # lmms-eval evaluates str(sympy) in a namespace without sympy names:
                                            # sqrt(2) raises NameError there, so it never equals 1.41.
                                            ("\\sqrt{2}", "1.41")])
def test_symbolic_unequal_as_lmms_eval(pred: str, gold: str) -> None:
    assert not is_equal(pred, gold)


def test_numeric_value_never_executes_code() -> None:
    assert numeric_value("1/2 + 3**2") == 9.5
    for bad in ("__import__('os').system('true')", "sqrt(2)", "x", "2**1000000", "[1][0]"):
        with pytest.raises(ValueError):
            numeric_value(bad)


MATHVISION = [
    ("\\boxed{3.0}", "3", None, True),
    ("So $x = \\frac{1}{2}$, i.e. \\boxed{0.5}.", "\\frac{1}{2}", None, True),
    ("The intersection point is \\boxed{(1, 2)}.", "(1,2)", None, True),
    ("Answer: 2\\sqrt{3}", "2\\sqrt{3}", None, True),
    ("The answer is \\boxed{4}. Wait, actually I double counted; the answer is 3.", "3", None, True),
    ("\\boxed{3}. Hmm, let me recheck... no, it is \\boxed{4}.", "3", None, False),
    ("The line is $y = 2x + 1$.", "y=2x+1", None, True),
    ("\\boxed{7}. The answer is consistent with the figure.", "7", None, True),
    ("I could not solve this problem.", "3", None, False),
    ("The answer is (C).", "B", ["red", "green", "blue"], False),
    ("The answer is \\boxed{B}", "B", ["red", "green", "blue"], True),
    ("\\boxed{green}", "B", ["red", "green", "blue"], True),
    ("Comparing the colours, the picture is green.", "B", ["red", "green", "blue"], True),
]


@pytest.mark.parametrize(("text", "gold", "choices", "ok"), MATHVISION)
def test_free_form_scorer(text: str, gold: str, choices: list[str] | None, ok: bool) -> None:
    verdict = score_free_form(text, gold, choices, multi_choice=bool(choices))
    assert verdict.correct is ok, verdict


def test_unparsed_free_form_and_mc_say_none() -> None:
    assert score_free_form("", "3").extractor == "none"
    assert score_free_form("I am not sure which one.", "B", ["red", "green"], multi_choice=True).extractor == "none"


def test_helpers() -> None:
    assert numbers_in("It costs $1,250.50, not 1,300.") == [(1250.5, False)]
    assert numbers_in("\\frac{3}{4} of 45\\%")[0][0] == 0.75 and numbers_in("45\\%") == [(45.0, True)]
    assert parse_number("There are 7 apples left, since Tom started with 9", "last_line") == (7.0, False)
    assert parse_number("so 9 - 2 = 7 apples", "last_line") == (7.0, False)
    assert infer_option("(B) 8/11", ["3/11", "8/11"]) == (1, "option_letter")
    assert infer_option("the answer must be 8/11", ["3/11", "8/11"]) == (1, "option_text")
    assert infer_option("A square is the answer", ["circle", "square"], "last_line") == (1, "option_text")
    cand, value = find_final_answer("The answer is 4.\n\n**Final Answer:** \\boxed{5}", lambda s, w: parse_number(s, w))
    assert cand.extractor == "boxed" and value == (5.0, False)
    assert choices_from_question("Q?\nChoices:\nA:red\nB:green\nC. blue") == ["red", "green", "blue"]


def test_mathverse_default_is_lmms_testmini_with_note(fixture_data: Path) -> None:
    task = REG.tasks["mathverse"]
    assert task.default_split == "testmini" and task.hub_configs == ("testmini",)
    assert task.generation["max_new_tokens"] == 16384
    assert task.comparability_note == "rule-scored, not comparable with GPT-judged numbers"
    assert task.comparability_note in task.description
    vo = REG.tasks["mathverse_vision_only"]
    assert vo.default_split == "vision_only" and vo.generation["max_new_tokens"] == 1024
    samples = task.load(data_dir=fixture_data)
    assert len(samples) == 5 and samples[0].metadata["options"] == ["red", "green", "blue", "yellow"]
    score = task.score(samples[0], "<think>It looks blue.</think>The picture is blue, so the answer is C.")
    assert score.value == 1.0 and score.details["extractor"] == "answer_marker"
    none = task.score(samples[1], "I cannot see the picture.")
    assert none.value == 0.0 and none.details["extractor"] == "none"


def test_generation_lengths_as_lmms_eval_yaml() -> None:
    # mathvista_testmini_format/cot/solution.yaml, mathvision_testmini.yaml, mathverse_testmini.yaml: 16384.
    for name in ("mathvista", "mathvista_cot", "mathvista_solution", "mathvista_lmms", "mathvision", "mathvision_lmms",
                 "mathverse"):
        assert REG.tasks[name].generation["max_new_tokens"] == 16384, name


def test_mathvision_lmms_keeps_lmms_extraction() -> None:
    task = REG.tasks["mathvision_lmms"]
    sample = Sample(id="1", question="q", target="3", choices=None)
    # lmms-eval takes the text after "is " when it is a number; a later revision without it is lost.
    assert task.score(sample, "the answer is 3.").value == 1.0
    assert task.score(sample, "\\boxed{3.0}").value == 1.0
    assert REG.tasks["mathvision"].score(sample, "I think it is 4. Wait, actually it is 3.").value == 1.0


@pytest.mark.parametrize("text", [
    "To find the answer: count 3 rows of 4.\nEach row has 4 apples.\nThere are 12 apples in total.",
    "Please provide the final answer, e.g., 1, 2, 3, at the end.\nThere are 12 apples.",
    "## Final Answer\n\\boxed{12}",
    "**Final Answer**\n\n12",
    "Let me determine the answer: 3 x 4 = 12.\nSo 12.",
])
def test_announced_answers_are_not_final(text: str) -> None:
    from pvm_bench.scoring.mathscore import score_mathvista

    problem = {"question_type": "free_form", "answer_type": "integer", "precision": None}
    assert score_mathvista(problem, "12", text).correct
