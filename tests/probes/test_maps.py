"""Spatial attention maps (``--maps``, issue 21 item 2) on tiny models of every family and on the organism.

- the per-patch map of each step sums to that step's visual mass averaged over the same layer band
  (the attention probe's records) within 1e-5, on a left-padded batch with a 2-image row;
- with the attention made one-hot on one image token (a writer on the instrument's attention site
  biases every other key by -1e4), the map lands on that token's grid cell;
- on the organism, the image token that stands out (a red swatch in one cell of a white image) is
  laid out at the swatch's cell of the image;
- selecting rows computes only those rows, with the same values; ``--maps 0`` installs nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from pvm_bench.attention_store import read_store
from pvm_bench.config import RunConfig
from pvm_bench.instrument import instrument_for
from pvm_bench.models.generation import Request, generate
from pvm_bench.models.loading import load_model
from pvm_bench.probes.attention import AttentionProbe
from pvm_bench.probes.maps import MapsProbe
from pvm_bench.runner.probes import RunProbes

from .conftest import FAMILIES, batch3

NEW_TOKENS = 6


class OneHot:
    """Attention writer: the last query row of every layer attends to one absolute position only."""

    def __init__(self, positions: list[int]) -> None:
        self.positions = positions  # per batch row

    def attention_bias(self, layer, query, key, scaling, softcap, state):
        n = key.shape[2]
        bias = torch.full((query.shape[0], query.shape[1], n), -1e4, dtype=torch.float32, device=query.device)
        for row, pos in enumerate(self.positions):
            col = pos - (state.total - n)
            if 0 <= col < n:  # a sliding-window layer may no longer hold the key
                bias[row, :, col] = 0.0
        return bias


def _with_writer(lm, writer):
    inst = instrument_for(lm)
    release = inst.acquire()
    detach = inst.attention.subscribe(writer, write=True)

    def undo():
        detach()
        release()

    return undo


def _band_mass(records, n_steps: int) -> np.ndarray:
    layers = {r["layer"] for r in records}
    out = np.zeros(n_steps)
    for r in records:
        if r["step"] < n_steps:
            out[r["step"]] += r["visual_mass"] / len(layers)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_map_sums_to_visual_mass(family, tiny_dirs):
    lm = load_model(str(tiny_dirs[family]))
    requests = batch3()
    attention, maps = AttentionProbe(), MapsProbe()
    attention.install(lm)
    maps.install(lm)
    try:
        gens = generate(lm, requests, max_new_tokens=NEW_TOKENS, probes=[attention, maps])
    finally:
        maps.uninstall()
        attention.uninstall()
    worst = 0.0
    for row, gen in enumerate(gens):
        sm = maps.collected[row]
        assert sm is not None and gen.probe_records["maps"] == []  # nothing for attention.parquet
        assert sm.attention.shape[0] == gen.n_generated
        assert len(sm.images) == (2 if row == 2 else 1)
        assert sum(im["n_tokens"] for im in sm.images) == sm.attention.shape[1]
        for im in sm.images:  # the views tile the image's tokens exactly
            assert sum(v["rows"] * v["cols"] for v in im["views"]) == im["n_tokens"]
            assert any(v["whole"] for v in im["views"]) or im["views"][0]["label"] == "tokens"
        expected = _band_mass(gen.probe_records["attention"], sm.attention.shape[0])
        err = float(np.abs(sm.attention.sum(-1) - expected).max())
        assert float(np.abs(sm.visual_mass - expected).max()) < 1e-5
        assert (sm.attention >= 0).all()
        worst = max(worst, err)
    assert worst < 1e-5, (family, worst)
    if family.startswith("qwen"):  # 96x64 px -> 2 x 3 merged tokens; 64x32 -> 1 x 2
        assert [(v["rows"], v["cols"]) for v in maps.collected[1].images[0]["views"]] == [(2, 3)]
        assert [(v["rows"], v["cols"]) for v in maps.collected[2].images[1]["views"]] == [(1, 2)]


@pytest.mark.parametrize("family", FAMILIES)
def test_one_hot_attention_lands_on_its_patch(family, tiny_dirs):
    lm = load_model(str(tiny_dirs[family]))
    requests = batch3()
    probe = MapsProbe()
    probe.install(lm)
    try:
        # A dry batch gives the layout; then make each row look at the last cell of a whole-image view.
        generate(lm, requests, max_new_tokens=1, probes=[probe])
        layouts = [probe.collected[row].images for row in range(len(requests))]
        from pvm_bench.models.generation import encode

        enc, _ = encode(lm, requests)
        image_pos = [(ids == lm.image_token_id).nonzero().flatten().tolist() for ids in enc["input_ids"]]
        targets, cells = [], []
        for row, images in enumerate(layouts):
            im = images[-1]
            view = next((v for v in im["views"] if v["whole"]), im["views"][0])
            r, c = view["rows"] - 1, view["cols"] - 1
            token = im["start"] + view["start"] + r * view["cols"] + c
            targets.append(image_pos[row][token])
            cells.append(token)
        undo = _with_writer(lm, OneHot(targets))
        try:
            gens = generate(lm, requests, max_new_tokens=NEW_TOKENS, probes=[probe])
        finally:
            undo()
    finally:
        probe.uninstall()
    for row in range(len(gens)):
        att = probe.collected[row].attention
        assert (att.argmax(-1) == cells[row]).all(), (family, row, att.argmax(-1), cells[row])
        others = np.delete(att, cells[row], axis=1)
        assert others.max(initial=0.0) < 1e-3
        # Every layer sees the key at prefill except sliding-window layers (Gemma3: half of them).
        assert att[0, cells[row]] > 0.45


def test_rows_selected_by_key_match_all_rows(tiny_dirs):
    lm = load_model(str(tiny_dirs["qwen3_vl"]))
    requests = batch3()
    for i, r in enumerate(requests):
        r.key = f"s{i}"
    every, some = MapsProbe(), MapsProbe(wanted=lambda key: key == "s2", layers=[1])
    every_l1 = MapsProbe(layers=[1])
    for p in (every, some, every_l1):
        p.install(lm)
    try:
        generate(lm, requests, max_new_tokens=NEW_TOKENS, probes=[every, some, every_l1])
    finally:
        for p in (every, some, every_l1):
            p.uninstall()
    assert some.collected[0] is None and some.collected[1] is None
    assert some.collected[2].layers == [1] and every.collected[2].layers == [0, 1]
    np.testing.assert_allclose(some.collected[2].attention, every_l1.collected[2].attention, atol=1e-6)


@pytest.mark.parametrize("cell", [(0, 0), (1, 2)])
def test_organism_swatch_maps_to_its_grid_cell(cell):
    """The organism (Qwen3-VL, patch 16, merge 2): a 96x64 image is 2 x 3 tokens of 32 px. The red
    swatch fills cell ``cell``; attention one-hot on the token whose embedding stands out most lands on
    the map's cell ``cell`` (rows = image rows, row-major), not a transposed or shifted one."""
    from pvm_bench.organism import BASE_DIR

    lm = load_model(str(BASE_DIR))
    r, c = cell
    img = Image.new("RGB", (96, 64), (255, 255, 255))
    ImageDraw.Draw(img).rectangle([32 * c, 32 * r, 32 * c + 31, 32 * r + 31], fill=(200, 30, 30))
    request = Request(messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}],
                      images=[img])

    class Standout(OneHot):
        def attention_bias(self, layer, query, key, scaling, softcap, state):
            if not self.positions:  # at prefill: the image token farthest from the mean image embedding
                mem = state.memory[0].float()
                k = int((mem - mem.mean(0)).norm(dim=-1).argmax())
                self.positions.append(int(state.image_mask[0].nonzero().flatten()[k]))
            return super().attention_bias(layer, query, key, scaling, softcap, state)

    probe = MapsProbe()
    probe.install(lm)
    undo = _with_writer(lm, Standout([]))
    try:
        generate(lm, [request], max_new_tokens=3, probes=[probe])
    finally:
        undo()
        probe.uninstall()
    sm = probe.collected[0]
    (view,) = sm.images[0]["views"]
    assert (view["rows"], view["cols"]) == (2, 3)
    grid = sm.attention.reshape(-1, view["rows"], view["cols"])
    for step in grid:
        assert np.unravel_index(step.argmax(), step.shape) == cell
        assert step[cell] > 0.99


