"""nox sessions: tests, lint, typecheck, docs-free (the package works without docs tooling)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
CPU_TORCH = "torch==2.13.0"


@nox.session
def tests(session: nox.Session) -> None:
    session.install(CPU_TORCH)
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "pvm_bench", "tasks", "tests")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install(CPU_TORCH)
    session.install("-e", ".", "mypy")
    session.run("mypy", "--ignore-missing-imports", "pvm_bench")


@nox.session(name="docs-free")
def docs_free(session: nox.Session) -> None:
    """Install the wheel (not editable) and run the CLI smoke commands from the README."""
    session.install(CPU_TORCH)
    session.install(".")
    session.run("pvm-bench", "models")
    session.run("pvm-bench", "tasks")
