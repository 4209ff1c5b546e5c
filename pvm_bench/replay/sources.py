"""Where the outputs to replay come from: a pvm-bench run, an lmms-eval samples log, a plain JSONL.

Every reader returns :class:`GivenOutput` rows (one per generated output) keyed by task and
sample (or lmms-eval's ``doc_id``), so the replay runner treats them alike:

* ``run``: a pvm-bench run directory (``run.json`` + ``samples.jsonl``). Outputs, variants,
  repeats and the recorded prompts are taken from samples.jsonl (error rows are skipped); the
  model, adapter, tasks and input protocol from run.json.
* ``lmms-eval``: the ``--log_samples`` files lmms-eval writes,
  ``OUTPUT_PATH/<model>/<date_id>_samples_<task>.jsonl`` (lmms-eval 0.7.3 = github
  EvolvingLMMs-Lab/lmms-eval@75571cfe, ``lmms_eval/loggers/evaluation_tracker.py:240-297``). Per
  line (``lmms_eval/evaluator.py:1252-1294`` builds it, the tracker rewrites it): ``doc_id`` (the
  doc's index in the task's split), ``target`` (as a string), ``filtered_resps`` (the output after
  the task's filters and reasoning-tag stripping), ``resps`` (the raw output, only when it
  differs from ``filtered_resps``), ``token_counts`` (``[{"input_tokens", "output_tokens",
  "reasoning_tokens"}]`` when the backend reports them), ``doc_hash``, ``input`` (the request's
  context, i.e. ``doc_to_text``), optional ``input_media``, and the task's per-sample metrics. The
  tracker drops ``doc`` and ``arguments`` (``evaluation_tracker.py:289-290``): the prompt must be
  rebuilt from the task's data, and ``input`` is what it is checked against. Single-request docs
  are unwrapped (``[[r]] -> [r]``, ``[v] -> v``, ``:270-277``); several responses per doc are
  read as repeats. Replay uses the raw output (``resps`` when present), as the model produced it.
* ``jsonl``: a plain file, one JSON object per line::

      {"task": "mmstar", "sample_id": "42", "output": "The answer is B.",
       "token_ids": [785, 4226, ...],            # optional: the engine's ids, EOS included
       "variant": "base", "repeat": 0,           # optional (defaults shown)
       "finish_reason": "eos",                   # optional: "eos" | "length"
       "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}],
       "images": ["img/42.png"]}                 # optional: the prompt as sent (see below)

  The prompt is the task's own (its prompt builder and the ``--protocol`` chosen) unless the row
  gives ``messages`` (chat messages whose ``{"type": "image"}`` parts take ``images`` in order,
  paths relative to the JSONL file's folder and inside it); the task and ``sample_id`` still
  choose the scorer and the target.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pvm_bench.errors import UserError
from pvm_bench.results import RunRecord, read_samples

LMMS_FILE = re.compile(r"^(?P<date>.+?)_samples_(?P<task>.+)\.jsonl$")
"""lmms-eval's samples file name (``evaluation_tracker.py:258``)."""
KINDS = ("auto", "run", "lmms-eval", "jsonl")


class ReplaySourceError(UserError):
    """The replay input cannot be read; the message names the file, the line and the fix."""


@dataclass
class GivenOutput:
    """One output to replay (``sample_id`` or lmms-eval's ``doc_index`` identifies the sample)."""

    task: str
    text: str
    sample_id: str | None = None
    doc_index: int | None = None
    repeat: int = 0
    variant: str | None = None
    token_ids: list[int] | None = None
    finish_reason: str | None = "eos"  # None: the source does not say (lmms-eval); see replay.tokens
    n_generated: int | None = None
    prompt: str | None = None  # the prompt as sent (pvm-bench run): the rebuilt one must equal it
    context: str | None = None  # lmms-eval's ``input``: the rebuilt prompt text must equal it
    messages: list[dict[str, Any]] | None = None  # plain JSONL: the prompt as sent, instead of the task's
    images: list[Path] = field(default_factory=list)  # ... and its images (resolved paths)
    where: str = ""


@dataclass
class ReplaySource:
    """What was read: ``kind``, the rows, and (``run``) the source run's config."""

    kind: str
    path: Path
    rows: list[GivenOutput]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.rows))


def detect_kind(path: Path) -> str:
    """``run`` for a directory with run.json, ``lmms-eval`` for its samples files, else ``jsonl``."""
    if path.is_dir():
        if (path / "run.json").is_file():
            return "run"
        if any(LMMS_FILE.match(p.name) for p in path.glob("*.jsonl")):
            return "lmms-eval"
        raise ReplaySourceError(f"{path} is neither a pvm-bench run directory (no run.json) nor a folder of "
                                "lmms-eval `*_samples_<task>.jsonl` files")
    if LMMS_FILE.match(path.name):
        return "lmms-eval"
    return "jsonl"


def read_source(path: Path, kind: str = "auto", task: str | None = None) -> ReplaySource:
    """Read ``path`` as ``kind`` (``auto``: :func:`detect_kind`); ``task`` names the task of an lmms-eval file."""
    path = Path(path)
    if not path.exists():
        raise ReplaySourceError(f"replay input {path} does not exist")
    kind = detect_kind(path) if kind == "auto" else kind
    if kind == "run":
        return _read_run(path)
    if kind == "lmms-eval":
        files = sorted(p for p in path.glob("*.jsonl") if LMMS_FILE.match(p.name)) if path.is_dir() else [path]
        named = task if len(files) == 1 else None  # a folder of several tasks: each file names its own
        return ReplaySource("lmms-eval", path, [row for f in files for row in _read_lmms(f, named)])
    if kind == "jsonl":
        return ReplaySource("jsonl", path, _read_plain(path))
    raise ReplaySourceError(f"unknown --format '{kind}'; use one of {', '.join(KINDS)}")


