"""MATH-Vision (MathLLMs/MathVision, split ``testmini``): competition math with images.

Prompt and generation as lmms-eval 0.7.3 ``tasks/mathvision`` (``mathvision_testmini``):
``mathvision_doc_to_text`` (utils.py lines 49-64): ``'Please solve the problem step by step and put
your answer in one "\\boxed{}".'`` + question (+ ``Choices: A. ..`` and the YAML's ``mc_prompt``
"Answer the question with the option's letter from the given choices directly." (YAML line 23) for multiple
choice); ``max_new_tokens: 16384`` (mathvision_testmini.yaml line 13).

Scoring:

* ``mathvision`` (default): the final answer is found by :mod:`pvm_bench.scoring.answers` (last boxed,
  answer marker, last line; revisions), then compared as lmms-eval does: option letter (or the
  gold option's text), else lmms-eval's ``is_equal`` with ``latex2sympy2``
  (:func:`pvm_bench.scoring.symbolic.is_equal`: "3.0" = "3", "\\frac{1}{2}" = "0.5", "(1,2)" = "(1, 2)").
* ``mathvision_lmms``: lmms-eval 0.7.3's exact ``mathvision_process_results`` (utils.py lines
  87-144: its own answer-string cleanup ``find_math_answer``, eval_utils.py line 392, then
  ``is_equal``), for parity with published lmms-eval numbers.
"""

from __future__ import annotations

import re
from typing import Any

from pvm_bench.scoring import free_form_score, prepare_output, score_free_form, truncated_score
from pvm_bench.scoring.symbolic import SYMBOLIC, is_equal
from pvm_bench.tasks import HubTask, LazyImage, Sample, Score

MC_PROMPT = "Answer the question with the option's letter from the given choices directly."


def is_number(s: str) -> bool:
    """lmms-eval mathvision ``is_number`` (eval_utils.py line 15)."""
    try:
        float(s)
        return True
    except ValueError:
        return False


def _fix_fracs(string: str) -> str:
    substrs = string.split("\\frac")
    new_str = substrs[0]
    if len(substrs) > 1:
        for substr in substrs[1:]:
            new_str += "\\frac"
            if len(substr) > 0 and substr[0] == "{":
                new_str += substr
            else:
                if len(substr) < 2:
                    return string
                a, b = substr[0], substr[1]
                if b != "{":
                    new_str += "{" + a + "}{" + b + "}" + (substr[2:] if len(substr) > 2 else "")
                else:
                    new_str += "{" + a + "}" + b + (substr[2:] if len(substr) > 2 else "")
    return new_str


def _fix_a_slash_b(string: str) -> str:
    if len(string.split("/")) != 2:
        return string
    a, b = string.split("/")
    try:
        ia, ib = int(a), int(b)
        assert string == f"{ia}/{ib}"
        return "\\frac{" + str(ia) + "}{" + str(ib) + "}"
    except Exception:
        return string


def _remove_right_units(string: str) -> str:
    return string.split("\\text{ ")[0]


def _fix_sqrt(string: str) -> str:
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if len(split) > 0 and split[0] != "{":
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string


