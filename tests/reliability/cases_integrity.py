"""Reliability rows of issue 20's run side: nothing silently corrupts a number (see test_integrity.py).

Fingerprints that miss a changed chat template, preprocessor config, tokenizer or adapter tensor;
image modes converted by clipping; scores outside their metric's range; a plugin shadowing a
built-in; truncation decided by the scorer; one bad sample failing its run; a temperature that
overflows; the hub probed per file offline; a run id with a trailing newline.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from .cases import RUN, Case, _no_run_dir, _run_json

# ----------------------------------------------------------------- plugins (include-path task modules)
ODD_SCORES = '''
from pvm_bench.tasks.registry import builtin_task_module

MMStar = builtin_task_module("mmstar").MMStar
from pvm_bench.tasks.base import Score


class Odd(MMStar):
    """MMStar's data with a scorer returning {value!r}."""

    def __init__(self, name, value):
        super().__init__(name=name)
        self.value = value

    def score(self, sample, output, *, truncated=False):
        if self.value == "raise":
            raise RuntimeError("scorer exploded")
        if self.value == "none":
            return None
        return Score(value=float(self.value), parsed="A")


TASKS = [Odd("odd_two", 2.0), Odd("odd_nan", "nan"), Odd("odd_raise", "raise"), Odd("odd_none", "none"),
         Odd("odd_negative", -0.5)]
'''

SHADOW = '''
from pvm_bench.tasks.registry import builtin_task_module

MMStar = builtin_task_module("mmstar").MMStar
from pvm_bench.tasks.base import Score


class Always(MMStar):
    """A different 'mmstar': every answer right."""

    def score(self, sample, output, *, truncated=False):
        return Score(value=1.0, parsed="A")


TASKS = [Always()]
'''

# The README's colour_quiz scorer (README "Adding a task") on MMStar's data.
COLOUR_QUIZ = '''
from pvm_bench.tasks.registry import builtin_task_module

MMStar = builtin_task_module("mmstar").MMStar
from pvm_bench.scoring.extract import prepare_output, truncated_score
from pvm_bench.tasks.base import Score


class ColourQuiz(MMStar):
    def score(self, sample, output, *, truncated=False):
        prep = prepare_output(output)
        if prep.unfinished_reasoning or (truncated and not prep.text):
            return truncated_score()
        parsed = prep.text.strip().split()[-1].lower() if prep.text.strip() else None
        return Score(value=float(parsed == sample.target), parsed=parsed)


