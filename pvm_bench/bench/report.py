"""``pvm-bench bench report``: merge and report wall time and peak RSS on a synthetic run, as
ratios to a plain DuckDB group-by over every raw row of the same attention store (the streaming anchor).

Every phase runs in its own subprocess (``os.wait4`` gives that process's own peak RSS), with
``OMP_NUM_THREADS`` and DuckDB's threads set to ``--threads``:

- ``generate``: :func:`pvm_bench.bench.synth_run.write_synthetic_run` (streams, one part at a time);
- ``merge``: :func:`pvm_bench.runner.files.merge_attention`, the runner's end-of-run merge of the parts;
- ``report``: ``pvm-bench report RUN``;
- ``anchor``: one DuckDB group-by over the attention store's files by (variant, task, sample, repeat, layer
  band, log-binned step): the core decay curve's aggregation, the least any report must read.

``--code DIR`` imports pvm_bench from another checkout for merge and report (to time the code
before a change on the very same files); the generator and the anchor always use this one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

#: One DuckDB group-by with the shape of the report's core decay curve: per sample and layer band
#: (thirds of the layers), the mean visual mass in 40 log-spaced step bins.
ANCHOR_SQL = """
SELECT variant, task, sample_id, "repeat", (layer * 3) // {layers} AS band,
       CAST(floor(ln(step) / ln({t_max} + 1) * 40) AS INTEGER) AS bin,
       avg(visual_mass) AS mass, count(*) AS n
FROM read_parquet({paths}) WHERE step >= 1
GROUP BY ALL
"""

_MERGE = ("import sys, pvm_bench; from pathlib import Path; from pvm_bench.runner.files import merge_attention; "
          "merge_attention(Path(sys.argv[1])); print('merged with', pvm_bench.__file__)")
_ANCHOR = """
import sys, duckdb
from pathlib import Path
from pvm_bench.attention_store import attention_dataset
from pvm_bench.attention_tables import path_list
run, threads, layers, t_max = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
con = duckdb.connect(config={"threads": threads})
sql = sys.argv[5].format(paths=path_list(attention_dataset(run)), layers=layers, t_max=t_max)
print(len(con.execute(sql).fetchall()), "groups")
"""
_GENERATE = """
import sys, json
from pathlib import Path
from pvm_bench.bench.synth_run import SynthSpec, write_synthetic_run
spec = SynthSpec(**json.loads(sys.argv[2]))
print(json.dumps(write_synthetic_run(Path(sys.argv[1]), spec)))
"""


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run ``cmd``; its wall seconds, CPU seconds (user + system: steadier than wall on a shared
    machine), own peak RSS (bytes), exit status and output tail."""
    start = time.perf_counter()
    # cwd outside any checkout: `python -c` / `-m` put the cwd first on sys.path, ahead of PYTHONPATH
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime,
            "rss_bytes": usage.ru_maxrss * 1024,
            "rc": proc.returncode, "output": output[-2000:]}


