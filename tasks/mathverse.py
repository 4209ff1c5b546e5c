"""MathVerse (CaraJ/MathVerse-lmmseval): visual math in five problem versions.

Tasks, as lmms-eval 0.7.3 ``tasks/mathverse``:

* ``mathverse`` = lmms-eval's ``mathverse_testmini`` (mathverse_testmini.yaml: dataset config
  ``testmini``, split ``testmini``, every problem version; ``max_new_tokens: 16384``, line 13);
* ``mathverse_vision_only`` / ``mathverse_text_dominant`` = ``mathverse_testmini_vision_only`` /
  ``_text_dominant`` (config ``testmini_version_split``, ``max_new_tokens: 1024``, line 14 of
  each YAML). The old name of the vision-only task, ``mathverse`` with split ``vision_only``,
  is the named variant ``mathverse_vision_only``.

Prompt: ``create_one_query`` with ``shot_type="format-prompt"``, ``query_type="query_wo"``
(mathverse_evals.py lines 122-182): the dataset's ``query_wo`` as is. lmms-eval's ``until`` stop
strings (``"</s>"``, ``"Q:"``, ``"<|im_end|>"`` in mathverse_testmini.yaml lines 14-17, ``"ASSISTANT:"``
in the version-split YAMLs, lines 12-13) are not applied; models stop at their EOS. The
version-split YAMLs also pin greedy decoding (``temperature: 0, top_p: 0, do_sample: false``,
lines 15-18); here the run's ``--temperature`` decides, as for every task.

Scoring. lmms-eval scores MathVerse only with a GPT judge (``mathverse_process_results``, utils.py
lines 44-52, ``score_answer(..., quick_match=False)`` -> ``evaluate_binary``, mathverse_evals.py lines
92-97); its ``quick_match`` is plain string equality (line 94). Here the default is the rule-based final-answer scorer
(:func:`pvm_bench.scoring.mathscore.score_free_form`: last boxed / answer marker / last line; option
letter or option text for multiple choice; number, text or latex2sympy2 symbolic equality for
free form). With a local judge (``set_judge``) the judge extracts the answer with lmms-eval's
MathVista extraction prompt and the extraction is compared by the same rules. Either way the
numbers are **not comparable with GPT-judged MathVerse numbers** (:attr:`comparability_note`).
"""

from __future__ import annotations

from typing import Any

from pvm_bench.scoring import choices_from_question, free_form_score, prepare_output, score_free_form, truncated_score
from pvm_bench.tasks import HubTask, LazyImage, Sample, Score

NOTE = "rule-scored, not comparable with GPT-judged numbers"


class MathVerse(HubTask):
    """MathVerse testmini with lmms-eval's ``query_wo`` prompt and rule-based scoring."""

    version = "2.0"
    splits = ("testmini", "vision_only", "text_dominant", "text_lite", "vision_intensive", "vision_dominant",
              "text_only")
    hub_id = "CaraJ/MathVerse-lmmseval"
    data_name = "mathverse"
    required_fields = ("query_wo", "answer", "question_type")
    id_field = "sample_index"
    comparability_note = NOTE

    def __init__(self, split: str = "testmini", name: str = "mathverse") -> None:
        self.name = name
        self.default_split = split
        self.hub_configs = ("testmini",) if split == "testmini" else ("testmini_version_split",)
        self.generation = {"max_new_tokens": 16384 if split == "testmini" else 1024}
        self.judge: Any = None
        what = "all problem versions" if split == "testmini" else split.replace("_", "-")
        self.description = f"MathVerse testmini ({what}): visual math, lmms-eval query_wo prompt; {NOTE}"

    def load(self, split: str | None = None, limit: int | None = None, data_dir: Any = None) -> list[Sample]:
        split = split or self.default_split
        self.hub_configs = ("testmini",) if split == "testmini" else ("testmini_version_split",)
        return super().load(split, limit, data_dir)

    def set_judge(self, judge: Any) -> None:
        """Extract the final answer with ``judge`` (see :mod:`pvm_bench.scoring.judge`) before comparing."""
        self.judge = judge

    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        ident = self.row_id(row, position)
        image = row.get("image")
        images = (
            []
            if image is None or str(image).strip() == ""
            else [LazyImage(image, name=f"{self.name} sample {ident} image")]
        )
        question = str(row.get("question_for_eval") or row.get("question") or "")
        return Sample(
            id=str(ident), question=row["query_wo"].strip(), target=str(row["answer"]), images=images, choices=None,
            metadata={"question_type": row["question_type"], "problem_version": row.get("problem_version"),
                      "question_for_eval": question, "options": choices_from_question(question)},
        )

    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output, policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        if prep.unanswered:
            return truncated_score(reason="ended inside a reasoning block", extractor="none")
        text, extra = prep.text, {}
        if self.judge is not None:
            text = self.judge.extract(str(sample.metadata["question_for_eval"]), prep.text)
            extra = {"judge_raw": text}
        multi = sample.metadata["question_type"] == "multi-choice"
        verdict = score_free_form(text, str(sample.target), sample.metadata.get("options") or None, multi_choice=multi,
                                  question=str(sample.metadata["question_for_eval"]))
        return free_form_score(verdict, judge_raw=extra.get("judge_raw"), truncated=truncated)


#: lmms-eval 0.7.3's ``mathverse_testmini_vision`` group (mathverse_testmini_vision.yaml lines 1-5).
VISION_VERSIONS = ("vision_intensive", "vision_dominant", "vision_only")


class MathVerseVision(MathVerse):
    """lmms-eval's ``mathverse_testmini_vision`` group as one task: the vision-intensive,
    vision-dominant and vision-only problem versions (``max_new_tokens: 1024`` each, line 14 of each
    YAML); the score is the mean over all their samples (the three versions have the same problems,
    so this is also the mean of the three version scores). Sample ids get the version as a prefix
    (``vision_only/12``) so the versions of one problem stay apart; ``--limit`` caps the total."""

    def __init__(self) -> None:
        super().__init__(split="vision_only", name="mathverse_vision")
        self.splits = ("vision", *VISION_VERSIONS)
        self.split_parts = {"vision": VISION_VERSIONS}  # what `pvm-bench data export` writes for "vision"
        self.default_split = "vision"
        self.description = f"MathVerse testmini vision versions (intensive, dominant, only): visual math; {NOTE}"

    def load(self, split: str | None = None, limit: int | None = None, data_dir: Any = None) -> list[Sample]:
        if (split or self.default_split) != "vision":
            return super().load(split, limit, data_dir)  # the unknown-split error
        out: list[Sample] = []
        for version in VISION_VERSIONS:
            for sample in MathVerse.load(self, version, limit, data_dir):
                sample.id = f"{version}/{sample.id}"
                out.append(sample)
        return out[:limit] if limit else out


TASKS = [
    MathVerse(),
    MathVerse(split="vision_only", name="mathverse_vision_only"),
    MathVerse(split="text_dominant", name="mathverse_text_dominant"),
    MathVerseVision(),
]
