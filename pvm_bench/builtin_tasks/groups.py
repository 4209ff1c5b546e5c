"""Task groups.

``pvm-paper``: the eight benchmarks of the PVM paper's headline average (MMMU, MMBench CN/EN,
MMStar, MMT-Bench, MathVerse, MathVision, AI2D), with lmms-eval 0.7.3 prompts and generation
lengths as lmms-eval runs them for the paper's Qwen3-VL models: MMMU and MMStar use the YAMLs'
``qwen3_vl`` prompt sections (tasks ``mmmu_qwen3vl``, ``mmstar_qwen3vl``); the other six have no
model-specific section. ``mathverse`` is lmms-eval's ``mathverse_testmini`` (all problem versions), scored by rules:
the paper's MathVerse numbers come from lmms-eval's GPT judge, so that row is not comparable (its
``comparability_note`` says so in summary.md). ``mathvision`` compares final answers with
latex2sympy2 as lmms-eval does.

``math-lmms``: the math tasks scored exactly as lmms-eval 0.7.3 does without an API judge
(``mathvista_lmms``: quick_extract, empty extraction otherwise; ``mathvision_lmms``:
``mathvision_process_results``), for parity checks against lmms-eval runs.
"""

GROUPS = {
    "pvm-paper": ["mmmu_qwen3vl", "mmbench_cn", "mmbench_en", "mmstar_qwen3vl", "mmt", "mathverse", "mathvision", "ai2d"],
    "pvm-reasoning": ["mmmu", "mathvista", "mathverse", "mathvision"],
    "math-lmms": ["mathvista_lmms", "mathvision_lmms"],
}
