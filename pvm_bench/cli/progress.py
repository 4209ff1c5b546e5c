"""Progress of ``pvm-bench run`` and its closing headline table.

Two displays, one callback signature ``progress(done, total, variant=None, task=None)``
(what :meth:`pvm_bench.runner.run.Runner.execute` calls after every batch):

- :class:`BarProgress` on a terminal: a rich bar whose label is the current variant and task;
- :class:`LineProgress` anywhere else (CI, nohup, SLURM logs): one plain line on stderr when the
  variant or task changes and at least every ``interval`` seconds (default 30, env
  ``PVM_BENCH_PROGRESS_INTERVAL``) from a timer thread, so a slow batch never leaves the log
  silent: ``progress: pvm swatch_recall 40/200 (20%), 1.31 samples/s, ETA 2m02s``.

:func:`headline_rows` reads the metric rows the report wrote (metrics.csv, else summary.csv) into
the closing table.
"""

from __future__ import annotations

import csv
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

#: The line printed above the closing table (a table title would wrap to the table's width).
HEADLINE_TITLE = ("headline metric per task and variant (95% CI; delta = paired difference vs base, p-value; "
                  "an ablated V+blind:after=K vs V)")
#: Seconds between plain progress lines when nothing changes.
DEFAULT_INTERVAL = 30.0
INTERVAL_ENV = "PVM_BENCH_PROGRESS_INTERVAL"


def progress_interval() -> float:
    """The plain-line interval: ``$PVM_BENCH_PROGRESS_INTERVAL`` seconds when valid, else 30."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if math.isfinite(value) and value > 0 else DEFAULT_INTERVAL


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class ProgressState:
    """Counts and rate of the samples run by this process (resumed ones excluded from the rate)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.done = 0
        self.total = 0
        self.variant: str | None = None
        self.task: str | None = None
        self._start: float | None = None
        self._start_done = 0

    def update(self, done: int, total: int, variant: str | None = None, task: str | None = None) -> bool:
        """Record a callback; return True when the variant or task changed."""
        if self._start is None:
            self._start, self._start_done = self.clock(), done
        changed = (variant, task) != (self.variant, self.task) and (variant is not None or task is not None)
        self.done, self.total = done, total
        if variant is not None:
            self.variant = variant
        if task is not None:
            self.task = task
        return changed

    @property
    def rate(self) -> float:
        """Samples per second since the first callback (nan before any sample finished here)."""
        if self._start is None:
            return math.nan
        elapsed = self.clock() - self._start
        ran = self.done - self._start_done
        return ran / elapsed if elapsed > 0 and ran > 0 else math.nan

    @property
    def label(self) -> str:
        parts = [p for p in (self.variant, self.task) if p]
        return " ".join(parts) if parts else "starting"

    def line(self) -> str:
        rate = self.rate
        eta = (self.total - self.done) / rate if rate and math.isfinite(rate) else math.nan
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        speed = f"{rate:.2f} samples/s" if math.isfinite(rate) else "- samples/s"
        return f"progress: {self.label} {self.done}/{self.total}{pct}, {speed}, ETA {format_duration(eta)}"


