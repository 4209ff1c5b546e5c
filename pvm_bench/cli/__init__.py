"""The ``pvm-bench`` command line: the typer app, its lazily loaded command table, ``run``'s flags.

Owns turning argv into calls and errors into one ``error:`` line (exit 2). May import every other
package of pvm_bench, but only inside command bodies or modules loaded on first use, so that
``pvm-bench --help`` and ``pvm-bench tasks`` import neither torch nor pandas. Nothing below the CLI
imports it, except the ``commands`` modules of other packages (their CLI faces).

``app`` (the console script ``pvm_bench.cli:app``) loads :mod:`pvm_bench.cli.main` on first
access (PEP 562), so importing a helper module such as :mod:`pvm_bench.cli.support` does not
build the whole command tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pvm_bench.cli.main import app

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        import importlib

        return importlib.import_module("pvm_bench.cli.main").app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