def test_maps_off_installs_nothing():
    cfg = RunConfig(model="m", tasks=["t"], maps=0)

    class T:
        name = "t"

    class S:
        def __init__(self, i):
            self.id = i

    assert not any(isinstance(p, MapsProbe) for p in RunProbes(cfg, [(T(), [S("a"), S("b")])]).make())
    on = RunProbes(cfg.model_copy(update={"maps": 1}), [(T(), [S("a"), S("b")])])
    assert on.maps_chosen == {("t", "a")}
    assert isinstance(on.make()[-1], MapsProbe)
    off = RunProbes(cfg.model_copy(update={"maps": 0, "probes": []}), [(T(), [S("a")])])
    assert off.make() == []  # no probe at all: the attention site is never entered


def _cli(*args: str, report: bool = False):
    from typer.testing import CliRunner

    from pvm_bench.cli.main import app

    return CliRunner().invoke(app, ["run", "--quiet", "--report" if report else "--no-report", "--tasks",
                                    "swatch_recall", "--limit", "3", "--max-new-tokens", "10", *args])


@pytest.mark.slow
def test_cli_maps_writes_one_file_per_chosen_sample(tmp_path, request):
    """``pvm-bench run --maps 2`` on the organism: 2 samples x 2 variants, each file's per-step mass
    equals attention.parquet's visual mass averaged over all layers; ``--maps 0`` writes none."""

    from pvm_bench.results import read_samples
    from pvm_bench.runner.maps import FORMAT, map_path, read_maps

    result = _cli("--maps", "2", "--out", str(tmp_path), "--run-id", "m", report=True)
    assert result.exit_code == 0, result.output
    run = tmp_path / "m"
    files = sorted(p.relative_to(run).as_posix() for p in (run / "maps").rglob("*.safetensors"))
    names = [f"maps/{v}/swatch_recall/swatch_recall-test-{i}-r0.safetensors" for v in ("base", "pvm") for i in (0, 1)]
    assert files == names
    att = read_store(run)
    for rec in read_samples(run):
        path = map_path(run, rec.variant, rec.task, rec.sample_id, rec.repeat)
        if rec.sample_id.endswith("-2"):
            assert not path.exists()
            continue
        tensors, meta = read_maps(path)
        assert meta["format"] == FORMAT and meta["sample_id"] == rec.sample_id and meta["variant"] == rec.variant
        assert meta["layers"] == [0, 1, 2, 3] and meta["steps"] == rec.n_generated == len(meta["tokens"])
        assert "".join(meta["tokens"]).startswith(rec.output[:5])
        (image,) = meta["images"]
        assert [(v["rows"], v["cols"]) for v in image["views"]] == [(2, 2)]  # 64 px / (16 px x merge 2)
        assert tensors["attention"].dtype == np.float16 and tensors["attention"].shape == (rec.n_generated, 4)
        rows = att[(att.variant == rec.variant) & (att.sample_id == rec.sample_id)]
        expected = rows.groupby("step")["visual_mass"].mean().to_numpy()
        assert np.abs(tensors["visual_mass"] - expected).max() < 1e-5
        assert np.abs(tensors["attention"].astype(np.float32).sum(-1) - expected).max() < 5e-3  # float16 storage
    _browser_shows_the_slider(run / "report.html", request)
    result = _cli("--maps", "0", "--out", str(tmp_path), "--run-id", "off")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "off" / "maps").exists()


