"""MMBench EN / CN (lmms-lab-encoder/MMBench, configs ``en`` / ``cn``, split ``dev``).

``mmbench_en_lite`` / ``mmbench_cn_lite`` = lmms-eval's ``mmbench_en_dev_lite`` / ``mmbench_cn_dev_lite``:
the same prompt, generation and scoring on the ``lite`` split of lmms-lab-encoder/LMMs-Eval-Lite
(configs ``mmbench_en_dev`` / ``mmbench_cn_dev``); the YAMLs' generation kwargs equal the dev ones
(EN lines 20-27, CN lines 18-23). Under ``--data-dir``: ``mmbench_en/lite.parquet``.

Prompt and generation as lmms-eval 0.7.3 (PyPI wheel ``lmms_eval-0.7.3``; the same files at
github.com/EvolvingLMMs-Lab/lmms-eval@75571cfe), ``lmms_eval/tasks/mmbench/``:

* ``en_utils.mmbench_doc_to_text`` (lines 50-73) / ``cn_utils.mmbench_doc_to_text`` (lines
  43-66): ``"{hint} {question} {options}"`` (hint left out when missing: EN also skips the string
  ``"nan"``, line 68; CN only a real missing value, line 61), then ``f"{query}\\n{post_prompt}"``
  (EN line 71, CN line 64) with a ``post_prompt`` that itself starts with ``"\\n"``
  (``_default_template_mmbench_en_yaml`` line 8, ``_default_template_mmbench_cn_yaml`` line 19):
  so there are two newlines before "Answer with ...". Neither YAML has a ``qwen3_vl`` section,
  so Qwen3-VL gets these ``default`` kwargs.
* ``{options}`` = ``MMBench_Evaluator.create_options_prompt`` (``mmbench_evals.py`` lines 20-28)
  with the ``sys_prompt`` "There are several options:" of ``mmbench.yaml`` (line 11), which both
  ``en_utils`` and ``cn_utils`` read (line 12 of each), CN included.
* ``generation_kwargs``: EN ``max_new_tokens: 1024``, ``top_p: 1.0``, ``until: ["ASSISTANT:"]``
  (``_default_template_mmbench_en_yaml`` lines 18-25); CN ``max_new_tokens: 256``, ``top_p: 1.0``
  (``_default_template_mmbench_cn_yaml`` lines 9-14). ``top_p`` matters only when sampling (it
  then wins over the checkpoint's, see :mod:`pvm_bench.models.decoding`); ``until`` is applied to
  the output before scoring, as lmms-eval's model wrappers cut the text at it.

Scoring is lmms-eval's *static* evaluation (``eval_method="static"``, no GPT): ``can_infer``
(option letter, then option text) and, failing that, ``extract_mcq_answer``.

Headline metric ``circular_accuracy`` = CircularEval as lmms-eval 0.7.3 computes it
(``lmms_eval/tasks/mmbench/mmbench_evals.py``, wheel lmms_eval-0.7.3): ``eval_result`` keeps the
main rows ``index < 1e6`` (line 275) and scores each by the rows with ``index % 1e6 == idx``
(line 298); ``eval_sub_data`` (lines 206-234) returns 1 only when every row of that group is
answered correctly; the result is the mean over main rows (``calculate_hit_rates``, line 237),
returned x100 by ``en_utils.mmbench_aggregate_dev_results_static`` (lines 123-135). Here: unit =
``index % 1e6``, ``combine="all"``, and a unit counts only when its main row is present. The
per-row mean is kept as the secondary metric ``accuracy``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from typing import Any

from pvm_bench.scoring import extract_mcq_answer, letter_score, prepare_output, truncated_score
from pvm_bench.tasks import HubTask, LazyImage, Metric, RecordInfo, Sample, Score

#: lmms-eval 0.7.3's lite subsets (mmbench_en_dev_lite.yaml lines 2-4, mmbench_cn_dev_lite.yaml lines 2, 10-11).
LITE_HUB = "lmms-lab-encoder/LMMs-Eval-Lite"
SYS_PROMPT = "There are several options:"
POST_PROMPTS = {
    "en": "\nAnswer with the option's letter from the given choices directly.",
    "cn": "\n请直接使用所提供的选项字母作为答案回答。",
}


#: ``generation_kwargs`` of the lmms-eval 0.7.3 YAML templates (see the module docstring).
GENERATION: dict[str, dict[str, Any]] = {
    "en": {"max_new_tokens": 1024, "top_p": 1.0, "until": ["ASSISTANT:"]},
    "cn": {"max_new_tokens": 256, "top_p": 1.0},
}


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """The text before the first of each ``until`` string, applied in order as lmms-eval's
    ``qwen3_vl.generate_until`` does (``models/simple/qwen3_vl.py`` lines 439-442)."""
    for term in until:
        if term:
            text = text.split(term)[0]
    return text


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


def circular_group(info: RecordInfo) -> int:
    """CircularEval question of a record: ``index % 1e6`` (lmms-eval mmbench_evals.py:298)."""
    return int(info["index"]) % 1_000_000


def is_main_row(info: RecordInfo) -> bool:
    """lmms-eval scores only questions whose main row (``index < 1e6``) is present (line 275)."""
    return int(info["index"]) < 1_000_000


CIRCULAR_EVAL = Metric(
    "circular_accuracy", unit=circular_group, combine="all", require=is_main_row,
    description="CircularEval (lmms-eval 0.7.3): a question counts only if all its circular shifts are right",
)


def static_answer(prediction: str, choices: dict[str, str]) -> str:
    """The letter lmms-eval's static MMBench evaluation assigns ("" = none)."""
    inferred = can_infer_option(prediction) or can_infer_text(prediction, choices)
    if inferred:
        return str(inferred)
    return extract_mcq_answer(prediction, choices=sorted(choices))


