r"""Rule-based final-answer extraction for math benchmarks (MathVista, MathVerse, MathVision).

A researcher reading an output looks for the *final* answer: the last ``\boxed{}``, the text after
the last "the answer is" / "Answer:" / "Final answer", an ``<answer>`` tag, or else the last line.
An answer revised at the end ("..., wait, actually the answer is C") is the last one. This module
does the same, in one place, for every math task:

* :func:`answer_candidates` lists every answer-bearing span of a text (boxed, answer tag, answer
  marker) with its position;
* :func:`find_final_answer` takes the **last** candidate that the caller's parser accepts (a span
  such as "determined by the slope" after "the answer is" does not parse as a number and is
  skipped), else a bare answer alone on the first line followed by an explanation, else the last
  non-empty line, else reports ``extractor == "none"``;
* parsers for numbers (thousands commas, ``$``, units, ``%``, ``\frac``, ``a/b``, number words) and
  lists (``[2007, 2008]`` or "2007 and 2008"); option letters / option text are inferred by
  :mod:`pvm_bench.scoring.answer_options`.

``extractor`` values (``Score.details["extractor"]``): ``"boxed"``, ``"answer_tag"``,
``"answer_marker"``, ``"revision"``, ``"first_line"``, ``"statement"``, ``"last_line"`` and ``"none"``.
:data:`GUESS_EXTRACTORS` are the paths that read no stated answer (a task scores a truncated
output whose extractor is one of them as truncated, not as the number its cut-off line holds).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pvm_bench.scoring.mathclean import clean_math
from pvm_bench.scoring.statements import SECOND_LOOK, asked_statement

T = TypeVar("T")

_MARKERS = re.compile(
    r"(?ix)"
    r"(?:\bfinal\s+answer\b\s*(?:\*\*|__)?[ \t]*(?:is\b|[:：=]|-\s|(?=\n))"
    r"|\banswer\b\s*(?:\*\*|__)?\s*(?:is\b|should\s+be\b|would\s+be\b|will\s+be\b|[:：=]|-\s)"
    r"|\b(?:correct|best|right|closest|nearest|final)\s+(?:option|choice)\s*(?:\*\*|__)?\s*(?:is\b|[:：])"
    r"|\bI\s+(?:choose|select|pick)\b"
    r"|答案(?:是|为|：|:))"
)
_INTENT = re.compile(r"(?i)\b(?:find|determine|get|compute|calculate|obtain|reach|choose|select|verify|check)\s+"
                     r"(?:the\s+|an\s+|my\s+|our\s+)?(?:final\s+|correct\s+)?$|\bto\s+$")
_ANSWER_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_NOT = re.compile(r"(?i)(?:not|n't|never|no\s+longer|neither)\b")
_CORRECTION = re.compile(r"(?i)\b(?:but|it(?:'s|\s+is)|rather)\b[\s:,]*(.+)$")  # "not B; it is C"
_NOT_BEFORE = re.compile(r"(?i)\b(?:not|n't|never|no\s+longer)[\s$*_(\\]*$")  # "is not $\boxed{4}$": not an answer
_LEAD_JUNK = " \t*_:#：>"  # never "-": "Answer: -2" is minus two
_BULLET = re.compile(r"^[-–—•]\s+")  # a list bullet ("-" followed by a space) opening the answer line
_SPACED_MINUS = re.compile(r"^[-−–]\s+(?=\$?\.?\d)")


@dataclass(frozen=True)
class FinalAnswer:
    """One answer-bearing span of an output: ``text``, where it came from, and its position."""

    text: str
    extractor: str
    start: int = -1


@dataclass(frozen=True)
class AnswerRules:
    """How a task reads the final answer of an output: the parts that differ between benchmarks.

    ``markers``: what introduces an answer. ``boxed``: ``\\boxed{}``/``\\fbox{}`` spans are
    candidates. ``marker_span``: ``"line"`` = the line after the marker, cut at the sentence end,
    skipping announced work ("to find the answer:") and negations ("the answer is not 7");
    ``"rest"`` = all the text after the marker. ``pick``: ``"last_parsed"`` = the last candidate
    by position that parses, with revisions and line fallbacks (:func:`find_final_answer`);
    ``"tag_then_marker"`` = the last ``<answer>`` tag wherever it is, else the text after the last
    marker when there is any, else the whole text (extractor ``"whole_text"``).
    """

    markers: re.Pattern[str] = _MARKERS
    boxed: bool = True
    marker_span: str = "line"
    pick: str = "last_parsed"


#: The math tasks' rules (MathVista, MathVerse, MathVision): the module docstring.
MATH_RULES = AnswerRules()
NONE = FinalAnswer("", "none")
#: Extraction paths that found no explicitly stated answer: nothing, or the last line of the text.
GUESS_EXTRACTORS = frozenset({"none", "last_line"})


def _balanced(text: str, i: int) -> tuple[str, int] | None:
    """The brace-balanced content starting after the ``{`` that ends at ``i - 1``."""
    depth, j = 1, i
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j], j + 1
        j += 1
    return None


def _marker_span(text: str, end: int) -> str:
    """The answer after a marker ending at ``end``: skip markup and blank lines, take one line,
    cut at the end of the sentence (a period followed by a space and a capital)."""
    rest = text[end:]
    lines = rest.split("\n")
    span = ""
    for k, line in enumerate(lines):
        head = line.strip().lstrip(_LEAD_JUNK)  # on the marker's own line "- 4" is minus four, not a bullet
        head = _SPACED_MINUS.sub("-", head) if k == 0 else head
        cleaned = _BULLET.sub("", head).lstrip(_LEAD_JUNK).strip()
        if cleaned:
            span = cleaned
            break
        if k >= 3:
            break
    span = re.split(r"(?<=[^\s\d])\.\s+(?=[A-Z(])|(?<=\d)\.\s+(?=[A-Z])|\.$", span, maxsplit=1)[0]
    return span.strip().strip("*_").strip()


def answer_candidates(text: str, rules: AnswerRules = MATH_RULES) -> list[FinalAnswer]:
    """Every boxed / answer-tag / answer-marker span of ``text`` under ``rules``, ordered by position
    (``marker_span="rest"`` keeps an empty span: the last marker may end the text)."""
    out: list[FinalAnswer] = []
    for m in _BOX_OPEN.finditer(text) if rules.boxed else ():
        got = _balanced(text, m.end())
        if got is not None and not _NOT_BEFORE.search(text[max(0, m.start() - 24):m.start()]):
            out.append(FinalAnswer(got[0].strip(), "boxed", m.start()))
    for m in _ANSWER_TAG.finditer(text):
        out.append(FinalAnswer(m.group(1).strip(), "answer_tag", m.start()))
    for m in rules.markers.finditer(text):
        if rules.marker_span == "rest":
            out.append(FinalAnswer(text[m.end():].strip().lstrip("*_ ").strip(), "answer_marker", m.start()))
            continue
        if _INTENT.search(text[max(0, m.start() - 24):m.start()]):
            continue  # "To find the answer: count 3 rows of 4" announces work, not a result
        span = _marker_span(text, m.end())
        if span and _NOT.match(span):  # "the answer is not 7" states what it is not; "not B; it is C": C
            span = (fix := _CORRECTION.search(span)) and fix.group(1).strip()
        if span:
            out.append(FinalAnswer(span, "answer_marker", m.start()))
    out.sort(key=lambda c: c.start)
    return out


_REVISION = re.compile(r"(?i)\b(?:wait|actually|hmm|on second thought|i mean|correction|let me re-?check|"
                       r"let me recount|i made a mistake|that(?:'s| is) wrong)\b")


def find_final_answer(text: str, parse: Callable[[str, str], T | None], question: str = "",
                      rules: AnswerRules = MATH_RULES) -> tuple[FinalAnswer, T | None]:
    """The final answer of ``text`` and its parsed value, read by ``rules`` (:class:`AnswerRules`;
    ``pick="tag_then_marker"``: :func:`_tag_then_marker`). The math rules follow.

    ``parse(span, extractor)`` returns a value or None (span not an answer of the right kind).
    The last candidate (by position) that parses wins (a boxed answer, even one that does not
    parse, ends the search: "\\boxed{B} wait no \\boxed{5}" is 5), unless a revision cue ("wait", "actually",
    "I mean", ...) follows it and the conclusion after the cue parses ("The answer is 4.5. Actually
    ... so the length is 3.5": 3.5, extractor ``"revision"``). Without candidates: a bare
    answer alone on the first line or first "It is ..." sentence with an explanation after it
    (:func:`_bare_first_line`), else the last statement of the quantity ``question`` asks for
    ("Area: 12\\nPerimeter: 16", :func:`pvm_bench.scoring.statements.asked_statement`; none when a revision
    cue or a second look, "looking again", "however", "but", follows it), else the last non-empty
    line, or the one before it when the last does not parse ("I hope this helps!"); else
    ``(NONE, None)``. A boxed answer that does not parse is still the model's final word: it
    is returned with value None when nothing else parses.
    """
    candidates = answer_candidates(text, rules)
    if rules.pick == "tag_then_marker":
        return _tag_then_marker(text, candidates, parse)
    for cand in reversed(candidates):
        value = parse(cand.text, cand.extractor)
        if value is None:
            if cand.extractor == "boxed":  # a later boxed answer that is no valid answer is still final
                return cand, None
            continue
        revised = _revision(text, cand, parse)
        return revised if revised is not None else (cand, value)
    first = _bare_first_line(text, parse)
    if first is not None:
        return first
    stated = asked_statement(text, question, parse) if question else None
    if stated is not None:
        where = text.rfind(stated[0])
        after = text[where + len(stated[0]):] if where >= 0 else text
        if not _REVISION.search(after) and not SECOND_LOOK.search(after):
            return FinalAnswer(stated[0], "statement", where), stated[1]
    for line in last_lines(text, 2):
        negated = [m for m in _MARKERS.finditer(line) if _NOT.match(_marker_span(line, m.end()))]
        if negated:  # "The answer is not (B)." names what it is not: read only the clauses after it
            line = "".join(re.split(r"[;,]|\bbut\b", line[negated[-1].end():], maxsplit=1)[1:]).strip()
        value = parse(line, "last_line") if line else None
        if value is not None:
            return FinalAnswer(line, "last_line", text.rfind(line)), value
    boxed = [c for c in candidates if c.extractor == "boxed"]
    if boxed:
        return boxed[-1], None
    return NONE, None


def _tag_then_marker(text: str, candidates: list[FinalAnswer],
                     parse: Callable[[str, str], T | None]) -> tuple[FinalAnswer, T | None]:
    """The last ``<answer>`` tag (even empty), else the span after the last marker when it is not
    empty, else the whole text; parsed once, whatever ``parse`` says."""
    tags = [c for c in candidates if c.extractor == "answer_tag"]
    markers = [c for c in candidates if c.extractor == "answer_marker"]
    whole = FinalAnswer(text.strip(), "whole_text", 0)
    cand = tags[-1] if tags else markers[-1] if markers and markers[-1].text else whole
    return cand, parse(cand.text, cand.extractor)


_BARE = re.compile(
    r"\(?[A-Za-z]\)?|-?\$?\d[\d.,/]*\s*(?:%|[A-Za-z°²³]{1,10})?|\[[^\[\]]*\]|\([^()]*\)"
    r"|[A-Za-z][A-Za-z'-]*(?:\s[A-Za-z'-]+){0,3}"
)


_IT_IS = re.compile(r"(?i)(?:it|this|that)(?:\s+is|'s)\s+([^.]+?)\.(?:\s|$)")
_NEGATION = re.compile(r"(?i)\b(?:not|never|neither|nor)\b|n't\b")


def _bare_first_line(text: str, parse: Callable[[str, str], T | None]) -> tuple[FinalAnswer, T] | None:
    """An answer given alone on the first line and explained below ("4\\n\\nExplanation: after
    removing the 2 red balls ... 1 sphere remain"): the format prompts ask for the answer
    directly, and the numbers of the explanation are not the answer. Only a bare answer (a
    letter, a number with a unit, a list, or up to four words without a negation) on a line of
    its own, and only when no revision cue ("wait", "actually") follows."""
    lines = [line for line in text.strip().split("\n") if line.strip()]
    if not lines:
        return None
    line = lines[0].strip().strip("*_#> ").strip()
    it_is = _IT_IS.match(line)
    if it_is and (len(lines) > 1 or it_is.end() < len(line)):
        line = it_is.group(1)  # "It is 16. The rectangle has sides 5 and 3."
    elif len(lines) < 2:
        return None
    line = line.rstrip(".").strip()
    if not _BARE.fullmatch(line) or _NEGATION.search(line) or _REVISION.search(text):
        return None
    value = parse(line, "first_line")
    return None if value is None else (FinalAnswer(line, "first_line", text.find(line)), value)


def _revision(text: str, cand: FinalAnswer, parse: Callable[[str, str], T | None]) -> tuple[FinalAnswer, T] | None:
    end = text.find(cand.text, cand.start)
    tail = text[end + len(cand.text) :] if end >= 0 else ""
    cues = list(_REVISION.finditer(tail))
    if not cues:
        return None
    after = tail[cues[-1].end() :].strip()
    line = last_lines(after, 1)
    if not line:
        return None
    value = parse(line[0], "last_line")
    return None if value is None else (FinalAnswer(line[0], "revision", text.rfind(line[0])), value)


def last_lines(text: str, n: int) -> list[str]:
    """Up to ``n`` last non-empty lines, last first, without emphasis or a trailing period."""
    out: list[str] = []
    for line in reversed(text.strip().split("\n")):
        line = line.strip().strip("*_#> ").strip()
        if line:
            out.append(line.rstrip(".").strip())
            if len(out) == n:
                break
    return out


# ------------------------------------------------------------------------------------ numbers

_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\.?\d)|(?<![\w.])-?\.\d+")
_SLASH = re.compile(r"(?<![\w./])(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)(?![\w./])")
_NEGATED = re.compile(
    r"(?i)\b(?:not|isn't|is\s+not|rather\s+than|instead\s+of)\s+(?:(?:be|equal|equals|to|exactly)\s+)*"
    r"\$?-?\d[\d,]*(?:\.\d+)?"
)


def numbers_in(span: str) -> list[tuple[float, bool]]:
    """The numbers of ``span`` in order as ``(value, is_percent)``; fractions become their value,
    "not 5" / "rather than 5" is skipped, number words count only when no digits are present."""
    s = _NEGATED.sub(" ", clean_math(span))
    s = _SLASH.sub(lambda m: _ratio(m.group(1), m.group(2)), s)
    out: list[tuple[float, bool]] = []
    for m in _NUMBER.finditer(s):
        try:
            value = float(m.group(0).replace(",", ""))
        except ValueError:
            continue
        out.append((value, s[m.end() :].lstrip().startswith("%")))
    if not out:
        words = re.findall(r"[a-z]+", s.lower())
        for i, word in enumerate(words):
            if word in _WORDS:  # "negative four" is -4
                sign = -1.0 if i and words[i - 1] in ("negative", "minus") else 1.0
                out.append((sign * _WORDS[word], False))
    return out


def _ratio(a: str, b: str) -> str:
    try:
        return repr(float(a) / float(b)) if float(b) else f"{a}/{b}"
    except ValueError:
        return f"{a}/{b}"


_JUSTIFY = re.compile(r"(?i),?\s+(?:since|because|as shown|given that)\b")
_ASIDE = re.compile(r"\s\([^()]*\)\W*$")
_CONCLUDE = re.compile(r"(?i)\b(?:so|therefore|thus|hence)\b|=")


def parse_number(span: str, extractor: str = "answer_marker") -> tuple[float, bool] | None:
    """The number a final-answer span states: the first one of a boxed/marker span ("12 (since
    3 x 4 = 12)"); for a line of prose, the last number of its conclusion (after the last "so",
    "therefore", "=", before a "since"/"because" justification or a closing parenthetical aside
    that follows a number)."""
    if extractor in ("last_line", "revision"):
        head = _JUSTIFY.split(clean_math(span))[0]
        aside = _ASIDE.search(head)
        if aside and numbers_in(head[: aside.start()]):
            head = head[: aside.start()]  # "... the y-intercept is -2 (it crosses the x-axis at 2/3)"
        tail = _CONCLUDE.split(head)[-1]
        found = numbers_in(tail) or numbers_in(head)
        return found[-1] if found else None
    found = numbers_in(span)
    return found[0] if found else None


def numbers_match(pred: float, gold: float, precision: int | None = None, *, pred_percent: bool = False) -> bool:
    """``pred`` equals ``gold`` once both are rounded to ``precision`` decimals (MathVista's
    protocol: ``round(float(x), int(precision))``); without precision, a relative tolerance of
    1e-6. A prediction written with ``%`` also matches ``gold`` as a fraction (45% vs 0.45)."""
    options = [pred, pred / 100] if pred_percent else [pred]
    for p in options:
        if precision is not None:
            if abs(round(p, precision) - round(gold, precision)) < 10 ** -(precision + 6):
                return True
        elif abs(p - gold) <= 1e-6 * max(1.0, abs(gold)):
            return True
    return False


def decimals_of(text: str) -> int | None:
    """Number of decimals written in ``text`` ("3.50" -> 2), None when not a number."""
    m = re.fullmatch(r"\s*-?\d+(?:\.(\d+))?\s*", str(text))
    return None if m is None else len(m.group(1) or "")


# -------------------------------------------------------------------------------------- lists


def parse_gold_list(text: str) -> list[Any] | None:
    """A gold list such as ``"[2007, 2008]"`` (``ast.literal_eval``, never ``eval``)."""
    try:
        value = ast.literal_eval(str(text).strip())
    except (ValueError, SyntaxError):
        return None
    return list(value) if isinstance(value, (list, tuple)) else None


_LIST_CONCLUDE = re.compile(r"(?i)\b(?:is|are|was|were|so|therefore|thus)\b|[:=]")


def parse_list(span: str, length: int) -> list[Any] | None:
    """A predicted list of ``length`` items: the bracketed list in the span, else its numbers when
    there are exactly ``length`` of them ("between 2007 and 2008"), else the numbers after its
    last "is"/"are"/":"/"=" when there are exactly ``length`` of those ("the years above 50 are
    2007 and 2008")."""
    m = re.search(r"[\[(]([^\[\]()]*)[\])]", clean_math(span))
    if m and "," in m.group(1):
        items = [x.strip().strip("'\"") for x in m.group(1).split(",")]
        if len(items) == length:
            return [_as_number(x) for x in items]
    nums = [v for v, _ in numbers_in(span)]
    if len(nums) != length:  # "the years above 50 are 2007 and 2008": the numbers the span concludes with
        nums = [v for v, _ in numbers_in(_LIST_CONCLUDE.split(clean_math(span))[-1])]
    return [float(v) for v in nums] if len(nums) == length else None


def _as_number(x: str) -> Any:
    found = numbers_in(x)
    return found[0][0] if len(found) == 1 and re.fullmatch(r"[-\d.,/\\{}frac\s$%]+", x) else x.lower()


def lists_match(pred: Sequence[Any], gold: Sequence[Any]) -> bool:
    """Same length and each item equal (numbers numerically, text after normalisation)."""
    if len(pred) != len(gold):
        return False
    for p, g in zip(pred, gold):
        if isinstance(g, (int, float)) and isinstance(p, float):
            if not numbers_match(p, float(g)):
                return False
        elif normalize_text(str(p)) != normalize_text(str(g)):
            return False
    return True


def normalize_text(text: str) -> str:
    """Lower case, no markup/punctuation at the ends, single spaces, no leading article."""
    s = clean_math(str(text)).lower().strip()
    s = re.sub(r"\s+", " ", s).strip(" .,:;!?'\"`*_()[]")
    return re.sub(r"^(?:the|a|an) ", "", s)
