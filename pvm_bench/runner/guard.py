"""What protects a run directory: the exclusive lock, the resume comparison, the NaN guard.

* :class:`RunLock` -- an exclusive ``filelock.FileLock`` on ``RUN_DIR/.lock`` held for the life
  of a run (and on ``RUN_DIR/.report.lock`` while a report is written). The OS drops it when the
  process exits in any way (kill -9 included), so a stale lock never blocks a later ``--resume``.
* :func:`resume_changes` -- what differs between the inputs a run started with (run.json) and
  the ones a resume would continue with: model and adapter fingerprints, per-task data
  fingerprints and the resolved generation settings.
* :func:`option_conflicts` -- options given together with ``--resume`` that differ from the run's.
* :class:`NonFiniteGuard` -- a forward hook on the output embeddings that stops generation at
  the first non-finite logit, naming the variant and samples.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pvm_bench.errors import UserError


class RunError(UserError):
    """The run cannot start or continue (bad output dir, existing run, disk full...)."""


class RunLockedError(RunError):
    """Another process holds the run directory's lock."""


class ResumeMismatchError(RunError):
    """A resume would continue with other inputs than the run started with."""


class NonFiniteError(RunError):
    """The model produced NaN/inf logits."""


class Terminated(KeyboardInterrupt):
    """SIGTERM during a run (a scheduler's time limit, ``kill``): handled like Ctrl-C."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` so the run records ``interrupted``
    (instead of dying with run.json still saying ``running``). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's CPU/GPU allocation failures (their types and messages differ by device)."""
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
    )


LOCK_NAME = ".lock"
#: errno values of a filesystem that has no locks: the run goes on unlocked.
NO_LOCKING = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)
#: A second lock of the run directory, held while ``report`` writes summary/plots/report.html:
#: two reports of one run (``--cohort 4`` and ``--cohort 16``) take turns instead of
#: interleaving their files. Separate from :data:`LOCK_NAME` so that a run in progress can still
#: be reported (the runner never writes report files; it reports only after releasing its lock).
REPORT_LOCK_NAME = ".report.lock"


class RunLock:
    """Exclusive lock on ``run_dir/.lock`` (``filelock.FileLock``: ``flock`` on POSIX, dropped by
    the OS when the process exits in any way, kill -9 included, so a stale lock never blocks a
    later ``--resume``). The owner's pid is written into the file for the refusal message.

    A symlinked lock file is refused (:class:`~pvm_bench.safeio.UnsafePathError`): filelock 3
    opens it with ``O_TRUNC`` and would empty the link's target. ``name`` selects another lock
    of the same directory (:data:`REPORT_LOCK_NAME`)."""

    def __init__(self, run_dir: Path, name: str = LOCK_NAME) -> None:
        self.path = run_dir / name
        self._lock: Any = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def acquire(self, wait: float = 0.0) -> RunLock:
        """Take the lock, waiting up to ``wait`` seconds; :class:`RunLockedError` when another
        process keeps it."""
        from filelock import FileLock, Timeout

        from pvm_bench.safeio import open_nofollow, refuse_symlink

        if self._lock is not None:
            return self
        refuse_symlink(self.path)
        lock = FileLock(str(self.path))
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise RunLockedError(
                f"run {self.path.parent} is in use by another pvm-bench process (pid {self._owner()}); "
                "wait for it to finish (or stop it), then run the command again (a run: pass --resume again)"
            ) from None
        except OSError as exc:
            if exc.errno in NO_LOCKING:  # no flock (some NFS mounts): run unlocked rather than not at all
                return self
            raise RunError(
                f"cannot open the run's lock file {self.path} ({exc.strerror}); remove it and retry"
            ) from None
        self._lock = lock
        try:  # the pid, for the message another process prints; best effort
            fd = open_nofollow(self.path, os.O_WRONLY)
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            finally:
                os.close(fd)
        except OSError:
            pass
        return self

    def _owner(self) -> str:
        try:
            return self.path.read_text(errors="replace").strip()[:32] or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._lock is None:
            return
        try:
            self._lock.release()
        finally:
            self._lock = None

    def is_free(self) -> bool:
        """True when no process holds the lock (probes it without keeping it)."""
        if self._lock is not None:
            return False
        if not self.path.exists():
            return not self.path.is_symlink()
        if not self.path.is_file() or self.path.is_symlink():
            return False
        try:
            self.acquire()
        except (RunError, UserError):
            return False
        self.release()
        return True


