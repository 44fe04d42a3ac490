"""The REST API and the Incident Explorer web UI (FastAPI), reading and triaging the findings store."""
