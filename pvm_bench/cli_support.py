"""What every CLI command module shares: the stderr console and the one-line error convention.

A :class:`~pvm_bench.errors.UserError` becomes one ``error:`` line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from pvm_bench.errors import UserError

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one ``error:`` line and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :class:`UserError` raised by ``func`` into one error line and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            raise fail(str(exc)) from None

    return wrapper
