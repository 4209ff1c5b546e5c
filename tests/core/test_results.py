from __future__ import annotations

import json

from pvm_bench.results import JsonlAppender, SampleRecord, compact_frame, read_jsonl, read_samples
from pvm_bench.runner import probe_frame, sample_seed


def _record(sample_id: str, output: str = "x") -> SampleRecord:
    return SampleRecord(variant="base", task="t", sample_id=sample_id, seed=1, prompt="p", output=output)


def test_appender_truncates_partial_line_left_by_a_kill(tmp_path):
    path = tmp_path / "samples.jsonl"
    with JsonlAppender(path) as sink:
        sink.append(_record("a"))
    with open(path, "ab") as fh:  # what a kill -9 in the middle of a write leaves behind
        fh.write(b'{"variant": "base", "task"')
    assert [r["sample_id"] for r in read_jsonl(path)] == ["a"]
    with JsonlAppender(path) as sink:
        sink.append(_record("b"))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["sample_id"] for line in lines] == ["a", "b"]


def test_read_samples_last_write_wins(tmp_path):
    with JsonlAppender(tmp_path / "samples.jsonl") as sink:
        sink.append(_record("a", "old"))
        sink.append(_record("a", "new"))
    (rec,) = read_samples(tmp_path)
    assert rec.output == "new"


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(0, "mmmu", "s1", 0) == sample_seed(0, "mmmu", "s1", 0)
    seeds = {sample_seed(0, "mmmu", "s1", r) for r in range(4)} | {sample_seed(1, "mmmu", "s1", 0)}
    assert len(seeds) == 5
    assert 0 <= sample_seed(0, "a", "b", 0) < 2**63


def test_probe_frame_broadcasts_step_measures_over_layers():
    records = {
        "attention": [
            {"step": s, "layer": layer, "visual_mass": 0.1 * s + layer} for s in range(3) for layer in range(2)
        ],
        "lens": [{"step": s, "entropy": float(s)} for s in range(3)],
    }
    frame = compact_frame(probe_frame(records))
    assert len(frame) == 6
    assert frame.loc[frame.step == 2, "entropy"].tolist() == [2.0, 2.0]
    assert str(frame["visual_mass"].dtype) == "float32"
    assert str(frame["step"].dtype) == "int32"
