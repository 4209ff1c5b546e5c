"""``pvm-bench bench probe``: cost of the streaming attention probe vs plain and naive generation.

Three ways to generate the same greedy continuation of one image prompt:

- ``plain``: ``generate`` with sdpa attention and no probe (the reference speed);
- ``probe``: the same with :class:`~pvm_bench.probes.attention.AttentionProbe` installed,
  including turning its buffers into records at the end;
- ``naive``: eager attention with ``generate(output_attentions=True,
  return_dict_in_generate=True)`` and the visual mass computed from the returned maps (what one
  would do without the probe; it stores every attention map, so its memory grows with length).

Per length, two fresh subprocesses: one loads the sdpa model and alternates plain and probe runs
(``--repeats`` each; the fastest run of each mode counts, so both see the same machine load),
the other runs naive on an eager model. Peak memory is the growth of the peak resident set
(``ru_maxrss``) over the peak after loading and a short warm-up on CPU (the probe's first run
directly follows plain's, so its growth is its extra over plain), and
``torch.cuda.max_memory_allocated`` minus the allocation before the run on GPU. Generation is
forced to the full length (``min_new_tokens``) so random models cannot stop at EOS. The naive
run is skipped when its attention maps alone would exceed ``--naive-max-gb``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from pvm_bench.bench.model import DEFAULT_SIZE, DeviceOption, ModelOption, RandomSizeOption, bench_model
from pvm_bench.cli.support import user_errors

PROMPT = "Describe the image in detail, then keep writing about it."


def _peak_rss_mb() -> float:
    """Peak resident set of this process in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def naive_attention_bytes(n_layers: int, n_heads: int, prompt_len: int, new_tokens: int, itemsize: int = 4) -> int:
    """Bytes of the attention maps ``output_attentions`` keeps for one row.

    Prefill stores ``[heads, P, P]`` per layer and decode step t stores ``[heads, 1, P + t]``.
    """
    decode_keys = sum(prompt_len + t for t in range(1, new_tokens))
    return n_layers * n_heads * (prompt_len * prompt_len + decode_keys) * itemsize


def _setup(model_dir: str, device: str, eager: bool) -> dict[str, Any]:
    """Load the model and encode the bench prompt (one image, batch 1)."""
    from PIL import Image

    from pvm_bench.models.generation import Request, encode
    from pvm_bench.models.loading import load_model

    lm = load_model(model_dir, device=device, attn_implementation="eager" if eager else "sdpa")
    image = Image.new("RGB", (96, 96), (180, 40, 40))
    parts = [{"type": "image"}, {"type": "text", "text": PROMPT}]
    enc, _ = encode(lm, [Request(messages=[{"role": "user", "content": parts}], images=[image])])
    return {"lm": lm, "enc": enc, "prompt_len": int(enc["input_ids"].shape[1]),
            "n_params": sum(p.numel() for p in lm.hf_model.parameters())}


def _runner(setup: dict[str, Any], mode: str):
    """A function ``run(n) -> n_generated`` generating exactly ``n`` tokens in ``mode``."""
    import torch
    from transformers import GenerationConfig

    from pvm_bench.models.generation import eos_ids
    from pvm_bench.probes.attention import AttentionProbe
    from pvm_bench.probes.base import BatchContext
    from pvm_bench.session import GenerationSession

    lm, enc, prompt_len = setup["lm"], setup["enc"], setup["prompt_len"]
    image_mask = enc["input_ids"] == lm.image_token_id
    eos = eos_ids(lm)
    probe = setup.get("probe")
    if mode == "probe" and probe is None:
        probe = setup["probe"] = AttentionProbe()

    def config(n: int) -> GenerationConfig:
        # min_new_tokens: random weights must not end the run early at an EOS.
        return GenerationConfig(
            max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1, eos_token_id=eos or None,
            pad_token_id=lm.tokenizer.pad_token_id, suppress_tokens=lm.suppress_token_ids() or None,
        )

    def run(n: int) -> int:
        with torch.inference_mode():
            if mode == "naive":
                out = lm.hf_model.generate(**enc, generation_config=config(n), output_attentions=True,
                                           return_dict_in_generate=True)
                # The product the probe gives: head-averaged mass on image keys per step and layer.
                img = image_mask.float()
                masses = [
                    [(a[:, :, -1, : img.shape[1]].float() * img[:, None]).sum(-1).mean(1) for a in step]
                    for step in out.attentions
                ]
                return len(masses)
            # Installing only swaps the text attention implementation and adds the instrument's
            # state hooks: cheap enough per run, and it lets plain and probe runs alternate on one model.
            with GenerationSession(lm, [probe] if mode == "probe" else []):
                if mode == "probe":
                    probe.begin_batch(BatchContext(enc["input_ids"], enc["attention_mask"], image_mask, n))
                seq = lm.hf_model.generate(**enc, generation_config=config(n))
                if mode == "probe":
                    records = probe.end_batch([n])[0]
                    assert len(records) == n * lm.num_layers
            return int(seq.shape[1] - prompt_len)

    return run


