"""nox sessions: tests, lint, typecheck, docs-free (the package works without docs tooling), lmms."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
CPU_TORCH = "torch==2.13.0"
LMMS_EVAL = "lmms-eval==0.7.3"
#: The tests that need lmms-eval (each skips, saying so, in `tests` where it is absent).
LMMS_TESTS = ("tests/bridge", "tests/tasks/test_task_parity.py")


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


@nox.session
def lmms(session: nox.Session) -> None:
    """The lmms-eval bridge and live scoring-parity tests with lmms-eval installed beside pvm-bench,
    as the README installs it: the [lmms] extra (filelock<4 among it), then lmms-eval without its
    dependencies (it hard-requires torchvision, which does not import beside the CPU torch wheel).
    Here a skipped test is a failure: it means lmms-eval did not import."""
    session.install(CPU_TORCH)
    session.install("-e", ".[test,lmms]")
    session.install("--no-deps", LMMS_EVAL)
    out = session.run("python", "-m", "pytest", "-q", "-rs", *LMMS_TESTS, *session.posargs, silent=True)
    print(out)
    if out and " skipped" in out:
        session.error("lmms-eval tests were skipped in the lmms session (see the SKIPPED lines above)")
