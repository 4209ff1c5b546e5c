"""Regenerate tests/tasks/lmms_prompts.json: lmms-eval 0.7.3's own prompts for the fixture rows.

For every non-math benchmark fixture under tests/fixtures/data this records what lmms-eval 0.7.3
sends for each row with the ``qwen3_vl`` model (the PVM paper's model family) and with any
other model (``default`` kwargs): the task's ``doc_to_text`` with the kwargs lmms-eval selects
(``ConfigurableTask._prepare_model_specific_config``: the model's own section, else
``default``), and the YAML ``generation_kwargs``. Run with lmms-eval 0.7.3's task code
importable, e.g. the unpacked wheel plus its light dependencies::

    PYTHONPATH=/path/to/lmms_eval-0.7.3-wheel:/path/to/deps .venv/bin/python tests/tasks/make_lmms_prompts.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "fixtures" / "data"
OUT = HERE / "lmms_prompts.json"

# pvm-bench task -> (lmms-eval module, YAML file, fixture split, lmms-eval kwargs key)
TASKS = {
    "mmbench_en": ("mmbench.en_utils", "mmbench/_default_template_mmbench_en_yaml", "dev", "default"),
    "mmbench_cn": ("mmbench.cn_utils", "mmbench/_default_template_mmbench_cn_yaml", "dev", "default"),
    "mmstar": ("mmstar.utils", "mmstar/_default_template_yaml", "val", "default"),
    "mmstar_qwen3vl": ("mmstar.utils", "mmstar/_default_template_yaml", "val", "qwen3_vl"),
    "mmmu": ("mmmu.utils", "mmmu/mmmu_val.yaml", "validation", "default"),
    "mmmu_qwen3vl": ("mmmu.utils", "mmmu/mmmu_val.yaml", "validation", "qwen3_vl"),
    "ai2d": ("ai2d.utils", "ai2d/ai2d.yaml", "test", "default"),
    "hallusionbench": ("hallusion_bench.evaluate_hb", "hallusion_bench/hallusion_bench_image.yaml", "image", "default"),
    "mmt": ("mmt.utils", "mmt/_default_template_yaml", "val", "default"),
}
DATA_DIRS = {"mmstar_qwen3vl": "mmstar", "mmmu_qwen3vl": "mmmu"}
DOC_TO_TEXT = {"hallusion_bench.evaluate_hb": "hb_doc_to_text"}


def yaml_section(path: Path, key: str) -> dict:
    """A top-level mapping of a task YAML (lines with ``!function`` dropped, as lmms-eval's utils do)."""
    import yaml

    text = "".join(line for line in path.read_text().splitlines(keepends=True) if "!function" not in line)
    data = yaml.safe_load(text)
    if key not in data and data.get("include"):
        return yaml_section(path.parent / data["include"], key)
    return data.get(key) or {}


def qwen3_vl_defaults(models_dir: Path) -> dict:
    """``Qwen3_VL.DEFAULT_GEN_KWARGS`` of lmms-eval's qwen3_vl model, read without importing it."""
    import ast

    tree = ast.parse((models_dir / "simple" / "qwen3_vl.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DEFAULT_GEN_KWARGS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError("DEFAULT_GEN_KWARGS not found")


def main() -> None:
    import importlib

    import datasets
    import lmms_eval

    tasks_dir = Path(lmms_eval.__file__).parent / "tasks"
    out: dict[str, dict] = {"lmms_eval": getattr(lmms_eval, "__version__", "0.7.3"),
                            "qwen3_vl_default_gen_kwargs": qwen3_vl_defaults(tasks_dir.parent / "models"), "tasks": {}}
    for name, (module, yaml_file, split, kw_key) in TASKS.items():
        mod = importlib.import_module(f"lmms_eval.tasks.{module}")
        func_name = DOC_TO_TEXT.get(module, f"{module.split('.')[0]}_doc_to_text")
        doc_to_text = getattr(mod, func_name)
        yaml_path = tasks_dir / yaml_file
        kwargs_all = yaml_section(yaml_path, "lmms_eval_specific_kwargs")
        kwargs = dict(kwargs_all.get(kw_key) or kwargs_all.get("default") or {})
        path = DATA / DATA_DIRS.get(name, name) / f"{split}.parquet"
        rows = datasets.load_dataset("parquet", data_files=str(path), split="train")
        rows = rows.cast_column("image", datasets.Image(decode=False)) if "image" in rows.features else rows
        prompts = [doc_to_text(dict(row), kwargs) for row in rows]
        out["tasks"][name] = {
            "source": f"lmms_eval/tasks/{module.replace('.', '/')}.py:{func_name} + {yaml_file} [{kw_key}]",
            "generation_kwargs": yaml_section(yaml_path, "generation_kwargs"),
            "prompts": prompts,
        }
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
