"""MMT-Bench (lmms-lab-encoder/MMT-Benchmark, split ``val``): multitask multiple choice (A-I).

lmms-eval 0.7.3 ``tasks/mmt`` (``mmt_val``): prompt ``"Question: <image>\\n{question}\\nA: ..\\n
B: ..\\nAnswer the question using a single character from the given options."``; score =
``parse_multi_choice_response`` (MMMU-adapted, without the option-text fallback; random guess
when nothing parses, seeded here from the sample id) == answer.

Sources (wheel lmms_eval-0.7.3, same at github.com/EvolvingLMMs-Lab/lmms-eval@75571cfe):
``tasks/mmt/_default_template_yaml`` lines 1-6 (post prompt, ``max_new_tokens: 8``; no
``qwen3_vl`` section), ``utils.mmt_doc_to_text`` lines 64-82. The ``<image>`` placeholder stays in
:attr:`Sample.question` (lmms-eval's text) but not in the chat message: lmms-eval's ``qwen3_vl``
model deletes ``"<image>"`` from the context and puts the images first
(``models/simple/qwen3_vl.py`` lines 294-303 and 338-344), so the model reads "Question: \\n...".
"""

from __future__ import annotations

import random
from typing import Any

from pvm_bench.scoring.extract import _argmax, prepare_output, seed_for, truncated_score
from pvm_bench.tasks import HubTask, LazyImage, Sample, Score, TaskError

LETTERS = ["A", "B", "C", "D", "E", "F", "G", "H", "I"]
POST_PROMPT = "\nAnswer the question using a single character from the given options."


def parse_multi_choice_response(response: str, all_choices: list[str], rng: random.Random) -> tuple[str, bool]:
    """lmms-eval 0.7.3 ``tasks/mmt/utils.py`` ``parse_multi_choice_response``; (letter, guessed)."""
    for char in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(char)
    response = " " + response + " "
    candidates = [c for c in all_choices if f"({c})" in response]
    if not candidates:
        candidates = [c for c in all_choices if f" {c} " in response]
    if not candidates:
        candidates = [c for c in all_choices if f"{c}." in response]
    if not candidates:
        return rng.choice(all_choices), True
    if len(candidates) > 1:
        return candidates[_argmax([response.rfind(f" {c} ") for c in candidates])], False
    return candidates[0], False


class MMT(HubTask):
    name = "mmt"
    version = "1.0"
    description = "MMT-Bench val: 32 meta-tasks of multimodal multiple choice (lmms-eval mmt_val prompt and parser)"
    splits = ("val",)
    default_split = "val"
    hub_id = "lmms-lab-encoder/MMT-Benchmark"
    generation = {"max_new_tokens": 8}
    required_fields = ("question", "answer", "image")
    id_field = "index"

    def messages(self, sample: Sample) -> list[dict[str, Any]]:
        """Images first, then the text without lmms-eval's ``<image>`` placeholder (qwen3_vl model)."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in sample.images]
        content.append({"type": "text", "text": sample.question.replace("<image>", "")})
        return [{"role": "user", "content": content}]

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        options = [f"{c}: {row[c].strip()}" for c in LETTERS if row.get(c) and row[c].strip()]
        text = "Question: <image>\n" + row["question"].strip() + "\n" + "\n".join(options) + POST_PROMPT
        images = row["image"] if isinstance(row["image"], list) else [row["image"]]
        return Sample(
            id=ident, question=text, target=str(row["answer"]).strip(),
            images=[LazyImage(im, name=f"{self.name} sample {ident} image") for im in images],
            choices=[c for c in LETTERS if row.get(c)],
            metadata={"l2_category": row.get("l2-category", "unknown"), "category": row.get("category")},
        )
    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output, policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        details: dict[str, Any] = {"extractor": "lmms-eval-0.7.3 mmt parse_multi_choice_response"}
        if prep.unanswered:
            return truncated_score(reason="ended inside a reasoning block", **details)
        letter, guessed = parse_multi_choice_response(
            prep.text.strip(), list(sample.choices or LETTERS), random.Random(seed_for(sample.id))
        )
        details["guessed"] = guessed
        if truncated and guessed:
            return truncated_score(**details)
        return Score(value=float(letter == sample.target), parsed=letter, details=details)


class MMTEmotion(MMT):
    """MMT-Bench val restricted to the ``emotion`` meta-task: the paper's MMT^emo (our reading: lmms-eval
    0.7.3 has no such task; ``tasks/mmt/utils.py`` line 28 abbreviates the ``emotion`` meta-task as
    "Emo"). Rows whose ``category`` is ``emotion`` (case-insensitive); ``--limit`` applies after the
    filter. Prompt, generation and parser as ``mmt``."""

    name = "mmt_emo"
    description = "MMT-Bench val, emotion meta-task only (the PVM paper's MMT^emo; lmms-eval mmt_val prompt and parser)"
    data_name = "mmt"
    category = "emotion"

    def load(self, split: str | None = None, limit: int | None = None, data_dir: Any = None) -> list[Sample]:
        kept = [s for s in super().load(split, None, data_dir)
                if str(s.metadata.get("category") or "").strip().lower() == self.category]
        if not kept:
            raise TaskError(f"task '{self.name}': no MMT-Bench row has category '{self.category}'; "
                            "check the dataset (lmms-lab-encoder/MMT-Benchmark schema expected)")
        return kept[:limit] if limit else kept


TASKS = [MMT(), MMTEmotion()]
