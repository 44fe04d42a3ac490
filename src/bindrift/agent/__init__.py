"""The node agent: the orchestrator that runs the runtime stages (sensors → context → analysis → detectors →
findings → sinks / response) in one loop; `bindrift watch` is its thin entry point."""
