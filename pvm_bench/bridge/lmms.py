"""lmms-eval model ``pvm_bench``: run any lmms-eval task through pvm-bench.

The model loads with :func:`pvm_bench.load_model` (hub id or local dir, optional PVM adapter),
runs one pvm-bench variant (``base``, ``pvm``, ``pai``...), generates with pvm-bench's batched
generator and writes the probes' per-step records (attention mass on image tokens...) to
``attention.parquet`` in pvm-bench's long format (``variant, task, sample_id, repeat, step,
layer, visual_mass, ...``), with ``sample_id`` = lmms-eval's ``doc_id``.

lmms-eval 0.7.3 resolves ``--model NAME`` through ``lmms_eval.models.MODEL_REGISTRY_V2``, which
is filled from its built-in table, the deprecated ``LMMS_EVAL_PLUGINS`` variable and the
entry-point group ``lmms_eval.models``. This module registers itself there on import, so either

    python -m pvm_bench.bridge.lmms --model pvm_bench \\
        --model_args pretrained=Qwen/Qwen3-VL-4B-Instruct,pvm=ADAPTER,variant=pvm,attention_out=out/ \\
        --tasks mmstar --batch_size 4 --output_path out/

(this module's ``main`` registers the model, then calls lmms-eval's own ``cli_evaluate`` with
the same arguments), or plain ``python -m lmms_eval --model pvm_bench ...`` once the package
declares the entry point ``[project.entry-points."lmms_eval.models"] pvm_bench =
"pvm_bench.bridge:lmms_manifest"``.

Model args (``--model_args k=v,k=v``): ``pretrained`` (required), ``pvm``, ``variant``
(one variant spec, parameters with ``:`` as in ``pai:alpha=0.2``), ``probes`` (``+``-separated,
default ``attention``; ``none`` for no probes), ``attention_out`` (file ``*.parquet`` or a
directory that gets ``attention.parquet``; default: no file), ``max_new_tokens`` (overrides the
task's ``generation_kwargs`` like ``pvm-bench run --max-new-tokens``), ``batch_size``, ``seed``,
``device``, ``dtype``, ``attn_implementation``, ``per_head``, ``strip_thinking``.

Generation follows the task's ``generation_kwargs`` (with ``--gen_kwargs`` merged in by
lmms-eval) the way lmms-eval 0.7.3's ``qwen3_vl`` model reads them (``models/simple/qwen3_vl.py``
``_build_generate_kwargs``, lines 241-264 of the wheel): ``max_new_tokens`` (default 128 there,
256 here unless the task sets it), ``temperature`` (0 or missing is greedy; > 0 samples, whatever
``do_sample`` says, as there),
``top_p``, ``top_k`` and ``repetition_penalty`` (missing = the checkpoint's ``generation_config``,
else transformers' default; under greedy only ``repetition_penalty`` applies: see
:mod:`pvm_bench.models.decoding`), and ``until`` stop strings. pvm-bench's generator
stops at EOS or the token limit; ``until`` strings cut the returned text afterwards, as the
lmms-eval HF backends do (``"\\n\\n"``, lmms-eval's default few-shot delimiter, is ignored as
they do too). The probe records cover every generated token, including any after a stop string.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.api.registry import register_model
from PIL import Image

from pvm_bench.bridge import LMMS_CLASS_PATH, LMMS_MODEL_NAME
from pvm_bench.data.images import to_rgb
from pvm_bench.models.generation import Generation, Request

DEFAULT_MAX_NEW_TOKENS = 256
IGNORED_STOPS = {"\n\n"}


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y", "on"}
    return bool(value)


def _as_list(value: Any, sep: str = "+") -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if text.lower() in {"", "none", "null"}:
        return []
    return [p.strip() for p in text.replace(";", sep).split(sep) if p.strip()]


def _optional(value: Any, kind: type) -> Any:
    """``kind(value)``, or ``None`` for a missing value (``None``/"None"/"")."""
    if value is None or (isinstance(value, str) and value.strip() in {"", "None", "none", "null"}):
        return None
    return kind(value)


def _to_image(visual: Any) -> Image.Image:
    if isinstance(visual, Image.Image):
        return to_rgb(visual)
    if isinstance(visual, (str, os.PathLike)) and Path(visual).is_file():
        try:
            with Image.open(visual) as img:
                return to_rgb(img)
        except OSError:
            pass
    if isinstance(visual, dict) and isinstance(visual.get("bytes"), (bytes, bytearray)):
        import io

        with Image.open(io.BytesIO(visual["bytes"])) as img:
            return to_rgb(img)
    raise ValueError(
        f"pvm_bench lmms-eval model supports images only; got {type(visual).__name__} "
        f"({str(visual)[:80]!r}); video and audio tasks are not supported"
    )


def build_request(context: str, visuals: list[Any] | None, *, seed: int = 0, key: Any = None) -> Request:
    """The pvm-bench request for one lmms-eval ``generate_until`` instance.

    One user turn: the doc's images first, then the context text with lmms-eval's ``<image>``
    placeholders removed (the convention of lmms-eval's Qwen-VL backends).
    """
    images = [_to_image(v) for v in (visuals or []) if v is not None]
    text = context.replace("<image>", "").strip()
    content: list[dict[str, Any]] = [{"type": "image", "index": i} for i in range(len(images))]
    content.append({"type": "text", "text": text})
    return Request(messages=[{"role": "user", "content": content}], images=images, seed=seed, key=key)


def apply_stops(text: str, until: list[str]) -> str:
    for term in until:
        if term and term not in IGNORED_STOPS:
            text = text.split(term)[0]
    return text


def _strip_thinking(text: str) -> str:
    return text.rpartition("</think>")[2].strip() if "</think>" in text else text


@register_model(LMMS_MODEL_NAME)
class PvmBenchLMM(lmms):
    """lmms-eval model backed by :func:`pvm_bench.load_model` (one variant, optional probes)."""

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        pvm: str | None = None,
        variant: str = "base",
        probes: str | list[str] | None = "attention",
        attention_out: str | None = None,
        max_new_tokens: int | str | None = None,
        batch_size: int | str = 1,
        seed: int | str = 0,
        device: str | None = "auto",
        dtype: str = "auto",
        attn_implementation: str = "sdpa",
        per_head: bool | str = False,
        strip_thinking: bool | str = False,
        device_map: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        from pvm_bench import load_model
        from pvm_bench.probes.registry import make_probes
        from pvm_bench.variants import resolve_variants

        ignored = {k: v for k, v in kwargs.items() if k not in {"max_batch_size"} and v is not None}
        if ignored:
            from loguru import logger

            logger.warning(f"pvm_bench: ignoring unknown model args {sorted(ignored)}")
        if pvm in ("", "none", "None"):
            pvm = None
        self.variant = resolve_variants([str(variant)])[0]
        self.lm = load_model(
            str(pretrained), pvm=pvm, dtype=dtype, device=device or "auto", device_map=device_map or None,
            attn_implementation=attn_implementation,
        )
        if self.variant.requires_pvm and self.lm.pvm is None:
            from pvm_bench.variants import VariantError

            raise VariantError(
                f"variant '{self.variant.name}' needs a PVM adapter; pass pvm=ADAPTER_DIR in --model_args"
            )
        self.probes = make_probes(_as_list(probes), per_head=_as_bool(per_head))
        self.attention_out = self._resolve_out(attention_out)
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens not in (None, "", "None") else None
        self.batch_size = max(1, int(batch_size)) if str(batch_size).isdigit() else 1
        self.seed = int(seed)
        self.strip_thinking = _as_bool(strip_thinking)
        self._frames: list[pd.DataFrame] = []

    # ------------------------------------------------------------------ lmms-eval API
    @property
    def device(self) -> Any:
        return self.lm.device

    @property
    def model(self) -> Any:
        return self.lm.hf_model

    @property
    def tokenizer(self) -> Any:
        return self.lm.tokenizer

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(
            "the pvm_bench lmms-eval model only implements generate_until; loglikelihood (multiple-choice "
            "by likelihood) tasks are not supported. Use the task's generate_until variant."
        )

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("the pvm_bench lmms-eval model does not support multi-round generation")

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Generate for lmms-eval instances ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``."""
        from pvm_bench.runner.workload import sample_seed

        prepared: list[tuple[int, tuple, Request, list[str], str]] = []
        for index, inst in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = inst.args
            gen_kwargs = dict(gen_kwargs or {})
            visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual is not None else []
            if visuals is not None and not isinstance(visuals, (list, tuple)):
                visuals = [visuals]
            key = (str(task), str(doc_id))
            request = build_request(context, visuals, seed=sample_seed(self.seed, str(task), str(doc_id), 0), key=key)
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            prepared.append((index, self._settings(gen_kwargs), request, until, str(task)))

        results: list[str | None] = [None] * len(requests)
        # Batches share generation settings; order inside a batch does not change outputs
        # (per-row seeds, left padding), so group then restore the original order.
        groups: dict[tuple, list[tuple[int, tuple, Request, list[str], str]]] = {}
        for item in prepared:
            groups.setdefault(item[1], []).append(item)
        from pvm_bench.session import GenerationSession

        with GenerationSession(self.lm, self.probes) as session, session.variant(self.variant):
            for (max_new, temperature, top_p, top_k, penalty), items in groups.items():
                for start in range(0, len(items), self.batch_size):
                    batch = items[start : start + self.batch_size]
                    gens = session.generate(
                        [item[2] for item in batch], max_new_tokens=max_new, temperature=temperature,
                        top_p=top_p, top_k=top_k, repetition_penalty=penalty,
                    )
                    for item, gen in zip(batch, gens):
                        text = apply_stops(gen.text, item[3])
                        if self.strip_thinking:
                            text = _strip_thinking(text)
                        results[item[0]] = text
                        self.cache_hook.add_partial(
                            "generate_until", (requests[item[0]].args[0], requests[item[0]].args[1]), text
                        )
                    self._collect(gens)
        self._write()
        return [r if r is not None else "" for r in results]

    # ------------------------------------------------------------------ helpers
    def _settings(self, gen_kwargs: dict[str, Any]) -> tuple[int, float, float | None, int | None, float | None]:
        """``(max_new_tokens, temperature, top_p, top_k, repetition_penalty)``; ``None`` = not given."""
        max_new = self.max_new_tokens or int(gen_kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
        # As lmms-eval's qwen3_vl (line 246): temperature > 0 samples even when the task YAML says
        # do_sample: false (MMBench, AI2D, HallusionBench do), so `--gen_kwargs temperature=0.7`
        # reproduces the PVM paper's sampled protocol on every task.
        temperature = float(gen_kwargs.get("temperature") or 0.0)
        if temperature <= 0:
            return max_new, 0.0, None, None, _optional(gen_kwargs.get("repetition_penalty"), float)
        return (
            max_new,
            temperature,
            _optional(gen_kwargs.get("top_p"), float),
            _optional(gen_kwargs.get("top_k"), int),
            _optional(gen_kwargs.get("repetition_penalty"), float),
        )

    def _resolve_out(self, attention_out: str | None) -> Path | None:
        if attention_out in (None, "", "none", "None"):
            return None
        path = Path(str(attention_out)).expanduser()
        if path.suffix != ".parquet":
            path = path / "attention.parquet"
        return path

    def _collect(self, gens: list[Generation]) -> None:
        from pvm_bench.runner.files import probe_frame

        for gen in gens:
            frame = probe_frame(gen.probe_records)
            if frame is None:
                continue
            task, doc_id = gen.key
            frame.insert(0, "repeat", 0)
            frame.insert(0, "sample_id", doc_id)
            frame.insert(0, "task", task)
            frame.insert(0, "variant", self.variant.name)
            self._frames.append(frame)

    def _write(self) -> None:
        """(Re)write attention.parquet with every record so far (atomic replace)."""
        if self.attention_out is None or not self._frames:
            return
        from pvm_bench.runner.files import write_parquet_atomic

        path = self.attention_out
        if self.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{self.rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(pd.concat(self._frames, ignore_index=True), path)  # unique temp name, atomic


def register() -> None:
    """Make ``--model pvm_bench`` resolvable by lmms-eval's model registry in this process."""
    from lmms_eval.models import AVAILABLE_MODELS, MODEL_REGISTRY_V2
    from lmms_eval.models.registry_v2 import ModelManifest

    MODEL_REGISTRY_V2.register_manifest(
        ModelManifest(model_id=LMMS_MODEL_NAME, simple_class_path=LMMS_CLASS_PATH), overwrite=True
    )
    AVAILABLE_MODELS[LMMS_MODEL_NAME] = LMMS_CLASS_PATH.rsplit(".", 1)[-1]


register()


def main(argv: list[str] | None = None) -> None:
    """``python -m pvm_bench.bridge.lmms <lmms-eval CLI args>``: lmms-eval's CLI with ``pvm_bench`` registered."""
    from lmms_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
