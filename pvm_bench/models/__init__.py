"""Model loading, the family table and generation."""

from pvm_bench.models.families import FAMILIES, FamilySpec, family_for

__all__ = ["FAMILIES", "FamilySpec", "family_for"]
