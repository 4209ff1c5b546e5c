"""Writing report outputs: the one place where a failed write becomes one line and exit 3.

``report`` (into the run directory), ``baseline -o``, ``compare -o`` and ``check --markdown`` write
through :func:`write_output` or inside :func:`output_errors`. A read-only filesystem, a missing
folder, a directory where the file should be, a permission problem or a full disk become an
:class:`~pvm_bench.errors.OutputError` naming the file and the fix; the CLI exits 3, so a CI step
tells an I/O failure from a regression (``check`` exits 1) or bad input (2).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pvm_bench.errors import OutputError, describe_exception, is_disk_full


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "the filesystem is read-only"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is a file, not a folder"
    if isinstance(exc, FileNotFoundError):
        return "its folder does not exist"
    return describe_exception(exc)


@contextmanager
def output_errors(what: str, path: Path | str | None = None) -> Iterator[None]:
    """Turn an OSError raised inside the block into one :class:`OutputError` line naming the
    file (the error's own filename when it has one, else ``path``)."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        target = getattr(exc, "path", None) or exc.filename or path
        if is_disk_full(exc, by_message=True):
            raise OutputError(f"disk full writing {what} {target}; free space and run the command again") from None
        raise OutputError(
            f"cannot write {what} {target}: {_reason(exc)}; pick a writable location (an existing folder, a file "
            "name that is not a directory) and run the command again"
        ) from None


def write_output(path: Path | str, text: str, *, what: str, append: bool = False) -> Path:
    """Write ``text`` to ``path`` (atomically; ``append``: add to the end, as CI step summaries
    want). Failures are :class:`OutputError` (exit 3)."""
    from pvm_bench.results import atomic_write_text

    path = Path(path)
    with output_errors(what, path):
        if append:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text)
        else:
            atomic_write_text(path, text)
    return path


def make_parent(path: Path | str, what: str) -> None:
    """Create the folder ``path`` goes in (``-o reports/baselines/x.json``); failures exit 3."""
    with output_errors(what, path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def check_writable_dir(directory: Path | str, what: str) -> None:
    """Refuse early (exit 3) when ``directory`` exists but cannot be written, so a report on a
    read-only copy fails with one line before any work."""
    directory = Path(directory)
    if directory.is_dir() and not os.access(directory, os.W_OK):
        raise OutputError(
            f"cannot write {what} into {directory}: the folder is read-only; copy the run somewhere writable "
            f"(cp -r {directory} /tmp/) and run the command on the copy"
        )