def _browser_shows_the_slider(html, request) -> None:
    """report.html carries the maps of the 4 mapped records; in Chromium (when installed) the opened
    sample shows one slider per variant and its output as shaded tokens."""
    from chromium import chromium_missing_reason

    text = html.read_text()
    assert "pvmBenchMaps" in text and text.count('"maps":{"tokens"') == 4
    if chromium_missing_reason() is not None:
        return
    from playwright.sync_api import expect

    page, errors = request.getfixturevalue("page"), request.getfixturevalue("console_errors")
    page.goto(html.resolve().as_uri() + "#browser?open=swatch_recall/swatch_recall-test-0/0")
    expect(page.locator(".pm-slider")).to_have_count(2)
    expect(page.locator(".pm-heat rect")).to_have_count(8)  # 2 x 2 grid per variant
    assert page.locator(".pm-tok[title]").count() > 2
    assert errors == []


def test_cli_maps_bad_values_exit_2_with_one_line(tmp_path):
    result = _cli("--maps", "swatch_recall-test-0,nope", "--out", str(tmp_path), "--run-id", "bad")
    assert result.exit_code == 2, result.output
    assert "'nope'" in result.output and "--maps" in result.output
    assert not (tmp_path / "bad").exists()  # checked with the tasks' samples, before the run directory is made
    result = _cli("--maps", "two", "--out", str(tmp_path), "--run-id", "bad2")
    assert result.exit_code == 2 and "--maps takes" in result.output
    assert not (tmp_path / "bad2").exists()


def test_map_paths_are_plain_names(tmp_path):
    from pvm_bench.runner.maps import MapsError, map_path, parse_maps, read_maps

    path = map_path(tmp_path, "pvm+pai:alpha=0.2", "t/x", "../s 1", 3)
    assert path.parent.parent.parent == tmp_path / "maps" and path.name == "..%2Fs%201-r3.safetensors"
    assert parse_maps("3") == 3 and parse_maps("7,") == ["7"] and parse_maps("a, b") == ["a", "b"]
    (tmp_path / "x.safetensors").write_bytes(b"not a map")
    with pytest.raises(MapsError, match="not a readable map file"):
        read_maps(tmp_path / "x.safetensors")


def test_maps_on_a_model_without_the_attention_site_name_the_option_and_the_fix(monkeypatch, tmp_path):
    """--maps is on by default (2 per task), also with ``--probes ""``: on a model whose decoder does
    not dispatch through AttentionInterface, the one error line names --maps and how to turn it off."""
    from transformers import Qwen3VLForConditionalGeneration
    from typer.testing import CliRunner

    from pvm_bench.cli.main import app

    monkeypatch.setattr(Qwen3VLForConditionalGeneration, "_can_set_attn_implementation", classmethod(lambda cls: False))
    argv = ["run", "--limit", "1", "--max-new-tokens", "2", "--probes", "", "--no-report", "--quiet",
            "--out", str(tmp_path), "--run-id", "r"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --maps: Qwen3-VL: "), lines
    assert lines[0].endswith("pass --maps 0 to run without spatial maps"), lines