def path_digests(path: Path) -> tuple[str, dict[str, str]]:
    """``(fingerprint, {relative file: digest})`` of a file or of every file under a directory, each
    hashed whole (:mod:`pvm_bench.filehash`): an adapter tensor edited anywhere changes it."""
    from pvm_bench.filehash import files_fingerprint, tree_files

    return files_fingerprint(tree_files(path))


def hash_file_ends(h: Any, file: Path, label: str) -> None:
    """Feed ``h`` with ``label:size``, the first MiB of ``file`` and, over 2 MiB, its last MiB: the
    cheap identity of a weights file in :func:`pvm_bench.models.loading.model_fingerprint` (what an
    adapter records as its base). Resume compares full-content fingerprints instead (:mod:`pvm_bench.filehash`)."""
    size = file.stat().st_size
    h.update(f"{label}:{size}".encode())
    with open(file, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))


def hub_snapshot(source: str, revision: str | None = None) -> str | None:
    """The commit of the cached hub snapshot ``source`` resolves to (no network), or None.

    A hub id's weight fingerprint is the id itself, so this is what tells that a newer revision
    was downloaded between a kill and a resume.
    """
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(source, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 -- not a valid repo id, no cache: nothing to compare
        return None
    parts = Path(path).parts if isinstance(path, str) else ()
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None


def resume_changes(old: Any, new: Any) -> list[str]:
    """Human-readable differences between two RunRecords' inputs (empty: same inputs).

    Compared: ``model.fingerprint`` (every file of a local model dir, whole; and ``model.hub_revision``
    for hub ids), ``adapter.fingerprint`` (every adapter file, whole), every task's data
    ``fingerprint`` and ``n``, and the resolved per-task ``generation`` settings. A section
    the old record lacks (the run failed before loading it) is not compared.
    """
    changes: list[str] = []
    old_model, new_model = old.model or {}, new.model or {}
    key = (
        "content_fingerprint"
        if old_model.get("content_fingerprint") and _same_scheme(old_model, new_model)
        else "fingerprint"
    )
    old_fp, new_fp = old_model.get(key), new_model.get(key)
    if old_fp and new_fp and old_fp != new_fp:
        changes.append(f"model weights or input files of {new_model.get('source')} "
                       f"({_files_changed(old_model, new_model)}fingerprint {old_fp} -> {new_fp})")
    old_rev, new_rev = old_model.get("hub_revision"), new_model.get("hub_revision")
    if old_rev and old_rev != new_rev:
        changes.append(f"hub revision of {new_model.get('source')} ({old_rev} -> {new_rev})")
    old_judge, new_judge = _judge_fingerprint(old_model), _judge_fingerprint(new_model)
    if old_judge and old_judge != new_judge:
        changes.append(f"judge model (fingerprint {old_judge} -> {new_judge})")
    old_ad, new_ad = old.adapter or {}, new.adapter or {}
    if (
        old_ad.get("fingerprint")
        and old_ad.get("fingerprint") != new_ad.get("fingerprint")
        and _same_scheme(old_ad, new_ad)
    ):
        changes.append(f"PVM adapter {new_ad.get('path')} ({_files_changed(old_ad, new_ad)}"
                       f"fingerprint {old_ad['fingerprint']} -> {new_ad.get('fingerprint')})")
    for task, info in (old.datasets or {}).items():
        now = (new.datasets or {}).get(task)
        if now is None:
            continue
        if info.get("metadata_fingerprint") and now.get("metadata_fingerprint") and \
                info["metadata_fingerprint"] != now["metadata_fingerprint"]:
            changes.append(f"sample metadata of task '{task}' (fingerprint {info['metadata_fingerprint']} -> "
                           f"{now['metadata_fingerprint']})")
        if info.get("definition") and now.get("definition") and info["definition"] != now["definition"]:
            changes.append(f"definition of task '{task}' ({info.get('origin')} -> {now.get('origin')}, "
                           f"definition {info['definition']} -> {now['definition']})")
        if info.get("fingerprint") and info.get("fingerprint") != now.get("fingerprint"):
            changes.append(
                f"data of task '{task}' ({info.get('n')} -> {now.get('n')} samples, "
                f"fingerprint {info['fingerprint']} -> {now.get('fingerprint')})"
            )
    old_comps = getattr(old, "variant_compositions", None)
    if not old_comps and old_ad.get("path"):
        changes += legacy_composition_changes(getattr(new, "variant_compositions", None))
    changes += composition_changes(old_comps, getattr(new, "variant_compositions", None))
    old_gen, new_gen = getattr(old, "generation", None) or {}, getattr(new, "generation", None) or {}
    for task, settings in old_gen.items():
        now = new_gen.get(task)
        if now is None:
            continue
        # Only settings the old record has: a run recorded before a setting existed used its default.
        diffs = [f"{k} {settings.get(k)} -> {now.get(k)}" for k in sorted(settings) if settings.get(k) != now.get(k)]
        if diffs:
            changes.append(f"generation settings of task '{task}' ({', '.join(diffs)})")
    return changes


def composition_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """Variants whose resolved composition (pvm_bench.variants.compositions) differs: what a name runs
    changed (e.g. a bare fix that meant pvm + fix, or another MemVR recipe). Source citations are not compared."""

    def key(comp: dict[str, Any]) -> Any:
        return comp.get("canonical"), [{k: v for k, v in (f.get("effective") or {}).items() if k != "source"}
                                       for f in comp.get("fixes") or []]

    out = []
    for name, comp in (old or {}).items():
        now = (new or {}).get(name)
        if now is not None and key(comp) != key(now):
            out.append(f"variant '{name}' ({comp.get('canonical')} -> {now.get('canonical')})")
    return out


def _same_scheme(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Fingerprints are comparable only when made the same way: a run started before full-file
    hashing (no ``fingerprint_scheme``) is not refused because the scheme changed."""
    return old.get("fingerprint_scheme") == new.get("fingerprint_scheme")


def _files_changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``"files changed: a, b; "`` from two records' per-file digests (empty when unknown)."""
    from pvm_bench.filehash import changed_files

    names = changed_files(old.get("files"), new.get("files"))
    return f"files changed: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}; " if names else ""


def legacy_composition_changes(new: dict[str, Any] | None) -> list[str]:
    """Variants of a run recorded before run.json named compositions, with a PVM adapter loaded, that
    now run otherwise: a spec without a ``base`` part then ran on the model as loaded, the PVM branch
    on (``pai`` was pvm + PAI; git 0493891^ variants.resolve_variants), and now runs base + fix."""
    out = []
    for name, comp in (new or {}).items():
        parts = {part.split(":")[0].strip() for part in name.split("+")}
        if comp.get("branch") == "base" and comp.get("fixes") and "base" not in parts:
            out.append(f"variant '{name}' (recorded before variant compositions, when a bare fix ran with the "
                       f"PVM branch on -> {comp.get('canonical')})")
    return out


def _judge_fingerprint(model: dict[str, Any]) -> Any:
    judge = model.get("judge")
    return judge.get("fingerprint") if isinstance(judge, dict) else None


def check_resume(previous: Any, fresh: Any, run_dir: Path, *, force: bool, log: Callable[[str], None]) -> None:
    """Refuse (:class:`ResumeMismatchError`) when ``fresh`` inputs differ from ``previous``; with
    ``force`` continue and append what changed to ``fresh.forced_resumes`` (once per change)."""
    from pvm_bench.results import utc_now

    changes = resume_changes(previous, fresh)
    if not changes:
        return
    if not force:
        raise ResumeMismatchError(
            f"cannot resume {run_dir}: {'; '.join(changes)} changed since the run started, so its results "
            "would mix two setups; restore the original inputs, start a new run with another --run-id, "
            "or pass --force-resume to continue anyway (recorded in run.json)"
        )
    recorded = {c for entry in fresh.forced_resumes for c in entry.get("changed", [])}
    new = [c for c in changes if c not in recorded]
    if new:
        fresh.forced_resumes.append({"at": utc_now(), "changed": new})
        log(f"warning: --force-resume: continuing {run_dir} although {'; '.join(new)}")


def generation_settings(
    config: Any, lm: Any, max_new_tokens: int, protocol: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The generation settings a task's samples actually use (recorded in run.json, compared on
    resume): the run's options plus the checkpoint's generation_config they fall back to, and the
    effective input protocol (``InputProtocol.settings()``: system turn, image pixel limits)."""
    settings: dict[str, Any] = {
        "max_new_tokens": max_new_tokens, "temperature": config.temperature, "top_p": config.top_p,
        "top_k": config.top_k, "repetition_penalty": config.repetition_penalty,
    }
    gc = getattr(lm.hf_model, "generation_config", None)
    for key in ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty"):
        value = getattr(gc, key, None)
        settings[f"generation_config.{key}"] = (
            value if isinstance(value, (int, float, bool, str)) or value is None else str(value)
        )
    settings.update(protocol or {})
    return settings


def _normalise(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_normalise(v) for v in value]
    return value


def _same(field: str, old: Any, new: Any) -> bool:
    if old == new:
        return True
    if isinstance(old, str) and isinstance(new, str) and field in ("model", "pvm", "data_dir", "judge"):
        try:
            return Path(old).expanduser().resolve() == Path(new).expanduser().resolve()
        except OSError:
            return False
    return False


def option_conflicts(config: Any, overrides: dict[str, Any]) -> list[str]:
    """``--flag value`` descriptions of explicitly given options that differ from ``config``
    (flags spelled by :func:`pvm_bench.config.flag_name`)."""
    from pvm_bench.config import flag_name

    out = []
    for field, value in overrides.items():
        if field not in type(config).model_fields:
            continue
        old, new = getattr(config, field), _normalise(value)
        if not _same(field, old, new):
            flag = flag_name(field)
            shown = ",".join(map(str, new)) if isinstance(new, list) else new
            was = (",".join(map(str, old)) or "none") if isinstance(old, list) else old
            out.append(f"{flag} {shown} (the run has {was})")
    return out


class NonFiniteGuard:
    """Raise :class:`NonFiniteError` as soon as the logits of the generated position are not finite.

    Installed as a forward hook on the model's output embeddings (lm_head), so it sees every
    forward of generate() (and a fix's extra forward). Only the last position is checked:
    that is the row a token is drawn from, and left-padding rows may legitimately be masked.
    """

    def __init__(self) -> None:
        self.variant = ""
        self.where = ""
        self._handle: Any = None

    def _hook(self, module: Any, args: Any, output: Any) -> None:
        import torch

        logits = output[0] if isinstance(output, (tuple, list)) else output
        if not torch.is_tensor(logits) or not logits.is_floating_point():
            return
        last = logits[..., -1, :] if logits.dim() >= 3 else logits
        if not bool(torch.isfinite(last).all()):
            kind = "NaN" if bool(torch.isnan(last).any()) else "inf"
            raise NonFiniteError(
                f"variant '{self.variant}' produced {kind} logits ({self.where}); its parameters or weights "
                "make the model diverge: check the variant's parameters / the adapter, or try --dtype float32"
            )

    @contextmanager
    def installed(self, lm: Any) -> Iterator[NonFiniteGuard]:
        head = lm.hf_model.get_output_embeddings()
        if head is None:
            yield self
            return
        self._handle = head.register_forward_hook(self._hook)
        try:
            yield self
        finally:
            self._handle.remove()
            self._handle = None
