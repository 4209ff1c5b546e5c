"""What a run works on: the loaded tasks, the work items and the records they become.

- :func:`load_task_samples` loads every task of a :class:`~pvm_bench.config.RunConfig` and
  refuses empty tasks and duplicate sample ids (one line naming them; ``data check`` uses the
  same :func:`duplicate_ids_message`);
- :class:`WorkItem` is one (task, sample, repeat); :func:`sample_seed` its seed, independent of
  batch composition and order; :func:`batches` groups items into batches of one task;
- :func:`sample_record` / :func:`error_record` turn a generation (or a sample that could not run)
  into the :class:`~pvm_bench.results.SampleRecord` appended to samples.jsonl, and
  :func:`probe_frames` its probe records into the rows of attention.parquet.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pvm_bench.config import RunConfig
from pvm_bench.data.imageroot import image_root
from pvm_bench.errors import one_line
from pvm_bench.results import SampleRecord, ScoreDetail, Timings
from pvm_bench.runner.files import probe_frame
from pvm_bench.runner.guard import RunError
from pvm_bench.scoring.extract import DEFAULT_REASONING_TAGS
from pvm_bench.scoring.reasoning import opened_reasoning
from pvm_bench.tasks import Sample, Score, Task, TaskRegistry, get_registry
from pvm_bench.tasks.metrics import score_problem

if TYPE_CHECKING:
    from pvm_bench.models.generation import Generation


class WorkloadError(RunError):
    """The run's tasks cannot be loaded as asked (no samples, duplicate ids, bad --data-dir)."""


