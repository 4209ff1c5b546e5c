"""The runner: variants x tasks x samples x repeats -> reports/<run_id>/.

Every finished sample is appended to ``samples.jsonl`` (fsync'd) right away and its probe
records go to ``attention/part-*.parquet``; at the end the parts are merged into
``attention.parquet`` keeping only rows whose sample made it into samples.jsonl. A killed
run therefore loses at most the batch in flight, and ``resume`` continues it without
duplicates.
"""

from __future__ import annotations

import errno
import hashlib
import os
import platform
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pvm_bench.config import RunConfig
from pvm_bench.distributed import Dist
from pvm_bench.errors import UserError
from pvm_bench.models.generation import Generation, Request
from pvm_bench.results import (
    KEY_COLUMNS,
    JsonlAppender,
    RunRecord,
    SampleRecord,
    Timings,
    compact_frame,
    read_jsonl,
    read_samples,
    sample_files,
    utc_now,
)
from pvm_bench.tasks import CorruptImageError, Sample, Task, get_registry


class RunError(UserError):
    """The run cannot start or continue (bad output dir, existing run, disk full...)."""


def sample_seed(run_seed: int, task: str, sample_id: str, repeat: int) -> int:
    """A per-(sample, repeat) seed independent of batch composition and order."""
    digest = hashlib.sha256(f"{run_seed}\x00{task}\x00{sample_id}\x00{repeat}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("pvm-bench", "torch", "transformers", "datasets", "pandas", "pyarrow", "lmms-eval"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the pvm-bench checkout (empty when installed from a wheel)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": bool(dirty)}


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"output directory {directory} is not writable ({exc.strerror}); pass --out DIR") from exc


@dataclass
class WorkItem:
    task: Task
    sample: Sample
    repeat: int


