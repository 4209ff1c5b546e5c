"""lmms-eval bridge: a task YAML in a temp dir on local parquet data, run offline on a tiny model.

Needs lmms-eval (``pip install -e ".[lmms]" && pip install --no-deps lmms-eval==0.7.3``);
skipped without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (optional extra: pvm-bench[lmms] + lmms-eval)")

import pandas as pd
from PIL import Image

TASK = "pvmb_bridge_colours"
QUESTIONS = ["What colour is the image?", "Name the colour.", "Which colour fills the picture?"]
COLOURS = [(200, 0, 0), (0, 160, 0), (0, 0, 220)]
MAX_NEW = 6

UTILS = '''
def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return "<image>" + doc["question"]


def process_results(doc, results):
    return {"acc": float(results[0].strip() == doc["answer"])}
'''


def write_task(root: Path) -> Path:
    """A generate_until task YAML + utils + a parquet split with an image column."""
    import datasets

    root.mkdir(parents=True, exist_ok=True)
    data = datasets.Dataset.from_dict(
        {
            "question": QUESTIONS,
            "image": [Image.new("RGB", (32, 32), c) for c in COLOURS],
            "answer": ["red", "green", "blue"],
        },
        features=datasets.Features(
            {"question": datasets.Value("string"), "image": datasets.Image(), "answer": datasets.Value("string")}
        ),
    )
    data.to_parquet(str(root / "test.parquet"))
    (root / "pvmb_bridge_utils.py").write_text(UTILS)
    (root / f"{TASK}.yaml").write_text(
        textwrap.dedent(
            f"""\
            task: {TASK}
            dataset_path: parquet
            dataset_kwargs:
              data_files:
                test: {root / 'test.parquet'}
              cache_dir: {root / 'hf_cache'}
            test_split: test
            output_type: generate_until
            doc_to_visual: !function pvmb_bridge_utils.doc_to_visual
            doc_to_text: !function pvmb_bridge_utils.doc_to_text
            doc_to_target: answer
            process_results: !function pvmb_bridge_utils.process_results
            generation_kwargs:
              max_new_tokens: {MAX_NEW}
              temperature: 0
              do_sample: false
              until: ["<|no-such-stop|>"]
            metric_list:
              - metric: acc
                aggregation: mean
                higher_is_better: true
            metadata:
              version: 0.0
            """
        )
    )
    return root


def native_outputs(model_dir: Path) -> tuple[list[str], pd.DataFrame]:
    """The same prompts and images through pvm-bench's own generate(), greedy, attention probe."""
    from pvm_bench import load_model
    from pvm_bench.models.generation import Request, generate
    from pvm_bench.probes.registry import make_probes
    from pvm_bench.runner.files import probe_frame

    lm = load_model(str(model_dir))
    probes = make_probes(["attention"])
    for probe in probes:
        probe.install(lm)
    try:
        requests = [
            Request(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}],
                [Image.new("RGB", (32, 32), c)],
                key=str(i),
            )
            for i, (q, c) in enumerate(zip(QUESTIONS, COLOURS))
        ]
        gens = generate(lm, requests, max_new_tokens=MAX_NEW, temperature=0.0, probes=probes)
    finally:
        for probe in probes:
            probe.uninstall()
    frames = []
    for gen in gens:
        frame = probe_frame(gen.probe_records)
        frame.insert(0, "sample_id", gen.key)
        frames.append(frame)
    return [g.text for g in gens], pd.concat(frames, ignore_index=True)


def test_bridge_runs_task_and_matches_native(tiny_qwen3_vl: Path, tmp_path: Path) -> None:
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    import pvm_bench.bridge.lmms  # noqa: F401  (registers --model pvm_bench)

    task_dir = write_task(tmp_path / "tasks")
    out = tmp_path / "out"
    results = evaluator.simple_evaluate(
        model="pvm_bench",
        model_args=f"pretrained={tiny_qwen3_vl},variant=base,probes=attention,attention_out={out}",
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(task_dir)),
        log_samples=True,
        batch_size=2,
    )
    assert results is not None and TASK in results["results"]
    samples = sorted(results["samples"][TASK], key=lambda s: s["doc_id"])
    bridge_texts = [s["resps"][0][0] for s in samples]

    texts, native_attn = native_outputs(tiny_qwen3_vl)
    assert bridge_texts == texts

    attn = pd.read_parquet(out / "attention.parquet")
    assert len(attn) > 0
    assert set(attn["variant"]) == {"base"} and set(attn["task"]) == {TASK}
    assert set(attn["sample_id"]) == {"0", "1", "2"} and set(attn["repeat"]) == {0}
    for col in ("step", "layer", "visual_mass", "n_visual"):
        assert col in attn.columns
    keys = ["sample_id", "step", "layer"]
    merged = attn.merge(native_attn, on=keys, suffixes=("", "_native"))
    assert len(merged) == len(attn) == len(native_attn)
    assert (merged["visual_mass"] - merged["visual_mass_native"]).abs().max() < 1e-5


@pytest.mark.slow
def test_documented_cli_command(tiny_qwen3_vl: Path, tmp_path: Path) -> None:
    """``python -m pvm_bench.bridge.lmms`` (lmms-eval's CLI with the model registered) writes attention.parquet."""
    task_dir = write_task(tmp_path / "tasks")
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "pvm_bench.bridge.lmms",
        "--model", "pvm_bench",
        "--model_args", f"pretrained={tiny_qwen3_vl},attention_out={out / 'attention.parquet'}",
        "--tasks", TASK, "--include_path", str(task_dir), "--limit", "2",
        "--output_path", str(out / "lmms"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    attn = pd.read_parquet(out / "attention.parquet")
    assert set(attn["sample_id"]) == {"0", "1"} and len(attn) > 0


def test_bridge_errors_are_clear(tiny_qwen3_vl: Path) -> None:
    from pvm_bench.bridge.lmms import PvmBenchLMM, apply_stops
    from pvm_bench.variants import VariantError

    with pytest.raises(VariantError, match="needs a PVM adapter"):
        PvmBenchLMM(pretrained=str(tiny_qwen3_vl), variant="pvm")
    lm = PvmBenchLMM(pretrained=str(tiny_qwen3_vl), probes="none")
    assert lm.probes == [] and lm.attention_out is None
    with pytest.raises(NotImplementedError, match="generate_until"):
        lm.loglikelihood([])
    assert apply_stops("a\n\nb STOP c", ["\n\n", "STOP"]) == "a\n\nb "
