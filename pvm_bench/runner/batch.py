"""One batch of a run: decode the images, generate, save every record, with per-sample failures.

A sample fails alone, with one ``error:`` line and an error record, when its image cannot be
decoded (:class:`~pvm_bench.tasks.base.CorruptImageError`), when the processor refuses its input
(:class:`~pvm_bench.models.generation.SampleInputError`, e.g. a 20000x2 image) or when its scorer
fails (:func:`pvm_bench.runner.workload.sample_record` keeps the generation and records the scoring error);
the rest of the batch is generated and saved. Running out of memory stays a run error: it is the
batch's size, not one sample.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvm_bench.errors import UserError, one_line
from pvm_bench.models.generation import Generation, Request, SampleInputError
from pvm_bench.results import JsonlAppender
from pvm_bench.runner.files import write_probe_part
from pvm_bench.runner.guard import RunError, is_out_of_memory
from pvm_bench.runner.workload import WorkItem, error_record, probe_frames, sample_ids, sample_record, sample_seed
from pvm_bench.tasks import CorruptImageError, Task


def max_new_tokens(config: Any, task: Task) -> int:
    """The generation budget of ``task``'s samples: ``--max-new-tokens``, else the task's own, else 256."""
    return int(config.max_new_tokens or task.generation.get("max_new_tokens", 256))


class BatchRunner:
    """Runs batches of one run (``config``, ``run_dir``, the effective ``protocol``); every sample that
    fails alone is appended to :attr:`errors` (one line each) and logged as ``error: ...``."""

    def __init__(
        self, config: Any, run_dir: Path, protocol: Any, errors: list[str], log: Callable[[str], None]
    ) -> None:
        self.config, self.run_dir, self.protocol, self.errors, self.log = config, run_dir, protocol, errors, log
        #: Whether anything was generated yet: before that, a failure of every sample is the setup's, not theirs.
        self.generated_any = False
        self.composition: str | None = None
        self.variant = ""
        #: Called as ``after_generate(variant, generations)`` after every generate call (the run's --maps files).
        self.after_generate: Callable[..., None] | None = None

    def run(self, session: Any, variant: str, batch: list[WorkItem], sink: JsonlAppender) -> None:
        """Generate ``batch`` (one task) under the active variant and append its records to ``sink``."""
        task = batch[0].task
        max_new = max_new_tokens(self.config, task)
        self.composition = session.composition  # the active variant's, recorded on every record
        self.variant = variant
        requests: list[Request] = []
        good: list[WorkItem] = []
        for item in batch:
            seed = sample_seed(self.config.seed, task.name, item.sample.id, item.repeat)
            try:
                images = [img.load() for img in item.sample.images]
                messages = task.messages(item.sample)
            except CorruptImageError as exc:
                self.sample_failed(sink, variant, item, seed, max_new, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 -- a plugin's messages() failing on one sample fails that sample
                self.sample_failed(sink, variant, item, seed, max_new, f"messages() raised {type(exc).__name__}: {exc}")
                continue
            requests.append(Request(messages, images, seed=seed, key=item))
            good.append(item)
        if not requests:
            return
        outcome = self.generate_isolating(session, task, requests, max_new, sample_ids(good))
        for i in sorted(i for i, result in outcome.items() if isinstance(result, str)):
            self.sample_failed(sink, variant, good[i], requests[i].seed, max_new, str(outcome[i]))
        done = [
            (good[i], requests[i], result) for i, result in sorted(outcome.items()) if isinstance(result, Generation)
        ]
        if not done:
            return
        write_probe_part(self.run_dir, probe_frames(variant, task.name, [gen for _, _, gen in done]))
        # Every generation is scored into a record first; a scorer's failure is that record's error.
        records = [sample_record(variant, item, gen, request.seed, max_new, self.composition)
                   for item, request, gen in done]
        for record in records:
            sink.append(record)
            if record.error:
                self.note_error(f"task '{task.name}' sample '{record.sample_id}': {record.error}")

    def generate_isolating(self, session: Any, task: Task, requests: list[Request], max_new: int,
                           shown: str) -> dict[int, Generation | str]:
        """Request index -> its generation, or the one-line reason it failed alone.

        Requests the processor refuses (:class:`SampleInputError`) fail alone and the rest is generated
        again. When generating the batch raises anything else, each request is generated alone so one
        sample that breaks the model (or a fix) fails alone, unless nothing has been generated yet in this
        run and every request fails alone too: then the error is the run's (a broken setup, not a sample).
        Running out of memory and run errors (NaN logits: :class:`~pvm_bench.runner.guard.NonFiniteError`)
        always stop the run.
        """
        outcome: dict[int, Generation | str] = {}
        pending = list(range(len(requests)))
        while pending:
            try:
                outcome.update(zip(pending, self.generate(session, task, [requests[i] for i in pending], max_new)))
                self.generated_any = True
                return outcome
            except SampleInputError as exc:  # the processor refused some samples: they fail alone
                outcome.update({pending[j]: reason for j, reason in exc.failures.items()})
                pending = [i for j, i in enumerate(pending) if j not in exc.failures]
            except Exception as exc:
                self.raise_run_error(exc, task, shown, len(pending), max_new)
                if len(pending) == 1 and not self.generated_any:
                    raise
                for i in pending:
                    outcome[i] = self.generate_alone(session, task, requests[i], max_new, shown)
                if not self.generated_any and all(isinstance(outcome[i], str) for i in pending):
                    raise
                return outcome
        return outcome

    def generate_alone(self, session: Any, task: Task, request: Request, max_new: int, shown: str) -> Generation | str:
        try:
            (gen,) = self.generate(session, task, [request], max_new)
        except SampleInputError as exc:
            return exc.failures[0]
        except Exception as exc:  # noqa: BLE001 -- this sample's failure, recorded as its error
            self.raise_run_error(exc, task, shown, 1, max_new)
            return f"generation failed for this sample ({type(exc).__name__}: {one_line(str(exc), 300)})"
        self.generated_any = True
        return gen

    def raise_run_error(self, exc: Exception, task: Task, shown: str, n: int, max_new: int) -> None:
        """Re-raise what no single sample causes: a run error (NaN logits...) as it is, out of memory as
        one line with the fix."""
        if isinstance(exc, UserError):
            raise exc
        if is_out_of_memory(exc):
            raise RunError(
                f"out of memory generating task '{task.name}' samples {shown} (batch of {n}, "
                f"max_new_tokens {max_new}): {one_line(str(exc), 120)}; lower --batch-size or --max-new-tokens (or "
                f"shorten an over-long prompt), then --resume {self.run_dir}"
            ) from exc

    def generate(self, session: Any, task: Task, requests: list[Request], max_new: int) -> list[Generation]:
        cfg = self.config
        generations = session.generate(
            requests, max_new_tokens=max_new, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
            repetition_penalty=cfg.repetition_penalty, task_settings=task.generation,
            system_prompt=getattr(self.protocol, "system_prompt", None),
        )
        if self.after_generate is not None:
            self.after_generate(self.variant, generations)
        return generations

    def sample_failed(
        self, sink: JsonlAppender, variant: str, item: WorkItem, seed: int, max_new: int, reason: str
    ) -> None:
        """Record a sample that could not be run (bad image, input the processor refuses): it fails alone."""
        sink.append(error_record(variant, item, seed, max_new, one_line(reason), self.composition))
        self.note_error(f"task '{item.task.name}' sample '{item.sample.id}': {reason}")

    def note_error(self, message: str) -> None:
        message = one_line(message)
        self.errors.append(message)
        self.log(f"error: {message} (scored 0, counted as error)")
