"""The offline scan orchestrator: sensors (files, images) → analysis (triage) → sinks (report writers).

`bindrift scan` (cli/scan.py) only parses its arguments and calls `run_scan`.
"""
