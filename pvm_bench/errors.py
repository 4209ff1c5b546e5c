"""The user-facing error classes and the one loader wrapper.

Anything raised as a :class:`UserError` is bad input or an unavailable resource: the CLI
prints its message as one ``error:`` line and exits with status 2. Messages name the thing
and the fix.

:func:`load_guard` is the single place where an arbitrary exception raised while reading a
user-supplied file (model weights, adapter, data table, image) becomes a :class:`UserError`
naming that file. Loaders wrap their reads in it instead of catching per library.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class UserError(Exception):
    """Bad input or a missing resource, reported to the user as one line (exit :attr:`exit_code`)."""

    #: The CLI's exit status for this error: 2 (bad input); :class:`OutputError` has its own.
    exit_code = 2


class OutputError(UserError):
    """An output file cannot be written (read-only filesystem, missing folder, a directory in the
    way, permission, disk full): exit 3, so CI tells an I/O failure from a regression (1)."""

    exit_code = 3


class TaskError(UserError, ValueError):
    """A problem with a task or its data; the message names the thing and the fix (re-exported by
    :mod:`pvm_bench.tasks.base`; defined here so that :mod:`pvm_bench.data.tables` need not import tasks)."""


class FileFormatError(UserError, ValueError):
    """A user-supplied file cannot be read; the message names the file (and line) and the fix."""


class DiskFullError(UserError, OSError):
    """The disk filled up (ENOSPC or a short write) while writing ``path``."""

    def __init__(self, path: Path | str, action: str = "pvm-bench run --resume RUN_DIR") -> None:
        self.path = Path(path)
        super().__init__(f"disk full writing {self.path}; free space and {action}")
        self.errno = errno.ENOSPC


def one_line(text: str, limit: int = 300) -> str:
    """``text`` collapsed to one line of at most ``limit`` characters (library messages span lines)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def validation_summary(exc: BaseException, limit: int = 4) -> str:
    """pydantic's ValidationError as ``field: problem; ...`` (no docs URLs, no input echo)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return one_line(str(exc), 200)
    problems = [f"{'.'.join(map(str, e.get('loc', ()))) or 'record'}: {e.get('msg', '')}" for e in errors()]
    return one_line("; ".join(problems[:limit]) + (" ..." if len(problems) > limit else ""), 200)


def read_model_file(path: Path, model: Any, fix: str) -> Any:
    """``path`` validated as the pydantic ``model`` (a run directory's data file), or None when absent.

    A file that cannot be read or is not valid is one :class:`FileFormatError` line ending in ``fix``."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return model.model_validate_json(path.read_bytes())
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        reason = validation_summary(exc) if callable(getattr(exc, "errors", None)) else str(exc)
        raise FileFormatError(f"cannot read {path}: {reason}; {fix}") from exc


def is_disk_full(exc: BaseException, *, by_message: bool = False) -> bool:
    """A :class:`DiskFullError` or an OSError with errno ENOSPC/EDQUOT; ``by_message``: also an
    OSError whose text says "No space left" without the errno (pyarrow raises those)."""
    if isinstance(exc, DiskFullError) or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        return True
    return by_message and isinstance(exc, OSError) and "no space left" in str(exc).lower()


def describe_exception(exc: BaseException) -> str:
    """A short, one-line reason for ``exc`` that a user can act on."""
    if isinstance(exc, StopIteration):
        return "the file is empty"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start}); is it a binary file?"
    if isinstance(exc, IsADirectoryError):
        return "it is a directory, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "it does not exist"
    name = type(exc).__name__
    text = one_line(str(exc), 200)
    if name == "SafetensorError" or "safetensors" in type(exc).__module__:
        return f"not a valid safetensors file ({text or name}); it is truncated, corrupt or not safetensors"
    if name in ("HeaderTooLarge", "HeaderTooSmall", "InvalidHeaderDeserialization"):
        return f"not a valid safetensors file ({name}); it is truncated, corrupt or not safetensors"
    return f"{name}: {text}" if text else name


@contextmanager
def load_guard(kind: str, path: Path | str, fix: str) -> Iterator[None]:
    """Turn any exception raised inside the block into one :class:`FileFormatError` line.

    ``kind`` names what is read ("model weights", "PVM adapter", "data file"), ``path`` the
    file or directory, ``fix`` what the user should do. A :class:`UserError` raised inside
    (already a good message) passes through; so do KeyboardInterrupt and disk-full errors.
    """
    try:
        yield
    except UserError:
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 -- libraries raise anything for bad files; this is the one boundary
        if is_disk_full(exc):
            raise
        raise FileFormatError(f"cannot read {kind} {path}: {describe_exception(exc)}; {fix}") from exc
