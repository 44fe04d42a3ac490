"""Packing and packer tampering: UPX of every version and architecture, and generic packing."""

from bindrift.analysis.packing.checks import packing_checks

__all__ = ["packing_checks"]
