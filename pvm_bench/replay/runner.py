"""The replay runner: the runner of ``pvm-bench run`` with given outputs instead of generation.

:class:`ReplayRunner` is a :class:`~pvm_bench.runner.run.Runner`; everything but the generation step is
the runner's own: run directory creation and lock, run.json, the stable global-index sharding
under torchrun, resume without duplicates, samples.jsonl written per sample (the GIVEN outputs
scored by the task's scorer, :func:`pvm_bench.runner.workload.sample_record`), probe parts and their
merge into ``attention.parquet``. Three hooks change:

* :meth:`load_tasks` keeps the samples the source has outputs for (lmms-eval's ``doc_id`` is
  the sample's index in the split) and checks each rebuilt prompt against what the source says
  was sent, refusing with one line when it cannot be the same prompt;
* :meth:`_make_probes` gives the replay probes (``attention``, ``lens``, ``branch``; others are skipped with a note);
* :meth:`_batch_runner` runs the runner's batches with :meth:`_generate` in place of generation, which replays the
  given tokens (:func:`pvm_bench.replay.forward.teacher_force`)
  under the variant's plan (:mod:`pvm_bench.replay.plan`), recording per sample how the tokens
  were obtained (``metadata.replay`` in samples.jsonl, :mod:`pvm_bench.replay.tokens`).

``replay.json`` in the run directory names the source, so ``--resume`` (and torchrun's other
ranks) read the same outputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvm_bench.errors import UserError
from pvm_bench.models.generation import Generation, Request, effective_decoding, eos_ids
from pvm_bench.replay.forward import DEFAULT_CHUNK, Output, teacher_force
from pvm_bench.replay.plan import plan_for
from pvm_bench.replay.sources import GivenOutput, ReplaySource, ReplaySourceError, read_source
from pvm_bench.replay.tokens import output_tokens
from pvm_bench.results import JsonlAppender, SampleRecord, atomic_write_text, read_samples
from pvm_bench.runner.batch import BatchRunner
from pvm_bench.runner.run import Runner
from pvm_bench.runner.workload import WorkItem, sample_record, sample_seed
from pvm_bench.tasks import Sample, Task, TaskRegistry

REPLAY_FILE = "replay.json"
REPLAY_PROBES = ("attention", "lens", "branch")
"""Probes with a teacher-forced implementation."""

Key = tuple[str, str, str, int]


class ReplayError(UserError):
    """The given outputs cannot be replayed as asked; the message names the row and the fix."""


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text parts of a request's messages, joined (what lmms-eval's ``input`` holds)."""
    parts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
            continue
        parts.extend(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return "\n".join(parts).strip()


def check_context(row: GivenOutput, task: Task, sample: Sample) -> None:
    """Refuse a row whose rebuilt prompt text is not the context lmms-eval logged (``input``).

    lmms-eval's Qwen-VL backends send the context with ``<image>`` placeholders removed and the
    images first (see :func:`pvm_bench.bridge.lmms.build_request`), so that is what is compared.
    """
    if row.context is None:
        return
    logged = row.context.replace("<image>", "").strip()
    rebuilt = prompt_text(task.messages(sample))
    if logged != rebuilt:
        raise ReplayError(
            f"{row.where}: the prompt rebuilt for task '{task.name}' doc {row.doc_index} differs from the logged input "
            f"(logged {logged[:60]!r}..., rebuilt {rebuilt[:60]!r}...), so it cannot be the prompt lmms-eval used; "
            "pass the matching --tasks, --split, --data-dir and --protocol lmms-eval"
        )


class ReplayRunner(Runner):
    """A :class:`Runner` whose generation step replays given outputs (see the module docstring)."""

    source: ReplaySource
    chunk: int = DEFAULT_CHUNK

    # ---------------------------------------------------------------- construction

    @classmethod
    def start(cls, config: Any, source: ReplaySource, *, chunk: int = DEFAULT_CHUNK) -> ReplayRunner:
        """A fresh run directory for replaying ``source`` (``replay.json`` records it)."""
        runner = cls.create(config)
        runner.source, runner.chunk = source, chunk
        info = {"source": str(Path(source.path).resolve()), "kind": source.kind, "chunk": chunk,
                "tasks": source.tasks, "score_only": cls is not ReplayRunner}
        atomic_write_text(runner.run_dir / REPLAY_FILE, json.dumps(info, indent=2) + "\n")
        return runner

    @classmethod
    def reopen(cls, run_dir: Path, dist: Any = None, **kwargs: Any) -> ReplayRunner:
        """Resume a replay run (or join it from another rank): the source named in replay.json."""
        path = Path(run_dir) / REPLAY_FILE
        if not path.is_file():
            raise ReplayError(
                f"{run_dir} is not a replay run (no {REPLAY_FILE}); resume it with `pvm-bench run --resume`"
            )
        info = json.loads(path.read_text(encoding="utf-8"))
        runner = cls.resume(Path(run_dir), dist, **kwargs)
        tasks = info.get("tasks") or []
        runner.source = read_source(Path(info["source"]), info["kind"], tasks[0] if len(tasks) == 1 else None)
        runner.chunk = int(info.get("chunk", DEFAULT_CHUNK))
        return runner

    # ---------------------------------------------------------------- what to replay

    def load_tasks(self) -> tuple[TaskRegistry, list[tuple[Task, list[Sample]]]]:
        """The tasks' samples that the source has outputs for, each row checked (one line on a mismatch)."""
        variants = self.config.resolved_variants()
        self._given: dict[Key, GivenOutput] = {}
        self._tags: dict[Key, dict[str, Any]] = {}
        out = []
        registry, loaded = super().load_tasks()
        for task, samples in loaded:
            by_id = {s.id: s for s in samples}
            keep: set[str] = set()
            for row in (r for r in self.source.rows if r.task == task.name):
                if row.doc_index is not None:
                    if not 0 <= row.doc_index < len(samples):
                        raise ReplaySourceError(
                            f"{row.where}: doc_id {row.doc_index} is beyond task '{task.name}' ({len(samples)} samples "
                            "in this split); pass the split lmms-eval ran (--split) and no --limit")
                    sample = samples[row.doc_index]
                else:
                    found = by_id.get(str(row.sample_id))
                    if found is None:
                        raise ReplaySourceError(
                            f"{row.where}: task '{task.name}' has no sample '{row.sample_id}' in this split; "
                            "pass the --split / --data-dir the outputs were generated on")
                    sample = found
                check_context(row, task, sample)
                for variant in [row.variant] if row.variant else variants:
                    if variant in variants:
                        self._given[(variant, task.name, sample.id, row.repeat)] = row
                        keep.add(sample.id)
            out.append((task, [s for s in samples if s.id in keep]))
        return registry, out

    def _prepare(self, log: Callable[[str], None]) -> tuple[Any, list[Any], list[tuple[Any, WorkItem]], int]:
        lm, variants, todo, total = super()._prepare(log)
        mine = [(v, item) for v, item in todo if self._key(v.name, item) in self._given]
        for variant in variants:
            note = plan_for(variant.name).note
            if note and any(v is variant for v, _ in mine):
                log(f"note: {note}")
        return lm, variants, mine, total - len(todo) + len(mine)

    @staticmethod
    def _key(variant: str, item: WorkItem) -> Key:
        return (variant, item.task.name, item.sample.id, item.repeat)

    # ---------------------------------------------------------------- replay instead of generate

    def _make_probes(self) -> list[Any]:
        from pvm_bench.replay.probe import ReplayAttentionProbe

        probes: list[Any] = []
        for name in self.config.probes:
            if name == "attention":
                probes.append(ReplayAttentionProbe(per_head=self.config.per_head, per_image=self.config.per_image))
            elif name == "lens":  # the decode-time probe itself: it observes the scores replay hands it per step
                from pvm_bench.probes.lens import LensProbe

                probes.append(LensProbe())
            elif name == "branch":
                from pvm_bench.replay.branch import ReplayBranchProbe

                probes.append(ReplayBranchProbe())
            else:
                self._log(f"note: probe '{name}' has no replay implementation yet; skipped (replay records: "
                          f"{', '.join(REPLAY_PROBES)})")
        return probes

    def _batch_runner(self, log: Callable[[str], None]) -> BatchRunner:
        return _ReplayBatches(self, log)

    def _generate(self, session: Any, task: Task, requests: list[Request], max_new: int) -> list[Generation]:
        lm = session.lm
        variant = session.current.name
        eos = eos_ids(lm)
        outputs, rows = [], []
        requests = [self._as_sent(request, self._given[self._key(variant, request.key)]) for request in requests]
        for request in requests:
            key = self._key(variant, request.key)
            row = self._given[key]
            tokens = output_tokens(lm.tokenizer, row.text, token_ids=row.token_ids, finish_reason=row.finish_reason,
                                   n_generated=row.n_generated, eos_id=eos[0] if eos else None)
            self._tags[key] = {**tokens.metadata(), "source": self.source.kind}
            outputs.append(Output(row.text, tokens.ids, tokens.finish_reason))
            rows.append(row)
        plan = plan_for(variant)
        cfg = self.config
        decoding = effective_decoding(lm, cfg.temperature, cfg.top_p, cfg.top_k, cfg.repetition_penalty,
                                      task=task.generation)
        gens = teacher_force(lm, requests, outputs, probes=session.probes,
                             system_prompt=getattr(self.protocol, "system_prompt", None),
                             boundaries=plan.boundaries, chunk=1 if plan.one_row else self.chunk,
                             repetition_penalty=decoding["repetition_penalty"])
        for row, gen in zip(rows, gens):
            if row.prompt is not None and gen.prompt != row.prompt:
                raise ReplayError(
                    f"{row.where}: the rebuilt prompt differs from the recorded one (model, processor, protocol or "
                    "task "
                    "changed since the run?); replay with the run's own --model and settings"
                )
        return gens


    @staticmethod
    def _as_sent(request: Request, row: GivenOutput) -> Request:
        """The request with a plain JSONL row's own messages and images, when it gives them."""
        if row.messages is None:
            return request
        from pvm_bench.tasks import CorruptImageError, LazyImage

        try:  # the tasks' own decoder: size limit before decoding, one-line errors
            images = [LazyImage(path, name=f"{row.where}: {path.name}").load() for path in row.images]
        except CorruptImageError as exc:
            raise ReplaySourceError(str(exc)) from None
        return Request(row.messages, images, seed=request.seed, key=request.key)


class _ReplayBatches(BatchRunner):
    """The runner's batches with the given outputs teacher-forced instead of generated, and each record
    tagged with how its tokens were obtained."""

    def __init__(self, replay: ReplayRunner, log: Callable[[str], None]) -> None:
        super().__init__(replay.config, replay.run_dir, replay.protocol, replay.errors, log)
        self.replay = replay

    def run(self, session: Any, variant: str, batch: list[WorkItem], sink: JsonlAppender) -> None:
        super().run(session, variant, batch, _TaggingSink(sink, self.replay._tags))  # type: ignore[arg-type]

    def generate(self, session: Any, task: Task, requests: list[Request], max_new: int) -> list[Generation]:
        return self.replay._generate(session, task, requests, max_new)


class _TaggingSink:
    """samples.jsonl appender that adds ``metadata.replay`` (how the tokens were obtained) per record."""

    def __init__(self, sink: JsonlAppender, tags: dict[Key, dict[str, Any]]) -> None:
        self.sink, self.tags = sink, tags

    def append(self, record: Any) -> None:
        if isinstance(record, SampleRecord):
            tag = self.tags.pop(record.key, None)
            if tag is not None:
                record.metadata = {**record.metadata, "replay": tag}
        self.sink.append(record)


class ScoreOnlyRunner(ReplayRunner):
    """``--score-only``: the given outputs scored by the tasks' scorers; no model, no attention data."""

    @classmethod
    def preflight(cls, config: Any, tasks: list[Task], log: Callable[[str], None]) -> None:
        super().preflight(config.model_copy(update={"model": None}), tasks, log)  # no model is loaded

    def _execute(self, progress: Callable[..., Any] | None, log: Callable[[str], None]) -> Any:
        cfg = self.config
        try:
            _, loaded = self.load_tasks()
            self.record.datasets = {
                t.name: {"version": t.version, "split": cfg.split or t.default_split, "n": len(s),
                         "fingerprint": t.fingerprint(s)} for t, s in loaded}
            self.record.model = {"score_only": True}
            if self.dist.is_main:
                self.record.save(self.run_dir)
            done = {rec.key for rec in read_samples(self.run_dir)}
            samples = {(t.name, s.id): (t, s) for t, ss in loaded for s in ss}
            with JsonlAppender(self.samples_path) as sink:
                for index, (key, row) in enumerate(self._given.items()):
                    if index % self.dist.world != self.dist.rank or key in done:
                        continue
                    variant, task_name, sample_id, repeat = key
                    task, sample = samples[(task_name, sample_id)]
                    item = WorkItem(task, sample, repeat)
                    n = row.n_generated if row.n_generated is not None else len(row.token_ids or [])
                    finish = row.finish_reason or ("length" if n and n >= self._max_new_tokens(task) else "eos")
                    gen = Generation(key=item, prompt=row.prompt or row.context or "", text=row.text,
                                     token_ids=list(row.token_ids or []), n_generated=n, finish_reason=finish,
                                     prefill_s=0.0, decode_s=0.0, batch_size=1)
                    record = sample_record(variant, item, gen, sample_seed(cfg.seed, task_name, sample_id, repeat),
                                           self._max_new_tokens(task))
                    record.metadata = {**record.metadata, "replay": {"score_only": True, "source": self.source.kind}}
                    sink.append(record)
        except BaseException as exc:
            self._fail(exc)
            raise
        if not self.dist.is_main:
            self.dist.barrier()
        self._finish("completed")
        return self.record
