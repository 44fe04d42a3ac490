"""The ingest orchestrator: another sensor's events (sensors/ingest adapters) → bindrift's analysis → the
findings pipeline or the bus, with every input line accounted for."""
