"""Probes: measurements taken during generation (attention mass, logit lens, branch contribution)."""

from pvm_bench.probes.base import BatchContext, Probe, ProbeError

__all__ = ["BatchContext", "Probe", "ProbeError"]
