"""Per-image visual mass rows, table and plot (issue 15 item 2) on a synthetic run, through the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pvm_bench.cli.main import app


def test_per_image_rows_table_and_plot(make_run):
    run = make_run(variants=("base",), tasks=("colour",), n_samples=12, max_len=60, entropy=False)
    attn = pd.read_parquet(run / "attention.parquet")
    two = attn["sample_id"].str.split("-").str[1].astype(int) % 2 == 0  # even samples hold two images
    attn["visual_mass_img0"] = np.where(two, 0.7, 1.0) * attn["visual_mass"]
    attn["visual_mass_img1"] = np.where(two, 0.3 * attn["visual_mass"], np.nan)
    attn.to_parquet(run / "attention.parquet", index=False)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(run / "metrics.csv")
    img = rows[rows["kind"] == "image"]
    assert set(img["metric"]) == {"visual_mass_img0", "visual_mass_img1", "visual_mass_img_last"}
    w = attn[(attn["step"] >= 1) & (attn["step"] <= 16)]
    per_sample = w.groupby("sample_id")["visual_mass_img0"].apply(lambda s: s.mean())
    r0 = img[(img["metric"] == "visual_mass_img0") & (img["band"] == "steps:1-16")].iloc[0]
    assert r0["value"] == pytest.approx(per_sample.mean(), rel=1e-5) and r0["n"] == 12
    r1 = img[(img["metric"] == "visual_mass_img1") & (img["band"] == "steps:1-16")].iloc[0]
    assert r1["n"] == 6
    # last = image 1 for two-image samples, image 0 for the others
    last = w.assign(last=np.where(w["visual_mass_img1"].notna(), w["visual_mass_img1"], w["visual_mass_img0"]))
    rl = img[(img["metric"] == "visual_mass_img_last") & (img["band"] == "steps:1-16")].iloc[0]
    assert rl["value"] == pytest.approx(last.groupby("sample_id")["last"].mean().mean(), rel=1e-5)
    assert "## Visual mass per image" in (run / "summary.md").read_text()
    assert 'id="image-table"' in (run / "report.html").read_text()
    assert (run / "plots" / "per_image.png").stat().st_size > 5000


def test_image_columns_order_by_image_index_not_text():
    from pvm_bench.report.per_image import image_columns

    frame = pd.DataFrame(columns=["visual_mass_img10", "visual_mass", "visual_mass_img2", "visual_mass_img0",
                                  "visual_mass_img_last", "visual_mass_img1"])
    assert image_columns(frame) == ["visual_mass_img0", "visual_mass_img1", "visual_mass_img2", "visual_mass_img10"]
    assert image_columns(None) == []
