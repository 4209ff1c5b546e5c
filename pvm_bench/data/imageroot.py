"""Where a data file's image paths may point: resolved against the data file's folder, confined
to the data root (``--data-dir``) unless the user passes ``--allow-outside-data``.

A data table from someone else may name ``/home/me/.ssh/id_rsa.png`` or ``../../secret.png`` as an
image; reading it would put that file into the model's input and its thumbnail into report.html.
So while a task loads from ``--data-dir`` (:func:`image_root`, entered by the runner and by
``data check``), every :class:`~pvm_bench.tasks.base.LazyImage` made remembers the scope
(:func:`current_root`), and a path-only image is opened through :func:`resolve_image_path`:

* a relative path is resolved against the folder of the data file its row came from
  (:func:`set_data_file`, called by :func:`pvm_bench.data.tables.load_rows`), not the current directory;
* the resolved real path (symlinks followed) must lie inside the data root, else
  :class:`ImagePathError` (the sample fails with one line naming the path and the flag).

Outside such a scope (hub data, tasks generating their own images) paths are used as given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path

from pvm_bench.errors import TaskError


class ImagePathError(TaskError):
    """An image path of a data file points outside the data root."""


@dataclass(frozen=True)
class ImageRoot:
    """The data root (resolved), the folder relative paths are resolved against, and whether
    paths outside the root are allowed (``--allow-outside-data``)."""

    root: Path
    base: Path
    allow_outside: bool = False


_CURRENT: ContextVar[ImageRoot | None] = ContextVar("pvm_bench_image_root", default=None)


@contextmanager
def image_root(data_dir: Path | str | None, *, allow_outside: bool = False) -> Iterator[None]:
    """Within the block, images made from data rows are confined to ``data_dir`` (None: no scope)."""
    root = Path(data_dir).resolve() if data_dir is not None else None
    token = _CURRENT.set(ImageRoot(root, root, allow_outside) if root is not None else None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def set_data_file(path: Path) -> None:
    """Relative image paths of the rows read next resolve against ``path``'s folder."""
    scope = _CURRENT.get()
    if scope is not None:
        _CURRENT.set(replace(scope, base=Path(path).resolve().parent))


def current_root() -> ImageRoot | None:
    """The scope in force (captured by each LazyImage when it is made)."""
    return _CURRENT.get()


def resolve_image_path(src: str | Path, scope: ImageRoot | None, name: str) -> Path:
    """The file to open for a path-only image (see the module docstring)."""
    path = Path(src)
    if scope is None:
        return path
    full = path if path.is_absolute() else scope.base / path
    if not scope.allow_outside and not full.resolve().is_relative_to(scope.root):
        raise ImagePathError(
            f"{name}: image path {src} leaves the data directory (pass --allow-outside-data if you trust the data, "
            f"or move the image under {scope.root}; relative paths start at the data file's folder)"
        )
    return full
