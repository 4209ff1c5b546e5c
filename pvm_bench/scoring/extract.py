"""Shared answer extraction and scoring helpers for task plugins.

Two layers:

1. **Model-output preparation** (every task): :func:`prepare_output` strips reasoning blocks
   (``<think>...</think>`` and ``<analysis>...</analysis>``, exactly as lmms-eval 0.7.3's
   ``strip_reasoning_tags``, ``api/reasoning.py`` lines 4-35, with its CLI default
   ``--reasoning_tags``), and notices an output that stopped *inside* a reasoning block (opened,
   never closed; or opened by the prompt, :mod:`pvm_bench.scoring.reasoning`): by default such an output never
   reached an answer (:data:`UNFINISHED_POLICIES`: lmms-eval's way). The final answer of an output
   is read by :func:`pvm_bench.scoring.answers.find_final_answer`, with the task's rules as parameters.
   :func:`truncated_score` builds the ``Score(value=0, truncated=True)`` for outputs cut before any answer.

2. **Faithful ports of lmms-eval 0.7.3 parsers** used by several tasks (copied logic, cited per
   function): MMMU's multiple-choice and open-answer parsers and evaluators
   (``lmms_eval/tasks/mmmu/utils.py`` and ``lmms_eval/tasks/_task_utils/mmmu_mcq_utils.py``),
   the robust MCQ letter extractor (``lmms_eval/tasks/_task_utils/mcq_extract.py``), and a
   Levenshtein distance (lmms-eval uses the ``Levenshtein`` package; same result).

Randomness: lmms-eval's MMMU parser picks ``random.choice`` when it finds no candidate. Here the
caller passes a ``random.Random``; tasks seed it from the sample id (:func:`seed_for`) so scores
are reproducible, and the parity tests seed lmms-eval's global ``random`` with the same value.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pvm_bench.scoring.reasoning import opened_reasoning
from pvm_bench.tasks import Score

#: lmms-eval 0.7.3 CLI default for ``--reasoning_tags`` (lmms_eval/__main__.py lines 319-323).
DEFAULT_REASONING_TAGS: list[list[str]] = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]



def seed_for(key: str) -> int:
    """A stable 32-bit seed for ``key`` (a sample id); used for lmms-eval's random fallbacks."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)


def strip_reasoning_tags(text: str, tag_pairs: Sequence[Sequence[str]] = DEFAULT_REASONING_TAGS) -> str:
    """Remove reasoning blocks; verbatim logic of lmms-eval 0.7.3 ``api/reasoning.py`` lines 20-35.

    Complete ``start...end`` blocks are removed; if only closing tags remain (the chat template
    pre-filled the opening tag) the text after the last closing tag is kept. An unclosed opening
    tag is left in place (see :func:`prepare_output` for how that is reported).
    """
    result = text
    for start_tag, end_tag in tag_pairs:
        while start_tag in result and end_tag in result:
            start = result.find(start_tag)
            end = result.find(end_tag, start)
            if start != -1 and end != -1:
                result = result[:start] + result[end + len(end_tag) :]
            else:
                break
        if end_tag in result and start_tag not in result:
            result = result.rsplit(end_tag, 1)[-1]
    return result.strip()


#: How a task scores an output that ended inside an unclosed reasoning block (``<think>`` never
#: closed), the task's ``unfinished_policy``: ``"zero"`` (pvm-bench's default: no answer was given,
#: score 0, marked truncated) or ``"parse"`` (lmms-eval 0.7.3: ``strip_reasoning_tags`` leaves an
#: unclosed opening tag in place, ``api/reasoning.py`` lines 15-18 and 21-35 of the wheel, and the
#: task parses the whole remaining text, which can give credit; a guess in an output cut off by the
#: token limit is scored as it is, too). The record's ``truncated`` column still says what was cut.
UNFINISHED_POLICIES = ("zero", "parse")


def unfinished_policy_for(protocol: str) -> str:
    """The unfinished-reasoning policy of a ``--protocol``: ``parse`` for lmms-eval (and pvm-paper,
    which evaluates with lmms-eval), else ``zero``."""
    return "parse" if protocol in ("lmms-eval", "pvm-paper") else "zero"


