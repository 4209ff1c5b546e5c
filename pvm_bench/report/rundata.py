"""Read one run directory for the report layer: run.json, samples.jsonl, attention records.

:func:`load_run` returns a :class:`RunData`; every report module (summary, markdown, html,
compare, check) starts from it. Attention records are never loaded row by row: ``RunData.agg``
holds the aggregates DuckDB computes over them once (:mod:`pvm_bench.report.attention_agg`);
``RunData.attention`` reads the full rows on demand (memory grows with the run: for users and
small tests only, no report module uses it). Attention records of a killed run that were never
merged (``attention/part-*.parquet``) are read together with the store, keeping only rows
of samples that were written and the last copy of a re-run sample's rows (as the runner's merge does).

A section that cannot be computed (an unreadable attention file, memory) is recorded in
``RunData.failures``; :func:`load_run` then raises :class:`ReportIncompleteError` unless
``allow_partial`` (the report says so at its top instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyarrow import ArrowException

from pvm_bench.attention_store import attention_sources
from pvm_bench.errors import UserError
from pvm_bench.report.attention_agg import AttentionAggregates
from pvm_bench.report.attention_engine import NUMERIC_ATTENTION, ReportIncompleteError, is_memory_error
from pvm_bench.report.attention_load import load_attention
from pvm_bench.results import RunRecord, SampleRecord, read_samples

REFERENCE_VARIANT = "base"


class ReportInputError(UserError, ValueError):
    """A run directory or baseline file that cannot be read; the message names the file and
    the fix. The CLI turns it into exit code 2."""


SAMPLE_COLUMNS = [
    "variant", "task", "sample_id", "repeat", "score", "truncated", "n_generated",
    "max_new_tokens", "finish_reason", "error", "tokens_per_s", "decode_s", "total_s",
    "prompt", "output", "parsed", "target",
]
#: Columns added from the typed score and the sample metadata: ``metadata`` (sample metadata
#: without the scorer's details), ``extractor`` (str or None), ``score_flags`` (dict of bools),
#: ``sub_scores`` (dict of floats), ``score_details`` (the scorer's other details).
TYPED_COLUMNS = ["metadata", "extractor", "score_flags", "sub_scores", "score_details"]
ATTENTION_KEYS = ("variant", "task", "sample_id", "repeat", "step")


@dataclass
class RunData:
    """Everything read from one run directory. ``agg``: the attention aggregates (None when
    absent/unreadable); ``records``: the typed records of samples.jsonl that ``samples`` was built
    from (the sample browser shows them), so the file is parsed once; ``failures``: one line per
    report section that could not be computed (the report shows them at its top)."""

    run_dir: Path
    run: RunRecord | None
    samples: pd.DataFrame
    agg: AttentionAggregates | None
    warnings: list[str] = field(default_factory=list)
    records: list[SampleRecord] = field(default_factory=list, repr=False)
    #: Why the records read disagree with run.json's count (None: they agree, or run.json has no
    #: count yet). The report shows it first; ``check`` fails and ``baseline`` refuses on it.
    count_problem: str | None = None
    failures: list[str] = field(default_factory=list)
    _rows: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def attention(self) -> pd.DataFrame | None:
        """Every attention row in pandas (:func:`read_attention`), read on first use: memory grows
        with the run (about 113 B a row), so the report never calls it; None without records."""
        if self.agg is None:
            return None
        if self._rows is None:
            self._rows = read_attention(self.run_dir, self.samples, [])
        return self._rows

    @property
    def run_id(self) -> str:
        return self.run.run_id if self.run else self.run_dir.name

    @property
    def status(self) -> str:
        return self.run.status if self.run else "unknown"

    @property
    def partial(self) -> bool:
        """True unless run.json says the run completed."""
        return self.status != "completed"

    @property
    def variants(self) -> list[str]:
        """Variants present, ``base`` first, then run.json order, then alphabetical."""
        present = set(self.samples["variant"].unique()) if len(self.samples) else set()
        if self.agg is not None:
            present |= self.agg.variants
        declared = list(self.run.variants) if self.run else []
        order = [REFERENCE_VARIANT] + declared + sorted(present)
        seen: list[str] = []
        for v in order:
            if v in present and v not in seen:
                seen.append(v)
        return seen

    @property
    def tasks(self) -> list[str]:
        names = set(self.samples["task"].unique()) if len(self.samples) else set()
        if self.agg is not None:
            names |= self.agg.tasks
        return sorted(names)



def _sample_row(d: dict[str, Any]) -> dict[str, Any]:
    t = d.pop("timings")
    d.update(tokens_per_s=t["tokens_per_s"], decode_s=t["decode_s"], total_s=t["total_s"])
    row = {k: d.get(k) for k in SAMPLE_COLUMNS}
    typed = d.get("score_detail") or {}
    meta = {k: v for k, v in (d.get("metadata") or {}).items() if k != "score"}
    row.update(
        metadata=meta, extractor=typed.get("extractor"), score_flags=dict(typed.get("flags") or {}),
        sub_scores=dict(typed.get("sub_scores") or {}), score_details=dict(typed.get("details") or {}),
    )
    return row


def load_run(run_dir: Path | str, allow_partial: bool = False) -> RunData:
    """Read run.json, samples.jsonl and the attention aggregates (each optional, but at least one
    of run.json / samples.jsonl must exist). Raises :class:`ReportInputError` on a missing
    directory or unreadable run.json / samples.jsonl. An unreadable attention file becomes a
    warning and a failure, running out of memory a failure: then :class:`ReportIncompleteError`
    (:class:`~pvm_bench.report.attention_engine.ReportMemoryError` for memory) unless
    ``allow_partial``, which keeps them in ``RunData.failures`` for the report's banner."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(
            f"run directory not found: {run_dir} (pass the reports/<run_id> folder written by `pvm-bench run`)"
        )
    run_json, samples_path = run_dir / "run.json", run_dir / "samples.jsonl"
    if not run_json.exists() and not samples_path.exists():
        raise ReportInputError(
            f"{run_dir} has neither run.json nor samples.jsonl (is it a run directory? "
            "pass the reports/<run_id> folder written by `pvm-bench run`)"
        )
    warn: list[str] = []
    run: RunRecord | None = None
    if run_json.exists():
        try:
            run = RunRecord.load(run_dir)
        except Exception as exc:  # pydantic / json errors
            raise ReportInputError(
                f"cannot parse {run_json}: {exc.__class__.__name__} (re-run or fix the file)"
            ) from exc
    else:
        warn.append("run.json missing: status unknown, treated as partial")
    try:
        records = read_samples(run_dir)
    except UserError:
        raise
    except Exception as exc:
        raise ReportInputError(f"cannot parse {samples_path}: {exc} (fix or remove the bad line)") from exc
    rows = [_sample_row(r.model_dump(mode="json")) for r in records]
    samples = pd.DataFrame(rows, columns=[*SAMPLE_COLUMNS, *TYPED_COLUMNS])
    if len(samples):
        samples["score"] = samples["score"].astype(float)
        samples["n_generated"] = samples["n_generated"].astype(int)
        samples["repeat"] = samples["repeat"].astype(int)
        samples["truncated"] = samples["truncated"].astype(bool)
        samples["tokens_per_s"] = samples["tokens_per_s"].astype(float)
    problem = count_problem(run, len(records), samples_path)
    if problem:
        warn.insert(0, problem)
    failures: list[str] = []
    agg = load_attention(run_dir, samples, warn, failures, allow_partial, reference=REFERENCE_VARIANT)
    if failures and not allow_partial:
        raise ReportIncompleteError(
            f"{run_dir}: cannot compute the report's attention sections: {'; '.join(failures)}; fix or move the file "
            "aside and run the command again, or pass --allow-partial to write the report without them"
        )
    return RunData(run_dir, run, samples, agg, warn, records, count_problem=problem, failures=failures)


