"""The model a ``pvm-bench bench`` command measures: the user's, or one random Qwen3-VL built here.

Every bench command (``batch``, ``probe``, ``replay``, ``pvm``) takes ``--model``; without it, the
command builds a random Qwen3-VL with :func:`pvm_bench.testing.build_tiny_model` (seed 0, so the
weights are the same every time) in a temporary directory that is removed when the command ends.
The default size, ``bench`` (~87M parameters), is where per-token overheads become realistic
ratios; ``--random-size`` picks another :data:`pvm_bench.testing.SIZES` entry (the tests use
``tiny`` to exercise the same path in a second).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from pvm_bench.errors import UserError

DEFAULT_SIZE = "bench"
FAMILY = "qwen3_vl"

#: The ``--model`` option of every bench command.
ModelOption = Annotated[str | None, typer.Option(
    help="Model dir or hub id (default: a random Qwen3-VL of --random-size, ~87M parameters for 'bench', "
         "built in a temp dir).")]
#: The ``--random-size`` option of every bench command.
RandomSizeOption = Annotated[str, typer.Option(
    "--random-size", help="Size of the random model built when --model is not given (tiny | small | bench).")]
#: The ``--device`` option of every bench command (its default differs per command).
DeviceOption = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")]


def random_label(size: str) -> str:
    """What results record as ``model`` for a random model of ``size`` (its temp path means nothing later)."""
    return f"testing:{FAMILY}/{size} (random)"


@contextlib.contextmanager
def bench_model(model: str | None, size: str = DEFAULT_SIZE,
                note: Callable[[str], object] | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(what to load, the label results record)`` for a bench command.

    ``model`` given: ``(model, model)``, nothing built. None: a random ``size`` Qwen3-VL (seed 0)
    is built in a temporary directory, removed on exit; ``note`` (e.g. a console's print) is told
    before the build, which takes a few seconds at ``bench`` size. An unknown ``size`` is a
    :class:`~pvm_bench.errors.UserError` naming the sizes.
    """
    if model is not None:
        yield model, model
        return
    from pvm_bench.testing import SIZES, build_tiny_model

    if size not in SIZES:
        raise UserError(f"unknown --random-size '{size}'; use one of {', '.join(SIZES)}")
    with tempfile.TemporaryDirectory(prefix="pvm-bench-model-") as tmp:
        if note is not None:
            note(f"building a random Qwen3-VL (size '{size}') ...")
        yield str(build_tiny_model(FAMILY, Path(tmp) / "model", seed=0, size=size)), random_label(size)