def sample_seed(run_seed: int, task: str, sample_id: str, repeat: int) -> int:
    """A per-(sample, repeat) seed independent of batch composition and order."""
    digest = hashlib.sha256(f"{run_seed}\x00{task}\x00{sample_id}\x00{repeat}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class WorkItem:
    task: Task
    sample: Sample
    repeat: int


def sample_ids(items: Sequence[WorkItem], shown: int = 4) -> str:
    """The first ``shown`` sample ids of ``items`` for a message (``'a', 'b' ...``)."""
    return ", ".join(repr(i.sample.id) for i in items[:shown]) + (" ..." if len(items) > shown else "")


def duplicate_ids_message(task: str, split: str, samples: Sequence[Sample]) -> str | None:
    """The one-line refusal for samples sharing an id, or None when every id is unique."""
    counts = Counter(s.id for s in samples)
    dups = sorted(i for i, c in counts.items() if c > 1)
    if not dups:
        return None
    shown = ", ".join(repr(d) for d in dups[:5]) + (f" and {len(dups) - 5} more" if len(dups) > 5 else "")
    return (f"task '{task}' split '{split}' has duplicate sample ids {shown} "
            f"({sum(counts[d] for d in dups)} rows share {len(dups)} id(s)); make the ids in the data unique")


def load_task_samples(cfg: RunConfig, registry: TaskRegistry | None = None) -> list[tuple[Task, list[Sample]]]:
    """Every task's samples, in task order (tasks from ``registry``, default: the config's own);
    raises :class:`WorkloadError` on empty tasks, duplicate ids, a --data-dir that is not a folder
    or a --limit below 1."""
    registry = registry or get_registry(cfg.include_paths, override_tasks=cfg.override_tasks)
    tasks = registry.resolve(cfg.tasks)
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        what = "is a file" if data_dir.exists() else "does not exist"
        raise WorkloadError(
            f"--data-dir {data_dir} {what}; pass the folder holding <task>/<split>.parquet (or .jsonl/.json)"
        )
    if cfg.limit is not None and cfg.limit < 1:
        raise WorkloadError(f"--limit must be at least 1 (got {cfg.limit}); leave it out to use every sample")
    loaded = []
    for task in tasks:
        with image_root(data_dir, allow_outside=cfg.allow_outside_data):  # image paths stay in --data-dir
            samples = task.load(cfg.split, cfg.limit, data_dir)
        split = cfg.split or task.default_split
        if not samples:
            where = f"under {data_dir}" if data_dir else "in its source"
            raise WorkloadError(
                f"task '{task.name}' has no samples for split '{split}' {where}; check the data or pick another --split"
            )
        message = duplicate_ids_message(task.name, split, samples)
        if message:
            raise WorkloadError(message)
        loaded.append((task, samples))
    return loaded


def metadata_fingerprint(samples: Sequence[Sample]) -> str:
    """16 hex over every sample's metadata (what strata, units and some scorers read, e.g. MMStar's
    l2_category, MathVista's answer type), which :meth:`Task.fingerprint` does not cover; recorded
    apart (``datasets[task].metadata_fingerprint``) so that fingerprints of earlier runs stay valid."""
    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps([s.id, jsonable(s.metadata)], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def batches(items: list[WorkItem], size: int) -> list[list[WorkItem]]:
    """Consecutive items in batches of at most ``size``, each of one task (a task fixes max_new_tokens)."""
    out: list[list[WorkItem]] = []
    for item in items:
        if out and len(out[-1]) < max(1, size) and out[-1][0].task is item.task:
            out[-1].append(item)
        else:
            out.append([item])
    return out


def sample_record(variant: str, item: WorkItem, gen: Generation, seed: int, max_new: int,
                  composition: str | None = None) -> SampleRecord:
    """Score ``gen`` with the item's task and build its samples.jsonl record (``composition``: the variant's).

    ``truncated`` is the generator's verdict (it stopped at ``max_new_tokens`` without an end of
    sequence: ``finish_reason`` "length"), whatever the scorer made of the text. A scorer that raises,
    returns something other than a :class:`Score`, or a value (or sub-score) that is not a finite number
    inside its metric's declared ``value_range`` (:func:`pvm_bench.tasks.metrics.score_problem`) does not lose
    the generation: the record keeps the output, scores 0 and carries ``error`` "scoring failed: ...".
    """
    common = dict(
        variant=variant, composition=composition, task=item.task.name, sample_id=item.sample.id, repeat=item.repeat,
        seed=seed, prompt=gen.prompt, output=gen.text, target=jsonable(item.sample.target), truncated=gen.truncated,
        n_generated=gen.n_generated, max_new_tokens=max_new,
        timings=Timings(
            prefill_s=gen.prefill_s, decode_s=gen.decode_s, total_s=gen.prefill_s + gen.decode_s,
            tokens_per_s=gen.tokens_per_s, batch_size=gen.batch_size,
        ),
        metadata=jsonable(item.sample.metadata),
    )
    text = gen.text
    if getattr(item.task, "unfinished_policy", "zero") == "zero":  # lmms-eval ("parse") sees the completion alone
        text = opened_reasoning(gen.prompt, DEFAULT_REASONING_TAGS) + text  # a block the chat template opened
    try:
        score = item.task.score(item.sample, text, truncated=gen.truncated)
        if not isinstance(score, Score):
            problem: str | None = f"score() returned {type(score).__name__}, not a Score"
        else:
            problem = score_problem(item.task.metrics(), score.value, score.sub_scores)
        if problem is None:
            subs = {str(k): float(v) for k, v in (score.sub_scores or {}).items()}
            detail = ScoreDetail.from_details(jsonable(score.details), subs)
            parsed = None if score.parsed is None else str(score.parsed)
            return SampleRecord(**common, parsed=parsed, score=float(score.value), finish_reason=gen.finish_reason,
                                score_detail=detail)
    except Exception as exc:  # noqa: BLE001 -- a plugin scorer may raise anything; the generation is kept
        problem = f"score() raised {type(exc).__name__}: {one_line(str(exc), 200)}"
    return SampleRecord(**common, score=0.0, finish_reason="error", error=f"scoring failed: {problem}")


def error_record(variant: str, item: WorkItem, seed: int, max_new: int, error: str,
                 composition: str | None = None) -> SampleRecord:
    """The record of a sample that could not be run (scored 0, ``finish_reason`` "error")."""
    return SampleRecord(
        variant=variant,
        composition=composition,
        task=item.task.name,
        sample_id=item.sample.id,
        repeat=item.repeat,
        seed=seed,
        prompt="",
        output="",
        target=jsonable(item.sample.target),
        score=0.0,
        max_new_tokens=max_new,
        finish_reason="error",
        error=error,
        metadata=jsonable(item.sample.metadata),
    )


def jsonable(value: Any) -> Any:
    """``value`` with every non-JSON leaf turned into a number (numpy/torch scalars) or a string, and
    NaN/inf into None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN/inf are not JSON (a missing cell of a pandas row is NaN)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


def probe_frames(variant: str, task: str, generations: list[Generation]) -> list[pd.DataFrame]:
    """Each generation's probe records as one long frame keyed by variant, task, sample_id, repeat."""
    frames = []
    for gen in generations:
        frame = probe_frame(gen.probe_records)
        if frame is None:
            continue
        item: WorkItem = gen.key
        frame.insert(0, "repeat", item.repeat)
        frame.insert(0, "sample_id", item.sample.id)
        frame.insert(0, "task", task)
        frame.insert(0, "variant", variant)
        frames.append(frame)
    return frames
