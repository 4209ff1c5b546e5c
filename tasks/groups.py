"""Task groups.

``pvm-paper``: the eight benchmarks of the PVM paper's headline average (MMMU, MMBench CN/EN,
MMStar, MMT-Bench, MathVerse, MathVision, AI2D), with lmms-eval 0.7.3 prompts and rule-based
scoring. MathVerse's paper numbers come from lmms-eval's GPT judge; ours are rule-based.
"""

GROUPS = {
    "pvm-paper": ["mmmu", "mmbench_cn", "mmbench_en", "mmstar", "mmt", "mathverse", "mathvision", "ai2d"],
    "pvm-reasoning": ["mmmu", "mathvista", "mathverse", "mathvision"],
}
