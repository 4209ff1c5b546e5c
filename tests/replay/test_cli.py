"""``pvm-bench replay`` end to end through the CLI on the organism: run dirs, lmms-eval logs, JSONL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvm_bench.attention_store import read_store
from pvm_bench.cli import app
from pvm_bench.organism import BASE_DIR, PVM_DIR
from pvm_bench.replay.runner import prompt_text
from pvm_bench.tasks import get_registry

cli = CliRunner()
KEYS = ["variant", "task", "sample_id", "repeat", "step", "layer"]
TASK = "swatch_recall"


def invoke(*args: str) -> str:
    result = cli.invoke(app, [*args])
    assert result.exit_code == 0, result.output
    return result.output


def samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def attention_diff(decoded: Path, replayed: Path) -> dict[str, float]:
    """Per variant, max |decoded - replayed| visual / sink mass, lens entropy / margin, branch ratio, every row."""
    a, b = read_store(decoded), read_store(replayed)
    merged = a.merge(b, on=KEYS, suffixes=("_d", "_r"))
    assert len(merged) == len(b)
    assert (merged.n_keys_d == merged.n_keys_r).all() and (merged.n_visual_d == merged.n_visual_r).all()
    diff = (
        (merged.visual_mass_d - merged.visual_mass_r)
        .abs()
        .combine((merged.sink_mass_d - merged.sink_mass_r).abs(), max)
    )
    for col in ("entropy", "margin", "pvm_ratio"):  # the lens and branch probes' columns
        if f"{col}_r" in merged:
            both = merged[f"{col}_d"].notna() | merged[f"{col}_r"].notna()
            diff = diff.combine((merged[f"{col}_d"] - merged[f"{col}_r"]).abs().where(both, 0.0), max)
            assert (merged[f"{col}_d"].isna() == merged[f"{col}_r"].isna()).all(), col
    return merged.assign(diff=diff).groupby("variant")["diff"].max().to_dict()


def lmms_log(decoded: Path, path: Path, *, corrupt: bool = False) -> Path:
    """The decoded run's base outputs as lmms-eval 0.7.3 writes ``--log_samples`` rows (see replay.sources)."""
    task = get_registry().resolve([TASK])[0]
    by_id = {s.id: (i, s) for i, s in enumerate(task.load(split="test"))}
    lines = []
    for rec in samples(decoded):
        if rec["variant"] != "base":
            continue
        index, sample = by_id[rec["sample_id"]]
        context = prompt_text(task.messages(sample)) + (" (edited)" if corrupt else "")
        lines.append({
            "doc_id": index, "target": str(rec["target"]), "filtered_resps": rec["output"],
            "token_counts": [{"input_tokens": 40, "output_tokens": rec["n_generated"]}],
            "doc_hash": "0" * 64, "input": f"<image>{context}", "swatch_acc": rec["score"],
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def decoded(tmp_path_factory) -> Path:
    """A decoded organism run: base, pvm and both blinded from step 6 (left-padded batches of 3)."""
    out = tmp_path_factory.mktemp("decoded")
    invoke("run", "--tasks", TASK, "--split", "test", "--limit", "3", "--max-new-tokens", "40", "--ablate-after", "6",
           "--batch-size", "3", "--out", str(out), "--run-id", "dec", "--no-report", "--quiet")
    return out / "dec"


@pytest.mark.slow
def test_replayed_run_equals_decoded_run(decoded, tmp_path):
    invoke("replay", str(decoded), "--out", str(tmp_path), "--run-id", "rep", "--chunk", "7", "--quiet")
    replayed = tmp_path / "rep"
    diffs = attention_diff(decoded, replayed)
    assert set(diffs) == {"base", "pvm", "base+blind:after=6", "pvm+blind:after=6"}
    assert max(diffs.values()) < 1e-5, diffs
    before = {(r["variant"], r["sample_id"]): (r["output"], r["score"], r["n_generated"]) for r in samples(decoded)}
    after = {(r["variant"], r["sample_id"]): (r["output"], r["score"], r["n_generated"]) for r in samples(replayed)}
    assert before == after
    assert all(r["metadata"]["replay"]["tokens_exact"] for r in samples(replayed))
    # The report's decay section: same rows, flags and numbers (to 1e-3 relative: the fit of a 40-token
    # curve is ill-conditioned, so 1e-7 differences in the masses can move its last printed digit).
    invoke("report", str(decoded))
    sections = [decay_section(d / "summary.md") for d in (decoded, replayed)]
    assert sections[0][0] == sections[1][0] and sections[0][0]
    for x, y in zip(sections[0][1], sections[1][1]):
        assert x == pytest.approx(y, rel=1e-3, abs=1e-4)


def decay_section(path: Path) -> tuple[list[str], list[float]]:
    """(the decay section's text with numbers blanked, its numbers)."""
    text = path.read_text()
    body = text.split("## Visual-attention decay", 1)[1].split("\n## ", 1)[0]
    number = re.compile(r"-?\d+\.\d+")
    return [number.sub("#", line) for line in body.splitlines()], [float(x) for x in number.findall(body)]


@pytest.mark.slow
def test_lmms_eval_log_replays_like_the_decoded_run(decoded, tmp_path):
    log = lmms_log(decoded, tmp_path / "lmms" / "qwen3_vl" / "20261206_100000_samples_swatch_recall.jsonl")
    invoke(
        "replay",
        str(log),
        "--model",
        str(BASE_DIR),
        "--split",
        "test",
        "--max-new-tokens",
        "40",
        "--out",
        str(tmp_path),
        "--run-id",
        "lm",
        "--no-report",
        "--quiet",
    )
    diffs = attention_diff(decoded, tmp_path / "lm")
    assert list(diffs) == ["base"] and diffs["base"] < 1e-5
    rows = samples(tmp_path / "lm")
    assert len(rows) == 3 and all(r["metadata"]["replay"]["tokens_exact"] for r in rows)
    # --score-only: the same scores, no model, no attention data.
    invoke(
        "replay",
        str(log),
        "--score-only",
        "--split",
        "test",
        "--max-new-tokens",
        "40",
        "--out",
        str(tmp_path),
        "--run-id",
        "so",
        "--no-report",
        "--quiet",
    )
    scored = {r["sample_id"]: r["score"] for r in samples(tmp_path / "so")}
    assert scored == {r["sample_id"]: r["score"] for r in samples(decoded) if r["variant"] == "base"}
    assert not (tmp_path / "so" / "attention.parquet").exists()


@pytest.mark.slow
def test_lmms_eval_log_with_another_prompt_is_refused(decoded, tmp_path):
    log = lmms_log(decoded, tmp_path / "20261206_100000_samples_swatch_recall.jsonl", corrupt=True)
    result = cli.invoke(app, ["replay", str(log), "--score-only", "--split", "test", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "cannot be the prompt lmms-eval used" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.slow(seconds=20)  # torchrun: three more processes
def test_torchrun_replay_equals_single_process(decoded, tmp_path):
    """Data parallel like `run`: 2 CPU ranks (gloo), shards merged by rank 0, same attention rows."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pvm_bench", "replay", str(decoded), "--out", str(tmp_path), "--run-id", "dp",
           "--variants", "base,pvm+blind:after=6", "--quiet", "--no-report", "--launcher", "torchrun", "--nproc", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run_dir = tmp_path / "dp"
    assert not list(run_dir.glob("samples.rank*.jsonl"))
    assert sorted(r["variant"] for r in samples(run_dir)) == ["base"] * 3 + ["pvm+blind:after=6"] * 3
    diffs = attention_diff(decoded, run_dir)
    assert set(diffs) == {"base", "pvm+blind:after=6"} and max(diffs.values()) < 1e-5


@pytest.mark.slow
def test_plain_jsonl_with_messages_and_images_replays_like_the_decoded_run(decoded, tmp_path):
    task = get_registry().resolve([TASK])[0]
    by_id = {s.id: s for s in task.load(split="test")}
    lines = []
    for rec in samples(decoded):
        if rec["variant"] != "pvm":
            continue
        sample = by_id[rec["sample_id"]]
        sample.images[0].load().save(tmp_path / f"{len(lines)}.png")
        lines.append({"task": TASK, "sample_id": sample.id, "output": rec["output"], "variant": "pvm",
                      "finish_reason": rec["finish_reason"], "messages": task.messages(sample),
                      "images": [f"{len(lines)}.png"]})
    path = tmp_path / "outputs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    invoke("replay", str(path), "--model", str(BASE_DIR), "--pvm", str(PVM_DIR), "--variants", "pvm",
           "--split", "test", "--out", str(tmp_path), "--run-id", "js", "--no-report", "--quiet")
    diffs = attention_diff(decoded, tmp_path / "js")
    assert list(diffs) == ["pvm"] and diffs["pvm"] < 1e-5
