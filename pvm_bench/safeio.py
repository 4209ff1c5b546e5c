"""Symlink-safe writes into a run directory: the one place that opens run files for writing.

A run directory may come from someone else (copied, unpacked, shared), so an entry in it may be
a symbolic link planted to point outside (``RUN/.lock -> ~/.bashrc``, ``RUN/plots -> /etc``).
Every writer of run files goes through this module:

* :func:`open_nofollow` opens a file with ``O_NOFOLLOW`` (a symlinked file is refused, never
  truncated or appended to);
* :func:`ensure_dir` creates a folder (``RUN/plots``, ``RUN/attention``) and refuses one that is
  a symlink;
* :func:`temp_beside` creates a uniquely named temp file (``tempfile.mkstemp``: ``O_EXCL``, so
  never an existing file or link) next to the final path, so two writers of the same file never
  share a temp name; the final ``os.replace`` renames over a link instead of following it.

A refusal is :class:`UnsafePathError`: one line naming the entry and the fix (exit 2).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from pvm_bench.errors import UserError

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class UnsafePathError(UserError):
    """A run-directory entry that pvm-bench would write through is a symbolic link."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path} is a symbolic link; pvm-bench writes only real files inside the run directory, so it "
            f"refuses to follow it: remove the link (`rm {self.path}`) and run the command again"
        )


def refuse_symlink(path: Path | str) -> None:
    """Raise :class:`UnsafePathError` when ``path`` itself (not its parents) is a symlink."""
    if Path(path).is_symlink():
        raise UnsafePathError(path)


def open_nofollow(path: Path | str, flags: int, mode: int = 0o644) -> int:
    """``os.open(path, flags | O_NOFOLLOW)``; a symlink at ``path`` is :class:`UnsafePathError`."""
    refuse_symlink(path)  # also where O_NOFOLLOW does not exist
    try:
        return os.open(path, flags | O_NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the link appeared after the check
            raise UnsafePathError(path) from None
        raise


def ensure_dir(path: Path | str) -> Path:
    """Create folder ``path`` (and missing parents) unless it exists; a symlink is refused."""
    path = Path(path)
    refuse_symlink(path)
    path.mkdir(parents=True, exist_ok=True)
    refuse_symlink(path)
    return path


def temp_beside(path: Path | str) -> tuple[int, Path]:
    """A new, uniquely named temp file in ``path``'s folder (``.<name>.<random>.tmp``, matched by
    the runner's ``.*.tmp`` cleanup): ``(fd open for writing, temp path)``."""
    path = Path(path)  # its folder is checked where it is made (ensure_dir): a run dir may itself be a link
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would make shared run directories unreadable to the group
    return fd, Path(name)