def _lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if path.is_dir():
        raise ReplaySourceError(f"{path} is a directory; pass a .jsonl file")
    out = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReplaySourceError(f"{path}:{number}: not JSON ({exc.msg}); fix or remove the line") from None
            if not isinstance(row, dict):
                raise ReplaySourceError(f"{path}:{number}: expected a JSON object per line")
            out.append((number, row))
    if not out:
        raise ReplaySourceError(f"{path} holds no rows")
    return out


def _read_run(path: Path) -> ReplaySource:
    try:
        record = RunRecord.load(path)
    except ValueError as exc:
        raise ReplaySourceError(f"{path / 'run.json'} is not a valid run record ({str(exc)[:120]})") from None
    rows = [
        GivenOutput(task=s.task, text=s.output, sample_id=s.sample_id, repeat=s.repeat, variant=s.variant,
                    finish_reason=s.finish_reason, n_generated=s.n_generated, prompt=s.prompt,
                    where=f"{path}/samples.jsonl [{s.variant} {s.task} {s.sample_id}#{s.repeat}]")
        for s in read_samples(path) if not s.error and s.finish_reason != "error"
    ]
    if not rows:
        raise ReplaySourceError(f"{path} has no generated samples to replay")
    return ReplaySource("run", path, rows, config=dict(record.config))


def _unwrap(value: Any) -> list[str]:
    """lmms-eval's ``resps`` / ``filtered_resps`` as one string per response (repeats)."""
    while isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and all(isinstance(v, list) and len(v) == 1 and isinstance(v[0], str) for v in value):
        return [v[0] for v in value]
    raise ValueError(f"unexpected response shape {str(value)[:60]!r}")


def _read_lmms(path: Path, task: str | None) -> list[GivenOutput]:
    match = LMMS_FILE.match(path.name)
    if task is None:
        if match is None:
            raise ReplaySourceError(
                f"{path}: not named like lmms-eval's <date>_samples_<task>.jsonl; pass --tasks NAME"
            )
        from pvm_bench.cli.options import LMMS_TASK_NAMES

        task = LMMS_TASK_NAMES.get(match.group("task"), match.group("task"))
    rows = []
    for number, row in _lines(path):
        where = f"{path}:{number}"
        if not isinstance(row.get("doc_id"), int) or ("filtered_resps" not in row and "resps" not in row):
            raise ReplaySourceError(f"{where}: not an lmms-eval --log_samples row (needs doc_id and filtered_resps)")
        try:
            texts = _unwrap(row["resps"] if "resps" in row else row["filtered_resps"])
        except ValueError as exc:
            raise ReplaySourceError(
                f"{where}: {exc}; only generate_until tasks (text outputs) can be replayed"
            ) from None
        counts = row.get("token_counts") or []
        for repeat, text in enumerate(texts):
            tc = counts[repeat] if repeat < len(counts) and isinstance(counts[repeat], dict) else {}
            rows.append(GivenOutput(task=task, text=text, doc_index=row["doc_id"], repeat=repeat,
                                    n_generated=tc.get("output_tokens"), context=row.get("input"), finish_reason=None,
                                    where=where))
    return rows


def _read_plain(path: Path) -> list[GivenOutput]:
    rows = []
    for number, row in _lines(path):
        where = f"{path}:{number}"
        missing = [k for k in ("task", "sample_id", "output") if k not in row]
        if missing:
            raise ReplaySourceError(f"{where}: missing {', '.join(missing)} (each line needs task, sample_id, output)")
        ids = row.get("token_ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(t, int) for t in ids)):
            raise ReplaySourceError(f"{where}: token_ids must be a list of integers")
        finish = row.get("finish_reason", "eos")
        if finish not in ("eos", "length"):
            raise ReplaySourceError(f"{where}: finish_reason must be 'eos' or 'length' (got {finish!r})")
        messages, images = _prompt(path, row, where)
        rows.append(GivenOutput(task=str(row["task"]), text=str(row["output"]), sample_id=str(row["sample_id"]),
                                repeat=int(row.get("repeat", 0)), variant=row.get("variant"), token_ids=ids,
                                finish_reason=finish, n_generated=len(ids) if ids is not None else None,
                                messages=messages, images=images, where=where))
    return rows


def _prompt(path: Path, row: dict[str, Any], where: str) -> tuple[list[dict[str, Any]] | None, list[Path]]:
    """A plain row's own ``messages`` and ``images`` (checked: image parts match, files inside the folder)."""
    messages, names = row.get("messages"), row.get("images") or []
    if messages is None:
        if names:
            raise ReplaySourceError(f"{where}: images given without messages; add the messages they belong to")
        return None, []
    if not (isinstance(messages, list) and all(isinstance(m, dict) and "role" in m for m in messages)):
        raise ReplaySourceError(f"{where}: messages must be a list of chat messages ({{'role', 'content'}})")
    parts = sum(1 for m in messages if isinstance(m.get("content"), list)
                for p in m["content"] if isinstance(p, dict) and p.get("type") == "image")
    if parts != len(names):
        raise ReplaySourceError(f"{where}: the messages have {parts} image part(s) but {len(names)} image(s) are given")
    root = path.parent.resolve()
    images = []
    for name in names:
        image = (root / str(name)).resolve()
        if not image.is_relative_to(root) or not image.is_file():
            raise ReplaySourceError(f"{where}: image {name!r} is not a file inside {root}")
        images.append(image)
    return messages, images
