"""HallusionBench (lmms-lab-encoder/HallusionBench, split ``image``): yes/no hallucination probes.

lmms-eval 0.7.3 ``tasks/hallusion_bench``: prompt = the question (empty pre/post prompt:
``hallusion_bench_image.yaml`` lines 13-16, ``evaluate_hb.hb_doc_to_text`` lines 22-27), generation
``max_new_tokens: 128``, ``top_p: 1.0`` (YAML lines 17-22; ``top_p`` applies only when sampling,
where it wins over the checkpoint's). Its
default scoring asks GPT-4; the rule-based path here is lmms-eval's ``*_intern`` aggregation
(``"1" if "yes" in prediction.lower() else "0"`` compared with ``gt_answer``), reported as
``aAcc`` (per question), ``qAcc`` (all figures of a question right) and ``fAcc`` (all questions
of a figure right).

Metrics as lmms-eval 0.7.3 ``tasks/hallusion_bench/evaluate_hb.py`` (wheel lmms_eval-0.7.3)
``hb_aggregation_result_intern``: aAcc = mean over rows (line 101); qAcc groups rows by
``category_subcategory_set_id_question_id`` and counts a group right only if all its rows are
(lines 102-114); fAcc the same by ``category_subcategory_set_id_figure_id`` (lines 115-126). The
bootstrap resamples these groups (rows for aAcc). The YAML lists aAcc first (headline).
"""

from __future__ import annotations

from typing import Any

from pvm_bench.scoring import prepare_output, truncated_score
from pvm_bench.tasks import HubTask, LazyImage, Metric, RecordInfo, Sample, Score

ID_FIELDS = ("category", "subcategory", "set_id", "figure_id", "question_id")


def question_key(info: RecordInfo) -> str:
    """qAcc group (evaluate_hb.py:105)."""
    return "_".join(str(info[k]) for k in ("category", "subcategory", "set_id", "question_id"))


def figure_key(info: RecordInfo) -> str:
    """fAcc group (evaluate_hb.py:118)."""
    return "_".join(str(info[k]) for k in ("category", "subcategory", "set_id", "figure_id"))


class HallusionBench(HubTask):
    name = "hallusionbench"
    version = "1.0"
    description = (
        "HallusionBench image split: yes/no visual hallucination questions (rule-based yes/no, aAcc/qAcc/fAcc)"
    )
    splits = ("image",)
    default_split = "image"
    hub_id = "lmms-lab-encoder/HallusionBench"
    generation = {"max_new_tokens": 128, "top_p": 1.0}  # hallusion_bench_image.yaml lines 17-22
    required_fields = ("category", "subcategory", "set_id", "figure_id", "question_id", "question", "gt_answer")
    metric = "aAcc"

    def row_id(self, row: dict[str, Any], position: int) -> str:
        return "_".join(str(row.get(k)) for k in ID_FIELDS)

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        images = (
            [LazyImage(row["image"], name=f"{self.name} sample {ident} image")] if row.get("image") is not None else []
        )
        return Sample(
            id=ident, question=str(row["question"]), target=str(row["gt_answer"]), images=images, choices=None,
            metadata={k: str(row[k]) for k in ID_FIELDS},
        )
    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output, policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        details: dict[str, Any] = {"extractor": "yes_no_rule", **{k: sample.metadata[k] for k in ID_FIELDS}}
        if prep.unanswered:
            return truncated_score(reason="ended inside a reasoning block", **details)
        low = prep.text.lower()
        if truncated and "yes" not in low and "no" not in low:
            return truncated_score(**details)
        ans = "1" if low.find("yes") != -1 else "0"
        return Score(value=float(ans == sample.target), parsed=ans, details=details)

    def metrics(self) -> list[Metric]:
        return [
            Metric("aAcc", description="per-question accuracy"),
            Metric("qAcc", unit=question_key, combine="all", description="all figures of a question right"),
            Metric("fAcc", unit=figure_key, combine="all", description="all questions of a figure right"),
        ]


TASKS = [HallusionBench()]