def apply_unfinished_policy(tasks: Sequence[Any], protocol: str) -> str:
    """Set every task's ``unfinished_policy`` for ``protocol`` (each run sets it, so no earlier
    run's choice lingers on a shared task object); returns the policy."""
    policy = unfinished_policy_for(protocol)
    for task in tasks:
        task.unfinished_policy = policy
    return policy


@dataclass
class PreparedOutput:
    """A model output ready for answer parsing.

    ``text``: the output with reasoning blocks removed (lmms-eval semantics: an unclosed opening
    tag stays). ``had_reasoning``: a reasoning block was present. ``unfinished_reasoning``: the
    output ends inside a reasoning block (an opening tag with no closing tag). ``unanswered``:
    unfinished and the policy is ``"zero"``, so the task scores it 0 as truncated without parsing.
    """

    raw: str
    text: str
    had_reasoning: bool
    unfinished_reasoning: bool
    policy: str = "zero"

    @property
    def unanswered(self) -> bool:
        return self.unfinished_reasoning and self.policy == "zero"

    def scores_truncation(self, truncated: bool) -> bool:
        """Whether the task should treat the output as cut off: ``truncated`` under "zero"; never under
        "parse" (lmms-eval has no such notion and scores a guess in a cut-off output as any other)."""
        return truncated and self.policy == "zero"


def is_unfinished(output: Any, tag_pairs: Sequence[Sequence[str]] = DEFAULT_REASONING_TAGS, *,
                  prompt: Any = "") -> bool:
    """Whether ``output`` ends inside an unclosed reasoning block, one its ``prompt`` opened included."""
    opened = opened_reasoning(prompt, tag_pairs)
    return isinstance(output, str) and prepare_output(opened + output, tag_pairs).unfinished_reasoning


def prepare_output(output: str, tag_pairs: Sequence[Sequence[str]] = DEFAULT_REASONING_TAGS, *,
                   policy: str = "zero") -> PreparedOutput:
    """Strip reasoning blocks from ``output`` and detect an unfinished one (``policy``: see
    :data:`UNFINISHED_POLICIES`)."""
    raw = output if isinstance(output, str) else ("" if output is None else str(output))
    text = strip_reasoning_tags(raw, tag_pairs)
    had = any(s in raw or e in raw for s, e in tag_pairs)
    unfinished = False
    for start_tag, end_tag in tag_pairs:
        pos = text.rfind(start_tag)
        if pos != -1 and end_tag not in text[pos:]:
            unfinished = True
    return PreparedOutput(raw=raw, text=text, had_reasoning=had, unfinished_reasoning=unfinished, policy=policy)


def truncated_score(parsed: str | None = None, **details: Any) -> Score:
    """The score of an output cut off (token limit) before it gave an answer: 0, truncated."""
    return Score(value=0.0, parsed=parsed, truncated=True, details=dict(details))


