r"""The default rule-based scorers of the math tasks, built on :mod:`pvm_bench.scoring.answers`.

* :func:`score_mathvista`: MathVista problems (``question_type`` multi_choice/free_form,
  ``answer_type`` text/integer/float/list, ``precision`` as int). Multiple choice: the chosen
  option (letter or text) must be the gold choice. Integer: numerically equal (``7.0`` is 7, ``7.4``
  is not). Float: equal after rounding both to the dataset precision as an int, as in the original
  MathVista ``normalize_extracted_answer`` (``round(float(x), int(precision))``; lmms-eval 0.7.3
  passes the float 1.0 and raises, see ``tasks/mathvista.py``). List: same items in order.
* :func:`score_free_form`: MathVerse/MathVision answers: option letter (gold letter, or the gold
  option's text), else a number, else lmms-eval's symbolic ``is_equal`` (:mod:`pvm_bench.scoring.symbolic`).

Every scorer returns a :class:`MathVerdict` whose ``extractor`` is the :class:`FinalAnswer` path
(``"none"`` when no final answer was found) and whose ``match`` says how it was read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pvm_bench.scoring.answer_options import infer_option
from pvm_bench.scoring.answers import (
    GUESS_EXTRACTORS,
    clean_math,
    decimals_of,
    find_final_answer,
    lists_match,
    normalize_text,
    numbers_in,
    numbers_match,
    parse_gold_list,
    parse_list,
    parse_number,
)
from pvm_bench.scoring.extract import truncated_score
from pvm_bench.scoring.symbolic import SYMBOLIC, is_equal
from pvm_bench.tasks import Score


@dataclass
class MathVerdict:
    """A scored final answer: correctness, the normalised prediction, the extraction path
    (``extractor``), how it was read (``match``: option_letter, option_text, number, list, text,
    symbolic, none) and the raw span."""

    correct: bool
    parsed: str | None
    extractor: str
    match: str
    span: str

    def details(self) -> dict[str, Any]:
        return {"extractor": self.extractor, "match": self.match, "extraction": self.span}


def precision_int(precision: Any) -> int | None:
    """The dataset's precision as an int (MathVista stores 1.0, 2.0 ...); None when missing."""
    try:
        value = float(precision)
    except (TypeError, ValueError):
        return None
    return None if value != value else int(value)


def score_mathvista(problem: dict[str, Any], target: Any, text: str) -> MathVerdict:
    """Score ``text`` (reasoning already stripped) against a MathVista ``target``."""
    qtype, atype = problem.get("question_type"), problem.get("answer_type")
    question = str(problem.get("question") or "")
    gold = "" if target is None else str(target)
    if qtype == "multi_choice":
        choices = [str(c) for c in problem.get("choices") or []]
        cand, got = find_final_answer(text, lambda s, where: infer_option(s, choices, where), question)
        if got is None:
            return MathVerdict(False, None, "none" if cand.extractor == "none" else cand.extractor, "none", cand.text)
        index, how = got
        pred = choices[index]
        ok = normalize_text(pred) == normalize_text(gold) or (gold in choices and choices.index(gold) == index)
        return MathVerdict(ok, pred, cand.extractor, how, cand.text)
    if atype == "list":
        gold_list = parse_gold_list(gold) or []
        cand, got = find_final_answer(text, lambda s, where: parse_list(s, len(gold_list)), question)
        if got is None:
            return MathVerdict(False, None, cand.extractor if cand.extractor == "boxed" else "none", "none", cand.text)
        return MathVerdict(lists_match(got, gold_list), str(got), cand.extractor, "list", cand.text)
    if atype in ("integer", "float"):
        precision = precision_int(problem.get("precision")) if atype == "float" else None
        if atype == "float" and precision is None:
            precision = decimals_of(gold)
        cand, got = find_final_answer(text, parse_number, question)
        try:
            gold_value = float(gold)
        except ValueError:
            gold_value = None
        if got is None or gold_value is None:
            return MathVerdict(
                False,
                None,
                cand.extractor
                if got is None and cand.extractor == "boxed"
                else ("none" if got is None else cand.extractor),
                "none" if got is None else "number",
                cand.text,
            )
        value, percent = got
        ok = numbers_match(value, gold_value, precision, pred_percent=percent)
        shown = str(int(value)) if atype == "integer" and value == int(value) else str(value)
        return MathVerdict(ok, shown, cand.extractor, "number", cand.text)
    cand, got = find_final_answer(text, lambda s, where: s if s.strip() else None, question)
    if got is None:
        return MathVerdict(False, None, "none", "none", "")
    return MathVerdict(_text_equal(got, gold), got, cand.extractor, "text", cand.text)


def _text_equal(pred: str, gold: str) -> bool:
    if normalize_text(pred) == normalize_text(gold):
        return True
    a, b = numbers_in(pred), numbers_in(gold)
    return len(a) == 1 and len(b) == 1 and numbers_match(a[0][0], b[0][0])


_CHOICE_LINE = re.compile(r"^\s*\(?([A-H])\)?\s*[:.．)]\s*(.+?)\s*$")


