"""Synthetic run directories for the report tests (no model needed).

A uniquely named module (not conftest) so test files can import it under any import mode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pvm_bench.results import JsonlAppender, RunRecord, SampleRecord, Timings

# Ground-truth decay law used to generate attention rows: mass = a + b / (c + t).
TRUE_B, TRUE_C = 0.6, 8.0
TRUE_A = {"base": 0.02, "pvm": 0.08, "pai": 0.05}
ACCURACY = {"base": 0.55, "pvm": 0.8, "pai": 0.6}

# A task plugin that declares a distance (metadata key and label) for the "colour" task.
DISTANCE_TASK_MODULE = '''
from pvm_bench.tasks.base import Sample, Score, Task

class Far(Task):
    name = "colour"
    description = "synthetic, with a declared distance"
    distance_key = "n_filler"
    distance_label = "N (filler numbers)"

    def load(self, split=None, limit=None, data_dir=None):
        return [Sample(id="colour-0", question="q", target="red")]

    def score(self, sample, output):
        return Score(float(output.strip() == sample.target))

TASKS = [Far()]
'''


def write_distance_plugin(tmp_path: Path) -> Path:
    """``tmp_path/plugins`` holding far_tasks.py (:data:`DISTANCE_TASK_MODULE`); returns the folder."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "far_tasks.py").write_text(DISTANCE_TASK_MODULE)
    return plugins


def write_run(
    run_dir: Path,
    *,
    variants: Sequence[str] = ("base", "pvm"),
    tasks: Sequence[str] = ("colour", "count"),
    n_samples: int = 24,
    repeats: int = 1,
    n_layers: int = 6,
    max_len: int = 300,
    status: str = "completed",
    attention: bool = True,
    entropy: bool = True,
    seed: int = 0,
    output_text: Callable[[str, str, int], str] | None = None,
    metadata: Callable[[str, int], dict] | None = None,
    score_of: Callable[[str, str, int], float] | None = None,
    include_paths: Sequence[str] = (),
) -> Path:
    """Write run.json, samples.jsonl and (optionally) attention.parquet for a synthetic run.

    Scores are Bernoulli(ACCURACY[variant]) drawn with a seeded RNG; attention follows
    TRUE_A[variant] + TRUE_B / (TRUE_C + t) with multiplicative noise, slightly higher in early
    layers. Each sample's length is shared by all variants. ``metadata(task, i)``: the sample
    metadata; ``score_of(variant, task, i)``: a fixed score instead of the Bernoulli draw (drawn
    anyway, so the other values do not change); ``include_paths``: task plugins of the run.
    """
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    rec = RunRecord(
        run_id=run_dir.name, status=status, seed=seed, variants=list(variants),
        model={"name": "tiny-qwen3-vl"}, git={"commit": "abc1234", "dirty": False},
        counts={"samples": n_samples * len(tasks) * len(variants) * repeats},
        config={"tasks": list(tasks), "split": "test", "limit": n_samples, "seed": seed, "repeats": repeats,
                **({"include_paths": list(include_paths)} if include_paths else {})},
    )
    if status == "completed":
        rec.ended_at = rec.started_at
    rec.save(run_dir)
    lengths = {(t, i): int(rng.integers(20, max_len)) for t in tasks for i in range(n_samples)}
    frames = []
    with JsonlAppender(run_dir / "samples.jsonl") as out:
        for variant in variants:
            for task in tasks:
                for i in range(n_samples):
                    for rep in range(repeats):
                        n = lengths[(task, i)]
                        score = float(rng.random() < ACCURACY.get(variant, 0.5))
                        if score_of is not None:
                            score = float(score_of(variant, task, i))
                        text = output_text(variant, task, i) if output_text else f"answer {i} from {variant}"
                        out.append(SampleRecord(
                            variant=variant, task=task, sample_id=f"{task}-{i}", repeat=rep, seed=seed + rep,
                            metadata=metadata(task, i) if metadata else {},
                            prompt=f"What colour is square {i}?", output=text, parsed="red",
                            target="red", score=score, truncated=n >= max_len - 5, n_generated=n,
                            max_new_tokens=max_len, finish_reason="length" if n >= max_len - 5 else "eos",
                            timings=Timings(prefill_s=0.01, decode_s=n / 150.0, total_s=n / 150.0 + 0.01,
                                            tokens_per_s=150.0, batch_size=1),
                        ))
                        if attention:
                            steps = np.arange(0, n + 1)
                            for layer in range(n_layers):
                                true = TRUE_A.get(variant, 0.03) + TRUE_B / (TRUE_C + np.maximum(steps, 1))
                                true = true * (1.0 + 0.1 * (n_layers - layer) / n_layers)
                                vm = true * (1 + 0.05 * rng.standard_normal(steps.size))
                                df = pd.DataFrame({
                                    "variant": variant, "task": task, "sample_id": f"{task}-{i}",
                                    "repeat": rep, "step": steps, "layer": layer,
                                    "visual_mass": vm.astype("float32"),
                                    "visual_mass_norm": (vm / 0.25).astype("float32"),
                                    "sink_mass": np.full(steps.size, 0.3, dtype="float32"),
                                    "n_keys": 100 + steps, "n_visual": 25,
                                })
                                if entropy:
                                    df["entropy"] = (1.5 - steps / (n + 1)).astype("float32")
                                frames.append(df)
    if attention:
        pd.concat(frames, ignore_index=True).to_parquet(run_dir / "attention.parquet", index=False)
    if include_paths:
        describe_tasks(
            run_dir,
            include_paths,
            {t: {f"{t}-{i}": metadata(t, i) if metadata else {} for i in range(n_samples)} for t in tasks},
        )
    return run_dir


def describe_tasks(run_dir: Path, include_paths: Sequence[str], samples: dict[str, dict[str, dict]]) -> Path:
    """Write the run's tasks.json as the runner does (the report reads it, never the plugins):
    ``samples``: ``{task: {sample_id: metadata}}``."""
    from pvm_bench.runner.taskmeta import write_task_file
    from pvm_bench.tasks import Sample, get_registry

    registry = get_registry(include_paths)
    loaded = [
        (registry.tasks[t], [Sample(id=sid, question="", target=None, metadata=meta) for sid, meta in ids.items()])
        for t, ids in samples.items()
        if t in registry.tasks
    ]
    return write_task_file(run_dir, loaded)