TASKS = [ColourQuiz(name="colour_quiz")]
'''


def _plugin(env, source: str) -> Path:
    folder = env.root / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / "plugin.py").write_text(source)
    return folder


def _task_args(env, task: str, *extra: str, run_id: str = "r") -> list[str]:
    args = env.run_args(run_id, *extra)
    args[args.index("--tasks") + 1] = task
    return args


def _records(env, run_id: str = "r") -> list[dict]:
    def no_constants(name: str) -> float:
        raise AssertionError(f"samples.jsonl holds {name}, which is not JSON")

    text = (env.out / run_id / "samples.jsonl").read_text()
    return [json.loads(line, parse_constant=no_constants) for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------- resume fingerprints
def _resume_after(mutate: Callable[..., None], *extra: str) -> Callable[..., list[str]]:
    def argv(env) -> list[str]:
        run = env.make_run("r", *extra)
        mutate(env)
        return ["run", "--resume", str(run), "--quiet"]

    return argv


def _chat_template(env) -> None:
    path = env.model / "chat_template.jinja"
    path.write_text(path.read_text().replace("<|im_start|>", "<|im_start|> ", 1))


def _preprocessor(env) -> None:
    path = env.model / "preprocessor_config.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({**cfg, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}, indent=2))


def _tokenizer(env) -> None:
    path = env.model / "tokenizer_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "clean_up_tokenization_spaces": True}))


def _metadata(env) -> None:
    path = env.data / "mmstar" / "val.parquet"
    frame = pd.read_parquet(path)
    frame.loc[0, "l2_category"] = "another category"  # moves sample 0 to another stratum of the headline metric
    frame.to_parquet(path, index=False)


def _big_adapter_middle(env) -> None:
    """Change one value of a tensor in the middle of a > 2 MiB adapter (same size, same head and tail)."""
    path = env.adapter / "adapter.safetensors"
    tensors = load_file(str(path))
    key = sorted(tensors, key=lambda k: tensors[k].numel())[-1]
    size = path.stat().st_size
    tensors[key].view(-1)[tensors[key].numel() // 2] += 1.0
    save_file(tensors, str(path), metadata={"format": "pt", "pvm_bench": "adapter"})
    assert path.stat().st_size == size > 2 << 20


def resume_adapter_middle_changed(env) -> list[str]:
    from pvm_bench.models.loading import load_model
    from pvm_bench.pvm import attach_pvm, save_adapter

    lm = load_model(str(env.model), device="cpu", dtype="float32")
    attach_pvm(lm, hidden_size=1024, seed=3, gate=0.5)  # big enough that head + tail MiB miss its middle
    save_adapter(lm, env.adapter)
    return _resume_after(_big_adapter_middle, "--pvm", str(env.adapter))(env)


# ----------------------------------------------------------------- images
def _png16(value: int = 1000, size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("I;16", size, value).save(buf, format="PNG")
    return buf.getvalue()


def _tiff_float(value: float, size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("F", size, value).save(buf, format="TIFF")
    return buf.getvalue()


def _set_image(env, row: int, value: dict) -> None:
    path = env.data / "mmstar" / "val.parquet"
    frame = pd.read_parquet(path)
    frame.at[row, "image"] = value
    frame.to_parquet(path, index=False)


def _image_case(value: Callable[..., dict], row: int = 1) -> Callable[..., list[str]]:
    def argv(env) -> list[str]:
        _set_image(env, row, value(env))
        return env.run_args()

    return argv


def _seen_pixel(env) -> tuple[int, int, int]:
    """The pixel the model is given for row 1's image, through the task's own loader."""
    from pvm_bench.tasks import get_registry

    (sample,) = [s for s in get_registry().tasks["mmstar"].load("val", 3, env.data)][1:2]
    return sample.images[0].load().getpixel((0, 0))


def _pixel_is(expected: tuple[int, int, int]) -> Callable[..., None]:
    def check(env) -> None:
        assert _seen_pixel(env) == expected
        assert _run_json(env)["counts"] == {"samples": 3, "errors": 0, "truncated": _run_json(env)["counts"]["truncated"]}

    return check


def _one_failed_sample(*words: str, errors: int = 1) -> Callable[..., None]:
    def check(env) -> None:
        records = _records(env)
        assert len(records) == 3, records
        failed = [r for r in records if r["error"]]
        assert len(failed) == errors and all(w in failed[0]["error"] for w in words), failed
        assert _run_json(env)["status"] == "completed"

    return check


def _directory_image(env) -> dict:
    """Inside the data directory (a path outside it is refused before it is even looked at)."""
    (env.data / "mmstar" / "a_dir.png").mkdir()  # beside the data file
    return {"bytes": None, "path": "a_dir.png"}


def _fifo_image(env) -> dict:
    os.mkfifo(env.data / "mmstar" / "a_fifo.png")
    return {"bytes": None, "path": "a_fifo.png"}


def _wide_image(env) -> dict:
    buf = io.BytesIO()
    Image.new("RGB", (20000, 2), (200, 30, 30)).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": "wide.png"}


def _model_fails_on(env, bad: Callable[[str], bool]) -> None:
    """``generation.generate`` raises (as a model or a fix may on one odd input) when a request's sample is ``bad``."""
    from pvm_bench.models import generation

    original = generation.generate

    def generate(lm, requests, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if any(bad(r.key.sample.id) for r in requests):
            raise IndexError("index out of range in self")
        return original(lm, requests, *args, **kwargs)

    generation.generate = generate
    env.cleanups.append(lambda: setattr(generation, "generate", original))


def model_fails_on_one_sample(env) -> list[str]:
    _model_fails_on(env, lambda sample_id: sample_id == "1")
    return env.run_args()


# ----------------------------------------------------------------- scores
def _odd(task: str) -> Callable[..., list[str]]:
    def argv(env) -> list[str]:
        return _task_args(env, task, "--include-path", str(_plugin(env, ODD_SCORES)))

    return argv


def _scoring_errors(*words: str) -> Callable[..., None]:
    def check(env) -> None:
        records = _records(env)
        assert len(records) == 3 and all(r["error"] and r["output"] for r in records), records  # generations kept
        assert all(r["score"] == 0.0 and r["error"].startswith("scoring failed") for r in records)
        assert all(w in records[0]["error"] for w in words), records[0]["error"]
        assert _run_json(env)["counts"]["errors"] == 3

    return check


# ----------------------------------------------------------------- task shadowing
def shadow_builtin(env) -> list[str]:
    return env.run_args("r", "--include-path", str(_plugin(env, SHADOW)))


def shadow_overridden(env) -> list[str]:
    return env.run_args("r", "--include-path", str(_plugin(env, SHADOW)), "--override-task", "mmstar")


def _shadow_recorded(env) -> None:
    info = _run_json(env)["datasets"]["mmstar"]
    assert info["source"] == "include path" and info["origin"].endswith("plugin.py") and len(info["definition"]) == 16
    assert all(r["score"] == 1.0 for r in _records(env))


def _group_plugin(groups: dict) -> Callable[..., list[str]]:
    def argv(env) -> list[str]:
        folder = _plugin(env, f"TASKS = []\nGROUPS = {groups!r}\n")
        return _task_args(env, next(iter(groups)), "--include-path", str(folder))

    return argv


def shadow_unselected(env) -> list[str]:
    """A plugin shadowing another task ('mmmu') does not stop a run of tasks it does not touch."""
    return env.run_args("r", "--include-path", str(_plugin(env, SHADOW.replace("[Always()]", "[Always(name='mmmu')]"))))


def compare_shadowed(env) -> list[str]:
    env.make_run("a", drop_last=False)
    code, output = env.cli(*env.run_args("b", "--include-path", str(_plugin(env, SHADOW)), "--override-task", "mmstar"))
    assert code == 0, output
    return ["compare", str(env.out / "a"), str(env.out / "b")]


def compare_shadowed_allowed(env) -> list[str]:
    return [*compare_shadowed(env), "--allow-task-change"]


def resume_task_definition_changed(env) -> list[str]:
    folder = _plugin(env, SHADOW)
    run = env.make_run("r", "--include-path", str(folder), "--override-task", "mmstar")
    (folder / "plugin.py").write_text(SHADOW.replace("value=1.0", "value=0.0"))
    return ["run", "--resume", str(run), "--quiet"]


# ----------------------------------------------------------------- threads, truncation
def resume_other_threads(env) -> list[str]:
    run = env.make_run("r", "--threads", "1")
    return ["run", "--resume", str(run), "--quiet", "--threads", "2"]


def _segments_recorded(env) -> None:
    record = _run_json(env)
    assert record["config"]["threads"] == 1
    assert [s["threads"] for s in record["segments"]] == [1, 2], record["segments"]


def colour_quiz_truncation(env) -> list[str]:
    return _task_args(env, "colour_quiz", "--include-path", str(_plugin(env, COLOUR_QUIZ)))


def _truncation_agrees(env) -> None:
    records = _records(env)
    length = [r for r in records if r["finish_reason"] == "length"]
    assert length and all(r["n_generated"] == r["max_new_tokens"] for r in length)
    assert all(r["truncated"] == (r["finish_reason"] == "length") for r in records), records
    assert _run_json(env)["counts"]["truncated"] == len(length)


# ----------------------------------------------------------------- offline, cosmetic
HUB_MODEL = "Qwen/Qwen3-VL-2B-Instruct"


def offline_missing_adapter(env) -> list[str]:
    return ["run", "--tasks", "mmmu,mathvista", "--model", HUB_MODEL, "--pvm", str(env.root / "path/to/adapter"),
            "--out", str(env.out), "--run-id", "r", "--quiet", "--no-report"]


def offline_hub_model(env) -> list[str]:
    return ["run", "--tasks", "mmmu,mathvista", "--model", HUB_MODEL, "--out", str(env.out), "--run-id", "r",
            "--quiet", "--no-report"]


def hub_unreachable(env) -> list[str]:
    """Not offline, but the hub does not answer (a closed local port): one probe, then the cache only."""
    import huggingface_hub.constants as constants

    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    state = (constants.HF_HUB_OFFLINE, constants.ENDPOINT)

    def restore() -> None:
        constants.HF_HUB_OFFLINE, constants.ENDPOINT = state
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)

    env.cleanups.append(restore)
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "0"
    constants.HF_HUB_OFFLINE, constants.ENDPOINT = False, "http://127.0.0.1:9"
    return offline_hub_model(env)


def data_export_offline(env) -> list[str]:
    return ["data", "export", "mmstar", "--out", str(env.root / "exported")]


def _nothing_written(env) -> None:
    _no_run_dir(env)


def _no_export(env) -> None:
    assert not (env.root / "exported").exists()


slow = pytest.mark.timeout(90)  # the FIFO case hung forever before the fix

INTEGRITY_CASES: list = [
    # resume refuses every changed file that shapes the inputs or the weights
    Case("resume-chat-template-changed", _resume_after(_chat_template), 2, ("chat_template.jinja", "changed", "--force-resume"), RUN),
    Case("resume-preprocessor-changed", _resume_after(_preprocessor), 2, ("preprocessor_config.json", "changed"), RUN),
    Case("resume-tokenizer-changed", _resume_after(_tokenizer), 2, ("tokenizer_config.json", "changed"), RUN),
    Case("resume-adapter-middle-changed", resume_adapter_middle_changed, 2, ("PVM adapter", "adapter.safetensors", "changed"),
         RUN),
    Case("resume-metadata-changed", _resume_after(_metadata), 2, ("sample metadata of task 'mmstar'", "changed"), RUN),
    Case("resume-task-definition-changed", resume_task_definition_changed, 2, ("definition of task 'mmstar'",), RUN),
    # images reach the model as their values, not clipped
    Case("image-16bit-png", _image_case(lambda env: {"bytes": _png16(1000), "path": "x.png"}), 0, ("3 records",),
         check=_pixel_is((4, 4, 4))),
    Case("image-float-tiff", _image_case(lambda env: {"bytes": _tiff_float(0.5), "path": "x.tif"}), 0, ("3 records",),
         check=_pixel_is((128, 128, 128))),
    Case("image-float-tiff-out-of-range", _image_case(lambda env: {"bytes": _tiff_float(7.5), "path": "x.tif"}), 1,
         ("float image with values 7.5", "[0, 1]"), one_error_line=False, check=_one_failed_sample("float image")),
    # one bad sample fails alone
    Case("image-aspect-ratio", _image_case(_wide_image), 1, ("sample '", "aspect ratio"), one_error_line=False,
         check=_one_failed_sample("aspect ratio")),
    Case("image-path-is-a-directory", _image_case(_directory_image), 1, ("is a directory",), one_error_line=False,
         check=_one_failed_sample("is a directory")),
    pytest.param(Case("image-path-is-a-fifo", _image_case(_fifo_image), 1, ("not a regular file",), one_error_line=False,
                      check=_one_failed_sample("not a regular file")), marks=slow, id="image-path-is-a-fifo"),
    Case("generation-fails-for-one-sample", model_fails_on_one_sample, 1, ("sample '1'", "generation failed", "IndexError"),
         one_error_line=False, check=_one_failed_sample("IndexError")),
    # scores are validated against the metric's declared range; a failing scorer keeps the generations
    Case("score-above-range", _odd("odd_two"), 1, ("score 2 is outside its declared range [0, 1]",), one_error_line=False,
         check=_scoring_errors("outside")),
    Case("score-below-range", _odd("odd_negative"), 1, ("score -0.5 is outside",), one_error_line=False,
         check=_scoring_errors("outside")),
    Case("score-nan", _odd("odd_nan"), 1, ("score is nan, not a finite number",), one_error_line=False,
         check=_scoring_errors("nan")),
    Case("score-raises", _odd("odd_raise"), 1, ("score() raised RuntimeError: scorer exploded",), one_error_line=False,
         check=_scoring_errors("scorer exploded")),
    Case("score-none", _odd("odd_none"), 1, ("score() returned NoneType",), one_error_line=False, absent=("pydantic",),
         check=_scoring_errors("NoneType")),
    # a plugin named like a built-in
    Case("task-shadows-builtin", shadow_builtin, 2, ("task 'mmstar'", "--override-task mmstar"), check=_nothing_written),
    Case("group-shadows-builtin", _group_plugin({"pvm-paper": ["mmstar"]}), 2, ("group 'pvm-paper'", "--override-task pvm-paper"),
         check=_nothing_written),
    Case("group-named-like-a-task", _group_plugin({"mmstar": ["mmstar_qwen3vl"]}), 2,
         ("group 'mmstar'", "name of a task", "--override-task mmstar"), check=_nothing_written),
    Case("shadow-of-an-unselected-task", shadow_unselected, 0, ("3 records",)),
    Case("task-shadow-overridden", shadow_overridden, 0, ("3 records",), check=_shadow_recorded),
    Case("compare-other-task-definition", compare_shadowed, 2, ("task 'mmstar'", "--allow-task-change")),
    Case("compare-other-task-definition-allowed", compare_shadowed_allowed, 0, ("mmstar",)),
    # what a resumed part used, what the generator decided
    Case("resume-threads-recorded", resume_other_threads, 0, ("3 records",), check=_segments_recorded),
    Case("truncation-by-generator", colour_quiz_truncation, 0, ("3 records",), check=_truncation_agrees),
    # bad options and the hub: one line, before anything is written
    Case("temperature-denormal", lambda env: env.run_args("r", "--temperature", "1e-320"), 2, ("--temperature", "use 0 for greedy"),
         check=_nothing_written),
    Case("repetition-penalty-denormal", lambda env: env.run_args("r", "--temperature", "0.7", "--repetition-penalty", "1e-320"),
         2, ("--repetition-penalty", "overflows"), check=_nothing_written),
    Case("device-unicode-digit", lambda env: env.run_args("r", "--device", "cuda:\u0663"), 2, ("--device",),
         check=_nothing_written),
    Case("offline-missing-adapter", offline_missing_adapter, 2, ("PVM adapter", "path/to/adapter", "does not exist"),
         absent=("hub",), check=_nothing_written),
    Case("offline-hub-model", offline_hub_model, 2, (HUB_MODEL, "not in the local Hugging Face cache", "HF_HUB_OFFLINE"),
         check=_nothing_written),
    Case("hub-unreachable", hub_unreachable, 2, ("unreachable", HUB_MODEL), check=_nothing_written),
    Case("data-export-offline", data_export_offline, 2, ("HF_HUB_OFFLINE",), absent=("--data-dir", "Traceback"), check=_no_export),
    Case("run-id-trailing-newline", lambda env: env.run_args("abc\n"), 2, ("--run-id",), check=lambda env: _no_run_dir(env, "abc\n")),
]