class LineProgress:
    """Plain progress lines for logs (see the module docstring). Use as a context manager."""

    def __init__(
        self, stream: TextIO, interval: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.interval = progress_interval() if interval is None else interval
        self.state = ProgressState(clock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, done: int, total: int, variant: str | None = None, task: str | None = None) -> None:
        with self._lock:
            changed = self.state.update(done, total, variant, task)
        if changed or done >= total > 0:
            self.emit()

    def emit(self) -> None:
        with self._lock:
            line = self.state.line()
            print(line, file=self.stream, flush=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.emit()

    def __enter__(self) -> LineProgress:
        self._thread = threading.Thread(target=self._tick, name="pvm-bench-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


class BarProgress:
    """A rich progress bar labelled with the current variant and task."""

    def __init__(self, console: Any, run_id: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.run_id = run_id
        self.state = ProgressState()

        class Rate(TextColumn):
            def render(inner, task: Any) -> Any:  # noqa: N805 -- rich column API
                rate = self.state.rate
                return super().render(task) if not math.isfinite(rate) else f"{rate:.2f} samples/s"

        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(""),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
        )
        self.handle = self.bar.add_task(f"run {run_id}", total=None)

    def __call__(self, done: int, total: int, variant: str | None = None, task: str | None = None) -> None:
        self.state.update(done, total, variant, task)
        self.bar.update(self.handle, completed=done, total=total, description=f"{self.run_id}: {self.state.label}")

    def log(self, message: str) -> None:
        self.bar.console.print(message, highlight=False, soft_wrap=True, markup=False)

    def __enter__(self) -> BarProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)


# ---------------------------------------------------------------------------- headline


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _cells(row: dict[str, str], value: str, lo: str, hi: str, diff: str, dlo: str, dhi: str, p: str) -> tuple[str, str]:
    acc, a_lo, a_hi = (_float(row.get(k)) for k in (value, lo, hi))
    d, d_lo, d_hi, pv = (_float(row.get(k)) for k in (diff, dlo, dhi, p))
    accuracy = "-" if math.isnan(acc) else f"{acc:.3f}"
    if math.isfinite(a_lo) and math.isfinite(a_hi):
        accuracy += f" [{a_lo:.3f}, {a_hi:.3f}]"
    delta = ""
    if math.isfinite(d):
        delta = f"{d:+.3f}"
        if math.isfinite(d_lo) and math.isfinite(d_hi):
            delta += f" [{d_lo:+.3f}, {d_hi:+.3f}]"
        if math.isfinite(pv):
            delta += f" p={pv:.3g}"
    return accuracy, delta


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def headline_rows(run_dir: Path) -> list[dict[str, str]]:
    """The closing table: per task and variant, the headline metric with its 95% CI and the
    paired delta vs base.

    Read from the long metric rows the report writes (``metrics.csv``: rows with ``headline``
    true and neither band nor position, :func:`pvm_bench.cli.metricsfile.is_headline`: tasks then the pooled
    ALL and MACRO rows),
    else from ``summary.csv``'s accuracy columns. Empty when the run has no summary (``--no-report``).
    """
    run_dir = Path(run_dir)
    from pvm_bench.cli.metricsfile import is_headline, read_metric_rows

    summary = run_dir / "summary.csv"
    out: list[dict[str, str]] = []
    rows = read_metric_rows(run_dir)
    # V+blind:after=K is compared with V (its dependence row, band = the ablated variant), not with base
    own = {(r.get("task"), r.get("band"), r.get("metric")): r for r in rows if r.get("kind") == "dependence"}
    for row in (r for r in rows if is_headline(r)):
        value, delta = _cells(row, "value", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "p_value")
        ref = own.get((row.get("task"), row.get("variant"), row.get("metric")))
        if ref is not None:
            delta = _cells(ref, "value", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "p_value")[1]
            delta += f" (vs {ref.get('variant')})" if delta else ""
        out.append({"task": row.get("task", ""), "variant": row.get("variant", ""), "metric": row.get("metric", ""),
                    "n": row.get("n", ""), "value [95% CI]": value, "delta vs base": delta})
    if out:
        return out
    if summary.is_file():
        for row in _read_csv(summary):
            if "accuracy" not in row or "task" not in row:
                return []
            value, delta = _cells(row, "accuracy", "acc_ci_low", "acc_ci_high", "diff_vs_base", "diff_ci_low",
                                  "diff_ci_high", "p_value")
            out.append({"task": row["task"], "variant": row.get("variant", ""), "metric": "accuracy",
                        "n": row.get("n_samples", ""), "value [95% CI]": value, "delta vs base": delta})
    return out


def headline_table(run_dir: Path) -> Any | None:
    """A rich Table of :func:`headline_rows`, or None when there is nothing to show."""
    rows = headline_rows(run_dir)
    if not rows:
        return None
    from rich.table import Table

    columns = list(rows[0])
    if not any(r["delta vs base"] for r in rows):
        columns.remove("delta vs base")
    table = Table(*columns)
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    return table


__all__ = [
    "BarProgress",
    "HEADLINE_TITLE",
    "LineProgress",
    "ProgressState",
    "format_duration",
    "headline_rows",
    "headline_table",
    "progress_interval",
]
