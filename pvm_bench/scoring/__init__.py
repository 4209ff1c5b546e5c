"""Turning a model output into an answer and a score: the helpers task plugins build on.

Owns answer extraction (reasoning blocks, final-answer markers, multiple-choice letters, MMMU's
parsers: :mod:`~pvm_bench.scoring.extract`), the math answer rules (:mod:`~pvm_bench.scoring.answers`,
:mod:`~pvm_bench.scoring.mathscore`, :mod:`~pvm_bench.scoring.mathclean`,
:mod:`~pvm_bench.scoring.statements`, :mod:`~pvm_bench.scoring.symbolic`) and the local LM judge
(:mod:`~pvm_bench.scoring.judge`). May import the Task API (:mod:`pvm_bench.tasks`) and errors;
nothing of models, runner, report or cli.
"""

from pvm_bench.scoring.answers import AnswerRules, find_final_answer
from pvm_bench.scoring.extract import (
    PreparedOutput,
    apply_unfinished_policy,
    extract_mcq_answer,
    is_unfinished,
    letter_score,
    levenshtein,
    prepare_output,
    seed_for,
    strip_reasoning_tags,
    truncated_score,
    unfinished_policy_for,
)
from pvm_bench.scoring.mathscore import (
    MathVerdict,
    choices_from_question,
    free_form_score,
    score_free_form,
    score_mathvista,
)
from pvm_bench.scoring.symbolic import is_equal

__all__ = [
    "AnswerRules", "MathVerdict", "PreparedOutput", "apply_unfinished_policy", "choices_from_question",
    "extract_mcq_answer",
    "find_final_answer", "free_form_score", "is_equal", "is_unfinished", "letter_score", "levenshtein",
    "prepare_output", "score_free_form", "score_mathvista", "seed_for", "strip_reasoning_tags", "truncated_score",
    "unfinished_policy_for",
]
