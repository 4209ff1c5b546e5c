"""``pvm-bench replay``: the diagnostics of generations made by any engine, after the fact.

For a causal decoder the attention of generated token t over the image keys during decoding is
row t of one teacher-forced forward over prompt + output (same positions, same keys/values), so
a finished answer's whole per-step, per-layer curve costs one pass at prefill speed instead of
n decode steps. Modules, one job each:

- :mod:`.rows`: the attention probe's quantities for many query rows, chunked;
- :mod:`.probe`: the attention probe on teacher-forced forwards (records as at decode time);
- :mod:`.forward`: the teacher-forced pass (prompt, then the output in chunks through the cache);
- :mod:`.plan`: per variant, where chunks must be cut, or one row per forward;
- :mod:`.tokens`: the output tokens (the log's ids, or a checked re-tokenisation);
- :mod:`.sources`: readers of a pvm-bench run, an lmms-eval ``--log_samples`` file, a plain JSONL;
- :mod:`.runner`: :class:`~pvm_bench.runner.run.Runner` with replay instead of generation (and ``--score-only``);
- :mod:`.cli`: ``pvm-bench replay``. The benchmark is :mod:`pvm_bench.bench.replay`.
"""
