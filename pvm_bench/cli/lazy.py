"""Command groups whose commands load on first use, so ``pvm-bench --help`` never imports torch.

A command module (``pvm_bench.report.commands``...) imports its own heavy dependencies; a
:class:`LazyGroup` lists its commands from a static table (:class:`LazyCommand`: module, hook,
one-line help, help panel) and imports the module only when one of them runs or shows its own
help. The group also

- adds ``--threads N`` to the commands that run a model (or fills their own ``--threads``
  when left unset) and applies it with :func:`pvm_bench.threads.apply_threads`;
- prints click usage errors (unknown option, bad value) as one ``error:`` line, exit 2, like
  every other bad input (:mod:`pvm_bench.cli.support`).

``tests/core/test_cli_lazy.py`` checks that the static table matches the loaded commands.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from pvm_bench.cli.support import ClickException, Command, Context, NoArgsIsHelpError, Parameter, UsageError


@dataclass(frozen=True)
class LazyCommand:
    """A command (or command group) defined in ``module`` by calling ``module.<hook>(typer_app)``."""

    module: str
    help: str
    hook: str = "register"
    panel: str | None = None
    #: Sub-command paths below this command that run a model ("" = the command itself).
    threaded: tuple[str, ...] = ()


OVERRIDE_TASK_HELP = ("Let an --include-path or entry-point task replace the task of the same name (repeatable); "
                      "without it a second task of one name is refused.")
THREADS_HELP = "torch CPU threads (default: OMP_NUM_THREADS, else the cores this process may use that are idle)."


@functools.cache
def _threads_option() -> Parameter:
    """The ``--threads`` option as typer builds it (same help rendering as every other option)."""
    app = typer.Typer()

    @app.command()
    def _f(
        threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP, rich_help_panel="Resources")] = None,
    ) -> None:
        pass

    return typer.main.get_command(app).params[0]


def add_threads(command: Command) -> None:
    """Make ``command`` apply ``--threads`` (default from the available cores) before it runs.

    A command that declares its own ``threads`` parameter keeps it; only an unset value is
    replaced by :func:`pvm_bench.threads.default_threads`. Otherwise ``--threads`` is added and
    applied to torch here.
    """
    callback = command.callback
    if callback is None or getattr(callback, "_pvm_threads", False):
        return
    own = next((p for p in command.params if p.name == "threads"), None)
    if own is not None:
        own.help = THREADS_HELP  # type: ignore[attr-defined]

    @functools.wraps(callback)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from pvm_bench.threads import apply_threads, default_threads

        if own is not None:
            if kwargs.get("threads") is None:
                kwargs["threads"] = default_threads()
        else:
            apply_threads(kwargs.pop("threads", None))
        return callback(*args, **kwargs)

    wrapped._pvm_threads = True  # type: ignore[attr-defined]
    command.callback = wrapped
    if own is None:
        command.params.append(_threads_option())


def _walk(command: Command, path: str) -> Command | None:
    for part in filter(None, path.split()):
        commands = getattr(command, "commands", None)
        if commands is None:
            return None
        command = commands.get(part)
        if command is None:
            return None
    return command


class LazyGroup(TyperGroup):
    """A typer group that also serves the commands of :attr:`lazy` (name -> :class:`LazyCommand`)."""

    lazy: dict[str, LazyCommand] = {}
    #: Command names listed first, in this order (the rest follow in registration order).
    order: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False
        self._missing: set[str] = set()

    # ------------------------------------------------------------------ commands

    def list_commands(self, ctx: Context) -> list[str]:
        names = list(self.commands) + [n for n in self.lazy if n not in self.commands and n not in self._missing]
        rank = {name: i for i, name in enumerate(self.order)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        spec = self.lazy.get(cmd_name)
        if spec is None or cmd_name in self._missing:
            return None
        if self._listing:  # the command list of --help: the static line, no import
            return TyperCommand(name=cmd_name, help=spec.help, rich_help_panel=spec.panel)
        return self._load(cmd_name, spec)

    def _load(self, cmd_name: str, spec: LazyCommand) -> Command | None:
        try:
            module = importlib.import_module(spec.module)
        except ModuleNotFoundError as exc:
            if exc.name and spec.module.startswith(exc.name):
                self._missing.add(cmd_name)  # that part of the package is not in this build
                return None
            raise
        holder = typer.Typer()
        getattr(module, spec.hook)(holder)
        loaded = typer.main.get_group(holder)
        for name, command in loaded.commands.items():
            if name in self.lazy and self.lazy[name].module == spec.module and name not in self.commands:
                if spec.panel and hasattr(command, "rich_help_panel"):
                    command.rich_help_panel = self.lazy[name].panel
                for path in self.lazy[name].threaded:
                    target = _walk(command, path)
                    if target is not None:
                        add_threads(target)
                self.commands[name] = command
        return self.commands.get(cmd_name)

    def format_help(self, ctx: Context, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    # ------------------------------------------------------------------ errors

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Typer's main, with usage errors as one ``error:`` line (exit 2)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            if exc.format_message():  # typer 0.29 printed the help already while raising
                typer.echo(exc.format_message())
            sys.exit(2)
        except UsageError as exc:
            sys.exit(usage_error(exc))
        except ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def usage_error(exc: UsageError) -> int:
    """Print a click usage error as one ``error:`` line naming the command's --help; return 2."""
    from pvm_bench.cli.support import console

    message = exc.format_message().rstrip(".")
    where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    message = message[0].lower() + message[1:] if message else "bad command line"
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message + where)}", highlight=False, soft_wrap=True)
    return 2


def lazy_group(commands: dict[str, LazyCommand], order: Sequence[str] = ()) -> type[LazyGroup]:
    """A :class:`LazyGroup` subclass serving ``commands``, listing ``order`` first."""
    return type("LazyGroupWith", (LazyGroup,), {"lazy": dict(commands), "order": tuple(order)})


__all__ = ["LazyCommand", "LazyGroup", "THREADS_HELP", "add_threads", "lazy_group", "usage_error"]
