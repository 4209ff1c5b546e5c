"""Executing a run: variants x tasks x samples x repeats -> ``reports/<run_id>/``.

Owns the runner (:mod:`~pvm_bench.runner.run`), what it works on (:mod:`~pvm_bench.runner.workload`),
one batch (:mod:`~pvm_bench.runner.batch`), the checks before a run (:mod:`~pvm_bench.runner.preflight`),
the run directory's lock, resume and NaN guards (:mod:`~pvm_bench.runner.guard`), its files
(:mod:`~pvm_bench.runner.files`, :mod:`~pvm_bench.runner.attention_merge`, :mod:`~pvm_bench.runner.maps`,
:mod:`~pvm_bench.runner.media`, :mod:`~pvm_bench.runner.taskmeta`), probes per run and data-parallel
sharding. May import tasks, scoring, data, models, probes, variants, session, results, config and
errors; never cli or report (the report reads what the runner wrote, as data).
"""
