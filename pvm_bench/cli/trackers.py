"""Optional experiment trackers: send a finished run's config, metric rows and plots to
Weights & Biases (``run --wandb-project NAME``) or TensorBoard (``run --tensorboard DIR``).

Trackers only read what the run wrote (run.json, metrics.csv, plots/*.png); they never change
it. Neither package is a dependency: :func:`requested_trackers` checks, before a run starts,
that the package of every requested tracker is installed (extras ``pvm-bench[wandb]`` /
``pvm-bench[tensorboard]``) and otherwise raises one line saying what to install.

What is logged (both trackers): the run config (run.json ``config`` plus run id, seed, model
source/family/fingerprint, git commit, status) as hyper-parameters; the headline metric rows
(``metrics.csv`` rows with ``headline`` true and no band or position: per task and variant,
plus the pooled ALL and MACRO rows) as scalars named ``<metric>/<task>/<variant>``; the full
metric rows as a table (W&B) or a markdown text (TensorBoard); every plot as an image; summary.md
(both; as text in TensorBoard) and report.html (W&B run files).
TensorBoard also gets the per-position rows (decay curves: rows with ``t``) as scalar series
over ``t``, so curves can be overlaid across runs.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pvm_bench.cli.metricsfile import blank, is_headline, read_metric_rows
from pvm_bench.errors import UserError

#: tracker kind -> (flag, importable module, extra to install).
TRACKERS: dict[str, tuple[str, str, str]] = {
    "wandb": ("--wandb-project", "wandb", "pvm-bench[wandb]"),
    "tensorboard": ("--tensorboard", "tensorboard", "pvm-bench[tensorboard]"),
}


class TrackerError(UserError):
    """A requested tracker cannot be used (package missing)."""


@dataclass(frozen=True)
class Tracker:
    """One requested tracker: ``kind`` (``wandb``/``tensorboard``) and its target (project or log dir)."""

    kind: str
    target: str


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def requested_trackers(wandb_project: str | None = None, tensorboard: str | Path | None = None) -> list[Tracker]:
    """The trackers asked for, after checking that each one's package is installed.

    Raises:
        TrackerError: ``--wandb-project NAME needs the 'wandb' package ...: pip install 'pvm-bench[wandb]'``.
    """
    out: list[Tracker] = []
    for kind, target in (("wandb", wandb_project), ("tensorboard", tensorboard)):
        if target is None:
            continue
        flag, module, extra = TRACKERS[kind]
        if not str(target).strip():
            raise TrackerError(f"{flag} needs a value (a project name or a directory)")
        if not _installed(module):
            raise TrackerError(f"{flag} needs the '{module}' package, which is not installed: pip install '{extra}'")
        out.append(Tracker(kind, str(target)))
    return out


@dataclass
class RunPayload:
    """What a tracker logs, read from a run directory."""

    run_id: str
    config: dict[str, Any]
    rows: list[dict[str, str]] = field(default_factory=list)
    headline: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    #: summary.md and report.html when the report was written.
    documents: list[Path] = field(default_factory=list)


def _float(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_payload(run_dir: Path) -> RunPayload:
    """Config, metric rows, headline scalars, position curves and plot files of ``run_dir``."""
    run_dir = Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    model = record.get("model") or {}
    config = {
        **(record.get("config") or {}),
        "run_id": record.get("run_id"), "seed": record.get("seed"), "status": record.get("status"),
        "model_source": model.get("source"), "model_family": model.get("family"),
        "model_fingerprint": model.get("fingerprint"), "git_commit": (record.get("git") or {}).get("commit"),
    }
    payload = RunPayload(run_id=str(record.get("run_id") or run_dir.name), config=config)
    payload.rows = read_metric_rows(run_dir)
    for row in payload.rows:
        value = _float(row.get("value"))
        if value is None:
            continue
        name = f"{row.get('metric', '')}/{row.get('task', '')}/{row.get('variant', '')}"
        if not blank(row.get("t")):
            step = _float(row.get("t"))
            if step is not None:
                band = row.get("band") or "all"
                payload.curves.setdefault(f"{name}/{band}", []).append((int(step), value))
        elif is_headline(row):
            payload.headline[name] = value
    for series in payload.curves.values():
        series.sort()
    plots = run_dir / "plots"
    payload.plots = sorted(plots.glob("*.png")) if plots.is_dir() else []
    payload.documents = [run_dir / name for name in ("summary.md", "report.html") if (run_dir / name).is_file()]
    return payload


def _markdown_table(rows: list[dict[str, str]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


HEADLINE_COLUMNS = ["task", "variant", "metric", "value", "ci_low", "ci_high", "n", "diff", "p_value"]


def log_tensorboard(payload: RunPayload, log_dir: Path) -> Path:
    """Write the payload as TensorBoard events under ``log_dir/<run_id>``; returns that directory."""
    import numpy as np
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    target = Path(log_dir) / payload.run_id
    writer = SummaryWriter(log_dir=str(target))
    try:
        writer.add_text("config", "```json\n" + json.dumps(payload.config, indent=2, default=str) + "\n```", 0)
        headline_rows = [r for r in payload.rows if is_headline(r)]
        if headline_rows:
            writer.add_text("metrics", _markdown_table(headline_rows, HEADLINE_COLUMNS), 0)
        for doc in payload.documents:
            if doc.suffix == ".md":
                writer.add_text("summary", doc.read_text(encoding="utf-8"), 0)
        for name, value in payload.headline.items():
            writer.add_scalar(name, value, 0)
        for name, series in payload.curves.items():
            for step, value in series:
                writer.add_scalar(name, value, step)
        for path in payload.plots:
            with Image.open(path) as image:
                writer.add_image(f"plots/{path.stem}", np.asarray(image.convert("RGB")), 0, dataformats="HWC")
    finally:
        writer.close()
    return target


def log_wandb(payload: RunPayload, project: str) -> str:
    """Log the payload as one W&B run in ``project`` (named after the run id); returns its URL,
    or, when W&B runs offline (``WANDB_MODE=offline``), its local directory and how to upload it.

    W&B's own environment applies as usual (``WANDB_DIR``, ``WANDB_ENTITY``, ``WANDB_MODE``...);
    its console capture is off and it prints nothing (the run's own output stays readable).
    """
    import wandb

    run = wandb.init(project=project, name=payload.run_id, config=payload.config, job_type="eval",
                     settings=wandb.Settings(silent=True, console="off"))
    try:
        run.summary.update(payload.headline)
        data: dict[str, Any] = {}
        if payload.rows:
            columns: list[Any] = list(payload.rows[0])
            data["metrics"] = wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in payload.rows])
        for path in payload.plots:
            data[f"plots/{path.stem}"] = wandb.Image(str(path))
        if data:
            run.log(data)
        for doc in payload.documents:  # summary.md and report.html as run files
            run.save(str(doc), base_path=str(doc.parent), policy="now")
        if getattr(run, "offline", False):  # (reading run.url offline prints a warning)
            local = Path(run.dir).parent
            where = f"offline run {local} (upload it with `wandb sync {local}`)"
        else:
            where = run.url or run.dir
    finally:
        run.finish()
    return str(where)


def log_run(run_dir: Path, trackers: list[Tracker], log: Callable[[str], None] = print) -> dict[str, str]:
    """Send ``run_dir`` to every tracker; returns ``{kind: where}`` for those that succeeded.

    A tracker that fails (no network, not logged in) is reported through ``log`` as one
    ``warning:`` line; the run's own files are never touched, so the failure costs nothing but
    the logging.
    """
    if not trackers:
        return {}
    payload = read_payload(run_dir)
    done: dict[str, str] = {}
    for tracker in trackers:
        try:
            if tracker.kind == "tensorboard":
                done[tracker.kind] = str(log_tensorboard(payload, Path(tracker.target)))
            else:
                done[tracker.kind] = log_wandb(payload, tracker.target)
        except Exception as exc:  # noqa: BLE001 -- a tracker problem must not hide the finished run
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log(f"warning: could not log the run to {tracker.kind} ({type(exc).__name__}: {first[:200]})")
    return done


__all__ = ["TRACKERS", "RunPayload", "Tracker", "TrackerError", "log_run", "log_tensorboard", "log_wandb",
           "read_payload", "requested_trackers"]
