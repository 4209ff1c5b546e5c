"""Task groups.

``pvm-paper``: the eight benchmarks of the PVM paper's Table 1 (results.png of
github.com/huaixuheqing/PVM; its README, "Evaluation", says lmms-eval at temperature 0.7), in the
versions its superscripts name, with lmms-eval 0.7.3 prompts and generation lengths as lmms-eval runs
them for Qwen3-VL (MMMU and MMStar use the YAMLs' ``qwen3_vl`` prompt sections):

==================  =====================  ===============================================================
Table 1             task                   what the superscript means (and how sure)
==================  =====================  ===============================================================
MMMU^dev            ``mmmu_dev_qwen3vl``   MMMU's dev split (150 questions); lmms-eval 0.7.3 has no
                                           ``mmmu_dev`` task, so the paper's exact setup is uncertain
MMBench-CN^lite     ``mmbench_cn_lite``    lmms-eval ``mmbench_cn_dev_lite`` (certain: same name)
MMBench-EN^lite     ``mmbench_en_lite``    lmms-eval ``mmbench_en_dev_lite`` (certain)
MMStar              ``mmstar_qwen3vl``     MMStar val, full (no superscript)
MMT^emo             ``mmt_emo``            MMT-Bench val, emotion meta-task (uncertain: no lmms-eval task;
                                           "Emo" is MMT-Bench's abbreviation of that meta-task)
MathVerse^V         ``mathverse_vision``   lmms-eval group ``mathverse_testmini_vision`` (vision-intensive,
                                           -dominant, -only; likely, "V" could also mean vision-only)
MathVision^mini     ``mathvision``         lmms-eval ``mathvision_testmini`` (certain)
AI2D^lite           ``ai2d_lite``          lmms-eval ``ai2d_lite`` (certain)
==================  =====================  ===============================================================

``--protocol pvm-paper`` adds lmms-eval's inputs, temperature 0.7 and 4 repeats (the headline of
each task is then the 4-run average); summary.md and report.html show the published rows
(``pvm_paper_table1.json``) beside the run's. MathVerse here is scored by rules, the paper's by
lmms-eval's GPT judge (its ``comparability_note`` says so); MMBench lite by lmms-eval's static
evaluation, where its lite YAMLs' headline is the GPT-matched ``gpt_eval_score``.

``math-lmms``: the math tasks scored exactly as lmms-eval 0.7.3 does without an API judge
(``mathvista_lmms``: quick_extract, empty extraction otherwise; ``mathvision_lmms``:
``mathvision_process_results``), for parity checks against lmms-eval runs.
"""

GROUPS = {
    "pvm-paper": ["mmmu_dev_qwen3vl", "mmbench_cn_lite", "mmbench_en_lite", "mmstar_qwen3vl", "mmt_emo",
                  "mathverse_vision", "mathvision", "ai2d_lite"],
    "pvm-reasoning": ["mmmu", "mathvista", "mathverse", "mathvision"],
    "math-lmms": ["mathvista_lmms", "mathvision_lmms"],
}
