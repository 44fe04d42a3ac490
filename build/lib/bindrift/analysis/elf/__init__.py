"""Tolerant ELF header reading and the checks on it."""