class MMBench(HubTask):
    version = "1.0"
    splits: tuple[str, ...] = ("dev",)
    splits_lite: tuple[str, ...] = ("lite",)
    default_split = "dev"
    hub_id = "lmms-lab-encoder/MMBench"
    metric = "circular_accuracy"
    required_fields = ("index", "question", "answer", "A", "B")
    id_field = "index"

    def __init__(self, lang: str, lite: bool = False) -> None:
        self.lang = lang
        self.name = f"mmbench_{lang}" + ("_lite" if lite else "")
        self.data_name = f"mmbench_{lang}"
        self.hub_configs = (lang,)
        self.generation = dict(GENERATION[lang])
        which = "dev"
        if lite:  # lmms-eval 0.7.3 mmbench_{en,cn}_dev_lite.yaml: LMMs-Eval-Lite config mmbench_{lang}_dev, split lite
            self.hub_id, self.hub_configs = LITE_HUB, (f"mmbench_{lang}_dev",)
            self.splits = self.splits_lite
            self.default_split, which = "lite", "dev lite"
        self.description = (f"MMBench-{lang.upper()} {which}: multiple-choice perception/reasoning (lmms-eval prompt, "
                            "static eval, CircularEval)")

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        opts, opt_dict = options_prompt(row)
        hint = row.get("hint")
        has_hint = not _isna(hint) and (self.lang == "cn" or hint != "nan")  # en_utils line 68 / cn_utils line 61
        query = f"{hint} {row['question']} {opts}" if has_hint else f"{row['question']} {opts}"
        choices = {c: row[c] for c in "ABCD" if c in row and not _isna(row[c])}
        return Sample(
            id=ident, question=f"{query}\n{POST_PROMPTS[self.lang]}", target=str(row["answer"]),
            images=[LazyImage(row["image"], name=f"{self.name} sample {ident} image")],
            choices=list(choices.values()),
            metadata={"index": int(ident), "options": choices, "category": row.get("category"),
                      "l2_category": row.get("L2-category")},
        )
    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(cut_at_stops(output, self.generation.get("until", ())), policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        details: dict[str, Any] = {"extractor": "mmbench_static", "index": int(sample.metadata["index"])}
        if prep.unanswered:
            return truncated_score(reason="ended inside a reasoning block", **details)
        letter = static_answer(prep.text, dict(sample.metadata["options"]))
        return letter_score(letter, sample.target, details, truncated=truncated)

    def metrics(self) -> list[Metric]:
        return [CIRCULAR_EVAL, Metric("accuracy", description="per-row accuracy (no circular grouping)")]


TASKS = [MMBench("en"), MMBench("cn"), MMBench("en", lite=True), MMBench("cn", lite=True)]
