"""HallusionBench (lmms-lab-encoder/HallusionBench, split ``image``): yes/no hallucination probes.

lmms-eval 0.7.3 ``tasks/hallusion_bench``: prompt = the question (empty pre/post prompt). Its
default scoring asks GPT-4; the rule-based path here is lmms-eval's ``*_intern`` aggregation
(``"1" if "yes" in prediction.lower() else "0"`` compared with ``gt_answer``), reported as
``aAcc`` (per question), ``qAcc`` (all figures of a question right) and ``fAcc`` (all questions
of a figure right).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pvm_bench.scoring import prepare_output, truncated_score
from pvm_bench.tasks import HubTask, LazyImage, Sample, Score

ID_FIELDS = ("category", "subcategory", "set_id", "figure_id", "question_id")


class HallusionBench(HubTask):
    name = "hallusionbench"
    version = "1.0"
    description = "HallusionBench image split: yes/no visual hallucination questions (rule-based yes/no, aAcc/qAcc/fAcc)"
    splits = ("image",)
    default_split = "image"
    hub_id = "lmms-lab-encoder/HallusionBench"
    generation = {"max_new_tokens": 128}
    required_fields = ("category", "subcategory", "set_id", "figure_id", "question_id", "question", "gt_answer")
    metric = "aAcc"

    def row_id(self, row: dict[str, Any], position: int) -> str:
        return "_".join(str(row.get(k)) for k in ID_FIELDS)

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        images = [LazyImage(row["image"], name=f"{self.name} sample {ident} image")] if row.get("image") is not None else []
        return Sample(
            id=ident, question=str(row["question"]), target=str(row["gt_answer"]), images=images, choices=None,
            metadata={k: str(row[k]) for k in ID_FIELDS},
        )
    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output)
        m = sample.metadata
        details: dict[str, Any] = {
            "extractor": "lmms-eval-0.7.3 hb_aggregation_result_intern (yes/no rule)",
            "q_key": "_".join([m["category"], m["subcategory"], m["set_id"], m["question_id"]]),
            "f_key": "_".join([m["category"], m["subcategory"], m["set_id"], m["figure_id"]]),
        }
        if prep.unfinished_reasoning:
            return truncated_score(reason="ended inside a reasoning block", **details)
        low = prep.text.lower()
        if truncated and "yes" not in low and "no" not in low:
            return truncated_score(**details)
        ans = "1" if low.find("yes") != -1 else "0"
        return Score(value=float(ans == sample.target), parsed=ans, details=details)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        n = len(scores)
        out = {"aAcc": sum(s.value for s in scores) / n if n else float("nan"),
               "truncated_rate": sum(s.truncated for s in scores) / n if n else float("nan"), "n": float(n)}
        for metric, key in (("qAcc", "q_key"), ("fAcc", "f_key")):
            groups: dict[str, list[float]] = defaultdict(list)
            for s in scores:
                groups[s.details.get(key, "")].append(s.value)
            out[metric] = sum(min(v) for v in groups.values()) / len(groups) if groups else float("nan")
        return out


TASKS = [HallusionBench()]
