"""MMMU: college-level multimodal questions, 30 subjects, up to 7 images.

Faithful to lmms-eval 0.7.3 ``tasks/mmmu`` (``mmmu_val.yaml`` + ``utils.py``; wheel
lmms_eval-0.7.3, the same files at github.com/EvolvingLMMs-Lab/lmms-eval@75571cfe):

* data: lmms-eval's dataset ``lmms-lab-encoder/MMMU`` (``mmmu_val.yaml`` line 1, one config),
  else the original ``MMMU/MMMU`` (one config per subject, concatenated); see
  :attr:`MMMU.hub_sources`. ``--data-dir`` reads ``mmmu/<split>.parquet`` as before.
* generation: ``max_new_tokens: 128`` (``_default_template_yaml`` lines 1-2, included by
  ``mmmu_val.yaml`` line 30).
* prompt kwargs: ``mmmu_val.yaml`` lines 20-29; lmms-eval uses the ``qwen3_vl`` section for the
  ``qwen3_vl`` model (``api/task.py`` lines 886-893), i.e. ``mmmu_qwen3vl`` here for Qwen3-VL.

* prompt ``"default"``: ``mmmu_doc_to_text`` with the ``default`` kwargs (question, ``A. ...``
  options, blank line, "Answer with the option's letter from the given choices directly." /
  "Answer the question using a single word or phrase."); the ``<image N>`` placeholders stay in
  the text and :meth:`MMMU.messages` interleaves the images exactly as ``mmmu_doc_to_messages``
  (the i-th ``<image>`` placeholder gets the i-th referenced image, sorted by name).
* prompt ``"qwen3_vl"``: ``mmmu_doc_to_text_qwen3vl`` with the ``qwen3_vl`` kwargs (``Question:``
  prefix, ``Options:`` block, "Answer with the option letter only."); images first, then text,
  as ``mmmu_doc_to_messages_qwen3vl``.
* scoring: ``parse_multi_choice_response`` / ``parse_open_response`` and ``eval_multi_choice`` /
  ``eval_open`` (ports in :mod:`pvm_bench.scoring.extract`), after stripping reasoning blocks like
  lmms-eval's default ``--reasoning_tags``. lmms-eval's random guess for an unparseable
  multiple-choice answer is kept, seeded from the sample id (``Score.details["guessed"]``).
* ``answer_mode="final"`` (not lmms-eval's behaviour, off by default) parses only the text after
  the last "answer" marker, which helps long chain-of-thought outputs.
"""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path
from typing import Any, Literal

from pvm_bench.scoring.answers import AnswerRules, find_final_answer
from pvm_bench.scoring.extract import (
    get_multi_choice_info,
    mmmu_eval_multi_choice,
    mmmu_eval_open,
    mmmu_key_subresponses,
    parse_mmmu_multi_choice_response,
    parse_mmmu_open_response,
    prepare_output,
    seed_for,
    truncated_score,
)
from pvm_bench.tasks import HubTask, LazyImage, Sample, Score, TaskError

SUBJECTS: tuple[str, ...] = (
    "Accounting", "Agriculture", "Architecture_and_Engineering", "Art", "Art_Theory",
    "Basic_Medical_Science", "Biology", "Chemistry", "Clinical_Medicine", "Computer_Science",
    "Design", "Diagnostics_and_Laboratory_Medicine", "Economics", "Electronics", "Energy_and_Power",
    "Finance", "Geography", "History", "Literature", "Manage", "Marketing", "Materials", "Math",
    "Mechanical_Engineering", "Music", "Pharmacy", "Physics", "Psychology", "Public_Health", "Sociology",
)

#: lmms-eval 0.7.3 mmmu_val.yaml ``lmms_eval_specific_kwargs``.
PROMPT_KWARGS: dict[str, dict[str, str]] = {
    "default": {
        "prompt_type": "format",
        "multiple_choice_prompt": "Answer with the option's letter from the given choices directly.",
        "open_ended_prompt": "Answer the question using a single word or phrase.",
    },
    "qwen3_vl": {
        "format": "qwen3_vl",
        "pre_prompt": "Question: ",
        "post_prompt": "Answer with the option letter only.",
        "open_ended_prompt": "Please select the correct answer from the options above.",
    },
}
IMAGE_TOKEN = re.compile(r"<image \d+>")
REQUIRED = ("id", "question", "options", "answer")
#: ``answer_mode="final"``: the last ``<answer>`` tag, else all the text after the last "answer"
#: marker ("Answer:", "answer is", "**Final Answer**:", "answer -", "答案是"), else the whole text;
#: the lmms-eval parsers then read that span.
FINAL_ANSWER = AnswerRules(markers=re.compile(r"(?i)\banswer\b\s*(?:\*\*|__)?\s*(?:is\b|[:：]|-\s)|答案(?:是|为|：|:)"),
                           boxed=False, marker_span="rest", pick="tag_then_marker")


