"""Synthetic run directories in exactly the runner's format, at any size, written by streaming.

:func:`write_synthetic_run` writes ``run.json``, ``samples.jsonl`` and ``attention/part-*.parquet``
as a finished-but-unmerged run of base and pvm on several tasks would leave them (the runner
merges the parts into the attention store at the end; the bench times that merge). One part holds
one batch of samples of one (variant, task), written by the runner's own
:func:`pvm_bench.runner.files.write_probe_part` (so its aggregate tables are a real run's); its
arrow schema (column order, dtypes, pandas metadata) is taken from the real writer path
(:func:`pvm_bench.runner.workload.probe_frame` + :func:`pvm_bench.results.compact_frame`) on a
one-row frame, so a generated part is indistinguishable from a real one.

Output lengths are lognormal with median ``median`` and a share ``cap_share`` at the
``max_new_tokens`` cap (truncated, ``finish_reason="length"``); every sample has
``n_generated`` steps x ``layers`` rows. Attention values are seeded noise around a power-law
decay (so fits converge); base parts have no ``pvm_*`` columns (the branch probe records nothing
while the PVM is disabled), pvm parts have them at layers >= 1. Memory is bounded by one part
(one batch), never the run: 460M rows are written in minutes at about 1 GB.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.stats import norm

VARIANTS = ("base", "pvm")


@dataclass(frozen=True)
class SynthSpec:
    """What to generate: about ``rows`` attention rows over ``tasks`` x base/pvm."""

    rows: int
    layers: int = 36
    tasks: int = 8
    median: float = 200.0
    cap: int = 16384
    cap_share: float = 0.004
    batch_size: int = 8
    seed: int = 0

    @property
    def sigma(self) -> float:
        """Lognormal sigma that puts ``cap_share`` of the lengths at or above ``cap``."""
        return math.log(self.cap / self.median) / float(norm.ppf(1.0 - self.cap_share))


def _part_schemas(layers: int) -> dict[str, pa.Schema]:
    """The arrow schema the runner writes for a base part and for a pvm part (real writer path)."""
    import pandas as pd

    from pvm_bench.results import compact_frame
    from pvm_bench.runner.files import probe_frame

    attention = [{"step": 0, "layer": 0, "visual_mass": 0.1, "visual_mass_norm": 0.2, "sink_mass": 0.1,
                  "n_keys": 10, "n_visual": 4}]
    lens = [{"step": 0, "entropy": 0.5, "margin": 0.5}]
    branch = [{"step": 0, "layer": 0, "pvm_ratio": 0.1, "pvm_gate": 0.5}]
    out = {}
    for variant, records in (("base", {"attention": attention, "lens": lens}),
                             ("pvm", {"attention": attention, "lens": lens, "branch": branch})):
        frame = probe_frame(records)
        assert frame is not None
        for col, value in (("repeat", 0), ("sample_id", "s"), ("task", "t"), ("variant", variant)):
            frame.insert(0, col, value)
        out[variant] = pa.Schema.from_pandas(compact_frame(pd.DataFrame(frame)), preserve_index=False)
    return out


def _lengths(spec: SynthSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    raw = np.exp(rng.normal(math.log(spec.median), spec.sigma, n))
    return np.clip(np.ceil(raw), 1, spec.cap).astype(np.int64)


def plan_samples(spec: SynthSpec) -> dict[tuple[str, str], np.ndarray]:
    """Output lengths per (variant, task): the same sample ids for every variant, samples added
    task by task (all variants at once) until the rows reach ``spec.rows``."""
    rng = np.random.default_rng(spec.seed)
    tasks = [f"synth{t}" for t in range(spec.tasks)]
    per_sample_rows = spec.layers * len(VARIANTS)
    est = per_sample_rows * float(np.mean(_lengths(spec, np.random.default_rng(spec.seed + 1), 20_000)))
    chunk = max(1, int(spec.rows / est / len(tasks) / 4))  # draw in chunks, then trim to the target
    drawn: dict[tuple[str, str], list[int]] = {(v, t): [] for v in VARIANTS for t in tasks}
    total = 0
    while total < spec.rows:
        for task in tasks:
            new = {v: _lengths(spec, rng, chunk) for v in VARIANTS}
            for i in range(chunk):
                if total >= spec.rows:
                    break
                for v in VARIANTS:
                    drawn[(v, task)].append(int(new[v][i]))
                    total += int(new[v][i]) * spec.layers
    return {key: np.asarray(vals, dtype=np.int64) for key, vals in drawn.items() if vals}


def _sample_columns(spec: SynthSpec, rng: np.random.Generator, variant: str, length: int,
                    prompt: int, n_visual: int, names: list[str]) -> dict[str, np.ndarray]:
    """One sample's rows (step-major, layer-minor, as probe_frame sorts them) as numpy columns."""
    L = spec.layers
    step = np.repeat(np.arange(length, dtype=np.int32), L)
    layer = np.tile(np.arange(L, dtype=np.int16), length)
    n = step.size
    scale = (0.05 + 0.25 * np.sin(np.pi * (layer + 0.5) / L)).astype(np.float32)
    decay = (1.0 + step.astype(np.float32)) ** np.float32(-0.35 if variant == "base" else -0.2)
    noise = np.exp(rng.standard_normal(n, dtype=np.float32) * np.float32(0.3))
    vm = np.clip(scale * decay * noise, 1e-6, 1.0).astype(np.float32)
    n_keys = np.int32(prompt) + step
    cols: dict[str, np.ndarray] = {
        "step": step, "layer": layer, "visual_mass": vm,
        "visual_mass_norm": (vm * n_keys.astype(np.float32) / np.float32(n_visual)).astype(np.float32),
        "sink_mass": rng.random(n, dtype=np.float32) * np.float32(0.5),
        "n_keys": n_keys, "n_visual": np.full(n, n_visual, dtype=np.int32),
        "entropy": np.repeat(rng.gamma(2.0, 0.5, length).astype(np.float32), L),
        "margin": np.repeat(rng.random(length, dtype=np.float32), L),
    }
    if "pvm_ratio" in names:
        ratio = (rng.random(n, dtype=np.float32) * np.float32(0.3)).astype(np.float32)
        gate = np.repeat(rng.standard_normal(L, dtype=np.float32)[None, :], length, axis=0).reshape(-1)
        mask = layer == 0  # no PVM branch at layer 0: null, as the outer merge leaves it
        cols["pvm_ratio"] = np.ma.masked_array(ratio, mask)
        cols["pvm_gate"] = np.ma.masked_array(gate, mask)
    return cols


