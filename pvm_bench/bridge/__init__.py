"""Bridges from other evaluation harnesses to pvm-bench.

``pvm_bench.bridge.lmms`` exposes pvm-bench's loading, variants and probes as an lmms-eval
model named ``pvm_bench``. It is the only module that imports ``lmms_eval``; importing this
package does not, so pvm-bench works without lmms-eval installed.
"""

LMMS_MODEL_NAME = "pvm_bench"
LMMS_CLASS_PATH = "pvm_bench.bridge.lmms.PvmBenchLMM"


def lmms_manifest():  # pragma: no cover - needs lmms-eval
    """Entry point payload for the ``lmms_eval.models`` group (a ``ModelManifest``)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=LMMS_MODEL_NAME, simple_class_path=LMMS_CLASS_PATH)


__all__ = ["LMMS_CLASS_PATH", "LMMS_MODEL_NAME", "lmms_manifest"]