class _Meter:
    """Wall time and peak memory of one call (CUDA allocator peak on GPU, ru_maxrss on CPU)."""

    def __init__(self, device: Any) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Any, *args: Any) -> tuple[Any, float, float, float]:
        """``(result, wall seconds, peak MiB, process CPU seconds)``."""
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            before = _peak_rss_mb()
        start, cpu_start = time.perf_counter(), time.process_time()
        value = fn(*args)
        if self.cuda:
            torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        # CPU: growth of the process-wide peak, i.e. memory this call needed beyond every earlier one.
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20 if self.cuda else _peak_rss_mb() - before
        return value, seconds, max(peak, 0.0), cpu


def measure(model_dir: str, kind: str, new_tokens: int, device: str, naive_max_gb: float,
            repeats: int = 1, threads: int | None = None) -> dict[str, Any]:
    """One measurement group, run in a fresh subprocess; returns a dict of results by mode.

    ``kind == "sdpa"``: plain and probe on one loaded sdpa model. After a warm-up of both, the
    first plain run gives plain's peak, the probe run right after it gives the probe's extra
    peak over plain; then ``repeats - 1`` more alternating plain/probe pairs. Speed is the best
    run of each, so both modes see the same machine load (this matters on shared CPUs).
    ``kind == "naive"``: eager + output_attentions, skipped when its maps would exceed
    ``naive_max_gb``. ``threads`` sets torch's CPU thread count (default: torch's choice).
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    setup = _setup(model_dir, device, eager=kind == "naive")
    lm = setup["lm"]
    base = {"new_tokens": new_tokens, "n_params": setup["n_params"], "prompt_len": setup["prompt_len"],
            "device": str(lm.device)}
    meter = _Meter(lm.device)
    if kind == "naive":
        tc = lm.text_config
        need = naive_attention_bytes(tc.num_hidden_layers, tc.num_attention_heads, setup["prompt_len"], new_tokens)
        if need > naive_max_gb * 2**30:
            return {**base, "naive": {"skipped": f"maps ~{need / 2**30:.1f} GiB > --naive-max-gb {naive_max_gb:g}",
                                      "maps_mb": need / 2**20}}
        run = _runner(setup, "naive")
        run(4)  # warm-up: kernels, allocator, lazy imports
        n, seconds, peak, cpu = meter(run, new_tokens)
        _check(n, new_tokens, "naive")
        return {**base, "naive": {"tokens_per_s": new_tokens / seconds, "tokens_per_cpu_s": new_tokens / cpu,
                                  "peak_mb": peak, "maps_mb": need / 2**20}}
    plain, probe = _runner(setup, "plain"), _runner(setup, "probe")
    plain(4)
    probe(4)
    times: dict[str, list[float]] = {"plain": [], "probe": []}
    cpu_times: dict[str, list[float]] = {"plain": [], "probe": []}
    peaks: dict[str, float] = {}
    for _ in range(max(repeats, 1)):
        for mode, run in (("plain", plain), ("probe", probe)):
            n, seconds, peak, cpu = meter(run, new_tokens)
            _check(n, new_tokens, mode)
            times[mode].append(seconds)
            cpu_times[mode].append(cpu)
            peaks.setdefault(mode, peak)  # first runs only: later ones reuse freed memory
    out = dict(base)
    for mode in ("plain", "probe"):
        out[mode] = {"tokens_per_s": new_tokens / min(times[mode]),
                     "tokens_per_cpu_s": new_tokens / min(cpu_times[mode]), "peak_mb": peaks[mode],
                     "runs_s": [round(t, 3) for t in times[mode]], "runs_cpu_s": [round(t, 3) for t in cpu_times[mode]]}
    if not meter.cuda:
        # ru_maxrss only grows: the probe ran right after plain in this process, so its growth is
        # its extra over plain's peak.
        out["probe"]["peak_mb"] = peaks["plain"] + peaks["probe"]
    return out


def _check(n: int, expected: int, mode: str) -> None:
    if n != expected:
        raise RuntimeError(f"{mode}: generated {n} tokens instead of {expected}")


def _measure_in_subprocess(model_dir: str, kind: str, new_tokens: int, device: str, naive_max_gb: float,
                           repeats: int, threads: int | None) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter, so its peak memory is its own."""
    args = json.dumps([model_dir, kind, new_tokens, device, naive_max_gb, repeats, threads])
    code = (
        "import json,sys; from pvm_bench.bench.probe import measure; "
        "print('@@RESULT@@' + json.dumps(measure(*json.loads(sys.argv[1]))))"
    )
    proc = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    modes = ("naive",) if kind == "naive" else ("plain", "probe")
    return {"new_tokens": new_tokens, **{m: {"skipped": f"failed: {tail}"} for m in modes}}


