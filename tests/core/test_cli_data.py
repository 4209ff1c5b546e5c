"""`pvm-bench data export` (hub replaced by the fixture tables) and `pvm-bench data check`."""

from __future__ import annotations

import shutil

import datasets
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pvm_bench.cli.main import app

runner = CliRunner()
FIXTURE_MMMU_FINGERPRINT = "8b5baee2dd461288"


@pytest.fixture
def fake_hub(monkeypatch, fixture_data):
    """The hub as MMMU/MMMU would serve it: one config per subject, rows split by subject."""
    calls = []
    table = datasets.load_dataset(
        "parquet", data_files=str(fixture_data / "mmmu" / "validation.parquet"), split="train"
    )

    def load_hub_split(hub_id, config, split):
        calls.append((hub_id, config, split))
        if hub_id != "MMMU/MMMU" or split != "validation":
            raise ConnectionError("hub unreachable")
        keep = [i for i, ident in enumerate(table["id"]) if ident.split("_")[1] == config]
        return table.select(keep)

    monkeypatch.setattr("pvm_bench.data.tables.load_hub_split", load_hub_split)
    monkeypatch.setattr("pvm_bench.runner.preflight.offline_reason", lambda: None)  # this fake hub is reachable
    monkeypatch.setattr("pvm_bench.runner.preflight.hub_unreachable", lambda: None)
    return calls


def _check(*args: str):
    result = runner.invoke(app, ["data", "check", *args])
    return result.exit_code, result.output


def test_export_concatenates_configs_keeps_images_and_checks_offline(fake_hub, fixture_data, tmp_path):
    result = runner.invoke(app, ["data", "export", "mmmu,swatch_recall", "--out", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    subjects = [c for hub, c, _ in fake_hub if hub == "MMMU/MMMU"]
    assert len(subjects) == 30 and {"Art", "Math"} <= set(subjects)  # every subject config (after any fallback)
    assert "skip swatch_recall: generated locally" in result.output
    assert "(9 rows from MMMU/MMMU (30 configs))" in result.output
    written = tmp_path / "data" / "mmmu" / "validation.parquet"
    frame = pq.read_table(written).to_pandas()
    original = pd.read_parquet(fixture_data / "mmmu" / "validation.parquet")
    assert list(frame["id"]) == list(original["id"])
    assert frame.at[0, "image_1"]["bytes"] == original.at[0, "image_1"]["bytes"]  # images inside the file

    code, output = _check(str(tmp_path / "data"), "--tasks", "mmmu")
    assert code == 0, output
    assert f"ok mmmu/validation: 9 samples, 11 images decoded (fingerprint {FIXTURE_MMMU_FINGERPRINT})" in output

    again = runner.invoke(app, ["data", "export", "mmmu", "--out", str(tmp_path / "data")])
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.output


def test_export_without_hub_is_one_line(fake_hub, tmp_path):
    result = runner.invoke(app, ["data", "export", "mathvista", "--out", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: task 'mathvista': cannot load AI4Math/MathVista")
    assert "--data-dir" not in lines[0]  # a flag export does not have
    assert not list(tmp_path.rglob("*.parquet"))


def test_check_the_fixture_folder(fixture_data):
    code, output = _check(str(fixture_data), "--tasks", "mmmu,mathvista,swatch_recall")
    assert code == 0, output
    assert f"ok mmmu/validation: 9 samples, 11 images decoded (fingerprint {FIXTURE_MMMU_FINGERPRINT})" in output
    assert "ok mathvista/testmini: 6 samples" in output and "ok swatch_recall: generated locally" in output


def _copy(fixture_data, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(fixture_data / "mmmu", target / "mmmu")
    return target


def test_check_broken_copies_one_line_each(fixture_data, tmp_path):
    data = _copy(fixture_data, tmp_path)
    path = data / "mmmu" / "validation.parquet"
    frame = pd.read_parquet(path)

    code, output = _check(str(data), "--tasks", "mathvista")  # missing table
    assert code == 2 and "error: task 'mathvista': no testmini.parquet/.jsonl/.json under" in output

    frame.drop(columns=["answer"]).to_parquet(path)  # a column the task needs
    code, output = _check(str(data), "--tasks", "mmmu")
    assert code == 2 and "lacks answer" in output and output.count("error:") == 1

    broken = frame.copy()
    image = dict(broken.at[2, "image_1"])
    image["bytes"] = b"not an image"
    broken.at[2, "image_1"] = image
    broken.to_parquet(path)
    code, output = _check(str(data), "--tasks", "mmmu")
    assert code == 2 and "error: task 'mmmu' sample 'validation_Art_3'" in output and "cannot decode image" in output
    assert _check(str(data), "--tasks", "mmmu", "--no-images")[0] == 0  # structure alone is fine

    pd.concat([frame, frame.iloc[:2]]).to_parquet(path)  # duplicate ids
    code, output = _check(str(data), "--tasks", "mmmu")
    assert code == 2 and "duplicate sample ids 'validation_Art_1', 'validation_Art_2'" in output

    path.write_bytes(b"garbage, not parquet")
    code, output = _check(str(data), "--tasks", "mmmu")
    assert code == 2 and "is not a Parquet file" in output and output.count("\n") == 1

    code, output = _check(str(tmp_path / "nope"), "--tasks", "mmmu")
    assert code == 2 and "is not a directory" in output
