"""Analysis stage: ELF triage (identity, architecture, header anomalies, packing), hashing, intelligence.

The entry point is `bindrift.analysis.triage.triage`.
"""