def choices_from_question(question: str) -> list[str]:
    """Option texts listed after "Choices:" as ``A:red`` / ``A. red`` / ``(A) red`` lines."""
    tail = question.split("Choices:", 1)[1] if "Choices:" in question else ""
    out: list[str] = []
    for line in tail.split("\n"):
        m = _CHOICE_LINE.match(line)
        if m and ord(m.group(1)) - ord("A") == len(out):
            out.append(m.group(2))
    return out


def math_segment(span: str) -> str:
    r"""The math a sentence states: its last ``$...$`` / ``\(...\)`` segment (unless the whole
    span is math), without a trailing period."""
    segs = re.findall(r"\$([^$]+)\$|\\\((.+?)\\\)", span)
    if segs and not span.strip().startswith("$"):
        span = [a or b for a, b in segs][-1]
    return span.strip().rstrip(".").strip().strip("$").strip()


def math_span(span: str) -> str:
    """:func:`math_segment` without a left-hand side: the text after the last ``=`` or
    ``\\approx``, else after the last " is "."""
    seg = math_segment(span)
    if "=" in seg or "\\approx" in seg:
        seg = re.split(r"=|\\approx", seg)[-1]
    elif re.search(r"\bis\b", seg):
        seg = re.split(r"\bis\b", seg)[-1]
    return seg.strip().strip("$").strip()


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", clean_math(text)).lower().rstrip(".")


def _free_form_value(span: str, where: str, gold: str) -> tuple[str, str] | None:
    expr = math_span(span)
    if not expr:
        return None
    prose = not re.search(r"[\d\\^=+*/()]", expr) and len(expr.split()) > 3
    if prose and normalize_text(expr) != normalize_text(gold):
        return None  # prose ("consistent with the figure", "I cannot see it"), not an answer
    if _squash(math_segment(span)) == _squash(gold):
        return math_segment(span), "text"
    if is_equal(expr, gold) or is_equal(clean_math(expr).replace(" ", ""), gold):
        return expr, "symbolic"
    if normalize_text(expr) == normalize_text(gold):
        return expr, "text"
    gold_num = numbers_in(gold)
    symbolic_expr = re.search(r"\\[a-zA-Z]+|[a-zA-Z]\s*[/*]|[/*]\s*[a-zA-Z]", clean_math(expr))
    got = None if symbolic_expr else parse_number(span, where)  # "\pi/3" is not the number 3
    if len(gold_num) == 1 and got is not None and re.fullmatch(r"[-\d.,\s%°^{}\\circ]+", clean_math(gold)):
        return str(got[0]), "number" if numbers_match(got[0], gold_num[0][0], pred_percent=got[1]) else "number_wrong"
    return expr, "unmatched"


def score_free_form(text: str, gold: str, choices: Sequence[str] | None = None, multi_choice: bool = False,
                    question: str = "") -> MathVerdict:
    """Score ``text`` against ``gold`` (a letter for multiple choice, else an expression).

    Multiple choice: the inferred option letter must equal ``gold`` (or its text the gold
    option's text). ``question`` names the asked quantity for answers stated as labelled values
    (:func:`pvm_bench.scoring.statements.asked_statement`). Free form: the last final-answer span, compared
    as symbolic/text/number (:func:`math_span`, :func:`pvm_bench.scoring.symbolic.is_equal`, :func:`numbers_match`).
    """
    gold = str(gold).strip()
    if multi_choice:
        opts = list(choices or [])
        letters = [chr(ord("A") + i) for i in range(max(len(opts), 5))]
        opts = opts + [""] * (len(letters) - len(opts))
        cand, got = find_final_answer(text, lambda s, where: infer_option(s, opts, where), question)
        if got is None:
            return MathVerdict(False, None, "none" if cand.extractor != "boxed" else "boxed", "none", cand.text)
        letter = letters[got[0]]
        ok = letter == gold.upper() or (
            gold.upper() in letters
            and opts[letters.index(gold.upper())] != ""
            and normalize_text(opts[got[0]]) == normalize_text(opts[letters.index(gold.upper())])
        )
        return MathVerdict(ok, letter, cand.extractor, got[1], cand.text)
    cand, got = find_final_answer(text, lambda s, where: _free_form_value(s, where, gold), question)
    if got is None:
        return MathVerdict(False, None, cand.extractor if cand.extractor == "boxed" else "none", "none", cand.text)
    value, how = got
    ok = how in ("symbolic", "text", "number")
    return MathVerdict(ok, value, cand.extractor, how if ok else "unmatched", cand.text)


def free_form_score(verdict: MathVerdict, *, judge_raw: str | None, truncated: bool) -> Score:
    """The :class:`Score` of a free-form math verdict (MathVerse, MathVision): a judge's raw text is
    kept (extractor "judge"); a truncated output whose answer is only a guess counts as truncated."""
    details: dict[str, Any] = {**verdict.details(), "symbolic": SYMBOLIC}
    if judge_raw is not None:
        details.update(judge_raw=judge_raw, extractor="judge")
    if truncated and verdict.extractor in GUESS_EXTRACTORS:  # a cut-off last line states no answer
        return truncated_score(**details)
    return Score(value=float(verdict.correct), parsed=verdict.parsed, details=details)
