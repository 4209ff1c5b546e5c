"""Small hand-made run directories for the sample-browser tests (exact records, no RNG)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from pvm_bench.results import RunRecord, SampleRecord


def record(variant: str, sample_id: str, score: float, *, task: str = "t", repeat: int = 0, output: str = "out",
           prompt: str = "prompt", **fields: Any) -> SampleRecord:
    """One SampleRecord with sensible defaults; extra ``fields`` go to the model (e.g. score_detail)."""
    return SampleRecord(variant=variant, task=task, sample_id=sample_id, repeat=repeat, seed=0, prompt=prompt,
                        output=output, parsed="x", target="x", score=score, n_generated=10, max_new_tokens=64,
                        **fields)


def write_records(run_dir: Path, records: Iterable[SampleRecord], *, config: dict[str, Any] | None = None,
                  variants: tuple[str, ...] = ("base", "pvm"), datasets: dict[str, Any] | None = None,
                  attention: pd.DataFrame | None = None) -> Path:
    """run.json (completed), samples.jsonl and optionally attention.parquet; returns run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    RunRecord(run_id=run_dir.name, status="completed", variants=list(variants), config=config or {"tasks": ["t"]},
              datasets=datasets or {}, ended_at="2026-01-01T00:00:00+00:00").save(run_dir)
    lines = [json.dumps(r.model_dump(mode="json")) for r in records]
    (run_dir / "samples.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if attention is not None:
        attention.to_parquet(run_dir / "attention.parquet", index=False)
    return run_dir