def letter_score(letter: str | None, target: Any, details: dict[str, Any], *, truncated: bool) -> Score:
    """The score of a multiple-choice letter (None: none extracted, ``extractor`` "none"); an
    output cut off before any letter counts as truncated."""
    if truncated and not letter:
        return truncated_score(**details)
    if not letter:
        details["extractor"] = "none"
    return Score(value=float(letter == target), parsed=letter or None, details=details)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert/delete/substitute cost 1), as ``Levenshtein.distance``."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _argmax(values: Sequence[float]) -> int:
    """Index of the first maximum (``numpy.argmax`` semantics)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


# ------------------------------------------------------------------ MMMU (lmms-eval 0.7.3 port)


def get_multi_choice_info(options: Sequence[str], start_chr: str = "A") -> tuple[dict[str, str], list[str]]:
    """``index2ans`` and ``all_choices`` (lmms_eval/tasks/_task_utils/mmmu_mcq_utils.py lines 7-15)."""
    all_choices: list[str] = []
    index2ans: dict[str, str] = {}
    for i, option in enumerate(options):
        choice = chr(ord(start_chr) + i)
        index2ans[choice] = option
        all_choices.append(choice)
    return index2ans, all_choices


def parse_mmmu_multi_choice_response(
    response: str, all_choices: Sequence[str], index2ans: dict[str, str], rng: random.Random | None = None
) -> tuple[str, bool]:
    """MMMU's option-letter parser; returns ``(letter, guessed)``.

    Port of ``parse_mmmu_multi_choice_response`` (lmms_eval/tasks/_task_utils/mmmu_mcq_utils.py
    lines 17-65, 0.7.3). ``guessed`` is True where lmms-eval falls back to ``random.choice`` (no candidate).
    """
    for char in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(char)
    response = " " + response + " "

    index_ans = True
    ans_with_brack = False
    candidates: list[str] = []
    for choice in all_choices:
        if f"({choice})" in response:
            candidates.append(choice)
            ans_with_brack = True
    if len(candidates) == 0:
        for choice in all_choices:
            if f"{choice} " in response:
                candidates.append(choice)
    if len(candidates) == 0:
        for choice in all_choices:
            if f"{choice}." in response:
                candidates.append(choice)
    if len(candidates) == 0 and len(response.split()) > 5:
        for index, ans in index2ans.items():
            if ans.lower() in response.lower():
                candidates.append(index)
                index_ans = False

    if len(candidates) == 0:
        return (rng or random).choice(list(all_choices)), True
    if len(candidates) > 1:
        start_indexes = []
        if index_ans:
            if ans_with_brack:
                for can in candidates:
                    start_indexes.append(response.rfind(f"({can})"))
            else:
                for can in candidates:
                    start_indexes.append(response.rfind(f" {can} "))
        else:
            for can in candidates:
                start_indexes.append(response.lower().rfind(index2ans[can].lower()))
        return candidates[_argmax(start_indexes)], False
    return candidates[0], False


def mmmu_extract_numbers(string: str) -> list[str]:
    """``extract_numbers`` of lmms_eval/tasks/mmmu/utils.py (0.7.3, lines 427-448)."""
    pattern_commas = r"-?\b\d{1,3}(?:,\d{3})+\b"
    pattern_scientific = r"-?\d+(?:\.\d+)?[eE][+-]?\d+"
    pattern_simple = r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"
    return (re.findall(pattern_commas, string) + re.findall(pattern_scientific, string)
            + re.findall(pattern_simple, string))


def mmmu_check_is_number(string: str) -> bool:
    """``check_is_number`` of lmms_eval/tasks/mmmu/utils.py (0.7.3, lines 451-461)."""
    try:
        float(string.replace(",", ""))
        return True
    except ValueError:
        return False


def mmmu_normalize_str(string: str) -> list[Any]:
    """``normalize_str`` of lmms_eval/tasks/mmmu/utils.py (0.7.3, lines 464-487): numbers -> rounded floats."""
    string = string.strip()
    if mmmu_check_is_number(string):
        return [round(float(string.replace(",", "")), 2)]
    string = string.lower()
    if len(string) == 1:
        return [" " + string, string + " "]
    return [string]


_MMMU_INDICATORS = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]


def mmmu_key_subresponses(response: str) -> tuple[list[str], bool]:
    """``get_key_subresponses`` of ``parse_open_response`` (0.7.3); also says if a key was found."""
    response = response.strip().strip(".").lower()
    sub_responses = re.split(r"\.\s(?=[A-Z])|\n", response)
    indicators = list(_MMMU_INDICATORS)
    key_responses: list[str] = []
    for index, resp in enumerate(sub_responses):
        if index == len(sub_responses) - 1:
            indicators.extend(["="])
        shortest: str | None = None
        for indicator in indicators:
            if indicator in resp:
                tail = resp.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest:
            if shortest.strip() not in [":", ",", ".", "!", "?", ";", ":", "'"]:
                key_responses.append(shortest)
    if len(key_responses) == 0:
        return [response], False
    return key_responses, True


def parse_mmmu_open_response(response: str) -> list[Any]:
    """``parse_open_response`` of lmms_eval/tasks/mmmu/utils.py (0.7.3, lines 490-559).

    Note: the result comes from ``list(set(...))``; its order depends on string hashing, but
    ``eval_open`` only asks whether *any* candidate matches, so the score does not.
    """
    key_responses, _ = mmmu_key_subresponses(response)
    pred_list: list[Any] = key_responses.copy()
    for resp in key_responses:
        pred_list.extend(mmmu_extract_numbers(resp))
    tmp: list[Any] = []
    for item in pred_list:
        tmp.extend(mmmu_normalize_str(item))
    return list(set(tmp))


def mmmu_eval_multi_choice(gold: str | list[str], pred: str) -> bool:
    """``eval_multi_choice`` of lmms_eval/tasks/mmmu/utils.py (0.7.3, lines 341-356)."""
    if isinstance(gold, list):
        return any(answer == pred for answer in gold)
    return gold == pred


def mmmu_eval_open(gold: str | list[str], preds: Sequence[Any]) -> bool:
    """``eval_open`` of lmms_eval/tasks/mmmu/utils.py (0.7.3, lines 359-385)."""
    if isinstance(gold, list):
        norm_answers: list[Any] = []
        for answer in gold:
            norm_answers.extend(mmmu_normalize_str(answer))
    else:
        norm_answers = mmmu_normalize_str(gold)
    for pred in preds:
        if isinstance(pred, str):
            for norm_ans in norm_answers:
                if isinstance(norm_ans, str) and norm_ans in pred:
                    return True
        else:
            if pred in norm_answers:
                return True
    return False


# ------------------------------------------------ robust MCQ extraction (lmms-eval 0.7.3 port)

_MCQ_DEFAULT_CHOICES = ["A", "B", "C", "D", "E", "F", "G", "H"]
_MCQ_ANSWER_PHRASES = [
    "the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
    "best answer is", "the correct option is", "correct option is", "the best option is", "best option is",
    "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select",
    "i pick", "my answer is", "my choice is", "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは",
]
_MCQ_PRIORITY = {"start": 10, "end": 9, "phrase": 7, "parentheses": 6, "period": 5, "colon": 4,
                 "right_paren": 3, "space": 2, "fallback": 0}


def extract_mcq_answer(response: str, choices: Sequence[str] | None = None) -> str:
    """Choice letter from free-form output, ``""`` if none.

    Port of ``extract_mcq_answer`` (lmms_eval/tasks/_task_utils/mcq_extract.py line 65 on, 0.7.3), used by
    MMStar and MMBench's static evaluation.
    """
    if not response or not response.strip():
        return ""
    all_choices = list(choices or _MCQ_DEFAULT_CHOICES)
    text = response.strip()
    for char in [",", ".", "!", "?", ";", ":", "'", '"']:
        text = text.strip(char)
    text = " " + text + " "
    candidates: list[tuple[str, int, str]] = []
    for fmt, pattern in (("parentheses", "({})"), ("period", "{}."), ("colon", "{}:"),
                         ("right_paren", "{})"), ("space", "{} ")):
        for ch in all_choices:
            token = pattern.format(ch)
            if token in text:
                candidates.append((ch, text.rfind(token), fmt))
    text_lower = text.lower()
    for phrase in _MCQ_ANSWER_PHRASES:
        idx = text_lower.find(phrase)
        if idx != -1:
            after = idx + len(phrase)
            for ch in all_choices:
                ch_pos = text.find(ch, after)
                if ch_pos != -1:
                    candidates.append((ch, ch_pos, "phrase"))
    stripped = text.strip()
    for ch in all_choices:
        if stripped.startswith(ch) and (len(stripped) == 1 or not stripped[1].isalpha()):
            candidates.append((ch, 0, "start"))
    for ch in all_choices:
        if stripped.endswith(ch) and (len(stripped) == 1 or not stripped[-2].isalpha()):
            candidates.append((ch, len(text) - 1, "end"))
    if not candidates:
        for ch in all_choices:
            if ch in text:
                candidates.append((ch, text.rfind(ch), "fallback"))
    if not candidates:
        return ""
    candidates.sort(key=lambda x: (_MCQ_PRIORITY.get(x[2], 0), x[1]), reverse=True)
    return candidates[0][0]
