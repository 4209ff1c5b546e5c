"""The report reads the aggregate tables the runner writes beside every attention part, and gets the
same numbers as from raw rows: stored tables, tables recomputed for files without them (old runs,
another format version) and a killed run's unmerged parts all give one report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pvm_bench.attention_tables import META_KEY
from pvm_bench.bench.synth_run import SynthSpec, write_synthetic_run
from pvm_bench.cli import app
from pvm_bench.report.attention_engine import connect
from pvm_bench.report.attention_load import _from_raw, attention_files
from pvm_bench.report.rundata import load_run
from pvm_bench.runner.files import merge_attention

runner = CliRunner()
SPEC = SynthSpec(rows=30_000, layers=4, cap=512, tasks=2, median=40.0, batch_size=3)


def _report(run: Path, cli: bool = True) -> dict[str, pd.DataFrame]:
    """summary.csv and metrics.csv of ``pvm-bench report`` (``cli``) or of the same summary
    without plots and html (faster)."""
    if cli:
        res = runner.invoke(app, ["report", str(run)])
        assert res.exit_code == 0, res.output
    else:
        from pvm_bench.report.markdown import write_summary
        from pvm_bench.report.summary import build_summary

        data = load_run(run)
        write_summary(data, build_summary(data))
    return {name: pd.read_csv(run / name) for name in ("summary.csv", "metrics.csv")}


def _assert_frames_equal(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=False, rtol=1e-12, atol=0)


@pytest.mark.parametrize("cli", [pytest.param(True, marks=pytest.mark.slow), False])
def test_report_from_stored_tables_equals_the_report_from_raw_rows(tmp_path: Path, cli: bool) -> None:
    run = tmp_path / "run"
    write_synthetic_run(run, SPEC)
    merge_attention(run)
    assert (run / "attention-agg" / "steps").is_dir() and (run / "attention.parquet").is_dir()
    stored = _report(run, cli)
    assert stored["summary.csv"]["fit_all_a"].notna().any()  # the decay section is there
    shutil.rmtree(run / "attention-agg")  # a run written before the tables: computed from its rows
    _assert_frames_equal(stored, _report(run, cli=False))


def test_tables_of_another_version_are_ignored_and_unmerged_parts_keep_the_last_recorded_copy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_synthetic_run(run, SPEC)
    parts = sorted((run / "attention").glob("part-*.parquet"))
    # a killed run resumed: the first part's samples run again (a later part), one of them no longer recorded
    again = pq.read_table(parts[0]).to_pandas()
    again["visual_mass"] = again["visual_mass"] * np.float32(0.5)
    from pvm_bench.runner.files import write_probe_part

    write_probe_part(run, [again], "part-9999999999999999999-ffffff.parquet")
    gone = again["sample_id"].iloc[-1]
    lines = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines if r["sample_id"] != gone
                                               or r["variant"] != again["variant"].iloc[0]))
    # a stale table (another format version) holding nonsense must not be read
    steps = run / "attention-agg" / "steps" / parts[1].name
    table = pq.read_table(steps)
    meta = json.loads(table.schema.metadata[META_KEY])
    stale = table.set_column(table.schema.get_field_index("m_all"), "m_all",
                             pq.read_table(steps).column("m_all").cast("float32"))
    stale = stale.replace_schema_metadata({META_KEY: json.dumps({**meta, "version": 0}).encode()})
    pq.write_table(stale.set_column(stale.schema.get_field_index("step"), "step", table.column("step")), steps)
    data = load_run(run, allow_partial=True)
    files, n_parts = attention_files(run)
    assert n_parts == len(parts) + 1
    engine = connect()
    try:
        columns = {
            k: v
            for m in [
                json.loads(pq.read_schema(run / "attention-agg" / "steps" / f.name).metadata[META_KEY])
                for f in files
                if f.name != parts[1].name
            ]
            for k, v in m["columns"].items()
        }
        raw = _from_raw(engine, files, columns, data.samples, True, "base")
    finally:
        engine.close()
    agg = data.agg
    assert agg is not None and gone not in set(
        agg.gens.loc[agg.gens["variant"] == again["variant"].iloc[0], "sample_id"]
    )
    pd.testing.assert_frame_equal(agg.gens, raw.gens)
    pd.testing.assert_frame_equal(agg.steps, raw.steps)
    pd.testing.assert_frame_equal(
        agg.by_layer[sorted(agg.by_layer)], raw.by_layer[sorted(raw.by_layer)], check_exact=False, rtol=1e-12
    )
    pd.testing.assert_frame_equal(agg.pvm, raw.pvm, check_exact=False, rtol=1e-12)
    assert agg.pvm_gates == raw.pvm_gates and agg.heatmap is not None and raw.heatmap is not None
    for v, grid in raw.heatmap.grids.items():
        np.testing.assert_allclose(agg.heatmap.grids[v], grid, rtol=1e-12)
    for v, grid in raw.heatmap.diffs.items():
        np.testing.assert_allclose(agg.heatmap.diffs[v], grid, rtol=1e-12)
    # the re-run sample's new rows won (its mass was halved)
    first = again.iloc[0]
    gen = agg.gens.index[(agg.gens["variant"] == first["variant"]) & (agg.gens["sample_id"] == first["sample_id"])][0]
    ours = agg.steps[(agg.steps["gen"] == gen) & (agg.steps["step"] == 1)]["m_all"].iloc[0]
    rows = again[(again["sample_id"] == first["sample_id"]) & (again["step"] == 1)]
    assert ours == np.float32(rows["visual_mass"].mean())


def test_every_table_carries_the_generation_key(tmp_path: Path) -> None:
    """The report joins the tables by one integer per generation (gkey), the same from any process."""
    from pvm_bench.attention_tables import GKEY, KEYS, KINDS, sample_gkey

    run = tmp_path / "run"
    write_synthetic_run(run, SPEC)
    assert sample_gkey("base", "t", "7", 0) == sample_gkey("base", "t", "7", 0) != sample_gkey("base", "t", "7", 1)
    for kind in KINDS:
        files = sorted((run / "attention-agg" / kind).glob("*.parquet"))
        if kind == "pvm" and not files:
            continue
        table = pd.read_parquet(files[0])
        assert table[GKEY].dtype == np.int64
        expected = [sample_gkey(*k) for k in table[list(KEYS)].itertuples(index=False)]
        assert table[GKEY].tolist() == expected