def run_bench(model_dir: str, lengths: list[int], device: str = "auto", naive_max_gb: float = 4.0,
              repeats: int = 3, threads: int | None = None, progress: Any = None) -> dict[str, Any]:
    """All measurements: ``{"model", "n_params", "prompt_len", "device", "rows": [...]}``.

    Each row has ``new_tokens``, per-mode dicts ``plain``/``probe``/``naive`` (``tokens_per_s``,
    ``peak_mb`` or ``skipped``), ``probe_speed_ratio``/``naive_speed_ratio`` (tokens/s over
    plain, by wall time), ``probe_cpu_speed_ratio``/``naive_cpu_speed_ratio`` (the same by process
    CPU time: with one thread it is barely affected by other load on a shared machine; not
    meaningful on GPU) and ``probe_extra_peak_mb``/``naive_extra_peak_mb`` (peak over plain's).
    Naive results carry ``maps_mb``, the size of the attention maps it keeps; its peak growth
    can exceed that (allocator fragmentation from the many growing per-step tensors).
    """
    rows = []
    meta: dict[str, Any] = {}
    for n in lengths:
        if progress is not None:
            progress(f"plain + probe @ {n} tokens ({repeats} alternating runs each)")
        row = _measure_in_subprocess(model_dir, "sdpa", n, device, naive_max_gb, repeats, threads)
        if progress is not None:
            progress(f"naive @ {n} tokens")
        naive = _measure_in_subprocess(model_dir, "naive", n, device, naive_max_gb, 1, threads)
        row["naive"] = naive["naive"]
        for key in ("n_params", "prompt_len", "device"):
            meta.setdefault(key, row.pop(key, None))
            naive.pop(key, None)
        plain = row["plain"].get("tokens_per_s")
        plain_cpu = row["plain"].get("tokens_per_cpu_s")
        for mode in ("probe", "naive"):
            speed, peak = row[mode].get("tokens_per_s"), row[mode].get("peak_mb")
            row[f"{mode}_speed_ratio"] = speed / plain if speed and plain else None
            cpu_speed = row[mode].get("tokens_per_cpu_s")
            row[f"{mode}_cpu_speed_ratio"] = cpu_speed / plain_cpu if cpu_speed and plain_cpu else None
            row[f"{mode}_extra_peak_mb"] = (
                peak - row["plain"]["peak_mb"] if peak is not None and "peak_mb" in row["plain"] else None
            )
        rows.append(row)
    return {"model": model_dir, **meta, "threads": threads, "repeats": repeats, "rows": rows}


