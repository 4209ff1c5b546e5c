"""AI2D (lmms-lab-encoder/ai2d, split ``test``): science diagrams, multiple choice.

lmms-eval 0.7.3 ``tasks/ai2d`` default: prompt ``"{question}\\nA. ..\\nB. ..\\nAnswer with the
option's letter from the given choices directly."``; target = letter of ``options[int(answer)]``;
filter ``MultiChoiceRegexFilter`` (``^\\s*([A-Z])\\.`` -> the letter, else the response as is);
metric ``exact_match`` with ``ignore_case`` and ``ignore_punctuation``.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

from pvm_bench.data import load_rows
from pvm_bench.scoring import prepare_output, truncated_score
from pvm_bench.tasks import LazyImage, Sample, Score, Task, TaskError

POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."
OPTION_LETTER = re.compile(r"^\s*([A-Z])\.")
_PUNCT = str.maketrans("", "", string.punctuation)


def exact_match(pred: str, gold: str) -> bool:
    """lm-eval ``exact_match`` with ignore_case and ignore_punctuation."""
    return pred.lower().translate(_PUNCT) == gold.lower().translate(_PUNCT)


class AI2D(Task):
    name = "ai2d"
    version = "1.0"
    description = "AI2D: grade-school science diagrams, multiple choice (lmms-eval mcq prompt, exact match)"
    splits = ("test",)
    default_split = "test"
    hub_id = "lmms-lab-encoder/ai2d"
    generation = {"max_new_tokens": 16}

    def load(self, split: str | None = None, limit: int | None = None, data_dir: Path | None = None) -> list[Sample]:
        split = split or self.default_split
        rows = load_rows("ai2d", split, hub_id=self.hub_id, data_dir=data_dir, limit=limit)
        out = []
        for i, row in enumerate(rows):
            ident = f"ai2d_{i}"
            options = list(row.get("options") or [])
            try:
                target = chr(ord("A") + int(row["answer"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise TaskError(f"task '{self.name}': record {ident} has no integer answer index (lmms-lab ai2d schema expected)") from exc
            if not options or row.get("image") is None or row.get("question") is None:
                raise TaskError(f"task '{self.name}': record {ident} lacks question/options/image")
            choices_str = "\n".join(f"{chr(ord('A') + j)}. {c}" for j, c in enumerate(options))
            out.append(Sample(
                id=ident, question=f"{row['question']}\n{choices_str}{POST_PROMPT}", target=target,
                images=[LazyImage(row["image"], name=f"{self.name} sample {ident} image")], choices=options,
            ))
        return out

    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output)
        details: dict[str, Any] = {"extractor": "lmms-eval-0.7.3 MultiChoiceRegexFilter + exact_match"}
        if prep.unfinished_reasoning:
            return truncated_score(reason="ended inside a reasoning block", **details)
        m = OPTION_LETTER.match(prep.text)
        pred = m.group(1) if m else prep.text
        ok = exact_match(pred, sample.target)
        if truncated and not ok and not m:
            return truncated_score(**details)
        return Score(value=float(ok), parsed=pred, details=details)


TASKS = [AI2D()]
