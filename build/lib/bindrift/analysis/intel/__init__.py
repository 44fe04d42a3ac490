"""Threat intelligence: SHA-256 IoC lists (text, CSV, STIX 2.1 bundles) and YARA-X rule folders,
reloaded when their files change. The entry point is `bindrift.analysis.intel.intel_set.IntelSet`."""