class Runner:
    """Executes a :class:`RunConfig` into a run directory."""

    def __init__(self, config: RunConfig, run_dir: Path, record: RunRecord, dist: Dist | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.record = record
        self.dist = dist or Dist()
        self.errors: list[str] = []

    @property
    def samples_path(self) -> Path:
        """Where this process appends: samples.jsonl, or its rank's shard in a data-parallel run."""
        if self.dist.enabled:
            return self.run_dir / f"samples.rank{self.dist.rank}.jsonl"
        return self.run_dir / "samples.jsonl"

    # ---------------------------------------------------------------- construction

    @classmethod
    def create(cls, config: RunConfig) -> Runner:
        """Validate inputs and create a fresh run directory (nothing is written on bad input)."""
        from pvm_bench.variants import resolve_variants

        get_registry(config.include_paths).resolve(config.tasks)
        resolve_variants(config.resolved_variants())
        out = Path(config.out)
        run_id = config.run_id or new_run_id()
        run_dir = out / run_id
        if (run_dir / "run.json").exists():
            raise RunError(f"run directory {run_dir} already exists; pass --resume {run_dir} or a new --run-id")
        config = config.model_copy(update={"run_id": run_id})
        _check_writable(out)
        run_dir.mkdir(parents=True, exist_ok=True)
        record = RunRecord(
            run_id=run_id,
            seed=config.seed,
            config=config.model_dump(mode="json"),
            variants=config.resolved_variants(),
            versions=package_versions(),
            git=git_state(),
        )
        record.save(run_dir)
        return cls(config, run_dir, record)

    @classmethod
    def resume(cls, run_dir: Path, dist: Dist | None = None, *, mark_resumed: bool = True) -> Runner:
        """Continue the run in ``run_dir`` (also how non-zero ranks join a run rank 0 created)."""
        if not (run_dir / "run.json").is_file():
            raise RunError(f"{run_dir} has no run.json; pass the directory of an earlier run to --resume")
        record = RunRecord.load(run_dir)
        config = RunConfig.model_validate(record.config)
        _check_writable(run_dir)
        if mark_resumed:
            record.resumed.append(utc_now())
        record.status = "running"
        record.ended_at = None
        record.error = None
        return cls(config, run_dir, record, dist)

    # ---------------------------------------------------------------- execution

    def load_tasks(self) -> list[tuple[Task, list[Sample]]]:
        cfg = self.config
        registry = get_registry(cfg.include_paths)
        tasks = registry.resolve(cfg.tasks)
        data_dir = Path(cfg.data_dir) if cfg.data_dir else None
        loaded = []
        for task in tasks:
            samples = task.load(cfg.split, cfg.limit, data_dir)
            if not samples:
                raise RunError(f"task '{task.name}' has no samples for split '{cfg.split or task.default_split}'")
            loaded.append((task, samples))
        return loaded

    def execute(self, *, progress: Callable[[int, int], Any] | None = None, log: Callable[[str], None] = print) -> RunRecord:
        """Run everything not yet in samples.jsonl. ``progress(done, total)`` is called per sample."""
        from pvm_bench import load_model
        from pvm_bench.variants import resolve_variants

        cfg = self.config
        variants = resolve_variants(cfg.resolved_variants())
        loaded_tasks = self.load_tasks()
        self.record.datasets = {
            t.name: {"version": t.version, "split": cfg.split or t.default_split, "n": len(s), "fingerprint": t.fingerprint(s)}
            for t, s in loaded_tasks
        }
        if self.dist.is_main:
            self.record.save(self.run_dir)
        done = {rec.key for rec in read_samples(self.run_dir)}
        todo: list[tuple[Any, WorkItem]] = []
        n_mine = 0
        index = 0
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
        total = n_mine
        if progress:
            progress(n_mine - len(todo), total)

        lm = load_model(
            cfg.model, pvm=cfg.pvm, dtype=cfg.dtype, device=self.dist.device(cfg.device), device_map=cfg.device_map,
            attn_implementation=cfg.attn_implementation, trust_remote_code=cfg.trust_remote_code,
        )
        self.record.model = lm.info()
        if lm.pvm is not None:
            self.record.adapter = {"path": cfg.pvm, **getattr(lm.pvm, "describe", lambda: {})()}
        if self.dist.is_main:
            self.record.save(self.run_dir)

        probes = self._make_probes()
        finished = n_mine - len(todo)
        try:
            with ExitStack() as stack, JsonlAppender(self.samples_path) as sink:
                for probe in probes:
                    probe.install(lm)
                    stack.callback(probe.uninstall)
                for variant in variants:
                    items = [item for v, item in todo if v is variant]
                    if not items:
                        continue
                    with variant.active(lm):
                        for batch in self._batches(items):
                            self._run_batch(lm, variant.name, batch, probes, sink, log)
                            finished += len(batch)
                            if progress:
                                progress(finished, total)
        except KeyboardInterrupt:
            self._finish("interrupted")
            raise
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self._finish("failed", f"disk full while writing {self.run_dir}")
                raise RunError(
                    f"disk full while writing {self.run_dir}; free space, then `pvm-bench run --resume {self.run_dir}`"
                ) from exc
            self._finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        except BaseException as exc:
            self._finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        if not self.dist.is_main:
            self.dist.barrier()  # matches rank 0's barrier in _finish
        self._finish("completed")
        return self.record

    def _make_probes(self) -> list[Any]:
        if not self.config.probes:
            return []
        from pvm_bench.probes.registry import make_probes

        return make_probes(self.config.probes, per_head=self.config.per_head)

    def _batches(self, items: list[WorkItem]) -> list[list[WorkItem]]:
        """Batches of one task each (a task fixes max_new_tokens), in order."""
        size = max(1, self.config.batch_size)
        batches: list[list[WorkItem]] = []
        for item in items:
            if batches and len(batches[-1]) < size and batches[-1][0].task is item.task:
                batches[-1].append(item)
            else:
                batches.append([item])
        return batches

    def _max_new_tokens(self, task: Task) -> int:
        return int(self.config.max_new_tokens or task.generation.get("max_new_tokens", 256))

    def _run_batch(self, lm: Any, variant: str, batch: list[WorkItem], probes: list[Any], sink: JsonlAppender,
                   log: Callable[[str], None]) -> None:
        cfg = self.config
        task = batch[0].task
        max_new = self._max_new_tokens(task)
        requests: list[Request] = []
        good: list[WorkItem] = []
        for item in batch:
            seed = sample_seed(cfg.seed, task.name, item.sample.id, item.repeat)
            try:
                images = [img.load() for img in item.sample.images]
            except CorruptImageError as exc:
                message = f"task '{task.name}' sample '{item.sample.id}': {exc}"
                self.errors.append(message)
                log(f"error: {message} (scored 0, counted as error)")
                sink.append(self._error_record(variant, item, seed, max_new, str(exc)))
                continue
            requests.append(Request(task.messages(item.sample), images, seed=seed, key=item))
            good.append(item)
        if not requests:
            return
        generations = lm.generate(
            requests, max_new_tokens=max_new, temperature=cfg.temperature, top_p=cfg.top_p if cfg.top_p is not None else 1.0, probes=probes
        )
        self._write_probe_part(variant, task.name, generations)
        for item, request, gen in zip(good, requests, generations):
            sink.append(self._record(variant, item, gen, request.seed, max_new))

    def _record(self, variant: str, item: WorkItem, gen: Generation, seed: int, max_new: int) -> SampleRecord:
        score = item.task.score(item.sample, gen.text, truncated=gen.truncated)
        return SampleRecord(
            variant=variant, task=item.task.name, sample_id=item.sample.id, repeat=item.repeat, seed=seed,
            prompt=gen.prompt, output=gen.text, parsed=score.parsed, target=_jsonable(item.sample.target),
            score=score.value, truncated=score.truncated or (gen.truncated and score.parsed is None),
            n_generated=gen.n_generated, max_new_tokens=max_new, finish_reason=gen.finish_reason,
            timings=Timings(
                prefill_s=gen.prefill_s, decode_s=gen.decode_s, total_s=gen.prefill_s + gen.decode_s,
                tokens_per_s=gen.tokens_per_s, batch_size=gen.batch_size,
            ),
            metadata={**_jsonable(item.sample.metadata), **({"score": _jsonable(score.details)} if score.details else {})},
        )

    def _error_record(self, variant: str, item: WorkItem, seed: int, max_new: int, error: str) -> SampleRecord:
        return SampleRecord(
            variant=variant, task=item.task.name, sample_id=item.sample.id, repeat=item.repeat, seed=seed,
            prompt="", output="", target=_jsonable(item.sample.target), score=0.0, max_new_tokens=max_new,
            finish_reason="error", error=error, metadata=_jsonable(item.sample.metadata),
        )

    def _write_probe_part(self, variant: str, task: str, generations: list[Generation]) -> None:
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
        if not frames:
            return
        parts = self.run_dir / "attention"
        parts.mkdir(exist_ok=True)
        path = parts / f"part-{time.time_ns()}-{uuid.uuid4().hex[:6]}.parquet"
        tmp = path.with_suffix(".tmp")
        compact_frame(pd.concat(frames, ignore_index=True)).to_parquet(tmp, index=False)
        os.replace(tmp, path)

    def _finish(self, status: str, error: str | None = None) -> None:
        if not self.dist.is_main:
            return  # rank 0 merges the shards and owns run.json
        if status == "completed":
            self.dist.barrier()  # every rank has closed its shard
            merge_sample_shards(self.run_dir)
        try:
            merge_attention(self.run_dir)
        except Exception as exc:  # never lose the status update because of the merge
            error = error or f"attention merge failed: {exc}"
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def probe_frame(records: dict[str, list[dict[str, Any]]]) -> pd.DataFrame | None:
    """Merge the records of several probes for one generation into one long frame.

    Frames are outer-joined on their shared index columns (``step``, and ``layer`` when both
    have it); step-only measures (e.g. entropy) are broadcast to every layer row of a step.
    """
    frames = [pd.DataFrame(rows) for rows in records.values() if rows]
    if not frames:
        return None
    frames.sort(key=lambda f: -len(f.columns.intersection(["step", "layer"])))
    merged = frames[0]
    for frame in frames[1:]:
        keys = [k for k in ("step", "layer") if k in merged.columns and k in frame.columns]
        merged = merged.merge(frame, on=keys, how="outer")
    return merged.sort_values([c for c in ("step", "layer") if c in merged.columns], kind="stable")


def merge_sample_shards(run_dir: Path) -> None:
    """Append the records of ``samples.rank*.jsonl`` missing from samples.jsonl, then drop the shards."""
    main = run_dir / "samples.jsonl"
    have = {(r["variant"], r["task"], r["sample_id"], r["repeat"]) for r in read_jsonl(main)}
    with JsonlAppender(main) as sink:
        for shard in sample_files(run_dir)[1:]:
            for row in read_jsonl(shard):
                key = (row["variant"], row["task"], row["sample_id"], row["repeat"])
                if key not in have:
                    sink.append(row)
                    have.add(key)
    for shard in sample_files(run_dir)[1:]:
        shard.unlink()


def merge_attention(run_dir: Path) -> Path | None:
    """Merge attention parts (and an earlier attention.parquet) into attention.parquet.

    Only rows whose (variant, task, sample_id, repeat) is in samples.jsonl are kept, and a
    re-run sample's rows replace the old ones, so resume never duplicates rows.
    """
    parts_dir = run_dir / "attention"
    target = run_dir / "attention.parquet"
    parts = sorted(parts_dir.glob("part-*.parquet")) if parts_dir.is_dir() else []
    if not parts:
        return target if target.exists() else None
    frames = ([pd.read_parquet(target)] if target.exists() else []) + [pd.read_parquet(p) for p in parts]
    frame = pd.concat(frames, ignore_index=True)
    keep = {rec.key for rec in read_samples(run_dir)}
    keys = list(zip(frame["variant"], frame["task"], frame["sample_id"], frame["repeat"]))
    frame = frame[[k in keep for k in keys]]
    index_cols = KEY_COLUMNS + [c for c in ("step", "layer") if c in frame.columns]
    frame = frame.drop_duplicates(subset=index_cols, keep="last").sort_values(index_cols, kind="stable")
    tmp = target.with_suffix(".parquet.tmp")
    compact_frame(frame.reset_index(drop=True)).to_parquet(tmp, index=False)
    os.replace(tmp, target)
    for part in parts:
        part.unlink()
    if not any(parts_dir.iterdir()):
        parts_dir.rmdir()
    return target
