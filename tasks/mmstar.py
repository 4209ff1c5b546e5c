"""MMStar (Lin-Chen/MMStar, split ``val``): vision-indispensable multiple-choice questions.

lmms-eval 0.7.3 ``tasks/mmstar``: prompt = question + ``post_prompt`` ("\\nAnswer with the
option's letter from the given choices directly"; ``qwen3_vl`` kwargs: "Question: " prefix and
"Answer with the option letter only."); score = ``extract_mcq_answer`` (A-D) == answer, after
reasoning blocks are stripped.

Prompt kwargs: ``tasks/mmstar/_default_template_yaml`` lines 28-34 (wheel lmms_eval-0.7.3, same at
github.com/EvolvingLMMs-Lab/lmms-eval@75571cfe); lmms-eval picks the model's own section, else
``default`` (``api/task.py`` lines 886-893), so Qwen3-VL (``--model qwen3_vl``) is prompted as
``mmstar_qwen3vl`` here. ``mmstar_doc_to_text``: ``utils.py`` lines 63-71 (no separator before
the post prompt: the question's options line runs into "Answer with ...", verbatim).

Generation: the MMStar YAMLs set no ``generation_kwargs``, so lmms-eval uses ``{"until":
["\\n\\n"], "do_sample": False}`` (``api/task.py`` lines 189-194) and the model's defaults; the
``qwen3_vl`` model's ``DEFAULT_GEN_KWARGS`` give ``max_new_tokens`` 128
(``models/simple/qwen3_vl.py`` lines 71-76) and it drops the ``"\\n\\n"`` stop (line 289).

Headline metric ``average`` as lmms-eval 0.7.3 ``tasks/mmstar/utils.py`` (wheel lmms_eval-0.7.3)
``mmstar_aggregate_results`` (lines 126-146): the mean over L2 categories of the per-category
mean score (on the full, balanced set it equals the plain accuracy; on a ``--limit`` subset it
does not). The bootstrap resamples samples within each L2 category. ``accuracy`` (plain mean) is
kept as a secondary metric.

The six category metrics as lmms-eval 0.7.3 lists them (``_default_template_yaml`` lines 7-24:
``coarse perception``, ``fine-grained perception``, ``instance reasoning``, ``logical reasoning``,
``science & technology``, ``math``, each with ``mmstar_aggregate_results``): ``mmstar_process_results``
(``utils.py`` lines 109-123) files each sample under its dataset ``category`` and under
``average``, so each category metric is the same mean over L2 categories (lines 126-146) taken over
that category's samples only. Here: one :class:`Metric` per category, named exactly as lmms-eval
names it, stratified by L2 category and restricted to the category's samples; a category with no
samples in the run gets no row.
"""

from __future__ import annotations

from typing import Any

from pvm_bench.scoring import extract_mcq_answer, letter_score, prepare_output, truncated_score
from pvm_bench.tasks import HubTask, LazyImage, Metric, Sample, Score

REPLACE_PROMPT = " Please answer yes or no."
#: MMStar's categories, in lmms-eval 0.7.3's metric_list order (``_default_template_yaml`` lines 7-24).
CATEGORIES = ("coarse perception", "fine-grained perception", "instance reasoning", "logical reasoning",
              "science & technology", "math")
KWARGS = {
    "default": {"pre_prompt": "", "post_prompt": "\nAnswer with the option's letter from the given choices directly"},
    "qwen3_vl": {"pre_prompt": "Question: ", "post_prompt": "Answer with the option letter only."},
}


def doc_to_text(doc: dict[str, Any], kwargs: dict[str, str]) -> str:
    """lmms-eval ``mmstar_doc_to_text``."""
    question = doc["question"].strip()
    if kwargs.get("pre_prompt"):
        question = question.replace(REPLACE_PROMPT, "")
        question = f"{kwargs['pre_prompt']}{question}"
    if kwargs.get("post_prompt"):
        question = question.replace(REPLACE_PROMPT, "")
        question = f"{question}{kwargs['post_prompt']}"
    return question


class MMStar(HubTask):
    name = "mmstar"
    version = "1.0"
    description = "MMStar: 1500 vision-indispensable multiple-choice questions (lmms-eval prompt and MCQ extraction)"
    splits = ("val",)
    default_split = "val"
    hub_id = "Lin-Chen/MMStar"
    generation = {"max_new_tokens": 128}  # qwen3_vl DEFAULT_GEN_KWARGS (the YAML sets none)
    metric = "average"
    data_name = "mmstar"
    required_fields = ("question", "answer", "image")
    id_field = "index"

    def __init__(self, prompt: str = "default", name: str | None = None) -> None:
        self.prompt = prompt
        if name:
            self.name = name
        if prompt != "default":
            head, _, tail = type(self).description.partition(": ")
            self.description = f"{head} with lmms-eval's {prompt} prompt: {tail}"

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        return Sample(
            id=ident, question=doc_to_text(row, KWARGS[self.prompt]), target=str(row["answer"]).strip().upper(),
            images=[LazyImage(row["image"], name=f"{self.name} sample {ident} image")], choices=["A", "B", "C", "D"],
            metadata={"category": row.get("category"), "l2_category": row.get("l2_category")},
        )
    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output, policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        details: dict[str, Any] = {"extractor": "option_letter", "l2_category": sample.metadata.get("l2_category"),
                                   "category": sample.metadata.get("category")}
        if prep.unanswered:
            return truncated_score(reason="ended inside a reasoning block", **details)
        letter = extract_mcq_answer(prep.text, choices=["A", "B", "C", "D"])
        return letter_score(letter, sample.target, details, truncated=truncated)

    def metrics(self) -> list[Metric]:
        return [
            Metric("average", stratum=_l2,
                   description="mean over L2 categories of the per-category accuracy (lmms-eval)"),
            Metric("accuracy", description="mean score per sample"),
            *(category_metric(c) for c in CATEGORIES),
        ]


def _l2(info: Any) -> str:
    return str(info.get("l2_category"))


def category_metric(category: str) -> Metric:
    """lmms-eval's metric ``category``: the mean over its L2 categories, over its samples only."""
    return Metric(category, stratum=_l2, require=lambda info: info.get("category") == category,
                  description=f"mean over the L2 categories of '{category}' (lmms-eval)")


TASKS = [MMStar(), MMStar(prompt="qwen3_vl", name="mmstar_qwen3vl")]