def count_problem(run: RunRecord | None, n_read: int, samples_path: Path) -> str | None:
    """A loud sentence when run.json's record count (written when the run stopped) differs from
    the records read (a cut last line, a truncated or edited samples.jsonl); else None."""
    counted = (run.counts or {}).get("samples") if run and run.status != "running" else None  # running: stale count
    if counted is None or counted == n_read:
        return None
    return (f"RECORD COUNT MISMATCH: run.json counts {counted} records but {samples_path.name} holds {n_read} "
            "readable ones (a cut or edited line?); these numbers do not cover the whole run -- restore the file "
            "or resume the run (`pvm-bench run --resume RUN_DIR` redoes missing samples)")


def read_attention(run_dir: Path, samples: pd.DataFrame, warn: list[str]) -> pd.DataFrame | None:
    """Every row of the attention store plus any unmerged ``attention/part-*.parquet`` (a killed
    run) in one pandas frame (the full-resolution reader behind :attr:`RunData.attention`; the
    report reads :class:`~pvm_bench.report.attention_agg.AttentionAggregates` instead).

    Part rows are kept only for samples present in samples.jsonl; for a key present in several
    files the last file wins (parts are written in order). Unreadable files become a warning
    that says the decay section is incomplete or missing.
    """
    sources = attention_sources(run_dir)
    parts = sources.parts
    frames: list[pd.DataFrame] = []
    for i, path in enumerate(sources.files):
        try:
            frames.append(_read_attention_file(path, warn).assign(_file=i))
        except (OSError, ValueError, KeyError, ArrowException) as exc:  # a torn or foreign file
            if is_memory_error(exc):  # pyarrow's ArrowMemoryError is an ArrowException too
                raise
            name = sources.label(path)
            warn.append(f"{name} unreadable ({exc.__class__.__name__}: {exc}); its attention records are left out")
    if not frames:
        return None
    frame = pd.concat(frames, ignore_index=True)
    if parts:
        warn.append(
            f"{len(parts)} unmerged attention part file(s) (killed or running run) read together with "
            "the attention store; `pvm-bench run --resume` merges them"
        )
        if len(samples):
            keep = set(zip(samples["variant"], samples["task"], samples["sample_id"], samples["repeat"]))
            keys = zip(frame["variant"], frame["task"], frame["sample_id"], frame["repeat"])
            frame = frame[[k in keep for k in keys]]
        cols = [c for c in (*ATTENTION_KEYS, "layer") if c in frame.columns]
        last = frame.groupby(list(ATTENTION_KEYS[:4]))["_file"].transform("max")
        frame = frame[frame["_file"] == last].drop_duplicates(subset=cols, keep="last")
    return frame.drop(columns="_file").reset_index(drop=True)


