"""Typed, serialisable contracts passed between bindrift's stages (sensors → … → sinks)."""
