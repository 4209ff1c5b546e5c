"""The reliability table (issue 16): one row per bad input or hazard.

Each row prepares its inputs in a sandbox (:class:`conftest.Env`), runs one CLI command and
states the exit code, the words its one ``error:`` line must contain, words it must not
contain, and the files that must be byte-identical before and after.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from pvm_bench.runner.guard import RunLock


@dataclass(frozen=True)
class Case:
    id: str
    #: Prepares the sandbox and returns the CLI argv.
    argv: Callable[..., list[str]]
    code: int
    words: tuple[str, ...]
    #: Paths (relative to the sandbox root) that must be unchanged by the command.
    unchanged: tuple[str, ...] = ()
    #: Words that must NOT appear in the output (misleading messages).
    absent: tuple[str, ...] = ()
    #: Exactly one ``error:`` line (False where per-sample error lines are expected too).
    one_error_line: bool = True
    #: ``words`` are looked for in the whole output, not only in the ``error:`` lines (a verdict
    #: such as ``check: FAIL`` with exit 1 is no error line).
    words_in_output: bool = False
    #: Extra checks after the command: ``check(env)``.
    check: Callable[..., None] | None = None


RUN = ("out/r/run.json", "out/r/samples.jsonl")


def _run_json(env, run_id: str = "r") -> dict:
    return json.loads((env.out / run_id / "run.json").read_text())


def _failed_with(*words: str) -> Callable[..., None]:
    def check(env) -> None:
        record = _run_json(env)
        assert record["status"] == "failed", record["status"]
        for w in words:
            assert w in (record["error"] or ""), record["error"]

    return check


def _no_run_dir(env, run_id: str = "r") -> None:
    assert not (env.out / run_id).exists(), sorted(p.name for p in (env.out / run_id).iterdir())


# ----------------------------------------------------------------- resume hazards
def resume_model_swapped(env) -> list[str]:
    run = env.make_run()
    shutil.copy(env.other_model / "model.safetensors", env.model / "model.safetensors")
    return ["run", "--resume", str(run), "--quiet"]


def resume_data_changed(env) -> list[str]:
    run = env.make_run()
    path = env.data / "mmstar" / "val.parquet"
    frame = pd.read_parquet(path)
    frame.loc[0, "question"] = "What is the main colour of this picture, really?\nOptions: A: red"
    frame.to_parquet(path, index=False)
    return ["run", "--resume", str(run), "--quiet"]


def resume_adapter_changed(env) -> list[str]:
    run = env.make_run("r", "--pvm", str(env.adapter))
    shutil.copy(env.other_adapter / "adapter.safetensors", env.adapter / "adapter.safetensors")
    return ["run", "--resume", str(run), "--quiet"]


def resume_generation_config_changed(env) -> list[str]:
    run = env.make_run()
    path = env.model / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "top_k": 7}))  # not part of the weights' fingerprint
    return ["run", "--resume", str(run), "--quiet"]


def resume_option_differs(env) -> list[str]:
    run = env.make_run()
    return ["run", "--resume", str(run), "--quiet", "--max-new-tokens", "9"]


def resume_corrupt_middle_line(env) -> list[str]:
    run = env.make_run(drop_last=False)
    path = run / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:40] + "\x00garbage\n"
    path.write_text("".join(lines))
    return ["run", "--resume", str(run), "--quiet"]


def resume_locked(env) -> list[str]:
    run = env.make_run()
    lock = RunLock(run).acquire()  # another process holding the run
    env.cleanups.append(lock.release)
    return ["run", "--resume", str(run), "--quiet"]


def resume_run_json_garbage(env) -> list[str]:
    run = env.make_run()
    (run / "run.json").write_text('{"run_id": 5, "status": ')
    return ["run", "--resume", str(run), "--quiet"]


def resume_not_a_run(env) -> list[str]:
    (env.root / "empty").mkdir()
    return ["run", "--resume", str(env.root / "empty"), "--quiet"]


# ----------------------------------------------------------------- run inputs
def duplicate_ids(env) -> list[str]:
    path = env.data / "mmstar" / "val.parquet"
    frame = pd.read_parquet(path)
    frame["index"] = [0, 0, 0, 3, 4, 5]
    frame.to_parquet(path, index=False)
    return env.run_args()


def variants_twice(env) -> list[str]:
    return env.run_args("r", "--variants", "base,base")


def nan_adapter(env) -> list[str]:
    path = env.adapter / "adapter.safetensors"
    save_file({k: torch.full_like(v, float("nan")) for k, v in load_file(str(path)).items()}, str(path))
    return env.run_args("r", "--pvm", str(env.adapter))


def nan_logits(env) -> list[str]:
    path = env.model / "model.safetensors"
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.endswith("language_model.norm.weight"))
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, str(path), metadata={"format": "pt"})
    return env.run_args()


def pai_alpha_nan(env) -> list[str]:
    return env.run_args("r", "--variants", "base,pai:alpha=nan")


def _variants(specs: str) -> Callable[..., list[str]]:
    """A run with ``--variants specs`` (issue 20, variant names: refused by resolved configuration)."""
    return lambda env: env.run_args("r", "--variants", specs)


def model_missing_weights(env) -> list[str]:
    (env.model / "model.safetensors").unlink()
    return env.run_args()


def model_truncated(env) -> list[str]:
    path = env.model / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return env.run_args()


def model_random_bytes(env) -> list[str]:
    (env.model / "model.safetensors").write_bytes(bytes(range(256)) * 400)
    return env.run_args()


def model_config_invalid(env) -> list[str]:
    (env.model / "config.json").write_text('{"model_type": "qwen3_vl",\n  "text_config": {')
    return env.run_args()


def model_is_a_file(env) -> list[str]:
    (env.root / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return env.run_args(model=env.root / "passwd")


def limit_zero(env) -> list[str]:
    return [a if a != "3" else "0" for a in env.run_args()]


def _adapter_case(mutate: Callable[[Path], None]) -> Callable[..., list[str]]:
    def argv(env) -> list[str]:
        mutate(env.adapter)
        return env.run_args("r", "--pvm", str(env.adapter))

    return argv


def _edit_config(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(adapter: Path) -> None:
        cfg = json.loads((adapter / "pvm_config.json").read_text())
        (adapter / "pvm_config.json").write_text(json.dumps(change(cfg)))

    return mutate


def _weights(data: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def mutate(adapter: Path) -> None:
        path = adapter / "adapter.safetensors"
        path.write_bytes(data(path.read_bytes()))

    return mutate


def _data_file(name: str, payload: bytes) -> Callable[..., list[str]]:
    def argv(env) -> list[str]:
        (env.data / "mmstar" / "val.parquet").unlink()
        (env.data / "mmstar" / name).write_bytes(payload)
        return env.run_args()

    return argv


def _jsonl_rows(env) -> list[bytes]:
    frame = pd.read_parquet(env.data / "mmstar" / "val.parquet").drop(columns=["image"])
    return [json.dumps(r).encode() for r in frame.to_dict(orient="records")]


def data_bad_line3(env) -> list[str]:
    rows = _jsonl_rows(env)
    rows[2] = rows[2][:30]
    (env.data / "mmstar" / "val.parquet").unlink()
    (env.data / "mmstar" / "val.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    return env.run_args()


def huge_image(env) -> list[str]:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (13000, 13000)).save(buf, format="PNG", compress_level=1)
    path = env.data / "mmstar" / "val.parquet"
    frame = pd.read_parquet(path)
    frame.at[1, "image"] = {"bytes": buf.getvalue(), "path": "huge.png"}
    frame.to_parquet(path, index=False)
    return env.run_args()


def report_corrupt_line3(env) -> list[str]:
    run = env.make_run(drop_last=False)
    path = run / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = '{"variant": "base", "task": "mmstar", broken\n'
    path.write_text("".join(lines))
    return ["report", str(run)]


# ----------------------------------------------------------------- pvm train
def _train_data(env, rows: list[dict] | None = None, raw: bytes | None = None) -> Path:
    from PIL import Image

    folder = env.root / "train"
    folder.mkdir(exist_ok=True)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / "red.png")
    rows = rows if rows is not None else [{"image": "red.png", "prompt": "colour?", "response": "red"}] * 4
    path = folder / "train.jsonl"
    path.write_bytes(raw if raw is not None else b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    return path


def _train_args(env, data: Path, *extra: str) -> list[str]:
    return ["pvm", "train", "--model", str(env.model), "--data", str(data), "--out", str(env.root / "pvm_out"),
            "--dim", "32", "--max-steps", "2", "--device", "cpu", "--dtype", "float32", "--quiet", *extra]


def train_no_image_column(env) -> list[str]:
    return _train_args(env, _train_data(env, [{"prompt": "colour?", "response": "red"}] * 3))


def train_unreadable_image(env) -> list[str]:
    data = _train_data(env, [{"image": "broken.png", "prompt": "colour?", "response": "red"}] * 2)
    (data.parent / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return _train_args(env, data)


def train_malformed_line(env) -> list[str]:
    good = json.dumps({"image": "red.png", "prompt": "colour?", "response": "red"}).encode()
    return _train_args(env, _train_data(env, raw=good + b"\n" + good + b"\n{\"image\": \"red.png\", \n" + good + b"\n"))


def train_leftover_tmp_checkpoint(env) -> list[str]:
    data = _train_data(env)
    tmp = env.root / "pvm_out" / "checkpoints" / "step-1.tmp"
    tmp.mkdir(parents=True)
    (tmp / "trainer_state.json").write_text("{}")
    return _train_args(env, data)


def train_other_settings(env) -> list[str]:
    data = _train_data(env)
    code, output = env.cli(*_train_args(env, data, "--max-steps", "4", "--save-every", "2"))
    assert code == 0, output
    return _train_args(env, data, "--max-steps", "4", "--save-every", "2", "--lr", "0.01")


def train_other_settings_resume(env) -> list[str]:
    data = _train_data(env)
    code, output = env.cli(*_train_args(env, data, "--max-steps", "4", "--save-every", "2"))  # keeps checkpoints/step-2
    assert code == 0, output
    return _train_args(env, data, "--max-steps", "4", "--save-every", "2", "--dim", "64", "--resume")


def _adapter_keeps_checkpoint_settings(env) -> None:
    cfg = json.loads((env.root / "pvm_out" / "pvm_config.json").read_text())
    assert cfg["pvm_hidden_size"] == 32 and cfg["train_config"]["hidden_size"] == 32


def train_other_settings_overwrite(env) -> list[str]:
    return [*train_other_settings(env), "--overwrite"]


# ----------------------------------------------------------------- adversarial pass (not in the issue)
def adapter_layer_out_of_range(env) -> list[str]:
    _edit_config(lambda c: {**c, "layers": [999]})(env.adapter)
    return env.run_args("r", "--pvm", str(env.adapter))


def model_missing_shard(env) -> list[str]:
    (env.model / "model.safetensors").rename(env.model / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (env.model / "model.safetensors.index.json").write_text(json.dumps(index))
    return env.run_args()


def model_tokenizer_corrupt(env) -> list[str]:
    (env.model / "tokenizer.json").write_text("{broken")
    return env.run_args()


def model_unknown_type(env) -> list[str]:
    cfg = json.loads((env.model / "config.json").read_text())
    (env.model / "config.json").write_text(json.dumps({**cfg, "model_type": "nonsense_vl"}))
    return env.run_args()


def _set_image(env, row: int, value: dict, index: str | None = None) -> list[str]:
    path = env.data / "mmstar" / "val.parquet"
    frame = pd.read_parquet(path)
    frame.at[row, "image"] = value
    if index is not None:
        frame["index"] = frame["index"].astype(str)
        frame.at[row, "index"] = index
    frame.to_parquet(path, index=False)
    return env.run_args()


def data_jsonl_with_bom(env) -> list[str]:
    rows = _jsonl_rows(env)
    (env.data / "mmstar" / "val.parquet").unlink()
    (env.data / "mmstar" / "val.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(rows) + b"\n")
    return env.run_args()


def samples_line_missing_fields(env) -> list[str]:
    run = env.make_run()
    path = run / "samples.jsonl"
    path.write_text(path.read_text() + '{"variant": "base"}\n')
    return ["run", "--resume", str(run), "--quiet"]


def attention_part_corrupt(env) -> list[str]:
    run = env.make_run()
    (run / "attention").mkdir(exist_ok=True)
    (run / "attention" / "part-1-abc.parquet").write_bytes(b"junk")
    return ["run", "--resume", str(run), "--quiet"]


def _unreadable_part_kept(env) -> None:
    record = _run_json(env)
    assert record["status"] == "completed" and "unreadable" in record["error"]
    assert (env.out / "r" / "attention" / "part-1-abc.parquet.unreadable").exists()


def train_out_is_a_file(env) -> list[str]:
    data = _train_data(env)
    (env.root / "pvm_out").write_text("x")
    return _train_args(env, data)


def train_response_null(env) -> list[str]:
    return _train_args(env, _train_data(env, [{"image": "red.png", "prompt": "colour?", "response": None}] * 2))


def data_dir_is_a_file(env) -> list[str]:
    return env.run_args(data=env.data / "mmstar" / "val.parquet")


def model_name_empty(env) -> list[str]:
    args = env.run_args()
    args[args.index("--model") + 1] = ""
    return args


def samples_jsonl_is_a_directory(env) -> list[str]:
    run = env.make_run()
    (run / "samples.jsonl").unlink()
    (run / "samples.jsonl").mkdir()
    return ["run", "--resume", str(run), "--quiet"]


def out_of_memory(env) -> list[str]:
    from pvm_bench.models import generation

    def oom(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1000170007225 bytes")

    original = generation.generate
    generation.generate = oom
    env.cleanups.append(lambda: setattr(generation, "generate", original))
    return env.run_args()


def run_dir_is_a_file(env) -> list[str]:
    env.out.mkdir(parents=True)
    (env.out / "r").write_text("x")
    return env.run_args()


def lock_file_is_a_directory(env) -> list[str]:
    run = env.make_run()
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").mkdir()
    return ["run", "--resume", str(run), "--quiet"]


def export_into_a_file(env) -> list[str]:
    (env.root / "exported").write_text("x")
    return ["pvm", "export", "--model", str(env.model), "--pvm", str(env.adapter), "--out", str(env.root / "exported"),
            "--to", "adapter"]


def train_resume_without_checkpoint(env) -> list[str]:
    return [*_train_args(env, _train_data(env)), "--resume"]


TRAIN_OUT = ("pvm_out/pvm_config.json", "pvm_out/adapter.safetensors", "pvm_out/checkpoints/step-2/trainer_state.json")
FIX = "re-"  # every file error ends with a fix: re-download / re-export / re-save


CASES: list[Case] = [
    # resume hazards (items 1, 5 and the corrupted-line traceback)
    Case("resume-model-swapped", resume_model_swapped, 2, ("model weights", "changed", "--force-resume"), RUN),
    Case("resume-data-changed", resume_data_changed, 2, ("data of task 'mmstar'", "changed", "--force-resume"), RUN),
    Case("resume-adapter-changed", resume_adapter_changed, 2, ("PVM adapter", "changed"), RUN),
    Case("resume-generation-config-changed", resume_generation_config_changed, 2,
         ("generation settings of task 'mmstar'", "generation_config.top_k None -> 7"), RUN),
    Case("resume-option-differs", resume_option_differs, 2, ("--max-new-tokens",), RUN),
    Case("resume-corrupt-middle-line", resume_corrupt_middle_line, 2, ("samples.jsonl line 2", "head -n 1"), RUN),
    Case("resume-locked", resume_locked, 2, ("in use by another pvm-bench process",), RUN),
    Case("resume-run-json-garbage", resume_run_json_garbage, 2, ("run.json", "not a valid run record"), RUN, absent=("input_value",)),
    Case("resume-not-a-run", resume_not_a_run, 2, ("has no run.json",)),
    # run inputs (items 2, 5, 6, 7)
    # data is loaded before the run directory is made (issue 20): a run that never started leaves none
    Case("duplicate-ids", duplicate_ids, 2, ("duplicate sample ids", "'0'"), ("data/mmstar/val.parquet",),
         check=lambda env: _no_run_dir(env)),
    Case("variants-twice", variants_twice, 2, ("'base'", "more than once")),
    Case("adapter-all-nan", nan_adapter, 2, ("non-finite", "pvm_block"), ("adapter/adapter.safetensors",),
         check=_failed_with("non-finite")),
    Case("nan-logits", nan_logits, 2, ("variant 'base'", "NaN logits"), check=_failed_with("NaN logits")),
    Case("pai-alpha-nan", pai_alpha_nan, 2, ("alpha",)),
    Case("variants-base-plus-pvm", _variants("base,base+pvm"), 2, ("'base+pvm'", "contradict")),
    Case("variants-pvm-plus-base", _variants("pvm+base"), 2, ("'pvm+base'", "contradict")),
    Case("variants-pvm-plus-pvm", _variants("pvm+pvm"), 2, ("'pvm+pvm'", "given twice")),
    Case("variants-same-configuration", _variants("base,blind:after=3,blind:after=03"), 2,
         ("'blind:after=3' and 'blind:after=03'", "same configuration")),
    Case("variants-non-ascii-digit", _variants("base,blind:after=\u0663"), 2, ("not an integer",)),
    Case("variants-key-twice", _variants("base,pai:alpha=0:alpha=5"), 2, ("'alpha' is given twice",)),
    Case("variants-underscore-number", _variants("base,pai:alpha=1_0"), 2, ("not a plain decimal number",)),
    Case("variants-exponent-integer", _variants("base,blind:after=1e12"), 2, ("is not an integer",),
         absent=("is not a number",)),
    Case("model-missing-weights", model_missing_weights, 2, ("no model weights",), absent=("hub",),
         check=_failed_with("no model weights")),
    Case("model-truncated", model_truncated, 2, ("model.safetensors", "not a valid safetensors", FIX), absent=("hub",)),
    Case("model-random-bytes", model_random_bytes, 2, ("not a valid safetensors", FIX), absent=("hub",)),
    Case("model-config-invalid-offline", model_config_invalid, 2, ("config.json", "invalid JSON at line 2"), absent=("hub",)),
    Case("model-is-a-file", model_is_a_file, 2, ("is a file, not a model directory",), absent=("does not exist",)),
    Case("limit-zero", limit_zero, 2, ("--limit",), absent=("no samples for split",)),
    # adapters (tracebacks list)
    Case("adapter-config-invalid-json", _adapter_case(lambda a: (a / "pvm_config.json").write_text("{nope")), 2,
         ("pvm_config.json", "invalid JSON")),
    Case("adapter-config-array", _adapter_case(_edit_config(lambda c: [c])), 2, ("pvm_config.json", "JSON list")),
    Case("adapter-config-no-layers", _adapter_case(_edit_config(lambda c: {k: v for k, v in c.items() if k != "layers"})), 2,
         ("lacks 'layers'",)),
    Case("adapter-config-layers-string", _adapter_case(_edit_config(lambda c: {**c, "layers": "0,1"})), 2,
         ("'layers' must be a non-empty list",)),
    Case("adapter-weights-garbage", _adapter_case(_weights(lambda b: b"garbage!" * 64)), 2,
         ("adapter.safetensors", "not a valid safetensors")),
    Case("adapter-weights-truncated", _adapter_case(_weights(lambda b: b[: len(b) // 3])), 2,
         ("adapter.safetensors", "not a valid safetensors")),
    Case("adapter-weights-empty", _adapter_case(_weights(lambda b: b"")), 2, ("adapter.safetensors", "not a valid safetensors")),
    Case("adapter-weights-pickle", _adapter_case(_weights(lambda b: pickle.dumps({"w": [1.0, 2.0]}))), 2,
         ("adapter.safetensors", "not a valid safetensors")),
    # data files (misleading messages)
    Case("data-empty-jsonl", _data_file("val.jsonl", b""), 2, ("val.jsonl", "is empty"), absent=("StopIteration",)),
    Case("data-binary-jsonl", _data_file("val.jsonl", bytes(range(256)) * 8), 2, ("val.jsonl", "binary")),
    Case("data-bad-line-3", data_bad_line3, 2, ("val.jsonl line 3",)),
    Case("huge-image", huge_image, 1, ("13000x13000", "MP limit"), one_error_line=False),
    Case("report-corrupt-line-3", report_corrupt_line3, 2, ("samples.jsonl line 3",), ("out/r/samples.jsonl",),
         absent=("column 46",)),
    # pvm train
    Case("train-no-image-column", train_no_image_column, 2, ("row 0", "no image column")),
    Case("train-unreadable-image", train_unreadable_image, 2, ("data row", "broken.png")),
    Case("train-malformed-jsonl-line", train_malformed_line, 2, ("train.jsonl line 3 is not valid JSON",)),
    Case("train-leftover-tmp-checkpoint", train_leftover_tmp_checkpoint, 0, ("trained 2/2 steps",)),
    Case("train-other-settings", train_other_settings, 2, ("other settings", "lr 0.0001 -> 0.01", "--overwrite"), TRAIN_OUT),
    # explicit --resume continues the checkpoint with its own settings: the adapter describes what it holds
    Case("train-other-settings-resume", train_other_settings_resume, 0,
         ("trained 4/4 steps", "checkpoint's own settings", "hidden_size 32 -> 64"),
         check=_adapter_keeps_checkpoint_settings),
    Case("train-other-settings-overwrite", train_other_settings_overwrite, 0, ("trained 4/4 steps",)),
    # adversarial pass (inputs not listed in the issue)
    Case("adv-adapter-layer-out-of-range", adapter_layer_out_of_range, 2, ("PVM layers [999] do not exist", "2 decoder layers")),
    Case("adv-model-missing-shard", model_missing_shard, 2, ("missing weight shard", "model-00002-of-00002"),
         absent=("does not exist",)),
    Case("adv-model-tokenizer-corrupt", model_tokenizer_corrupt, 2, ("tokenizer.json", "invalid JSON")),
    Case("adv-model-unknown-type", model_unknown_type, 2, ("nonsense_vl", "upgrade transformers")),
    Case("adv-image-empty-bytes", lambda env: _set_image(env, 0, {"bytes": b"", "path": None}), 1,
         ("the image is empty",), one_error_line=False, absent=("NoneType",)),
    Case("adv-sample-id-rich-markup", lambda env: _set_image(env, 0, {"bytes": b"nope", "path": None}, "[/red] x\ny"), 1,
         ("sample '[/red] x y'", "cannot decode image"), one_error_line=False, absent=("MarkupError",)),
    # read past the BOM by both the pre-check and datasets: it reaches the task's own schema check
    Case("adv-data-jsonl-bom-accepted", data_jsonl_with_bom, 2, ("record 0 lacks image",), absent=("BOM",)),
    Case("adv-data-jsonl-row-array", _data_file("val.jsonl", b"[1, 2]\n"), 2, ("val.jsonl line 1", "JSON list")),
    Case("adv-data-parquet-truncated", _data_file("val.parquet", b"PAR1" + b"\x00" * 64), 2, ("val.parquet", "not a Parquet file")),
    Case("adv-samples-line-missing-fields", samples_line_missing_fields, 2, ("samples.jsonl line 3", "sample_id: Field required"),
         RUN, absent=("errors.pydantic.dev",)),
    Case("adv-attention-part-corrupt", attention_part_corrupt, 0, ("warning: attention merge failed", "unreadable"),
         check=_unreadable_part_kept),
    Case("adv-train-out-is-a-file", train_out_is_a_file, 2, ("is a file, not a directory",)),
    Case("adv-train-response-null", train_response_null, 2, ("row 0 has an empty response",), absent=("has no response column",)),
    Case("adv-data-dir-is-a-file", data_dir_is_a_file, 2, ("--data-dir", "is a file"), absent=("val.parquet/mmstar",)),
    Case("adv-model-name-empty", model_name_empty, 2, ("model name is empty",), absent=("cannot reach",)),
    Case("adv-samples-jsonl-is-a-directory", samples_jsonl_is_a_directory, 2, ("samples.jsonl", "directory, not a file")),
    Case("adv-out-of-memory", out_of_memory, 2, ("out of memory generating task 'mmstar'", "--batch-size"),
         check=_failed_with("out of memory")),
    Case("adv-run-dir-is-a-file", run_dir_is_a_file, 2, ("is a file, not a run directory",), ("out/r",)),
    Case("adv-lock-file-is-a-directory", lock_file_is_a_directory, 2, ("lock file", "Is a directory"), RUN),
    Case("adv-export-into-a-file", export_into_a_file, 2, ("is a file, not a directory",), ("exported",)),
    Case("adv-train-resume-without-checkpoint", train_resume_without_checkpoint, 2, ("no checkpoint to continue",)),
]