def _env(threads: int, code: Path | None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PVM_BENCH_THREADS": str(threads)}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [env.get("PYTHONPATH")])])
    return env


def bench_report(rows: int, out: Path, *, threads: int = 1, code: Path | None = None, layers: int = 36,
                 cap: int = 16384, seed: int = 0, phases: tuple[str, ...] = ("merge", "report", "anchor"),
                 reuse: bool = False) -> dict[str, Any]:
    """Generate a run of about ``rows`` attention rows under ``out`` and time each phase.

    Returns ``{"run_dir", "generated": {...}, "phases": {name: timed(...)}}``; a phase that
    fails keeps its ``rc`` and output tail (the next phases still run when they can). ``reuse``:
    time the phases on ``out/synth-<rows>`` generated earlier (its numbers in ``synth-<rows>.json``).
    """
    here = str(Path(__file__).resolve().parents[2])
    out.mkdir(parents=True, exist_ok=True)
    base_env = _env(threads, None)
    base_env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    run_dir = out / f"synth-{rows}"
    spec = {"rows": rows, "layers": layers, "cap": cap, "seed": seed}
    info = out / f"synth-{rows}.json"
    if reuse:
        gen = json.loads(info.read_text())
    else:
        gen = timed([sys.executable, "-c", _GENERATE, str(run_dir), json.dumps(spec)], base_env, out)
        if gen["rc"] != 0:
            raise RuntimeError(f"generating the synthetic run failed:\n{gen['output']}")
        gen.update(json.loads(gen["output"].strip().splitlines()[-1]))
        info.write_text(json.dumps(gen))
    results: dict[str, Any] = {}
    code_env = _env(threads, code) if code is not None else base_env
    if "merge" in phases:
        results["merge"] = timed([sys.executable, "-c", _MERGE, str(run_dir)], code_env, out)
    from pvm_bench.attention_store import AGG, attention_dataset

    merged = attention_dataset(run_dir)
    if merged:
        gen["merged_bytes"] = sum(p.stat().st_size for p in merged)
        gen["agg_bytes"] = sum(p.stat().st_size for p in (run_dir / AGG).rglob("*.parquet"))
    if "report" in phases:
        results["report"] = timed([sys.executable, "-m", "pvm_bench", "report", str(run_dir)], code_env, out)
    if "anchor" in phases and merged:
        results["anchor"] = timed([sys.executable, "-c", _ANCHOR, str(run_dir), str(threads), str(layers), str(cap),
                                   ANCHOR_SQL], base_env, out)
    return {"run_dir": str(run_dir), "threads": threads, "code": str(code) if code else here,
            "generated": gen, "phases": results}


def format_rows(res: dict[str, Any]) -> list[str]:
    """One line per phase: wall, peak RSS, and both as ratios to the anchor."""
    gen, phases = res["generated"], res["phases"]
    anchor = phases.get("anchor")
    lines = [f"{gen['rows']:,} attention rows, {gen['samples']:,} samples, {gen['parts']} parts "
             f"({gen['bytes'] / 1e6:.1f} MB), {res['threads']} thread(s); generated in {gen['wall_s']:.1f} s at "
             f"{gen['rss_bytes'] / 1e9:.2f} GB peak RSS"]
    if "agg_bytes" in gen:
        lines.append(f"aggregate tables: {gen['agg_bytes'] / 1e6:.1f} MB")
    for name in ("merge", "report", "anchor"):
        row = phases.get(name)
        if row is None:
            continue
        ratio = ""
        if anchor and anchor["rc"] == 0 and name != "anchor":
            ratio = (
                f"  x{row['wall_s'] / anchor['wall_s']:.1f} wall, x{row['cpu_s'] / max(anchor['cpu_s'], 1e-3):.1f} "
                "CPU, "
                f"x{row['rss_bytes'] / anchor['rss_bytes']:.1f} RSS vs anchor"
            )
        state = "" if row["rc"] == 0 else f"  FAILED (exit {row['rc']}): {row['output'].strip().splitlines()[-1:]}"
        lines.append(
            f"{name:>6}: {row['wall_s']:8.2f} s wall {row['cpu_s']:8.2f} s CPU {row['rss_bytes'] / 1e9:6.2f} GB"
            f"{ratio}{state}"
        )
    return lines


def register_bench(bench: typer.Typer) -> None:
    """Add ``report`` to the ``pvm-bench bench`` command group."""

    @bench.command("report")
    def report_command(
        rows: Annotated[
            int, typer.Option(min=1000, help="Attention rows to generate (about; whole samples).")
        ] = 1_000_000,
        out: Annotated[
            Path | None,
            typer.Option(help="Parent folder of the synthetic run (default: a temp dir; needs ~15 B per row)."),
        ] = None,
        threads: Annotated[int | None, typer.Option(help="Threads for every phase (OMP and DuckDB).")] = None,
        keep: Annotated[
            bool, typer.Option(help="Keep the synthetic run directory (default: removed at the end).")
        ] = False,
        code: Annotated[
            Path | None,
            typer.Option(
                help="Import pvm_bench from this checkout for merge and report (e.g. the code before a change)."
            ),
        ] = None,
        layers: Annotated[int, typer.Option(min=1, help="Decoder layers (Qwen3-VL-8B: 36).")] = 36,
        cap: Annotated[int, typer.Option(min=2, help="max_new_tokens: 0.4% of the outputs stop there.")] = 16384,
        seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
        phases: Annotated[
            str, typer.Option(help="Comma-separated phases to time: merge, report, anchor.")
        ] = "merge,report,anchor",
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")
        ] = None,
        reuse: Annotated[
            bool, typer.Option(help="Time the phases on OUT/synth-ROWS generated by an earlier --keep run.")
        ] = False,
    ) -> None:
        """Merge and report wall time and peak RSS on a synthetic run, as ratios to a DuckDB group-by."""
        from rich.console import Console

        from pvm_bench.cli.support import fail

        n_threads = threads or 1
        chosen = tuple(p.strip() for p in phases.split(",") if p.strip())
        if not chosen or set(chosen) - {"merge", "report", "anchor"}:
            raise fail(f"--phases takes merge, report and/or anchor, got '{phases}'")
        if out is not None and (out / f"synth-{rows}").exists() and not reuse:
            raise fail(f"{out / f'synth-{rows}'} already exists; remove it, pass another --out, or --reuse it")
        if reuse and (out is None or not (out / f"synth-{rows}.json").exists()):
            raise fail("--reuse needs --out with a synth-ROWS folder and synth-ROWS.json from an earlier --keep run")
        parent = out or Path(tempfile.mkdtemp(prefix="pvm-bench-report-"))
        try:
            res = bench_report(
                rows,
                parent,
                threads=n_threads,
                code=code,
                layers=layers,
                cap=cap,
                seed=seed,
                phases=chosen,
                reuse=reuse,
            )
        finally:
            if not keep:
                shutil.rmtree(parent / f"synth-{rows}", ignore_errors=True)
                (parent / f"synth-{rows}.json").unlink(missing_ok=True)
                if out is None:
                    shutil.rmtree(parent, ignore_errors=True)
        console = Console(width=170)
        for line in format_rows(res):
            console.print(line, highlight=False)
        if keep:
            console.print(f"kept: {res['run_dir']}", highlight=False)
        if json_path is not None:
            json_path.write_text(json.dumps(res, indent=2) + "\n")
        if any(row["rc"] != 0 for row in res["phases"].values()):
            raise typer.Exit(1)