def parse_options(options: list[str]) -> str:
    """``A. opt`` lines (lmms-eval ``parse_options``)."""
    letters = [chr(ord("A") + i) for i in range(len(options))]
    return "\n".join(f"{letter}. {option}" for letter, option in zip(letters, options))


def construct_prompt(doc: dict[str, Any], mc_prompt: str = "", open_ended_prompt: str = "") -> str:
    """lmms-eval ``construct_prompt``."""
    question = doc["question"]
    if doc["question_type"] == "multiple-choice":
        return f"{question}\n{parse_options(_options(doc))}\n\n{mc_prompt}"
    return f"{question}\n\n{open_ended_prompt}"


def doc_to_text(doc: dict[str, Any], prompt: str = "default") -> str:
    """lmms-eval ``mmmu_doc_to_text`` (``interleaved_format: false``) for the named kwargs."""
    kw = PROMPT_KWARGS[prompt]
    if kw.get("format") == "qwen3_vl":
        options = parse_options(_options(doc))
        if doc["question_type"] == "multiple-choice":
            return f"{kw['pre_prompt']}{doc['question']}\nOptions:\n{options}\n{kw['post_prompt']}"
        return f"{kw['pre_prompt']}{doc['question']}\nOptions:\n{options}\n{kw['open_ended_prompt']}"
    return construct_prompt(doc, kw["multiple_choice_prompt"], kw["open_ended_prompt"])


def doc_image_names(doc: dict[str, Any]) -> list[str]:
    """lmms-eval ``mmmu_doc_to_visual``: referenced ``image_N`` columns, unique and sorted."""
    tokens = IMAGE_TOKEN.findall(construct_prompt(doc))
    return sorted({t.strip("<>").replace(" ", "_") for t in tokens})


def _options(doc: dict[str, Any]) -> list[str]:
    raw = doc["options"]
    if isinstance(raw, str):
        return list(ast.literal_eval(raw))
    return list(raw or [])


