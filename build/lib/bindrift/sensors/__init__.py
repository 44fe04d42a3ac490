"""Sensor stage: what to look at — file-system walks and container images (offline), kernel events (runtime)."""