def _part_table(spec: SynthSpec, rng: np.random.Generator, schema: pa.Schema, variant: str, task: str,
                batch: list[tuple[str, int, int, int]]) -> pa.Table:
    names = schema.names
    tables = []
    for sample_id, length, prompt, n_visual in batch:
        cols = _sample_columns(spec, rng, variant, length, prompt, n_visual, names)
        n = cols["step"].size
        arrays = []
        for field in schema:
            if field.name in ("variant", "task", "sample_id"):
                value = {"variant": variant, "task": task, "sample_id": sample_id}[field.name]
                arrays.append(pa.repeat(pa.scalar(value, field.type), n))
            elif field.name == "repeat":
                arrays.append(pa.array(np.zeros(n, dtype=np.int64)))
            else:
                col = cols[field.name]
                mask = np.ma.getmaskarray(col) if np.ma.isMaskedArray(col) else None
                arrays.append(pa.array(np.ma.getdata(col), type=field.type, mask=mask))
        tables.append(pa.Table.from_arrays(arrays, schema=schema))
    return pa.concat_tables(tables)


def _record(spec: SynthSpec, rng: np.random.Generator, variant: str, task: str, sample_id: str,
            length: int, seed: int) -> dict[str, Any]:
    capped = length >= spec.cap
    words = " ".join(f"w{int(x)}" for x in rng.integers(0, 1000, min(length, 60)))
    score = float(rng.random() < (0.55 if variant == "pvm" else 0.5))
    return {
        "variant": variant, "task": task, "sample_id": sample_id, "repeat": 0, "seed": seed,
        "prompt": f"<image> Question {sample_id}: what is shown?", "output": f"{words}\nAnswer: A",
        "parsed": "A", "target": "A" if score else "B", "score": score, "truncated": capped,
        "n_generated": int(length), "max_new_tokens": spec.cap, "finish_reason": "length" if capped else "eos",
        "error": None, "timings": {"prefill_s": 0.1, "decode_s": length / 30.0, "total_s": 0.1 + length / 30.0,
                                   "tokens_per_s": 30.0, "batch_size": spec.batch_size},
        "metadata": {}, "score_detail": {"extractor": "answer_marker", "sub_scores": {}, "flags": {}, "details": {}},
    }


