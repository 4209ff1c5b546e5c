"""The runner: variants x tasks x samples x repeats -> reports/<run_id>/.

Every finished sample is appended to ``samples.jsonl`` (fsync'd) right away and its probe
records go to ``attention/part-*.parquet`` (with their aggregate tables); at the end the parts are
moved into the store ``attention.parquet/`` keeping only samples that made it into samples.jsonl. A killed
run therefore loses at most the batch in flight, and ``resume`` continues it without
duplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from pvm_bench.config import RunConfig
from pvm_bench.errors import DiskFullError, UserError, is_disk_full, one_line, validation_summary
from pvm_bench.filehash import SCHEME
from pvm_bench.models.generation import effective_decoding
from pvm_bench.models.loading import is_local_source
from pvm_bench.results import JsonlAppender, RunRecord, read_samples, utc_now
from pvm_bench.runner.batch import BatchRunner, max_new_tokens
from pvm_bench.runner.distributed import Dist
from pvm_bench.runner.files import (
    check_writable,
    clear_outputs,
    git_state,
    merge_attention,
    merge_sample_shards,
    new_run_id,
    package_versions,
    remove_temp_files,
    reusable_run_dir,
)
from pvm_bench.runner.guard import (
    NonFiniteGuard,
    ResumeMismatchError,
    RunError,
    RunLock,
    Terminated,
    check_resume,
    generation_settings,
    hub_snapshot,
    option_conflicts,
    path_digests,
    sigterm_interrupts,
)
from pvm_bench.runner.probes import RunProbes
from pvm_bench.runner.taskmeta import write_run_tasks
from pvm_bench.runner.workload import (
    WorkItem,
    batches,
    load_task_samples,
    metadata_fingerprint,
    sample_ids,
)
from pvm_bench.session import GenerationSession
from pvm_bench.tasks import Sample, Task, TaskRegistry, get_registry
from pvm_bench.tasks.defs import provenance


class Runner:
    """Executes a :class:`RunConfig` into a run directory.

    A runner made by :meth:`create` or :meth:`resume` holds the run directory's lock (:class:`RunLock`) until
    :meth:`execute` finishes or :meth:`close` is called; the OS drops it on any exit. A resumed run compares its
    inputs with run.json first (:func:`resume_changes`): it never mixes models, adapters, data or generation settings.
    """

    def __init__(self, config: RunConfig, run_dir: Path, record: RunRecord, dist: Dist | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.record = record
        self.dist = dist or Dist()
        self.errors: list[str] = []
        self.lock: RunLock | None = None
        #: run.json as it was before this process resumed it (None for a fresh run).
        self.previous: RunRecord | None = None
        self.force = False
        self._log: Callable[[str], None] = lambda message: None
        #: Effective input protocol (system turn, image sizes; models/protocol.py), set when the model loads.
        self.protocol: Any = None
        #: The registry and tasks :meth:`create` loaded before making the directory (None: load them in execute).
        self._loaded: tuple[TaskRegistry, list[tuple[Task, list[Sample]]]] | None = None
        self.probes: RunProbes | None = None  # the run's probes and --maps selection, set once the tasks load

    @property
    def samples_path(self) -> Path:
        """Where this process appends: samples.jsonl, or its rank's shard in a data-parallel run."""
        if self.dist.enabled:
            return self.run_dir / f"samples.rank{self.dist.rank}.jsonl"
        return self.run_dir / "samples.jsonl"

    # ---------------------------------------------------------------- construction

    @classmethod
    def preflight(cls, config: RunConfig, tasks: list[Task], log: Callable[[str], None]) -> None:
        """Refuse (one line) missing local inputs, an unwritable ``--out`` and a hub that is needed but unusable."""
        from pvm_bench.runner.preflight import check_hub, check_local_inputs

        check_local_inputs(config)
        check_writable(Path(config.out))
        check_hub(config, tasks, log)

    @classmethod
    def create(cls, config: RunConfig, log: Callable[[str], None] = lambda message: None) -> Runner:
        """Validate inputs and create a fresh run directory (nothing is written on bad input).

        Before the directory exists: the tasks resolve, the local inputs exist and the hub is
        usable when needed (:mod:`pvm_bench.runner.preflight`), and every task's data loads, so a run
        that cannot start leaves no directory behind. An existing ``--run-id`` is refused, except a
        run that never wrote a sample (it failed or died before its first one): that directory is reused.
        """
        from pvm_bench.variants import resolve_variants

        registry = get_registry(config.include_paths, override_tasks=config.override_tasks)
        tasks = registry.resolve(config.tasks)
        names = [v.name for v in resolve_variants(config.resolved_variants())]
        twice = sorted(n for n, c in Counter(names).items() if c > 1)
        if twice:
            raise RunError(
                f"--variants lists {', '.join(repr(n) for n in twice)} more than once; give each variant once"
            )
        out = Path(config.out)
        run_id = config.run_id or new_run_id()
        run_dir = out / run_id
        if run_dir.exists() and not run_dir.is_dir():
            raise RunError(f"{run_dir} exists and is a file, not a run directory; pass another --run-id or --out")
        if (run_dir / "run.json").exists() and not reusable_run_dir(run_dir):
            raise RunError(f"run directory {run_dir} already exists; pass --resume {run_dir} or a new --run-id")
        config = config.model_copy(update={"run_id": run_id})
        cls.preflight(config, tasks, log)
        loaded = (registry, load_task_samples(config, registry))
        from pvm_bench.runner.maps import chosen_keys

        chosen_keys(config.maps, loaded[1])  # a --maps id that no task has is refused before anything is written
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
        try:
            if (run_dir / "run.json").exists():
                if not reusable_run_dir(
                    run_dir, probe_lock=False
                ):  # someone wrote samples between the check and the lock
                    raise RunError(f"run directory {run_dir} already exists; pass --resume {run_dir} or a new --run-id")
                clear_outputs(run_dir)
            record = RunRecord(
                run_id=run_id,
                seed=config.seed,
                config=config.model_dump(mode="json"),
                variants=config.resolved_variants(),
                versions=package_versions(),
                git=git_state(),
            )
            record.save(run_dir)
        except BaseException:
            lock.release()
            raise
        runner = cls(config, run_dir, record)
        runner.lock, runner._loaded = lock, loaded
        return runner

    @classmethod
    def resume(cls, run_dir: Path, dist: Dist | None = None, *, mark_resumed: bool = True, force: bool = False,
               overrides: dict[str, Any] | None = None) -> Runner:
        """Continue the run in ``run_dir`` (also how non-zero ranks join a run rank 0 created).

        ``overrides``: options the user gave explicitly with ``--resume`` (RunConfig field ->
        value); any that differs from the run's config is refused. ``force``: continue even when
        :meth:`execute` finds that the model, adapter, data or generation settings changed
        (recorded in run.json's ``forced_resumes``).
        """
        run_dir = Path(run_dir)
        if not (run_dir / "run.json").is_file():
            raise RunError(f"{run_dir} has no run.json; pass the directory of an earlier run to --resume")
        try:
            record = RunRecord.load(run_dir)
            config = RunConfig.model_validate(record.config)
        except ValueError as exc:
            raise RunError(
                f"{run_dir / 'run.json'} is not a valid run record ({validation_summary(exc)}); it cannot be "
                "resumed: start a new run with another --run-id"
            ) from None
        conflicts = option_conflicts(config, overrides or {})
        if conflicts:
            raise RunError(
                f"--resume continues {run_dir} with its own settings, but {'; '.join(conflicts)}; drop those "
                "options to continue it, or start a new run with another --run-id"
            )
        read_samples(run_dir)  # a corrupt line is reported (with its line number) before anything changes
        main = dist is None or dist.is_main
        lock = RunLock(run_dir).acquire() if main else None
        try:
            check_writable(run_dir)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        previous = record.model_copy(deep=True)
        if mark_resumed:
            record.resumed.append(utc_now())
        record.status = "running"
        record.ended_at = None
        record.error = None
        runner = cls(config, run_dir, record, dist)
        runner.lock, runner.previous, runner.force = lock, previous, force
        return runner

    def close(self) -> None:
        """Release the run directory's lock (idempotent)."""
        if self.lock is not None:
            self.lock.release()

    # ---------------------------------------------------------------- execution

    def load_tasks(self) -> tuple[TaskRegistry, list[tuple[Task, list[Sample]]]]:
        """The task registry and every task's samples; refuse empty tasks and duplicate sample ids."""
        if self._loaded is not None:
            loaded, self._loaded = self._loaded, None
            return loaded
        registry = get_registry(self.config.include_paths, override_tasks=self.config.override_tasks)
        return registry, load_task_samples(self.config, registry)

    def execute(self, *, progress: Callable[..., Any] | None = None, log: Callable[[str], None] = print) -> RunRecord:
        """Run everything not yet in samples.jsonl.

        ``progress(done, total)`` is called once before the first batch, then
        ``progress(done, total, variant, task)`` before and after every batch (the batch's variant
        and task names), so a display can label the work in flight.

        Any failure records status ``failed`` (``interrupted`` for Ctrl-C and a full disk) and
        the error in run.json, except a refused resume, which leaves run.json untouched.
        """
        self._log = log
        with sigterm_interrupts():
            return self._execute(progress, log)

    def _execute(self, progress: Callable[..., Any] | None, log: Callable[[str], None]) -> RunRecord:
        try:
            lm, variants, todo, total = self._prepare(log)
        except ResumeMismatchError:
            self.close()
            raise
        except BaseException as exc:
            self._fail(exc)
            raise
        finished = total - len(todo)
        if progress:
            progress(finished, total)
        probes = self._make_probes()
        guard = NonFiniteGuard()
        batch_runner = self._batch_runner(log)
        if self.probes is not None:  # --maps files of every generate call, rows in that call's order
            batch_runner.after_generate = partial(self.probes.after_batch, self.run_dir, tokenizer=lm.tokenizer)
        try:
            with ExitStack() as stack, JsonlAppender(self.samples_path) as sink:
                stack.enter_context(guard.installed(lm))
                session = stack.enter_context(GenerationSession(lm, probes))
                for variant in variants:
                    items = [item for v, item in todo if v is variant]
                    if not items:
                        continue
                    guard.variant = variant.name
                    with session.variant(variant):
                        for batch in batches(items, self.config.batch_size):
                            guard.where = f"task '{batch[0].task.name}', samples {sample_ids(batch)}"
                            if progress:
                                progress(finished, total, variant.name, batch[0].task.name)
                            batch_runner.run(session, variant.name, batch, sink)
                            finished += len(batch)
                            if progress:
                                progress(finished, total, variant.name, batch[0].task.name)
        except BaseException as exc:
            self._fail(exc)
            raise
        if not self.dist.is_main:
            self.dist.barrier()  # matches rank 0's barrier in _finish
        self._finish("completed")
        return self.record

    def _prepare(self, log: Callable[[str], None]) -> tuple[Any, list[Any], list[tuple[Any, WorkItem]], int]:
        """Load tasks and model, check a resume against run.json, and list the work left."""
        from pvm_bench import load_model
        from pvm_bench.variants import compositions, resolve_variants

        cfg = self.config
        variants = resolve_variants(cfg.resolved_variants())
        registry, loaded_tasks = self.load_tasks()
        self.probes = RunProbes(cfg, loaded_tasks)  # a --maps id no task has stops here, before the model loads
        done = {rec.key for rec in read_samples(self.run_dir)}
        fresh = self.record.model_copy(deep=True)
        fresh.datasets = {
            t.name: {
                "version": t.version,
                "split": cfg.split or t.default_split,
                "n": len(s),
                "fingerprint": t.fingerprint(s),
                "metadata_fingerprint": metadata_fingerprint(s),
                **provenance(registry.origins[t.name], t),
            }
            for t, s in loaded_tasks
        }
        import torch  # what this part of the run really uses (a resume may pass another --threads)

        self.record.segments.append({"started_at": utc_now(), "threads": torch.get_num_threads(),
                                     "processes": self.dist.world})
        checking = self.previous is not None and bool(done)
        if checking:
            self._check_resume(fresh, log)  # data first: no model load when the data changed
        self.record.datasets = fresh.datasets
        if self.dist.is_main and not checking:
            self.record.save(self.run_dir)
        if self.dist.is_main:  # tasks.json + thumbnails.json: reports read these, never the tasks' code
            write_run_tasks(self.run_dir, loaded_tasks, fresh.datasets, data_dir=cfg.data_dir)
        todo: list[tuple[Any, WorkItem]] = []
        n_mine = index = 0
        for variant in variants:
            for task, samples in loaded_tasks:
                for sample in samples:
                    for repeat in range(cfg.repeats):
                        mine = index % self.dist.world == self.dist.rank  # stable shard by global index
                        index += 1
                        if not mine:
                            continue
                        n_mine += 1
                        if (variant.name, task.name, sample.id, repeat) not in done:
                            todo.append((variant, WorkItem(task, sample, repeat)))

        lm = load_model(
            cfg.model, pvm=cfg.pvm, dtype=cfg.dtype, device=self.dist.device(cfg.device), device_map=cfg.device_map,
            attn_implementation=cfg.attn_implementation, trust_remote_code=cfg.trust_remote_code,
        )
        from pvm_bench.models.protocol import apply_protocol, apply_unfinished_policy
        self.protocol = apply_protocol(lm, cfg.protocol, system_prompt=cfg.system_prompt, min_pixels=cfg.min_pixels,
                                       max_pixels=cfg.max_pixels)
        apply_unfinished_policy([t for t, _ in loaded_tasks], cfg.protocol)  # lmms-eval parses an unclosed <think>
        fresh.model = lm.info()
        fresh.variant_compositions = self.record.variant_compositions = compositions(variants, lm)  # resume-checked
        if not is_local_source(cfg.model):
            fresh.model["hub_revision"] = hub_snapshot(cfg.model)
        if cfg.judge:  # a local answer-extraction judge for the math tasks (pvm_bench/scoring/judge.py)
            from pvm_bench.scoring.judge import attach_judge
            fresh.model["judge"] = attach_judge(cfg.judge, [t for t, _ in loaded_tasks],
                                                device=self.dist.device(cfg.device), dtype=cfg.dtype)
        if lm.pvm is not None and cfg.pvm:
            from pvm_bench.pvm.io import detect_format

            adapter_fp, adapter_files = path_digests(Path(cfg.pvm).expanduser())
            fresh.adapter = {
                "path": cfg.pvm,
                "fingerprint": adapter_fp,
                "fingerprint_scheme": SCHEME,
                "files": adapter_files,
                "format": detect_format(cfg.pvm) if Path(cfg.pvm).expanduser().is_dir() else "full",
                **getattr(lm.pvm, "describe", lambda: {})(),
            }
        fresh.generation = {t.name: generation_settings(cfg, lm, self._max_new_tokens(t), self.protocol.settings())
                            for t, _ in loaded_tasks}
        if checking:
            self._check_resume(fresh, log)
        self.record.model, self.record.adapter, self.record.generation = fresh.model, fresh.adapter, fresh.generation
        before = next(iter((self.previous.decoding or {}).values()), {}) if self.previous is not None else {}
        temp_source = before.get("source", {}).get("temperature") or cfg.source("temperature")  # a resume keeps its own
        sampling = (cfg.temperature, cfg.top_p, cfg.top_k, cfg.repetition_penalty)
        self.record.decoding = {t.name: effective_decoding(lm, *sampling, task=t.generation,
                                                           temperature_source=temp_source)
                                for t, _ in loaded_tasks}
        self.record.forced_resumes = fresh.forced_resumes
        if self.dist.is_main:
            self.record.save(self.run_dir)
        return lm, variants, todo, n_mine

    def _check_resume(self, fresh: RunRecord, log: Callable[[str], None]) -> None:
        assert self.previous is not None
        check_resume(self.previous, fresh, self.run_dir, force=self.force, log=log)

    def _fail(self, exc: BaseException) -> None:
        """Record a failure in run.json; a full disk is re-raised as one DiskFullError line."""
        if isinstance(exc, KeyboardInterrupt):
            self._finish_quietly(
                "interrupted", "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
            )
            return
        if is_disk_full(exc, by_message=True):
            path = exc.path if isinstance(exc, DiskFullError) else self.run_dir
            remove_temp_files(self.run_dir)
            self._finish_quietly("interrupted", f"disk full writing {path}")
            remove_temp_files(self.run_dir)
            raise DiskFullError(path, f"`pvm-bench run --resume {self.run_dir}`") from exc
        message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {one_line(str(exc))}"
        self._finish_quietly("failed", message)

    def _finish_quietly(self, status: str, error: str | None = None) -> None:
        try:
            self._finish(status, error)
        except Exception:  # noqa: BLE001 -- never hide the original error behind a failed status update
            self.close()

    def _batch_runner(self, log: Callable[[str], None]) -> BatchRunner:
        """What runs each batch (generate, score, record); a subclass swaps generation (replay)."""
        return BatchRunner(self.config, self.run_dir, self.protocol, self.errors, log)

    def _make_probes(self) -> list[Any]:
        assert self.probes is not None, "_prepare sets the run's probes"
        return self.probes.make()

    def _max_new_tokens(self, task: Task) -> int:
        return max_new_tokens(self.config, task)

    def _finish(self, status: str, error: str | None = None) -> None:
        if not self.dist.is_main:
            return  # rank 0 merges the shards and owns run.json
        try:
            if status == "completed":
                self.dist.barrier()  # every rank has closed its shard
                merge_sample_shards(self.run_dir, self.dist.world)
            try:
                merge_attention(self.run_dir)
            except Exception as exc:  # never lose the status update because of the merge
                note = f"attention merge failed: {one_line(str(exc))}"
                self._log(f"warning: {note}")
                error = error or note
            samples = read_samples(self.run_dir)
            self.record.status = status  # type: ignore[assignment]
            self.record.ended_at = utc_now()
            self.record.error = error
            self.record.counts = {
                "samples": len(samples),
                "errors": sum(1 for s in samples if s.error),
                "truncated": sum(1 for s in samples if s.truncated),
            }
            self.record.save(self.run_dir)
        finally:
            self.close()
