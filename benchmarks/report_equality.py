"""Equality and cost of `pvm-bench report` on a synthetic run with every attention column kind.

Not a test: a developer tool for the report-by-aggregation change (issue 22 item 2).

    # writes run.json, samples.jsonl, attention.parquet:
    python benchmarks/report_equality.py gen RUN_DIR --rows 1000000
    python benchmarks/report_equality.py snap RUN_DIR SNAP_DIR        # copies summary.csv, metrics.csv after a report
    python benchmarks/report_equality.py diff SNAP_A SNAP_B           # every number equal to rtol 1e-9?

The run has base and pvm variants, two tasks, 12 layers, lognormal output lengths (median 100),
per-step rows without a layer (entropy, margin, lens_first_agree_layer), per-layer lens columns
(lens_kl, bool lens_top1_agree), a plugin column (resid_norm), PVM branch columns on 3 layers of
the pvm variant (pvm_ratio, pvm_gate) and per-image columns (visual_mass_img0/1).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

N_LAYERS = 12
PVM_LAYERS = (3, 6, 9)
TASKS = ("colour", "count")
VARIANTS = ("base", "pvm")

SCHEMA = pa.schema([
    ("variant", pa.string()), ("task", pa.string()), ("sample_id", pa.string()), ("repeat", pa.int64()),
    ("step", pa.int32()), ("layer", pa.int16()), ("visual_mass", pa.float32()), ("visual_mass_norm", pa.float32()),
    ("sink_mass", pa.float32()), ("n_keys", pa.int32()), ("n_visual", pa.int32()),
    ("visual_mass_img0", pa.float32()), ("visual_mass_img1", pa.float32()),
    ("lens_kl", pa.float32()), ("lens_top1_agree", pa.bool_()), ("resid_norm", pa.float32()),
    ("pvm_ratio", pa.float32()), ("pvm_gate", pa.float32()),
    ("entropy", pa.float32()), ("margin", pa.float32()), ("lens_first_agree_layer", pa.int32()),
])


def _generation(rng: np.random.Generator, variant: str, n: int, n_img: int) -> pa.Table:
    steps = np.arange(n + 1, dtype=np.int32)
    layer_rows = np.repeat(steps, N_LAYERS), np.tile(np.arange(N_LAYERS, dtype=np.int16), n + 1)
    t, layer = layer_rows
    a = 0.05 if variant == "pvm" else 0.02
    vm = (a + 3.0 / (20.0 + np.maximum(t, 1))) * (1 + 0.1 * (N_LAYERS - layer) / N_LAYERS)
    vm = (vm * (1 + 0.05 * rng.standard_normal(t.size))).astype(np.float32)
    m = t.size
    img0 = (vm * 0.6).astype(np.float32)
    img1 = (vm * 0.4).astype(np.float32) if n_img > 1 else np.full(m, np.nan, np.float32)
    pvm = np.isin(layer, PVM_LAYERS) & (variant == "pvm")
    cols = {
        "step": t,
        "layer": layer,
        "visual_mass": vm,
        "visual_mass_norm": vm / 0.25,
        "sink_mass": np.full(m, 0.3, np.float32),
        "n_keys": (100 + t).astype(np.int32),
        "n_visual": np.full(m, 25, np.int32),
        "visual_mass_img0": img0,
        "visual_mass_img1": img1,
        "lens_kl": rng.gamma(2.0, 0.5, m).astype(np.float32),
        "lens_top1_agree": rng.random(m) < 0.5,
        "resid_norm": (10 + layer + rng.random(m)).astype(np.float32),
        "pvm_ratio": np.where(pvm, 0.1 + 0.01 * rng.standard_normal(m), np.nan).astype(np.float32),
        "pvm_gate": np.where(pvm, np.where(layer == 6, -0.2, 0.3), np.nan).astype(np.float32),
    }
    layer_tab = pa.table({k: pa.array(v, type=SCHEMA.field(k).type,
                                      from_pandas=True) for k, v in cols.items()})
    step_tab = pa.table(
        {
            "step": pa.array(steps),
            "entropy": pa.array((1.5 - steps / (n + 1) + 0.2 * rng.random(n + 1)).astype(np.float32)),
            "margin": pa.array(rng.gamma(2.0, 1.0, n + 1).astype(np.float32)),
            "lens_first_agree_layer": pa.array(rng.integers(-1, N_LAYERS, n + 1).astype(np.int32)),
        }
    )
    tab = pa.concat_tables([layer_tab, step_tab], promote_options="default")
    return tab


def generate(run_dir: Path, rows: int, seed: int = 0) -> None:
    from pvm_bench.results import JsonlAppender, RunRecord, SampleRecord, Timings

    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    rec = RunRecord(run_id=run_dir.name, status="completed", seed=seed, variants=list(VARIANTS),
                    model={"name": "synthetic"}, config={"tasks": list(TASKS), "probes": ["attention", "lens"]})
    rec.ended_at = rec.started_at
    rec.save(run_dir)
    per_gen = (N_LAYERS + 1) * 110
    n_samples = max(4, rows // (per_gen * len(VARIANTS) * len(TASKS)))
    lengths = {(t, i): int(min(1000, max(2, rng.lognormal(np.log(100), 0.6)))) for t in TASKS for i in range(n_samples)}
    writer = pq.ParquetWriter(run_dir / "attention.parquet", SCHEMA)
    total, batch = 0, []
    with JsonlAppender(run_dir / "samples.jsonl") as out:
        for variant in VARIANTS:
            for task in TASKS:
                for i in range(n_samples):
                    repeats = 2 if i % 7 == 0 else 1
                    for rep in range(repeats):
                        n = lengths[(task, i)] + rep
                        score = float(rng.random() < (0.7 if variant == "pvm" else 0.6))
                        out.append(SampleRecord(
                            variant=variant, task=task, sample_id=f"{task}-{i}", repeat=rep, seed=seed + rep,
                            prompt="q", output=f"answer {i}", parsed="red", target="red", score=score,
                            truncated=n >= 1000, n_generated=n, max_new_tokens=1000,
                            finish_reason="length" if n >= 1000 else "eos",
                            timings=Timings(decode_s=n / 150.0, total_s=n / 150.0, tokens_per_s=150.0),
                        ))
                        tab = _generation(rng, variant, n, 1 + (i % 2))
                        keys = {"variant": variant, "task": task, "sample_id": f"{task}-{i}", "repeat": rep}
                        for k, v in keys.items():
                            tab = tab.append_column(k, pa.array([v] * tab.num_rows, type=SCHEMA.field(k).type))
                        batch.append(tab.select(SCHEMA.names).cast(SCHEMA))
                        total += tab.num_rows
                        if sum(b.num_rows for b in batch) > 500_000:
                            writer.write_table(pa.concat_tables(batch), row_group_size=1 << 20)
                            batch = []
    if batch:
        writer.write_table(pa.concat_tables(batch), row_group_size=1 << 20)
    writer.close()
    print(f"{run_dir}: {total} attention rows, {n_samples} samples per task")


def snap(run_dir: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("summary.csv", "metrics.csv"):
        shutil.copy(run_dir / name, dest / name)


def diff(a: Path, b: Path, rtol: float = 1e-6) -> int:
    """Every number of summary.csv / metrics.csv equal to ``rtol`` (float32 data: pandas summed
    float32 groups in float32, DuckDB sums in float64, so the last float32 bit of a mean may differ)."""
    bad = 0
    for name in ("summary.csv", "metrics.csv"):
        x, y = pd.read_csv(a / name), pd.read_csv(b / name)
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            print(
                f"{name}: layout differs: {len(x)}x{len(x.columns)} vs {len(y)}x{len(y.columns)}; "
                f"only in A {sorted(set(x.columns) - set(y.columns))}, only in B "
                f"{sorted(set(y.columns) - set(x.columns))}"
            )
            bad += 1
            continue
        numbers, same, worst = 0, 0, 0.0
        for col in x.columns:
            if pd.api.types.is_numeric_dtype(x[col]) and pd.api.types.is_numeric_dtype(y[col]):
                u, v = x[col].to_numpy(float), y[col].to_numpy(float)
                ok = np.isclose(u, v, rtol=rtol, atol=1e-12, equal_nan=True)
                numbers += int(np.isfinite(u).sum())
                same += int((u == v).sum())
                with np.errstate(invalid="ignore", divide="ignore"):
                    rel = np.abs(u - v) / np.maximum(np.abs(u), 1e-300)
                rel = rel[np.isfinite(rel)]
                worst = max(worst, float(rel.max()) if rel.size else 0.0)
                if not ok.all():
                    i = int(np.flatnonzero(~ok)[0])
                    print(f"{name}:{col}: {int((~ok).sum())} differ, first row {i}: {u[i]!r} vs {v[i]!r}")
                    bad += 1
            elif not x[col].fillna("").astype(str).equals(y[col].fillna("").astype(str)):
                print(f"{name}:{col}: text differs")
                bad += 1
        print(f"{name}: {len(x)} rows, {numbers} finite numbers compared, {same} bit-identical, "
              f"largest relative difference {worst:.2e}")
    print("EQUAL" if not bad else f"{bad} difference(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "gen":
        generate(Path(args[0]), int(args[2]) if len(args) > 2 else 1_000_000)
    elif cmd == "snap":
        snap(Path(args[0]), Path(args[1]))
    elif cmd == "diff":
        sys.exit(diff(Path(args[0]), Path(args[1])))
