"""``pvm-bench bench replay``: replay vs decode-time probing of the same outputs, per sample.

Per output length, two fresh subprocesses on the same model (default: the ~87M random Qwen3-VL
of :mod:`pvm_bench.bench.model`), one image prompt, batch 1:

- ``decode``: greedy ``generate`` of exactly ``n`` tokens with the decode-time
  :class:`~pvm_bench.probes.attention.AttentionProbe` (what ``pvm-bench run`` does); its tokens
  and per-(step, layer) visual masses are handed to the next process;
- ``replay``: :func:`pvm_bench.replay.forward.teacher_force` of those tokens with
  :class:`~pvm_bench.replay.probe.ReplayAttentionProbe`; the masses are compared with decode's
  (``max_abs_diff``).

Time is wall and process-CPU seconds of the measured call (after a short warm-up); peak memory
is the growth of the peak resident set over the loaded, warmed-up model (CPU) or the CUDA
allocator's peak minus what was allocated before (GPU), measured the way ``bench probe`` does
(:class:`pvm_bench.bench.probe._Meter`). Both modes hold a KV cache of ``prompt + n`` positions
(``kv_cache_mb``); what replay adds beyond it is bounded by one chunk of scores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from pvm_bench.bench.model import DEFAULT_SIZE, DeviceOption, ModelOption, RandomSizeOption, bench_model
from pvm_bench.bench.probe import _Meter, _setup
from pvm_bench.cli.support import user_errors


def _kv_cache_mb(lm: Any, positions: int) -> float:
    tc = lm.text_config
    head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
    return 2 * tc.num_hidden_layers * tc.num_key_value_heads * head_dim * positions * 4 / 2**20


def measure(model_dir: str, mode: str, new_tokens: int, device: str, handoff: str, chunk: int,
            threads: int | None = None) -> dict[str, Any]:
    """One mode at one length in this process (see the module docstring); returns its numbers."""
    import numpy as np
    import torch
    from transformers import GenerationConfig

    from pvm_bench.models.generation import Request, eos_ids
    from pvm_bench.probes.attention import AttentionProbe
    from pvm_bench.probes.base import BatchContext
    from pvm_bench.replay.forward import Output, teacher_force
    from pvm_bench.replay.probe import ReplayAttentionProbe

    if threads:
        torch.set_num_threads(threads)
    setup = _setup(model_dir, device, eager=False)
    lm, enc = setup["lm"], setup["enc"]
    meter = _Meter(lm.device)
    base = {"mode": mode, "new_tokens": new_tokens, "n_params": setup["n_params"], "prompt_len": setup["prompt_len"],
            "device": str(lm.device), "kv_cache_mb": _kv_cache_mb(lm, setup["prompt_len"] + new_tokens)}
    if mode == "decode":
        probe = AttentionProbe()
        probe.install(lm)
        eos = eos_ids(lm)

        def decode(n: int) -> tuple[list[int], list[dict[str, Any]]]:
            config = GenerationConfig(max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1,
                                      eos_token_id=eos or None, pad_token_id=lm.tokenizer.pad_token_id,
                                      suppress_tokens=lm.suppress_token_ids() or None)
            probe.begin_batch(BatchContext(enc["input_ids"], enc["attention_mask"],
                                           enc["input_ids"] == lm.image_token_id, n))
            with torch.inference_mode():
                seq = lm.hf_model.generate(**enc, generation_config=config)
            return seq[0, setup["prompt_len"]:].tolist(), probe.end_batch([n])[0]

        decode(4)
        (tokens, records), seconds, peak, cpu = meter(decode, new_tokens)
        masses = [r["visual_mass"] for r in records]
        Path(handoff).write_text(json.dumps({"tokens": tokens, "visual_mass": masses}))
        return {**base, "seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak}
    given = json.loads(Path(handoff).read_text())
    probe = ReplayAttentionProbe()
    probe.install(lm)
    from PIL import Image

    from pvm_bench.bench.probe import PROMPT

    image = Image.new("RGB", (96, 96), (180, 40, 40))
    request = Request(messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}],
                      images=[image])

    def replay(tokens: list[int]) -> list[dict[str, Any]]:
        gen = teacher_force(lm, [request], [Output("", tokens, "length")], probes=[probe], chunk=chunk)
        return gen[0].probe_records["attention"]

    replay(given["tokens"][:4])
    records, seconds, peak, cpu = meter(replay, given["tokens"])
    diff = float(np.max(np.abs(np.asarray([r["visual_mass"] for r in records]) - np.asarray(given["visual_mass"]))))
    return {**base, "seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak, "max_abs_diff": diff, "chunk": chunk}


def _in_subprocess(*args: Any) -> dict[str, Any]:
    code = ("import json,sys; from pvm_bench.bench.replay import measure; "
            "print('@@RESULT@@' + json.dumps(measure(*json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(list(args))], capture_output=True, text=True,
                          check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    raise RuntimeError(f"bench replay ({args[1]} @ {args[2]}): {tail}")


def run_bench(model_dir: str, lengths: list[int], *, device: str = "auto", chunk: int = 512, threads: int | None = 1,
              progress: Any = None) -> dict[str, Any]:
    """Rows of ``{new_tokens, decode: {...}, replay: {...}, speedup, cpu_speedup}`` (see the module docstring)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pvm-bench-replay-") as tmp:
        for n in lengths:
            handoff = str(Path(tmp) / f"decode-{n}.json")
            row: dict[str, Any] = {"new_tokens": n}
            for mode in ("decode", "replay"):
                if progress is not None:
                    progress(f"{mode} @ {n} tokens")
                row[mode] = _in_subprocess(model_dir, mode, n, device, handoff, chunk, threads)
            row["speedup"] = row["decode"]["seconds"] / row["replay"]["seconds"]
            row["cpu_speedup"] = row["decode"]["cpu_seconds"] / row["replay"]["cpu_seconds"]
            rows.append(row)
            if progress is not None:  # each length's figures as soon as they exist (long runs)
                progress(f"@ {n} tokens: replay {row['speedup']:.1f}x faster (cpu {row['cpu_speedup']:.1f}x), "
                         f"peak decode {row['decode']['peak_mb']:.0f} / replay {row['replay']['peak_mb']:.0f} MiB")
    first = rows[0]["decode"] if rows else {}
    return {"model": model_dir, "n_params": first.get("n_params"), "prompt_len": first.get("prompt_len"),
            "device": first.get("device"), "threads": threads, "chunk": chunk, "rows": rows}