def write_synthetic_run(run_dir: Path, spec: SynthSpec) -> dict[str, Any]:
    """Write the run (see the module docstring); returns ``{"rows", "samples", "parts", "bytes"}``.

    Refuses a ``run_dir`` that already exists (the bench never overwrites anything).
    """
    from pvm_bench.results import RunRecord, SampleRecord
    from pvm_bench.runner.files import write_probe_part

    run_dir.mkdir(parents=True)
    (run_dir / "attention").mkdir()
    plan = plan_samples(spec)
    schemas = _part_schemas(spec.layers)
    rng = np.random.default_rng(spec.seed + 2)
    tasks = sorted({t for _, t in plan})
    rows = parts = n_bytes = 0
    counts = {"samples": 0, "errors": 0, "truncated": 0}
    with open(run_dir / "samples.jsonl", "w", encoding="utf-8") as sink:
        for variant in VARIANTS:
            for task in tasks:
                lengths = plan.get((variant, task), np.zeros(0, dtype=np.int64))
                for start in range(0, lengths.size, spec.batch_size):
                    batch = []
                    for i in range(start, min(start + spec.batch_size, lengths.size)):
                        sid = f"{task}-test-{i}"
                        seed = int.from_bytes(
                            hashlib.sha256(f"{spec.seed}/{variant}/{sid}".encode()).digest()[:7], "big"
                        )
                        rec = SampleRecord.model_validate(_record(spec, rng, variant, task, sid, int(lengths[i]), seed))
                        sink.write(json.dumps(rec.model_dump(mode="json"), ensure_ascii=False) + "\n")
                        counts["samples"] += 1
                        counts["truncated"] += int(rec.truncated)
                        batch.append((sid, int(lengths[i]), 300 + 17 * (i % 40), 256 + 64 * (i % 8)))
                    table = _part_table(spec, rng, schemas[variant], variant, task, batch)
                    # the runner's writer: the part (pandas' to_parquet defaults) and its aggregate tables
                    name = f"part-{1_000_000_000 + parts:019d}-{parts % 0xFFFFFF:06x}.parquet"
                    path = write_probe_part(run_dir, table, name)
                    assert path is not None
                    rows += table.num_rows
                    parts += 1
                    n_bytes += path.stat().st_size
                    del table
    config = {
        "model": "synthetic/Qwen3-VL-8B",
        "pvm": "synthetic/pvm",
        "tasks": tasks,
        "variants": [],
        "max_new_tokens": spec.cap,
        "batch_size": spec.batch_size,
        "threads": 1,
        "seed": spec.seed,
        "probes": ["attention", "lens", "branch"],
        "out": str(run_dir.parent),
        "run_id": run_dir.name,
        "report": False,
    }
    from pvm_bench.config import RunConfig

    record = RunRecord(
        run_id=run_dir.name,
        status="completed",
        seed=spec.seed,
        config=RunConfig.model_validate(config).model_dump(),
        variants=list(VARIANTS),
        ended_at=None,
        model={
            "source": "synthetic/Qwen3-VL-8B",
            "family": "qwen3_vl",
            "num_layers": spec.layers,
            "dtype": "bfloat16",
            "device": "cuda",
        },
        datasets={
            t: {
                "version": "1.0",
                "split": "test",
                "n": int(plan[("base", t)].size),
                "fingerprint": hashlib.sha256(t.encode()).hexdigest()[:16],
            }
            for t in tasks
        },
        counts=counts,
    )
    record.ended_at = record.started_at
    record.save(run_dir)
    return {"rows": rows, "samples": counts["samples"], "parts": parts, "bytes": n_bytes}