class MMMU(HubTask):
    """MMMU validation/dev. ``prompt`` picks lmms-eval's ``default`` or ``qwen3_vl`` kwargs."""

    name = "mmmu"
    version = "1.0"
    description = "MMMU: multi-discipline college-level multimodal reasoning (30 subjects; lmms-eval prompts/scoring)"
    splits = ("validation", "dev")
    default_split = "validation"
    hub_id = "lmms-lab-encoder/MMMU"
    data_name = "mmmu"
    hub_configs: tuple[str | None, ...] = (None,)
    #: Hub datasets tried in order (id, configs): lmms-eval 0.7.3's, then the original per-subject one.
    hub_sources: tuple[tuple[str, tuple[str | None, ...]], ...] = (
        ("lmms-lab-encoder/MMMU", (None,)),
        ("MMMU/MMMU", SUBJECTS),
    )
    required_fields = REQUIRED
    id_field = "id"
    generation = {"max_new_tokens": 128}

    def __init__(self, prompt: Literal["default", "qwen3_vl"] = "default", name: str | None = None,
                 answer_mode: Literal["lmms", "final"] = "lmms", split: str = "validation") -> None:
        if prompt not in PROMPT_KWARGS:
            raise TaskError(f"mmmu: unknown prompt '{prompt}'; use one of {sorted(PROMPT_KWARGS)}")
        self.prompt = prompt
        self.default_split = split  # "dev": the 150-question MMMU dev split (the paper's MMMU^dev)
        self.answer_mode = answer_mode
        if name:
            self.name = name
        if prompt != "default":
            head, _, tail = type(self).description.partition(": ")
            self.description = f"{head} with lmms-eval's {prompt} prompt: {tail}"
        if split != "validation":
            self.description = f"{self.description} ({split} split)"

    def load(self, split: str | None = None, limit: int | None = None, data_dir: Path | None = None) -> list[Sample]:
        """Local files under ``data_dir``, else the first of :attr:`hub_sources` that loads."""
        split = split or self.default_split
        if data_dir is not None or split not in self.splits:
            return super().load(split, limit, data_dir)  # local layout, or the unknown-split error
        from pvm_bench.data.tables import load_rows

        failures: list[str] = []
        for hub_id, configs in self.hub_sources:
            try:
                rows = load_rows(self.data_name, split, hub_id=hub_id, hub_configs=configs, limit=limit)
            except TaskError as exc:
                failures.append(f"{hub_id} ({type(exc.__cause__ or exc).__name__})")
                continue
            return [self._sample(row, i) for i, row in enumerate(rows)]
        raise TaskError(
            f"task '{self.name}': cannot load split '{split}' from the Hugging Face hub: {', '.join(failures)} "
            f"failed; when offline, pass --data-dir with {self.data_name}/{split}.parquet"
        )

    def sample_from_row(self, row: dict[str, Any], position: int = 0) -> Sample:
        """Build a Sample from a hub-schema row (required fields checked by HubTask.load)."""
        ident = self.row_id(row, position)
        doc = dict(row)
        doc.setdefault("question_type", "multiple-choice")
        try:
            options = _options(doc)
        except (ValueError, SyntaxError) as exc:
            raise TaskError(f"task '{self.name}': record {ident} has unparseable options {row['options']!r}") from exc
        images = []
        for image_name in doc_image_names(doc):
            if doc.get(image_name) is None:
                raise TaskError(
                    f"task '{self.name}': record {ident} references <{image_name.replace('_', ' ')}> but "
                    f"has no {image_name}"
                )
            images.append(LazyImage(doc[image_name], name=f"{self.name} sample {ident} {image_name}"))
        is_mc = doc["question_type"] == "multiple-choice"
        return Sample(
            id=str(ident),
            question=doc_to_text(doc, self.prompt),
            target=doc["answer"],
            images=images,
            choices=options if is_mc else None,
            metadata={
                "question_type": doc["question_type"],
                "subfield": doc.get("subfield"),
                "subject": _subject(str(ident)),
                "topic_difficulty": doc.get("topic_difficulty"),
                "prompt": self.prompt,
            },
        )

    def messages(self, sample: Sample) -> list[dict[str, Any]]:
        """lmms-eval ``mmmu_doc_to_messages`` (interleaved) or its qwen3_vl variant (images first)."""
        content: list[dict[str, Any]] = []
        if self.prompt == "qwen3_vl":
            content = [{"type": "image", "index": i} for i in range(len(sample.images))]
            content.append({"type": "text", "text": sample.question})
            return [{"role": "user", "content": content}]
        question = sample.question
        for i in range(1, 8):
            question = question.replace(f"<image {i}>", "<image>")
        pieces = question.split("<image>")
        for i in range(len(sample.images)):
            if i < len(pieces) - 1:
                text = pieces[i].strip()
                if text != "":
                    content.append({"type": "text", "text": text})
            content.append({"type": "image", "index": i})
        if pieces:
            content.append({"type": "text", "text": pieces[-1].strip()})
        return [{"role": "user", "content": content}]

    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output, policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        details: dict[str, Any] = {"extractor": f"lmms-eval-0.7.3-rule ({self.answer_mode})",
                                   "question_type": sample.metadata.get("question_type")}
        if prep.unanswered:
            return truncated_score(reason="ended inside a reasoning block", **details)
        text = prep.text
        marker = False
        if self.answer_mode == "final":
            cand, text = find_final_answer(text, lambda span, extractor: span, rules=FINAL_ANSWER)
            marker = cand.extractor != "whole_text"
        if sample.choices is not None:
            index2ans, all_choices = get_multi_choice_info(sample.choices)
            if not all_choices:
                raise TaskError(f"task '{self.name}': sample {sample.id} is multiple-choice without options")
            rng = random.Random(seed_for(sample.id))
            parsed, guessed = parse_mmmu_multi_choice_response(text, all_choices, index2ans, rng)
            details["guessed"] = guessed
            if truncated and guessed:
                return truncated_score(**details)
            correct = mmmu_eval_multi_choice(sample.target, parsed)
            return Score(value=float(correct), parsed=parsed, details=details)
        preds = parse_mmmu_open_response(text)
        _, found = mmmu_key_subresponses(text)
        if truncated and not (found or marker):
            return truncated_score(**details)
        correct = mmmu_eval_open(sample.target, preds)
        details["candidates"] = sorted(map(str, preds))
        return Score(value=float(correct), parsed=text.strip() or None, details=details)


def _subject(sample_id: str) -> str | None:
    """lmms-eval ``extract_subset_name``: ``validation_Art_Theory_12`` -> ``Art_Theory``."""
    split = sample_id.split("_")[0]
    match = re.search(rf"^{re.escape(split)}_(.+?)_\d+$", sample_id)
    return match.group(1) if match else None


TASKS = [MMMU(), MMMU(prompt="qwen3_vl", name="mmmu_qwen3vl"),
         MMMU(prompt="qwen3_vl", name="mmmu_dev_qwen3vl", split="dev")]