def _table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(
        title=f"replay vs decode-time probing, same outputs: {(result.get('n_params') or 0) / 1e6:.1f}M params, "
        f"prompt {result.get('prompt_len')} tokens, {result.get('device')}, threads "
        f"{result.get('threads') or 'default'}, chunk {result.get('chunk')} (peak = growth, MiB)"
    )
    for col in ("tokens", "decode s", "replay s", "speedup", "cpu speedup", "decode peak", "replay peak",
                "kv cache", "max |diff|"):
        table.add_column(col, justify="right")
    for row in result["rows"]:
        d, r = row["decode"], row["replay"]
        table.add_row(str(row["new_tokens"]), f"{d['seconds']:.2f}", f"{r['seconds']:.2f}", f"{row['speedup']:.1f}x",
                      f"{row['cpu_speedup']:.1f}x", f"{d['peak_mb']:.0f}", f"{r['peak_mb']:.0f}",
                      f"{d['kv_cache_mb']:.0f}", f"{r['max_abs_diff']:.1e}")
    return table


def register_bench(bench: typer.Typer) -> None:
    """Add ``replay`` to the ``pvm-bench bench`` command group."""

    @bench.command("replay")
    @user_errors
    def replay_command(
        model: ModelOption = None,
        random_size: RandomSizeOption = DEFAULT_SIZE,
        new_tokens: Annotated[str, typer.Option(help="Comma-separated output lengths.")] = "256,1024,4096",
        device: DeviceOption = "auto",
        chunk: Annotated[int, typer.Option(min=1, help="Output positions per teacher-forced forward.")] = 512,
        threads: Annotated[int | None, typer.Option(help="torch CPU threads per measurement.")] = 1,
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")
        ] = None,
    ) -> None:
        """Per sample: replay vs decode-time probing of the same outputs (time, peak memory, agreement)."""
        from rich.console import Console

        console = Console(stderr=True)
        try:
            lengths = [int(v) for v in new_tokens.split(",") if v.strip()]
        except ValueError:
            lengths = []
        if not lengths or min(lengths) < 2:
            console.print(f"[bold red]error:[/] --new-tokens must be comma-separated integers >= 2, got '{new_tokens}'")
            raise typer.Exit(2)
        with bench_model(model, random_size, note=console.print) as (model_dir, label):
            result = run_bench(model_dir, lengths, device=device, chunk=chunk, threads=threads,
                               progress=lambda msg: console.print(f"  measuring {msg}"))
        result["model"] = label
        out = Console() if Console().is_terminal else Console(width=170)
        out.print(_table(result))
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(result, indent=2) + "\n")
            console.print(f"wrote {json_path}")