def _read_attention_file(path: Path, warn: list[str]) -> pd.DataFrame:
    """Scalar columns of one attention parquet (list columns such as per-head masses are skipped).

    Rows without a ``layer`` or ``visual_mass`` (step-only probes merged in by the runner) are
    kept for the entropy summaries; decay code filters them via :func:`visual_rows`.
    """
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    schema = pq.read_schema(path)
    missing = [k for k in ATTENTION_KEYS if k not in schema.names]
    if missing:
        raise ValueError(f"missing columns {missing}")
    for f in schema:  # a foreign or edited file: numbers stored as text would fail deep in the decay code
        numeric = pat.is_integer(f.type) or pat.is_floating(f.type) or pat.is_null(f.type)
        if f.name in NUMERIC_ATTENTION and not numeric:
            raise ValueError(f"column {f.name!r} holds {f.type} values, not numbers")
    cols = [f.name for f in schema if not pat.is_nested(f.type)]
    frame = pd.read_parquet(path, columns=cols)
    measures = [c for c in frame.columns if c not in ATTENTION_KEYS and pd.api.types.is_float_dtype(frame[c])]
    bad = ~np.isfinite(frame[measures].to_numpy(dtype=float)) & frame[measures].notna().to_numpy()
    if bad.any():  # inf never comes from a softmax; NaN is "not measured" and is left out downstream
        frame[measures] = frame[measures].mask(pd.DataFrame(bad, index=frame.index, columns=measures))
        where = ", ".join(sorted(np.array(measures)[bad.any(0)]))
        warn.append(f"{path.name}: {int(bad.sum())} infinite value(s) in {where} left out "
                    "(attention masses are finite)")
    frame = frame.dropna(subset=["step"])
    frame["step"] = frame["step"].astype(int)
    frame["repeat"] = frame["repeat"].astype(int)
    for key in ("variant", "task", "sample_id"):
        frame[key] = frame[key].astype(str)
    return frame


def visual_rows(attention: pd.DataFrame | None) -> pd.DataFrame | None:
    """Rows carrying a visual-mass measurement (``layer`` and ``visual_mass`` present), with an
    integer ``layer``; None when there are none."""
    if attention is None or "visual_mass" not in attention or "layer" not in attention:
        return None
    rows = attention.dropna(subset=["visual_mass", "layer"])
    if rows.empty:
        return None
    return rows.assign(layer=rows["layer"].astype(int))


def require_samples(data: RunData) -> None:
    """Raise :class:`ReportInputError` (one line: why and what to do) when the run has no sample
    records yet (samples.jsonl missing or empty): an empty report would look like a finished one."""
    if len(data.samples):
        return
    where, status = data.run_dir, data.status
    if status == "failed":
        error = str(data.run.error or "").splitlines()[0] if data.run and data.run.error else "see run.json"
        raise ReportInputError(
            f"{where} has no samples: the run failed before its first sample ({error}); fix that and "
            f"start it again (`pvm-bench run ... --run-id {data.run_id}` reuses a failed run's id)"
        )
    raise ReportInputError(
        f"{where} has no samples yet (samples.jsonl is empty; status: {status}): continue the run with "
        f"`pvm-bench run --resume {where}`, then run `pvm-bench report {where}`"
    )


def missing_attention_note(data: RunData) -> str | None:
    """Why a run has no decay section, in one sentence (None when it has attention records)."""
    if data.agg is not None and len(data.agg.gens):
        return None
    if any("out of memory" in f for f in data.failures):
        return "no decay section: out of memory computing the attention aggregates (see the notes above)"
    probes = (data.run.config or {}).get("probes") if data.run else None
    if probes is not None and "attention" not in probes:
        return "no decay section: the run did not record attention (add `attention` to --probes)"
    if any("unreadable" in w for w in data.warnings):
        return "no decay section: the attention files could not be read (see the notes above)"
    return ("no decay section: no attention records were written (attention.parquet/ and attention/part-*.parquet "
            "are absent)")
