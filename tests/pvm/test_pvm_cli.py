"""The pvm CLI commands (through their register functions) and the branch probe."""

from __future__ import annotations

import json

import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from pvm_bench.models.generation import generate
from pvm_bench.models.loading import load_model
from pvm_bench.probes.branch import BranchProbe
from pvm_bench.pvm import attach_pvm, detect_format, save_adapter
from pvm_bench.pvm.commands import register, register_bench

from .conftest import mixed_requests


def _app() -> typer.Typer:
    app = typer.Typer()
    bench = typer.Typer()
    app.add_typer(bench, name="bench")
    register(app)
    register_bench(bench)
    return app


def test_info_command() -> None:
    runner = CliRunner()
    r = runner.invoke(_app(), ["pvm", "info", "--model", "qwen3-vl-8b"])
    assert r.exit_code == 0, r.output
    assert "27.92M parameters (0.32%" in r.output and "[8, 16, 24]" in r.output
    r = runner.invoke(_app(), ["pvm", "info", "--model", "qwen3-vl-4b", "--json"])
    data = json.loads(r.output)
    assert data["layers"] == [5, 11, 17] and abs(data["pvm_params"] / 1e6 - 22.7) < 0.05
    assert abs(100 * data["share"] - 0.5) < 0.02
    r = runner.invoke(_app(), ["pvm", "info", "--model", "qwen3-vl-8b", "--layers", "0.5", "--dim", "256"])
    assert r.exit_code == 0 and "[18]" in r.output
    r = runner.invoke(_app(), ["pvm", "info", "--model", "qwen3-vl-8b", "--dim", "100"])
    assert r.exit_code == 2 and "multiple of the model's head_dim 128" in r.output


def test_export_train_bench_commands(pvm_tiny_dirs, tmp_path) -> None:
    runner = CliRunner()
    base = str(pvm_tiny_dirs["qwen3_vl"])
    lm = load_model(base, dtype="float32", device="cpu")
    attach_pvm(lm, layers=[1], hidden_size=32).set_gate(0.2)
    adapter = save_adapter(lm, tmp_path / "adapter")
    r = runner.invoke(
        _app(), ["pvm", "export", "--model", base, "--pvm", str(adapter), "--out", str(tmp_path / "full")]
    )
    assert r.exit_code == 0, r.output
    assert detect_format(tmp_path / "full") == "full"
    r = runner.invoke(_app(), ["pvm", "export", "--model", str(pvm_tiny_dirs["qwen3_vl_seed1"]), "--pvm", str(adapter),
                               "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "load the adapter on its base model" in r.output

    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "red.png")
    rows = [{"images": ["red.png"], "prompt": "colour?", "response": "red"}] * 4
    (tmp_path / "data.json").write_text(json.dumps(rows))
    r = runner.invoke(_app(), ["pvm", "train", "--model", base, "--data", str(tmp_path / "data.json"), "--out",
                               str(tmp_path / "run"), "--dim", "32", "--max-steps", "2", "--lr", "1e-2", "--quiet",
                               "--device", "cpu", "--dtype", "float32"])
    assert r.exit_code == 0, r.output
    assert "trained 2/2 steps" in r.output and detect_format(tmp_path / "run") == "adapter"

    r = runner.invoke(_app(), ["bench", "pvm", "--model", base, "--new-tokens", "6", "--repeats", "1", "--dim", "32",
                               "--device", "cpu", "--json", str(tmp_path / "bench.json")])
    assert r.exit_code == 0, r.output
    assert "ratio" in r.output
    res = json.loads((tmp_path / "bench.json").read_text())
    assert res["pvm_tokens_per_s"] > 0 and res["base_tokens_per_s"] > 0 and res["pvm_hidden_size"] == 32


def test_branch_probe(pvm_tiny_dirs) -> None:
    lm = load_model(str(pvm_tiny_dirs["qwen3_vl"]), dtype="float32", device="cpu")
    handle = attach_pvm(lm, hidden_size=32)
    handle.set_gate(0.25)
    probe = BranchProbe()
    probe.install(lm)
    gens = generate(lm, mixed_requests(), max_new_tokens=4, probes=[probe])
    for g in gens:
        recs = g.probe_records["branch"]
        assert len(recs) == g.n_generated * len(handle.layers)
        assert {r["layer"] for r in recs} == set(handle.layers)
        assert sorted({r["step"] for r in recs}) == list(range(g.n_generated))
        assert all(r["pvm_ratio"] > 0 and r["pvm_gate"] == 0.25 for r in recs)
    handle.set_gate(0.0)
    gens = generate(lm, mixed_requests()[:1], max_new_tokens=3, probes=[probe])
    assert all(r["pvm_ratio"] == 0.0 for r in gens[0].probe_records["branch"])
    with handle.disabled():
        gens = generate(lm, mixed_requests()[:1], max_new_tokens=3, probes=[probe])
    assert gens[0].probe_records["branch"] == []
    probe.uninstall()
    assert not handle._observers and torch.is_tensor(handle.blocks[handle.layers[0]].gate_alpha)
