"""MathVerse (CaraJ/MathVerse-lmmseval, config ``testmini_version_split``).

Tasks ``mathverse`` (split ``vision_only``: the problem lives in the image) and
``mathverse_text_dominant``. Prompt: lmms-eval 0.7.3 ``create_one_query`` with
``shot_type="format-prompt"``, ``query_type="query_wo"``, i.e. the dataset's ``query_wo`` as is.

lmms-eval scores MathVerse only with a GPT judge (``score_answer(..., quick_match=False)``); its
``quick_match`` path is plain string equality. The **rule-based** scorer here (default, recorded
as ``details["extractor"]``): strip reasoning, take the last ``\\boxed{}`` or the text after the
last "answer" marker; multiple choice -> ``extract_mcq_answer`` letter == answer letter;
free-form -> equal after normalisation (case, spaces, ``$``, trailing period, units after a
number) or numerically equal (rel. tol 1e-6). Pass ``judge(question, answer, response) -> bool``
to use a local judge instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pvm_bench.scoring import (
    extract_mcq_answer,
    final_answer_text,
    last_boxed,
    prepare_output,
    truncated_score,
)
from pvm_bench.tasks import HubTask, LazyImage, Sample, Score

Judge = Callable[[str, str, str], bool]
_NUM = re.compile(r"^[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?")


def _norm(text: str) -> str:
    text = text.strip().strip("$").strip().rstrip(".").strip()
    text = text.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("^\\circ", "").replace("°", "")
    return re.sub(r"\s+", "", text).lower()


def _number(text: str) -> float | None:
    m = _NUM.match(_norm(text))
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


def rule_match(response: str, answer: str, multi_choice: bool) -> tuple[bool, str, bool]:
    """(correct, extracted answer, explicit answer found) by the rule-based path."""
    boxed = last_boxed(response)
    span, marker = (boxed, True) if boxed is not None else final_answer_text(response)
    if multi_choice:
        letter = extract_mcq_answer(span, choices=["A", "B", "C", "D", "E", "F"])
        return letter == answer.strip().upper(), letter, marker or bool(letter)
    if _norm(span) == _norm(answer):
        return True, span, True
    a, b = _number(span), _number(answer)
    ok = a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))
    return ok, span, marker or a is not None


class MathVerse(HubTask):
    version = "1.0"
    splits = ("vision_only", "text_dominant", "text_lite", "vision_intensive", "vision_dominant", "text_only")
    hub_id = "CaraJ/MathVerse-lmmseval"
    hub_configs = ("testmini_version_split",)
    data_name = "mathverse"
    generation = {"max_new_tokens": 1024}
    required_fields = ("query_wo", "answer", "question_type")
    id_field = "sample_index"

    def __init__(self, split: str = "vision_only", name: str = "mathverse", judge: Judge | None = None) -> None:
        self.name = name
        self.default_split = split
        self.judge = judge
        self.description = f"MathVerse testmini ({split.replace('_', '-')}): visual math (lmms-eval query_wo prompt, rule-based scoring)"

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        image = row.get("image")
        images = [] if image is None or str(image).strip() == "" else [LazyImage(image, name=f"{self.name} sample {ident} image")]
        return Sample(
            id=str(ident), question=row["query_wo"].strip(), target=str(row["answer"]), images=images, choices=None,
            metadata={"question_type": row["question_type"], "problem_version": row.get("problem_version"),
                      "question_for_eval": row.get("question_for_eval") or row.get("question")},
        )
    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output)
        details: dict[str, Any] = {"extractor": "rule" if self.judge is None else "judge"}
        if prep.unfinished_reasoning:
            return truncated_score(reason="ended inside a reasoning block", **details)
        if self.judge is not None:
            ok = bool(self.judge(str(sample.metadata["question_for_eval"]), str(sample.target), prep.text))
            return Score(value=float(ok), parsed=None, details=details)
        ok, parsed, found = rule_match(prep.text, str(sample.target), sample.metadata["question_type"] == "multi-choice")
        if truncated and not found:
            return truncated_score(**details)
        return Score(value=float(ok), parsed=parsed or None, details=details)


TASKS = [MathVerse(), MathVerse(split="text_dominant", name="mathverse_text_dominant")]
