"""MMMU (MMMU/MMMU): college-level multimodal questions, 30 subjects, up to 7 images."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from pvm_bench.data import load_rows
from pvm_bench.tasks import LazyImage, Sample, Score, Task

MC_PROMPT = "Answer with the option's letter from the given choices directly."
OPEN_PROMPT = "Answer the question using a single word or phrase."
IMAGE_REF = re.compile(r"<image (\d+)>")


class MMMU(Task):
    name = "mmmu"
    version = "0.1"
    description = "MMMU: multi-discipline college-level multimodal reasoning (multiple-choice and open)"
    splits = ("validation", "dev")
    default_split = "validation"
    hub_id = "MMMU/MMMU"
    generation = {"max_new_tokens": 128}

    def load(self, split: str | None = None, limit: int | None = None, data_dir: Path | None = None) -> list[Sample]:
        split = split or self.default_split
        rows = load_rows(self.name, split, hub_id=self.hub_id, data_dir=data_dir, limit=limit)
        return [self._sample(row) for row in rows]

    def _sample(self, row: dict[str, Any]) -> Sample:
        options = ast.literal_eval(row["options"]) if isinstance(row["options"], str) else list(row["options"])
        images = [
            LazyImage(row[f"image_{i}"], name=f"{row['id']} image_{i}")
            for i in range(1, 8)
            if row.get(f"image_{i}") is not None
        ]
        is_mc = row.get("question_type", "multiple-choice") == "multiple-choice" and bool(options)
        text = row["question"]
        if is_mc:
            text += "\n" + "\n".join(f"{chr(65 + i)}. {opt}" for i, opt in enumerate(options))
        text += "\n\n" + (MC_PROMPT if is_mc else OPEN_PROMPT)
        return Sample(
            id=str(row["id"]), question=text, target=row["answer"], images=images,
            choices=options if is_mc else None,
            metadata={"question_type": row.get("question_type"), "subfield": row.get("subfield")},
        )

    def messages(self, sample: Sample) -> list[dict[str, Any]]:
        # Interleave images where the question references them; unreferenced images go first.
        parts: list[dict[str, Any]] = []
        pieces = IMAGE_REF.split(sample.question)
        referenced = {int(n) for n in pieces[1::2]}
        parts.extend({"type": "image", "index": i - 1} for i in range(1, len(sample.images) + 1) if i not in referenced)
        for idx, piece in enumerate(pieces):
            if idx % 2 == 1:
                parts.append({"type": "image", "index": int(piece) - 1})
            elif piece:
                parts.append({"type": "text", "text": piece})
        return [{"role": "user", "content": parts}]

    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        text = output.strip()
        if sample.choices:
            letters = [chr(65 + i) for i in range(len(sample.choices))]
            found = re.findall(r"\(?\b([A-Z])\b\)?", text)
            parsed = next((c for c in reversed(found) if c in letters), None)
            if parsed is None:
                for letter, option in zip(letters, sample.choices):
                    if option and option.lower() in text.lower():
                        parsed = letter
        else:
            parsed = text.rstrip(".") or None
        correct = parsed is not None and str(parsed).lower() == str(sample.target).lower()
        return Score(value=float(correct), parsed=parsed, truncated=truncated and parsed is None)


TASKS = [MMMU()]