def _table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    def speed(m: dict[str, Any]) -> str:
        return f"{m['tokens_per_s']:.1f}" if "tokens_per_s" in m else f"skipped ({m.get('skipped', '?')})"

    def mem(m: dict[str, Any]) -> str:
        return f"{m['peak_mb']:.0f}" if "peak_mb" in m else "-"

    def ratio(v: float | None) -> str:
        return f"{v:.3f}" if v is not None else "-"

    params = result.get("n_params") or 0
    table = Table(title=f"probe cost: {params / 1e6:.1f}M params, prompt {result.get('prompt_len')} tokens, "
                        f"{result.get('device')}, threads {result.get('threads') or 'default'}, best of "
                        f"{result.get('repeats')} (peak = growth over the loaded, warmed-up model, MiB)")
    cpu_ratios = str(result.get("device", "")).startswith("cpu")
    cols = ["tokens", "plain tok/s", "probe tok/s", "naive tok/s", "probe/plain", "naive/plain"]
    cols += ["probe/plain cpu", "naive/plain cpu"] if cpu_ratios else []
    cols += ["plain peak", "probe peak", "naive peak", "naive maps"]
    for col in cols:
        table.add_column(col, justify="right")
    for row in result["rows"]:
        cells = [str(row["new_tokens"]), speed(row["plain"]), speed(row["probe"]), speed(row["naive"]),
                 ratio(row["probe_speed_ratio"]), ratio(row["naive_speed_ratio"])]
        if cpu_ratios:
            cells += [ratio(row.get("probe_cpu_speed_ratio")), ratio(row.get("naive_cpu_speed_ratio"))]
        maps = row["naive"].get("maps_mb")
        cells += [mem(row["plain"]), mem(row["probe"]), mem(row["naive"]), f"{maps:.0f}" if maps else "-"]
        table.add_row(*cells)
    return table


def register_bench(bench: typer.Typer) -> None:
    """Add ``probe`` to the ``pvm-bench bench`` command group."""

    @bench.command("probe")
    @user_errors
    def probe_command(
        model: ModelOption = None,
        random_size: RandomSizeOption = DEFAULT_SIZE,
        new_tokens: Annotated[str, typer.Option(help="Comma-separated generation lengths.")] = "128,512,2048",
        device: DeviceOption = "auto",
        naive_max_gb: Annotated[
            float, typer.Option(help="Skip the naive run when its attention maps would exceed this.")
        ] = 4.0,
        repeats: Annotated[
            int, typer.Option(help="Alternating plain/probe runs per length; the fastest of each counts.")
        ] = 3,
        threads: Annotated[
            int | None,
            typer.Option(help="torch CPU threads per measurement (default: torch's; 1 is steadier on a busy machine)."),
        ] = None,
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")
        ] = None,
    ) -> None:
        """Tokens/s and peak memory: plain generate vs the streaming probe vs output_attentions."""
        from rich.console import Console

        console = Console(stderr=True)
        try:
            lengths = [int(v) for v in new_tokens.split(",") if v.strip()]
        except ValueError:
            console.print(f"[bold red]error:[/] --new-tokens must be comma-separated integers, got '{new_tokens}'")
            raise typer.Exit(2) from None
        if not lengths or min(lengths) < 1:
            console.print("[bold red]error:[/] --new-tokens needs at least one positive length")
            raise typer.Exit(2)
        with bench_model(model, random_size, note=console.print) as (model_dir, label):
            result = run_bench(model_dir, lengths, device=device, naive_max_gb=naive_max_gb, repeats=repeats,
                               threads=threads, progress=lambda msg: console.print(f"  measuring {msg}"))
        result["model"] = label
        out = Console()
        if not out.is_terminal:  # piped or captured: rich would squeeze the table to 80 columns
            out = Console(width=170)
        out.print(_table(result))
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(result, indent=2) + "\n")
            console.print(f"wrote {json_path}")
