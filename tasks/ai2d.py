"""AI2D (lmms-lab-encoder/ai2d, split ``test``): science diagrams, multiple choice.

lmms-eval 0.7.3 ``tasks/ai2d`` default: prompt ``"{question}\\nA. ..\\nB. ..\\nAnswer with the
option's letter from the given choices directly."``; target = letter of ``options[int(answer)]``;
filter ``MultiChoiceRegexFilter`` (``^\\s*([A-Z])\\.`` -> the letter, else the response as is);
metric ``exact_match`` with ``ignore_case`` and ``ignore_punctuation``.

Sources (wheel lmms_eval-0.7.3, same at github.com/EvolvingLMMs-Lab/lmms-eval@75571cfe):
``tasks/ai2d/ai2d.yaml`` lines 13-17 (``default`` kwargs; there is no ``qwen3_vl`` section, so
Qwen3-VL gets these), lines 35-38 (``max_new_tokens: 16``, greedy), lines 40-47 (filter);
``utils.ai2d_doc_to_text`` lines 6-14; ``MultiChoiceRegexFilter.apply`` lines 52-79.
"""

from __future__ import annotations

import re
import string
from typing import Any

from pvm_bench.scoring import prepare_output, truncated_score
from pvm_bench.tasks import HubTask, LazyImage, Sample, Score, TaskError

POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."
OPTION_LETTER = re.compile(r"^\s*([A-Z])\.")
_PUNCT = str.maketrans("", "", string.punctuation)


def exact_match(pred: str, gold: str) -> bool:
    """lm-eval ``exact_match`` with ignore_case and ignore_punctuation."""
    return pred.lower().translate(_PUNCT) == gold.lower().translate(_PUNCT)


class AI2D(HubTask):
    name = "ai2d"
    version = "1.0"
    description = "AI2D: grade-school science diagrams, multiple choice (lmms-eval mcq prompt, exact match)"
    splits = ("test",)
    default_split = "test"
    hub_id = "lmms-lab-encoder/ai2d"
    generation = {"max_new_tokens": 16}
    required_fields = ("question", "options", "image", "answer")

    def row_id(self, row: dict[str, Any], position: int) -> str:
        return f"ai2d_{position}"

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        options = list(row["options"])
        try:
            target = chr(ord("A") + int(row["answer"]))
        except (TypeError, ValueError) as exc:
            raise TaskError(
                f"task '{self.name}': record {ident} has no integer answer index (lmms-lab ai2d schema expected)"
            ) from exc
        choices_str = "\n".join(f"{chr(ord('A') + j)}. {c}" for j, c in enumerate(options))
        return Sample(
            id=ident, question=f"{row['question']}\n{choices_str}{POST_PROMPT}", target=target,
            images=[LazyImage(row["image"], name=f"{self.name} sample {ident} image")], choices=options,
        )

    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output, policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        details: dict[str, Any] = {"extractor": "lmms-eval-0.7.3 MultiChoiceRegexFilter + exact_match"}
        if prep.unanswered:
            return truncated_score(reason="ended inside a reasoning block", **details)
        m = OPTION_LETTER.match(prep.text)
        pred = m.group(1) if m else prep.text
        ok = exact_match(pred, sample.target)
        if truncated and not ok and not m:
            return truncated_score(**details)
        return Score(value=float(ok), parsed=pred, details=details)


class AI2DLite(AI2D):
    """lmms-eval 0.7.3 ``ai2d_lite`` (``ai2d_lite.yaml`` lines 1-6: LMMs-Eval-Lite config ``ai2d``, split
    ``lite``; prompt, generation and filter as ``ai2d``). Under ``--data-dir``: ``ai2d/lite.parquet``."""

    name = "ai2d_lite"
    description = ("AI2D lite (lmms-eval's LMMs-Eval-Lite subset): science diagrams, multiple choice "
                   "(mcq prompt, exact match)")
    splits = ("lite",)
    default_split = "lite"
    hub_id = "lmms-lab-encoder/LMMs-Eval-Lite"
    hub_configs = ("ai2d",)
    data_name = "ai2d"

    def row_id(self, row: dict[str, Any], position: int) -> str:
        return f"ai2d_lite_{position}"


TASKS = [AI2D(), AI2DLite()]
