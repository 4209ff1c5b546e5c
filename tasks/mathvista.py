"""MathVista (AI4Math/MathVista, testmini): math reasoning in visual contexts.

Prompts and generation as lmms-eval 0.7.3 ``tasks/mathvista``: ``create_one_query`` with 0 shots
(``MathVistaEvaluator.create_one_query``, mathvista_evals.py line 350) and ``shot_type``
``"format-prompt"`` (task ``mathvista`` = lmms-eval's ``mathvista_testmini_format``),
``"step-by-step"`` (``mathvista_cot``) or ``"solution"``; ``max_new_tokens: 16384``
(mathvista_testmini_format.yaml and _solution.yaml line 13, _cot.yaml line 14).

Scoring, two families of tasks:

* ``mathvista``, ``mathvista_cot``, ``mathvista_solution`` (default): the rule-based final-answer
  scorer of :func:`pvm_bench.scoring.mathscore.score_mathvista` (boxed / "answer is" / last line, option
  letter or text, numbers rounded to the dataset precision as an int, lists). With a judge
  (``set_judge``, ``--judge MODEL``) the judge extracts the answer with lmms-eval's prompt and the
  extraction is scored by the same rules (``details["extractor"] == "judge"``).
* ``mathvista_lmms``, ``mathvista_cot_lmms``, ``mathvista_solution_lmms``: lmms-eval 0.7.3's exact
  ``mathvista_process_results`` (utils.py lines 48-82) with ``quick_extract=True`` and, without a
  judge, the empty extraction lmms-eval gets when its judge call gives nothing back; including its
  quirk that ``round(x, precision)`` with the dataset's float precision (e.g. 1.0) raises, so
  float answers never match (mathvista_evals.py line 313). Kept for parity with published
  lmms-eval numbers and the golden tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pvm_bench.scoring import levenshtein, prepare_output, score_mathvista, truncated_score
from pvm_bench.scoring.answers import GUESS_EXTRACTORS
from pvm_bench.scoring.judge import create_test_prompt
from pvm_bench.tasks import HubTask, LazyImage, Sample, Score, TaskError

Judge = Callable[[str], str]
REQUIRED = ("pid", "question", "question_type", "answer_type", "query")


def _hint(shot_type: str, question_type: str, answer_type: str, precision: Any) -> str:
    """The hint line of lmms-eval ``create_one_query`` for the supported shot types."""
    if shot_type == "format-prompt":
        if question_type == "multi_choice":
            return "Answer with the option's letter from the given choices directly."
        if answer_type == "integer":
            return "Answer the question using a single integer number."
        if answer_type == "float" and precision == 1:
            return "Answer the question using a single floating-point number with one decimal place."
        if answer_type == "float" and precision == 2:
            return "Answer the question using a single floating-point number with two decimal places."
        if answer_type == "list":
            return "Answer the question using a Python list."
        return ""  # lmms-eval would raise UnboundLocalError here (float with precision 3)
    if shot_type in ("solution", "step-by-step"):
        if question_type == "multi_choice":
            return (
                "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
            )
        if answer_type == "integer":
            return (
                "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., "
                "1, 2, 3, at the end."
            )
        if answer_type == "float" and precision == 1:
            return (
                "Hint: Please answer the question requiring a floating-point number with one decimal place and "
                "provide the final value, e.g., 1.2, 1.3, 1.4, at the end."
            )
        if answer_type == "float" and precision == 2:
            return (
                "Hint: Please answer the question requiring a floating-point number with two decimal places and "
                "provide the final value, e.g., 1.23, 1.34, 1.45, at the end."
            )
        if answer_type == "list":
            return (
                "Hint: Please answer the question requiring a Python list as an answer and provide the final list, "
                "e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end."
            )
        return ""
    raise TaskError(f"mathvista: unsupported shot_type '{shot_type}'")


def create_one_query(problem: dict[str, Any], shot_type: str = "format-prompt") -> str:
    """lmms-eval ``MathVistaEvaluator.create_one_query`` with ``shot_num=0``, no caption/OCR."""
    question = problem["question"]
    unit = problem.get("unit")
    choices = problem.get("choices")
    hint_text = _hint(shot_type, problem["question_type"], problem["answer_type"], problem.get("precision"))
    question_text = f"{question}" if shot_type == "format-prompt" else f"Question: {question}"
    if unit:
        question_text += f" (Unit: {unit})"
    if choices:
        if shot_type == "format-prompt":
            choices_text = "\n".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(choices))
        else:
            choices_text = "\n".join(["Choices:"] + [f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(choices)])
    else:
        choices_text = ""
    prompt = "Solution: " if shot_type == "solution" else ""
    elements = [question_text, choices_text, "", "", hint_text, prompt]
    test_query = "\n".join(e for e in elements if e != "")
    return ("" + "\n\n" + test_query).strip()


def extract_answer(response: str, problem: dict[str, Any], judge: Judge | None = None) -> tuple[str, str]:
    """lmms-eval ``extract_answer(..., quick_extract=True)`` (mathvista_evals.py lines 218-265);
    returns (extraction, how).

    ``how`` is one of ``empty``, ``choice_text``, ``integer``, ``float``, ``quick_extract``,
    ``judge``, ``judge_error``, ``none`` (no judge and no rule matched: extraction ``""``).
    lmms-eval's mathvista.yaml sets ``quick_extract: false`` (line 7); with a working judge the regex only
    saves a call, without one it is the single rule beyond the exact-match shortcuts.
    """
    question_type = problem["question_type"]
    answer_type = problem["answer_type"]
    choices = problem.get("choices") or []
    if not response:
        return "", "empty"
    if question_type == "multi_choice" and response in choices:
        return response, "choice_text"
    if answer_type == "integer":
        try:
            return str(int(response)), "integer"
        except ValueError:
            pass
    if answer_type == "float":
        try:
            return str(float(response)), "float"
        except ValueError:
            pass
    try:
        result = re.search(r'The answer is "(.*)"\.', response)
        if result:
            return result.group(1), "quick_extract"
    except re.error:
        pass
    if judge is None:
        return "", "none"
    try:
        out = judge(create_test_prompt(problem["query"], response))
    except Exception:  # a failing judge is treated like lmms-eval's failed API call
        return "", "judge_error"
    return (out or "").strip(), "judge"


def get_most_similar(prediction: str, choices: list[str]) -> str:
    """lmms-eval ``get_most_similar`` (mathvista_evals.py lines 267-273; Levenshtein distance, first minimum)."""
    distances = [levenshtein(prediction, choice) for choice in choices]
    return choices[distances.index(min(distances))]


def normalize_extracted_answer(extraction: Any, choices: list[str] | None, question_type: str, answer_type: str,
                               precision: Any, precision_quirk: bool = True) -> str | None:
    """lmms-eval ``normalize_extracted_answer`` (0.7.3 mathvista_evals.py lines 275-323)."""
    if question_type == "multi_choice":
        if isinstance(extraction, str):
            extraction = extraction.strip()
        else:
            try:
                extraction = str(extraction)
            except Exception:
                extraction = ""
        letter = re.findall(r"\(([a-zA-Z])\)", extraction)
        if len(letter) > 0:
            extraction = letter[0].upper()
        choices = list(choices or [])
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if extraction in options:
            extraction = choices[options.index(extraction)]
        else:
            extraction = get_most_similar(extraction, choices)
        return extraction
    if answer_type == "integer":
        try:
            return str(int(float(extraction)))
        except Exception:
            return None
    if answer_type == "float":
        try:
            digits = precision if precision_quirk else (None if precision is None else int(precision))
            return str(round(float(extraction), digits))
        except Exception:
            return None
    if answer_type == "list":
        try:
            return str(extraction)
        except Exception:
            return None
    return extraction


def safe_equal(prediction: Any, answer: Any) -> bool:
    """lmms-eval ``safe_equal`` (mathvista_evals.py lines 325-335)."""
    try:
        return str(prediction).strip() == str(answer).strip()
    except Exception:
        return False


class MathVista(HubTask):
    """MathVista testmini: lmms-eval's prompt; rule-based (default) or lmms-eval scoring."""

    name = "mathvista"
    version = "2.0"
    splits = ("testmini", "test")
    default_split = "testmini"
    hub_id = "AI4Math/MathVista"
    data_name = "mathvista"
    required_fields = REQUIRED
    id_field = "pid"
    generation = {"max_new_tokens": 16384}

    def __init__(self, shot_type: Literal["format-prompt", "step-by-step", "solution"] = "format-prompt",
                 name: str | None = None, scorer: Literal["rule", "lmms"] = "rule", judge: Any = None,
                 precision_quirk: bool = True) -> None:
        self.shot_type = shot_type
        self.scorer = scorer
        self.judge = judge
        self.precision_quirk = precision_quirk
        if name:
            self.name = name
        how = ("rule-based final answer (boxed / answer marker / last line, dataset precision)" if scorer == "rule"
               else "lmms-eval 0.7.3 quick_extract, no GPT judge")
        self.description = f"MathVista testmini: math reasoning in visual contexts ({shot_type} prompt, {how})"
        if scorer == "rule":
            self.comparability_note = "rule-scored final answers; lmms-eval's published numbers use a GPT extractor"

    def set_judge(self, judge: Any) -> None:
        """Score with ``judge`` (a :class:`pvm_bench.scoring.judge.Judge`, or anything with ``extract(query,
        output) -> str`` and ``complete(prompt) -> str``); None: rules only."""
        self.judge = judge

    def sample_from_row(self, row: dict[str, Any], position: int = 0) -> Sample:
        """Build a Sample from an AI4Math/MathVista row (required fields checked by HubTask.load)."""
        ident = self.row_id(row, position)
        if row["question_type"] == "multi_choice" and not row.get("choices"):
            raise TaskError(f"task '{self.name}': record {ident} is multi_choice without choices")
        problem = {
            "question_type": row["question_type"],
            "answer_type": row["answer_type"],
            "question": row["question"],
            "unit": row.get("unit") or "",
            "choices": list(row["choices"]) if row.get("choices") is not None else None,
            "precision": row.get("precision", 0),
            "query": row["query"],
        }
        image = row.get("decoded_image")
        if image is None:
            raise TaskError(f"task '{self.name}': record {ident} has no decoded_image")
        return Sample(
            id=str(ident),
            question=create_one_query(problem, self.shot_type),
            target=row.get("answer"),
            images=[LazyImage(image, name=f"{self.name} sample {ident} decoded_image")],
            choices=problem["choices"],
            metadata={"problem": problem, "shot_type": self.shot_type, **_flat_meta(row.get("metadata"))},
        )

    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output, policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        if prep.unanswered:
            return truncated_score(reason="ended inside a reasoning block", extractor="none")
        text = prep.text.strip()
        if self.scorer == "lmms":
            return self._score_lmms(sample, text, truncated)
        problem = sample.metadata["problem"]
        if self.judge is not None:
            raw = self.judge.extract(problem["query"], text)
            verdict = score_mathvista(problem, sample.target, raw)
            details = {**verdict.details(), "extractor": "judge", "judge_raw": raw}
            return Score(value=float(verdict.correct), parsed=verdict.parsed, details=details)
        verdict = score_mathvista(problem, sample.target, text)
        if truncated and verdict.extractor in GUESS_EXTRACTORS:  # a cut-off last line states no answer
            return truncated_score(**verdict.details())
        return Score(value=float(verdict.correct), parsed=verdict.parsed, details=verdict.details())

    def _score_lmms(self, sample: Sample, text: str, truncated: bool) -> Score:
        """lmms-eval 0.7.3 ``mathvista_process_results`` (utils.py lines 48-82)."""
        problem = sample.metadata["problem"]
        judge = None if self.judge is None else self.judge.complete
        extraction, how = extract_answer(text, problem, judge)
        details: dict[str, Any] = {"extractor": "none" if extraction == "" else how, "extraction": extraction}
        if how == "judge":
            details["judge_raw"] = extraction
        if truncated and extraction == "":
            return truncated_score(**details)
        prediction = normalize_extracted_answer(extraction, problem["choices"], problem["question_type"],
                                                problem["answer_type"], problem["precision"], self.precision_quirk)
        correct = safe_equal(prediction, sample.target) if sample.target is not None else False
        return Score(value=float(correct), parsed=prediction, details=details)


def _flat_meta(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict):
        return {}
    keep = ("category", "context", "grade", "language", "source", "task", "skills")
    return {k: meta.get(k) for k in keep if k in meta}


TASKS = [
    MathVista(),
    MathVista(shot_type="step-by-step", name="mathvista_cot"),
    MathVista(shot_type="solution", name="mathvista_solution"),
    MathVista(name="mathvista_lmms", scorer="lmms"),
    MathVista(shot_type="step-by-step", name="mathvista_cot_lmms", scorer="lmms"),
    MathVista(shot_type="solution", name="mathvista_solution_lmms", scorer="lmms"),
]
