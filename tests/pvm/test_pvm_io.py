"""Adapter round trip, full reference checkpoints, export, clear errors; pvm info figures."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from pvm_bench import load_model
from pvm_bench.models.generation import encode
from pvm_bench.pvm import PVMFormatError, attach_pvm, detect_format, export_reference, load_pvm, save_adapter
from pvm_bench.pvm.info import pvm_info

from .conftest import mixed_requests


def _logits(lm, enc) -> torch.Tensor:
    with torch.no_grad():
        return lm.hf_model(**enc).logits


@pytest.fixture()
def trained_like(pvm_tiny_dirs):
    """A Qwen3-VL with a PVM whose gate is non-zero (as after training)."""
    lm = load_model(str(pvm_tiny_dirs["qwen3_vl"]), dtype="float32", device="cpu")
    handle = attach_pvm(lm, layers=[0.5, 1], hidden_size=32, seed=3)
    handle.set_gate(0.3)
    return lm


def test_adapter_round_trip(trained_like, pvm_tiny_dirs, tmp_path) -> None:
    lm = trained_like
    out = save_adapter(lm, tmp_path / "adapter")
    assert detect_format(out) == "adapter"
    config = json.loads((out / "pvm_config.json").read_text())
    assert config["layers"] == [1] and config["pvm_hidden_size"] == 32 and config["dtype"] == "float32"
    assert config["base_fingerprint"] == lm.fingerprint and config["version"] == 1
    tensors = load_file(out / "adapter.safetensors")
    assert set(tensors) == set(lm.pvm.state_dict())
    assert all(k.startswith("model.language_model.layers.1.pvm_block.") for k in tensors)
    assert "model.language_model.layers.1.pvm_block.cross_attn.q_norm.weight" in tensors
    enc, _ = encode(lm, mixed_requests())
    want = _logits(lm, enc)
    again = load_model(str(pvm_tiny_dirs["qwen3_vl"]), pvm=out, dtype="float32", device="cpu")
    assert again.pvm is not None and again.pvm.layers == [1] and again.pvm.gates() == {1: pytest.approx(0.3)}
    assert torch.equal(_logits(again, enc), want)
    # bf16 adapters load into fp32 models (cast on load)
    save_adapter(lm, tmp_path / "bf16", dtype=torch.bfloat16)
    assert json.loads((tmp_path / "bf16" / "pvm_config.json").read_text())["dtype"] == "bfloat16"
    load_pvm(again, tmp_path / "bf16")
    torch.testing.assert_close(_logits(again, enc), want, atol=0.05, rtol=0.05)


def test_export_and_full_checkpoint(trained_like, pvm_tiny_dirs, tmp_path) -> None:
    lm = trained_like
    enc, _ = encode(lm, mixed_requests())
    want = _logits(lm, enc)
    full = export_reference(lm, tmp_path / "full")
    assert detect_format(full) == "full"
    cfg = json.loads((full / "config.json").read_text())
    assert cfg["text_config"]["pvm_layers"] == [1] and cfg["text_config"]["pvm_hidden_size"] == 32
    loaded = load_model(str(full), pvm=full, dtype="float32", device="cpu")
    assert torch.equal(_logits(loaded, enc), want)
    # the base of this checkpoint is the tiny model itself, so it may be grafted onto it
    base = load_model(str(pvm_tiny_dirs["qwen3_vl"]), pvm=full, dtype="float32", device="cpu")
    assert torch.equal(_logits(base, enc), want)
    # a reference checkpoint that stores the gate as a 0-d tensor loads too
    from safetensors.torch import save_file
    weights = load_file(full / "model.safetensors")
    weights["model.language_model.layers.1.pvm_block.gate_alpha"] = torch.tensor(0.3)
    save_file(weights, str(full / "model.safetensors"), metadata={"format": "pt"})
    assert load_pvm(loaded, full).gates()[1] == pytest.approx(0.3)


def test_clear_errors(trained_like, pvm_tiny_dirs, tmp_path) -> None:
    lm = trained_like
    adapter = save_adapter(lm, tmp_path / "adapter")
    other = load_model(str(pvm_tiny_dirs["qwen3_vl_seed1"]), dtype="float32", device="cpu")
    with pytest.raises(PVMFormatError, match=r"trained on base model .*load the adapter on its base model"):
        load_pvm(other, adapter)
    qwen25 = load_model(str(pvm_tiny_dirs["qwen2_5_vl"]), dtype="float32", device="cpu")
    with pytest.raises(PVMFormatError, match="model_type qwen3_vl != qwen2_5_vl"):
        load_pvm(qwen25, adapter)
    # mismatched shapes: the message names the tensor
    config = json.loads((adapter / "pvm_config.json").read_text())
    config["pvm_hidden_size"] = 64
    config.pop("intermediate_size")
    (adapter / "pvm_config.json").write_text(json.dumps(config))
    with pytest.raises(PVMFormatError, match=r"tensor 'model\.language_model\.layers\.1\.pvm_block\..*' has shape"):
        load_pvm(lm, adapter, check_base=False)
    # a full checkpoint whose base weights differ from the loaded model
    full = export_reference(lm, tmp_path / "full")
    with pytest.raises(PVMFormatError, match=r"different base weights.*load_model\("):
        load_pvm(other, full)
    with pytest.raises(PVMFormatError, match="without PVM"):
        load_pvm(lm, pvm_tiny_dirs["qwen3_vl"])
    with pytest.raises(PVMFormatError, match="not a directory"):
        load_pvm(lm, tmp_path / "nope")


def test_other_families_round_trip(pvm_tiny_dirs, tmp_path) -> None:
    for fam in ("qwen2_5_vl", "llava_onevision"):
        lm = load_model(str(pvm_tiny_dirs[fam]), dtype="float32", device="cpu")
        attach_pvm(lm, layers=[-1], hidden_size=32).set_gate(0.2)
        enc, _ = encode(lm, mixed_requests())
        out = save_adapter(lm, tmp_path / fam)
        again = load_model(str(pvm_tiny_dirs[fam]), pvm=out, dtype="float32", device="cpu")
        assert torch.equal(_logits(again, enc), _logits(lm, enc))


def test_info_figures() -> None:
    eight = pvm_info("qwen3-vl-8b")
    assert eight.layers == [8, 16, 24] and eight.pvm_params == 27_922_179
    assert f"{eight.pvm_params / 1e6:.2f}M" == "27.92M" and f"{100 * eight.share:.2f}%" == "0.32%"
    four = pvm_info("Qwen/Qwen3-VL-4B-Instruct")
    assert four.layers == [5, 11, 17]
    assert abs(four.pvm_params / 1e6 - 22.7) < 0.05 and abs(100 * four.share - 0.5) < 0.02
    assert "27.92M parameters (0.32%" in eight.summary()
