"""Experiment trackers: ``run --tensorboard DIR`` / ``--wandb-project NAME`` log config, headline
metrics and plots; a missing package is one line before any work."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import pvm_bench.cli.trackers as trackers
from pvm_bench.cli.main import app
from pvm_bench.cli.trackers import Tracker, log_run, read_payload

runner = CliRunner()
COLUMNS = ["task", "variant", "metric", "band", "t", "value", "ci_low", "ci_high", "n", "headline", "kind"]


def _run_args(model: Path, data: Path, out: Path, run_id: str, *extra: str) -> list[str]:
    return ["run", "--quiet", "--model", str(model), "--tasks", "mmmu", "--data-dir", str(data), "--out", str(out),
            "--run-id", run_id, "--limit", "3", "--max-new-tokens", "4", *extra]


def _events(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _fake_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "r1"
    (run_dir / "plots").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r1", "seed": 3, "status": "completed",
                                                  "config": {"model": "m", "tasks": ["a"], "temperature": 0.0},
                                                  "model": {"source": "m", "family": "qwen3_vl"}}))
    rows = [
        {"task": "a", "variant": "base", "metric": "accuracy", "value": "0.5", "headline": "True", "kind": "task"},
        {"task": "a", "variant": "pvm", "metric": "accuracy", "value": "0.75", "headline": "True", "kind": "task"},
        {"task": "MACRO", "variant": "pvm", "metric": "accuracy", "value": "0.75", "headline": "True", "kind": "macro"},
        {"task": "a", "variant": "base", "metric": "accuracy", "band": "len:0-64", "value": "0.4", "headline": "True"},
        {
            "task": "a",
            "variant": "base",
            "metric": "visual_mass",
            "band": "all",
            "t": "64",
            "value": "0.2",
            "headline": "False",
        },
        {
            "task": "a",
            "variant": "base",
            "metric": "visual_mass",
            "band": "all",
            "t": "16",
            "value": "0.3",
            "headline": "False",
        },
        {
            "task": "a",
            "variant": "base",
            "metric": "truncation_rate",
            "value": "0.1",
            "headline": "False",
            "kind": "run",
        },
    ]
    with (run_dir / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    Image.new("RGB", (40, 30), (255, 0, 0)).save(run_dir / "plots" / "decay.png")
    return run_dir


def test_missing_package_is_one_line_and_nothing_runs(monkeypatch, tiny_qwen3_vl, fixture_data, tmp_path):
    monkeypatch.setattr(trackers, "_installed", lambda module: False)
    for flag, value, package in (
        ("--wandb-project", "proj", "wandb"),
        ("--tensorboard", str(tmp_path / "tb"), "tensorboard"),
    ):
        result = runner.invoke(app, _run_args(tiny_qwen3_vl, fixture_data, tmp_path / "out", "x", flag, value))
        assert result.exit_code == 2
        assert (f"error: {flag} needs the '{package}' package, which is not installed: "
                f"pip install 'pvm-bench[{package}]'") in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_payload_selects_headline_rows_and_position_curves(tmp_path):
    payload = read_payload(_fake_run(tmp_path))
    assert payload.run_id == "r1" and payload.config["model_family"] == "qwen3_vl" and payload.config["seed"] == 3
    assert payload.headline == {"accuracy/a/base": 0.5, "accuracy/a/pvm": 0.75, "accuracy/MACRO/pvm": 0.75}
    assert payload.curves == {"visual_mass/a/base/all": [(16, 0.3), (64, 0.2)]}
    assert [p.name for p in payload.plots] == ["decay.png"] and len(payload.rows) == 7


def test_tensorboard_gets_config_scalars_curves_and_plots(tmp_path):
    pytest.importorskip("tensorboard")
    done = log_run(_fake_run(tmp_path), [Tracker("tensorboard", str(tmp_path / "tb"))])
    assert done == {"tensorboard": str(tmp_path / "tb" / "r1")}
    acc = _events(tmp_path / "tb" / "r1")
    tags = acc.Tags()
    assert sorted(tags["scalars"]) == [
        "accuracy/MACRO/pvm",
        "accuracy/a/base",
        "accuracy/a/pvm",
        "visual_mass/a/base/all",
    ]
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars("accuracy/a/pvm")] == [(0, 0.75)]
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars("visual_mass/a/base/all")] == [(16, 0.3), (64, 0.2)]
    assert tags["images"] == ["plots/decay"]
    image = acc.Images("plots/decay")[0]
    assert (image.width, image.height) == (40, 30)
    config = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"run_id": "r1"' in config and '"temperature": 0.0' in config


def test_a_failing_tracker_is_a_warning_not_a_lost_run(monkeypatch, tmp_path):
    def broken(payload, project):
        raise RuntimeError("no API key configured\nmore")

    monkeypatch.setattr(trackers, "log_wandb", broken)
    said: list[str] = []
    assert log_run(_fake_run(tmp_path), [Tracker("wandb", "proj")], log=said.append) == {}
    assert said == ["warning: could not log the run to wandb (RuntimeError: no API key configured)"]


def test_cli_run_logs_to_tensorboard_and_wandb_offline(monkeypatch, tiny_qwen3_vl, fixture_data, tmp_path):
    pytest.importorskip("tensorboard")
    extra = ["--tensorboard", str(tmp_path / "tb")]
    with_wandb = importlib.util.find_spec("wandb") is not None
    if with_wandb:
        monkeypatch.setenv("WANDB_MODE", "offline")
        monkeypatch.setenv("WANDB_DIR", str(tmp_path))
        monkeypatch.setenv("WANDB_SILENT", "true")
        extra += ["--wandb-project", "pvm-bench-test"]
    result = runner.invoke(app, _run_args(tiny_qwen3_vl, fixture_data, tmp_path / "out", "tracked", *extra))
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "out" / "tracked"
    with (run_dir / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    accuracy = next(
        float(r["value"]) for r in rows if r["metric"] == "accuracy" and r["task"] == "mmmu" and not r["band"]
    )
    plots = sorted(p.stem for p in (run_dir / "plots").glob("*.png"))
    assert plots
    acc = _events(tmp_path / "tb" / "tracked")
    assert [round(e.value, 6) for e in acc.Scalars("accuracy/mmmu/base")] == [round(accuracy, 6)]
    assert sorted(acc.Tags()["images"]) == [f"plots/{p}" for p in plots]
    assert f"tensorboard: {tmp_path / 'tb' / 'tracked'}" in result.output
    summary = acc.Tensors("summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert summary == (run_dir / "summary.md").read_text(encoding="utf-8")
    if with_wandb:
        (offline,) = (tmp_path / "wandb").glob("offline-run-*")
        assert "wandb: offline run" in result.output
        media = offline / "files" / "media"
        assert sorted(p.name.rsplit("_", 2)[0] for p in (media / "images" / "plots").glob("*.png")) == plots
        (table,) = (media / "table").glob("metrics_*.table.json")
        assert len(json.loads(table.read_text())["data"]) == len(rows)
        assert (offline / "files" / "summary.md").read_bytes() == (run_dir / "summary.md").read_bytes()
        assert (offline / "files" / "report.html").is_file()
        (events,) = offline.glob("*.wandb")
        assert b"accuracy/mmmu/base" in events.read_bytes() and b"tracked" in events.read_bytes()


def test_the_closing_table_and_the_trackers_pick_the_same_headline_rows(tmp_path):
    """One headline test (pvm_bench.cli.metricsfile.is_headline): a "NaN" band is no band for both readers."""
    from pvm_bench.cli.progress import headline_rows

    run_dir = _fake_run(tmp_path)
    with (run_dir / "metrics.csv").open("a", newline="") as handle:
        csv.DictWriter(handle, COLUMNS).writerow({"task": "b", "variant": "base", "metric": "accuracy", "band": "NaN",
                                                  "t": "nan", "value": "0.25", "headline": "True", "kind": "task"})
    table = [f"{r['metric']}/{r['task']}/{r['variant']}" for r in headline_rows(run_dir)]
    assert table == ["accuracy/a/base", "accuracy/a/pvm", "accuracy/MACRO/pvm", "accuracy/b/base"]
    assert list(read_payload(run_dir).headline) == table