def _strip_string(string: str) -> str:
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "").replace("$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "").replace("\\%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if len(string) == 0:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2:
        string = string.split("=")[-1]
    if len(string.split("\\approx")) == 2:
        string = string.split("\\approx")[-1]
    if "sqrt" in string:
        string = _fix_sqrt(string)
    string = string.replace(" ", "")
    if "sqrt" in string:
        string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def find_math_answer(s: str) -> str:
    """lmms-eval mathvision ``find_math_answer``."""
    s = s.lower()
    if "{}" in s:
        s = s.replace("{}", "")
    try:
        ans = re.compile("oxed{(.*)}", flags=re.DOTALL).findall(s)[-1]
    except Exception:
        ans = s
    if ans.find("}") != -1 and (ans.find("{") == -1 or ans.find("}") < ans.find("{")):
        ans = ans.split("}")[0]
    ans = ans.split("=")[-1]
    ans = ans.split("\\approx")[-1]
    ans = ans.replace(" ", "").replace("\\,", "").replace("∞", "\\infty")
    ans = ans.replace("+\\infty", "\\infty").replace("\\\\", "\\").replace("\n", "")
    ans = ans.replace("\\text", "").replace("\\mbox", "").replace("bmatrix", "pmatrix")
    ans = ans.replace("\\left", "").replace("\\right", "").replace("^{\\circ}", "")
    ans = ans.replace("^\\circ", "").replace("{m}^3", "").replace("m^3", "")
    ans = ans.replace("{units}", "").replace("units", "").replace("{km}", "").replace("km", "")
    return _strip_string(ans)


def extract(model_answer: str) -> str:
    """The answer string of lmms-eval ``mathvision_process_results`` for one response."""
    model_answer = model_answer.strip()
    for c in "ABCDE":
        if (model_answer.endswith(f" {c}.") or model_answer.endswith(f" ({c}).") or model_answer.startswith(f"{c}\n")
                or model_answer.startswith(f"({c})\n") or model_answer.startswith(f"({c}) {c}\n")):
            model_answer = c
    if is_number(model_answer.split("is ")[-1].rstrip(".")):
        model_answer = model_answer.split("is ")[-1].rstrip(".")
    if "oxed{" not in model_answer:
        for flag in ["the final answer is", "the answer is", "the correct answer is", "the answer should be"]:
            raw = model_answer
            model_answer = model_answer.split(flag)[-1].strip()
            if flag in raw:
                model_answer = model_answer.split("\n")[0].split(". ")[0]
            flag = flag.replace("the", "The")
            raw = model_answer
            model_answer = model_answer.split(flag)[-1].strip()
            if flag in raw:
                model_answer = model_answer.split("\n")[0].split(". ")[0]
    elif model_answer.count("oxed{") > 1:
        model_answer = "\\boxed{" + model_answer.split("oxed{")[-1]
    out = find_math_answer(model_answer)
    for letter in "abcde":
        out = out.replace(f"({letter})", letter)
    for letter in "abcde":
        out = out.replace("{" + letter + "}", letter)
    return out.rstrip(".").lstrip(":").strip()


class MathVision(HubTask):
    """MATH-Vision testmini with lmms-eval's prompt; rule-based (default) or lmms-eval scoring."""

    name = "mathvision"
    version = "2.0"
    splits = ("testmini", "test")
    default_split = "testmini"
    hub_id = "MathLLMs/MathVision"
    data_name = "mathvision"
    generation = {"max_new_tokens": 16384}
    required_fields = ("question", "answer", "decoded_image")
    id_field = "id"

    def __init__(self, name: str = "mathvision", scorer: str = "rule") -> None:
        self.name = name
        self.scorer = scorer
        how = ("final answer (boxed / answer marker / last line) + latex2sympy2 is_equal" if scorer == "rule"
               else "lmms-eval 0.7.3 mathvision_process_results")
        self.description = f"MATH-Vision testmini: competition math with images (lmms-eval boxed prompt, {how})"
        self.judge: Any = None

    def set_judge(self, judge: Any) -> None:
        """Extract the final answer with ``judge`` (see :mod:`pvm_bench.scoring.judge`) before comparing."""
        self.judge = judge

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        options = list(row.get("options") or [])
        choices_str = "\n".join(f"{chr(ord('A') + j)}. {c}" for j, c in enumerate(options))
        prompt = 'Please solve the problem step by step and put your answer in one "\\boxed{}".'
        prompt += f"{row['question']}\nChoices: {choices_str}" + "\n" + MC_PROMPT if choices_str else row["question"]
        return Sample(
            id=ident, question=prompt, target=str(row["answer"]),
            images=[LazyImage(row["decoded_image"], name=f"{self.name} sample {ident} decoded_image")],
            choices=options or None, metadata={"level": row.get("level"), "subject": row.get("subject"),
                                               "raw_question": row["question"]},
        )

    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output, policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        if prep.unanswered:
            return truncated_score(reason="ended inside a reasoning block", extractor="none", symbolic=SYMBOLIC)
        if self.scorer == "lmms":
            return self._score_lmms(sample, prep.text, truncated)
        text, extra = prep.text, {}
        if self.judge is not None:
            text = self.judge.extract(str(sample.metadata.get("raw_question") or sample.question), prep.text)
            extra = {"judge_raw": text}
        verdict = score_free_form(text, sample.target, sample.choices, multi_choice=bool(sample.choices),
                                  question=str(sample.metadata.get("raw_question") or ""))
        return free_form_score(verdict, judge_raw=extra.get("judge_raw"), truncated=truncated)

    def _score_lmms(self, sample: Sample, text: str, truncated: bool) -> Score:
        details: dict[str, Any] = {"symbolic": SYMBOLIC}
        answer = extract(text)
        details["extractor"] = "boxed" if "oxed{" in text else ("none" if not answer else "lmms_rules")
        gt = sample.target
        gt_value = (
            sample.choices[ord(gt) - ord("A")]
            if sample.choices and len(gt) == 1 and 0 <= ord(gt) - ord("A") < len(sample.choices)
            else ""
        )
        ok = is_equal(gt, answer) or is_equal(gt_value, answer)
        if truncated and not ok and "oxed{" not in text:
            return truncated_score(parsed=answer, **details)
        return Score(value=float(ok), parsed=answer, details=details)


TASKS = [MathVision(), MathVision(name="mathvision_lmms", scorer="lmms")]
