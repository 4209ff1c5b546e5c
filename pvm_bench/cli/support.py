"""What every CLI command module shares: the stderr console and the one-line error convention.

A :class:`~pvm_bench.errors.UserError` becomes one ``error:`` line on stderr and exit status 2
(3 for an :class:`~pvm_bench.errors.OutputError`: an output that cannot be written).
A pydantic ``ValidationError`` of a typed config (e.g. :class:`pvm_bench.config.RunConfig`)
becomes the same kind of line naming the flag: :func:`config_error`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from pvm_bench.errors import UserError

try:  # typer 0.29 ships its own copy of click: its classes and exceptions are the ones in play
    from typer._click import Command, Context, Parameter
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer builds on click itself
    from click import ClickException, Command, Context, Parameter, UsageError  # type: ignore[no-redef]
    from click.exceptions import NoArgsIsHelpError  # type: ignore[no-redef]

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one ``error:`` line and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :class:`UserError` raised by ``func`` into one error line and its exit status (2, or 3
    for an output that cannot be written)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except OSError as exc:  # a full disk in any writer that bypasses results.atomic_write_* (csv, png)
            from pvm_bench.errors import is_disk_full

            if not is_disk_full(exc, by_message=True):
                raise
            raise fail(
                f"disk full writing {exc.filename or 'the output files'}; free space and run the command again"
            ) from None

    return wrapper


def csv_names(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (a comma-separated option value; None -> [])."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


class OptionError(UserError):
    """A command-line option has a value outside its allowed range or choices."""


def _phrase(error: Mapping[str, Any]) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    bounds = {
        "greater_than_equal": ">= {ge}",
        "greater_than": "> {gt}",
        "less_than_equal": "<= {le}",
        "less_than": "< {lt}",
    }
    if kind in bounds:
        return "must be " + bounds[kind].format(**{k: _num(v) for k, v in ctx.items()})
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")


def _num(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return str(value)


def config_error(exc: Any) -> OptionError:
    """One line for the first problem of a pydantic ValidationError: ``--flag must be ... (got X)``
    (flags spelled by :func:`pvm_bench.config.flag_name`)."""
    from pvm_bench.config import flag_name  # here: ``pvm-bench --help`` loads this module, not pydantic

    errors = exc.errors()
    if not errors:
        return OptionError(str(exc))
    first = errors[0]
    loc = first.get("loc") or ("value",)
    field = str(loc[0])
    got = first.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
    more = f"; {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    return OptionError(f"{flag_name(field)} {_phrase(first)}{shown}{more}")


__all__ = [
    "ClickException",
    "Command",
    "Context",
    "NoArgsIsHelpError",
    "Parameter",
    "UsageError",
    "OptionError",
    "config_error",
    "console",
    "fail",
    "user_errors",
]
