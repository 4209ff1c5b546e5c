"""PVM-only training on a toy colour task that needs the image; exact resume after a kill."""

from __future__ import annotations

import json
import math
import random
import shutil

import pytest
import torch
from PIL import Image

from pvm_bench.models.loading import load_model
from pvm_bench.pvm.train import Example, TrainConfig, evaluate, read_log, train

COLOURS = {"red": (230, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 230), "yellow": (235, 220, 30)}


def colour_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        name = rng.choice(list(COLOURS))
        colour = tuple(min(255, max(0, v + rng.randint(-20, 20))) for v in COLOURS[name])
        rows.append({"image": Image.new("RGB", (32, 32), colour), "prompt": "colour?", "response": name})
    return rows


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    from pvm_bench.testing import build_tiny_model

    # init_std 0.2: with the default 0.02 a frozen random lm_head cannot express confident
    # predictions at all (max logit ~1), whatever the PVM writes into the residual stream.
    return build_tiny_model("qwen3_vl", tmp_path_factory.mktemp("colour") / "m", seed=0, init_std=0.2)


@pytest.fixture()
def one_thread():
    # Two OpenMP threads on a busy 2-core CI box are ~30x slower than one for these tiny ops.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_train_learns_and_resumes_exactly(colour_model, tmp_path, one_thread) -> None:
    rows, held_out = colour_rows(64, 0), colour_rows(24, 1)
    test_examples = [Example([r["image"]], r["prompt"], r["response"]) for r in held_out]
    lm = load_model(str(colour_model), dtype="float32", device="cpu")
    base = evaluate(lm, test_examples)
    cfg = dict(model=str(colour_model), data="-", hidden_size=64, lr=3e-2, batch_size=8, max_steps=80,
               warmup_ratio=0.1, progress=False, seed=0)

    full = train(TrainConfig(out=str(tmp_path / "full"), save_every=40, **cfg), lm=lm, rows=rows)
    assert full.finished and len(full.losses) == 80 and lm.pvm is not None
    after = evaluate(lm, test_examples)
    # the task needs the image: the frozen base is at chance on the colour word
    assert base["first_token_accuracy"] <= 0.5
    assert after["loss"] < base["loss"] - 1.5
    assert after["first_token_accuracy"] >= base["first_token_accuracy"] + 0.4
    assert sum(full.losses[-10:]) / 10 < sum(full.losses[:10]) / 10 - 1.5
    log = read_log(tmp_path / "full")
    assert [r["step"] for r in log] == list(range(1, 81))
    assert set(log[-1]["gates"]) == {str(i) for i in lm.pvm.layers} and all(v != 0 for v in log[-1]["gates"].values())
    assert (tmp_path / "full" / "adapter.safetensors").is_file()
    print(f"\ncolour task: loss {base['loss']:.3f} -> {after['loss']:.3f}, first-token accuracy "
          f"{base['first_token_accuracy']:.2f} -> {after['first_token_accuracy']:.2f}, {full.seconds:.1f}s")

    # A run killed after its step-40 checkpoint resumes from it and reproduces steps 41..80.
    killed = tmp_path / "killed"
    (killed / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "full" / "checkpoints" / "step-40", killed / "checkpoints" / "step-40")
    ckpt_files = {p.name for p in (killed / "checkpoints" / "step-40").iterdir()}
    assert ckpt_files == {"pvm_config.json", "adapter.safetensors", "optimizer.safetensors", "rng.safetensors",
                          "trainer_state.json"}
    json.loads((killed / "checkpoints" / "step-40" / "trainer_state.json").read_text())
    resumed = train(TrainConfig(out=str(killed), **cfg), lm=lm, rows=rows)
    assert resumed.resumed_from == 40 and resumed.finished
    assert resumed.losses == full.losses[40:]  # exactly equal, not approximately
    assert lm.pvm.gates() == full.gates

    # stop_after (a kill without a periodic checkpoint) leaves a checkpoint at the stop point.
    part = tmp_path / "part"
    first = train(TrainConfig(out=str(part), stop_after=3, **cfg), lm=lm, rows=rows)
    assert not first.finished and first.losses == full.losses[:3]
    second = train(TrainConfig(out=str(part), stop_after=6, **cfg), lm=lm, rows=rows)
    assert second.resumed_from == 3 and second.losses == full.losses[3:6]
    assert [r["loss"] for r in read_log(part)] == full.losses[:6]


def test_local_jsonl_data(colour_model, tmp_path, one_thread) -> None:
    """Local files: jsonl with image paths relative to the file; loss masks the prompt."""
    from pvm_bench.pvm.train import _row_to_example, build_batch, load_rows

    lines = []
    for i, r in enumerate(colour_rows(4, 2)):
        r["image"].save(tmp_path / f"{i}.png")
        lines.append(json.dumps({"image": f"{i}.png", "question": "colour?", "answer": r["response"]}))
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    rows, base = load_rows(str(tmp_path / "train.jsonl"))
    lm = load_model(str(colour_model), dtype="float32", device="cpu")
    batch = build_batch(lm, [_row_to_example(r, base) for r in rows])
    labels = batch["labels"]
    tok = lm.tokenizer
    first = labels[0][labels[0] != -100].tolist()
    assert tok.decode(first[: len(json.loads(lines[0])["answer"])]) == json.loads(lines[0])["answer"]
    assert (labels[0, : int((batch["input_ids"][0] == lm.image_token_id).nonzero().max()) + 1] == -100).all()
    res = train(TrainConfig(model=str(colour_model), data=str(tmp_path / "train.jsonl"), out=str(tmp_path / "o"),
                            hidden_size=64, lr=1e-2, batch_size=2, grad_accum=2, max_steps=2, progress=True,
                            gradient_checkpointing=True), lm=lm)
    assert res.finished and len(res.losses) == 2 and all(math.isfinite(x) for x in res.losses)
