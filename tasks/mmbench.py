"""MMBench EN / CN (lmms-lab-encoder/MMBench, configs ``en`` / ``cn``, split ``dev``).

lmms-eval 0.7.3 ``tasks/mmbench``: prompt ``"{hint} {question} There are several options:\\nA. ..."``
(hint omitted when missing) + post prompt ("\\nAnswer with the option's letter from the given
choices directly." / "\\n请直接使用所提供的选项字母作为答案回答。"). Scoring is lmms-eval's
*static* evaluation (``eval_method="static"``, no GPT): ``can_infer`` (option letter, then option
text) and, failing that, ``extract_mcq_answer``. CircularEval is applied in :meth:`aggregate`:
rows whose ``index % 1_000_000`` agree are one question and all must be right.
"""

from __future__ import annotations

import math
import string
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pvm_bench.scoring import extract_mcq_answer, prepare_output, truncated_score
from pvm_bench.tasks import HubTask, LazyImage, Sample, Score

SYS_PROMPT = "There are several options:"
POST_PROMPTS = {
    "en": "\nAnswer with the option's letter from the given choices directly.",
    "cn": "\n请直接使用所提供的选项字母作为答案回答。",
}


def _isna(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def options_prompt(row: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """lmms-eval ``MMBench_Evaluator.create_options_prompt`` with candidates A-E."""
    options = {c: row[c] for c in sorted(set(row) & set("ABCDE")) if row[c]}
    text = f"{SYS_PROMPT}\n"
    for key, item in options.items():
        if not _isna(item) and item != "nan":
            text += f"{key}. {item}\n"
    return text.rstrip("\n"), options


def can_infer_option(answer: str, num_choice: int = 5) -> str | bool:
    """lmms-eval ``can_infer_option`` (0.7.3)."""
    choices = string.ascii_uppercase[:num_choice]
    if "Failed to obtain answer via API" in answer:
        return False

    def count(splits: list[str], choices: str = "ABCD", prefix: str = "", suffix: str = "") -> int:
        return sum(1 for c in choices if prefix + c + suffix in splits)

    splits = [x.strip() for x in answer.split()]
    if count(splits, choices) == 1:
        for ch in choices:
            if "A" in splits and len(splits) > 3:
                break
            if ch in splits:
                return ch
    tups = [("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."), (":", ""), (":", ","),
            (":", "."), (":", ")"), (":", ").")]
    for pre, suf in tups:
        if count(splits, choices, prefix=pre, suffix=suf) == 1:
            for ch in choices:
                if pre + ch + suf in splits:
                    return ch
    return False


def can_infer_text(answer: str, choices: dict[str, str]) -> str | bool:
    """lmms-eval ``can_infer_text`` (0.7.3)."""
    answer = answer.lower()
    cands = [k for k in choices if str(choices[k]).lower() in answer]
    return cands[0] if len(cands) == 1 else False


def static_answer(prediction: str, choices: dict[str, str]) -> str:
    """The letter lmms-eval's static MMBench evaluation assigns ("" = none)."""
    inferred = can_infer_option(prediction) or can_infer_text(prediction, choices)
    if inferred:
        return str(inferred)
    return extract_mcq_answer(prediction, choices=sorted(choices))


class MMBench(HubTask):
    version = "1.0"
    splits = ("dev",)
    default_split = "dev"
    hub_id = "lmms-lab-encoder/MMBench"
    generation = {"max_new_tokens": 32}
    required_fields = ("index", "question", "answer", "A", "B")
    id_field = "index"

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.name = f"mmbench_{lang}"
        self.hub_configs = (lang,)
        self.description = f"MMBench-{lang.upper()} dev: multiple-choice perception/reasoning (lmms-eval prompt, static eval, CircularEval)"

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        opts, opt_dict = options_prompt(row)
        hint = row.get("hint")
        query = f"{hint} {row['question']} {opts}" if not _isna(hint) and hint != "nan" else f"{row['question']} {opts}"
        choices = {c: row[c] for c in "ABCD" if c in row and not _isna(row[c])}
        return Sample(
            id=ident, question=f"{query}{POST_PROMPTS[self.lang]}", target=str(row["answer"]),
            images=[LazyImage(row["image"], name=f"{self.name} sample {ident} image")],
            choices=list(choices.values()),
            metadata={"index": int(ident), "options": choices, "category": row.get("category"),
                      "l2_category": row.get("L2-category")},
        )
    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output)
        details: dict[str, Any] = {"extractor": "lmms-eval-0.7.3 MMBench static (can_infer + extract_mcq_answer)",
                                   "circular_group": int(sample.metadata["index"]) % 1_000_000}
        if prep.unfinished_reasoning:
            return truncated_score(reason="ended inside a reasoning block", **details)
        letter = static_answer(prep.text, dict(sample.metadata["options"]))
        if truncated and not letter:
            return truncated_score(**details)
        return Score(value=float(letter == sample.target), parsed=letter or None, details=details)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        out = super().aggregate(scores)
        groups: dict[Any, list[float]] = defaultdict(list)
        for s in scores:
            groups[s.details.get("circular_group")].append(s.value)
        out["circular_accuracy"] = sum(min(v) for v in groups.values()) / len(groups) if groups else float("nan")
        return out


TASKS = [MMBench("en"), MMBench("cn")]
