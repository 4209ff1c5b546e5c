"""Unit checks behind issue 20's run-side rows: image modes, full-file hashes, score validation."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pvm_bench.data.images import CorruptImageError, load_image, source_bytes, to_rgb
from pvm_bench.filehash import changed_files, file_digest, files_fingerprint, tree_files
from pvm_bench.tasks.metrics import Metric, score_problem


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(("img", "fmt", "expected"), [
    (Image.new("I;16", (4, 4), 1000), "PNG", (4, 4, 4)),  # 1000/65535 of full scale, not clipped to white
    (Image.new("I;16", (4, 4), 65535), "PNG", (255, 255, 255)),
    (Image.new("I;16", (4, 4), 1000), "TIFF", (4, 4, 4)),
    (Image.fromarray(np.full((4, 4), 32768, dtype=np.int32), "I"), "TIFF", (128, 128, 128)),
    (Image.new("F", (4, 4), 0.5), "TIFF", (128, 128, 128)),  # not black
    (Image.new("F", (4, 4), 1.0), "TIFF", (255, 255, 255)),
    (Image.new("L", (4, 4), 77), "PNG", (77, 77, 77)),
    (Image.new("RGBA", (4, 4), (10, 20, 30, 0)), "PNG", (10, 20, 30)),  # alpha dropped, as PIL's convert
])
def test_image_modes_become_8bit_rgb_by_value_range(img: Image.Image, fmt: str, expected: tuple) -> None:
    out = load_image(_encoded(img, fmt), "x")
    assert out.mode == "RGB" and out.getpixel((0, 0)) == expected


@pytest.mark.parametrize(("img", "words"), [
    (Image.new("F", (4, 4), 7.5), "float image with values 7.5"),
    (Image.new("F", (4, 4), -1.0), "outside the [0, 1] range"),
    (Image.fromarray(np.full((4, 4), 70000, dtype=np.int32), "I"), "outside 16 bits"),
])
def test_image_values_without_a_known_scale_are_refused(img: Image.Image, words: str) -> None:
    with pytest.raises(CorruptImageError, match=r"^img: ") as info:
        to_rgb(img, "img")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_nan_float_image_is_refused() -> None:
    values = np.full((4, 4), 0.5, dtype=np.float32)
    values[0, 0] = math.nan
    with pytest.raises(CorruptImageError, match="NaN/inf"):
        to_rgb(Image.fromarray(values, "F"), "img")


def test_training_images_use_the_same_conversion(tmp_path: Path) -> None:
    from pvm_bench.pvm.train_data import _to_image

    (tmp_path / "deep.png").write_bytes(_encoded(Image.new("I;16", (4, 4), 1000), "PNG"))
    assert _to_image("deep.png", tmp_path).getpixel((0, 0)) == (4, 4, 4)


@pytest.mark.timeout(30)
def test_directory_and_fifo_paths_fail_without_opening(tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    os.mkfifo(tmp_path / "f.png")
    for name, words in (("d.png", "is a directory"), ("f.png", "not a regular file")):
        path = str(tmp_path / name)
        assert source_bytes({"bytes": None, "path": path}).startswith(b"<not a regular file")  # no read, no hang
        with pytest.raises(CorruptImageError, match=words):
            load_image(path, "img")


def test_file_digest_sees_every_byte_and_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    data = bytearray(os.urandom(5 << 20))
    path.write_bytes(bytes(data))
    first = file_digest(path)
    assert file_digest(path) == first  # cached
    data[len(data) // 2] ^= 1  # the middle: outside the first and last MiB
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))  # even with an old mtime the size+mtime+inode key changes
    assert file_digest(path) != first


def test_files_fingerprint_names_the_changed_file(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "chat_template.jinja").write_text("x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "junk").write_text("ignored")
    fp, old = files_fingerprint(tree_files(tmp_path))
    assert set(old) == {"a.json", "chat_template.jinja"} and len(fp) == 16
    (tmp_path / "chat_template.jinja").write_text("y")
    fp2, new = files_fingerprint(tree_files(tmp_path))
    assert fp2 != fp and changed_files(old, new) == ["chat_template.jinja"]


@pytest.mark.parametrize(("value", "subs", "problem"), [
    (1.0, {}, None),
    (0.0, {"recall": 0.5}, None),
    (2.0, {}, "score 2 is outside its declared range [0, 1]"),
    (math.nan, {}, "score is nan, not a finite number"),
    (math.inf, {}, "score is inf, not a finite number"),
    (None, {}, "score is None (NoneType), not a number"),
    (True, {}, None),  # a bool is 0 or 1
    (np.float32(0.25), {"recall": np.float64(1.0)}, None),  # numpy numbers are numbers
    ("0.5", {}, "score is '0.5' (str), not a number"),
    (0.5, {"recall": 1.5}, "sub-score 'recall' 1.5 is outside its declared range [0, 1]"),
    (0.5, {"tokens": 300.0}, None),  # an undeclared sub-score: any finite number
    (0.5, {"tokens": math.nan}, "sub-score 'tokens' is nan, not a finite number"),
    (0.5, {"bleu": 42.0}, None),  # declared with value_range=None
])
def test_score_problem(value, subs, problem) -> None:
    metrics = [
        Metric("accuracy"),
        Metric("recall", subscore="recall"),
        Metric("bleu", subscore="bleu", value_range=None),
    ]
    assert score_problem(metrics, value, subs) == problem


def test_jsonable_never_writes_nan() -> None:
    from pvm_bench.runner.workload import jsonable

    value = jsonable({"a": math.nan, "b": [np.float32("inf"), 1.5], "c": np.float64(2.0)})
    assert value == {"a": None, "b": [None, 1.5], "c": 2.0}
    json.dumps(value, allow_nan=False)


def test_model_content_covers_input_files_and_skips_formats_never_loaded(tmp_path: Path) -> None:
    from pvm_bench.models.loading import model_content

    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "preprocessor_config.json",
        "generation_config.json",
        "README.md",
        "training_args.bin",
        "original/consolidated.00.pth",
        "additional_chat_templates/tools.jinja",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    _, files = model_content(tmp_path)
    assert sorted(files) == ["additional_chat_templates/tools.jinja", "chat_template.jinja", "config.json",
                             "model.safetensors", "preprocessor_config.json", "tokenizer.json"]


def test_to_rgb_returns_an_image_usable_after_its_file_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (2, 2), (1, 2, 3)).save(path)
    with Image.open(path) as img:  # as the lmms-eval bridge opens a visual
        out = to_rgb(img)
    assert out.getpixel((0, 0)) == (1, 2, 3)
