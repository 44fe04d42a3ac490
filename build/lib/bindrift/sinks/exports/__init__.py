"""Exports for the rest of the security stack: JSON Lines, OCSF 1.8 Detection Finding, SCC-style JSON,
webhooks through a durable outbox, syslog (RFC 5424) and Prometheus metrics."""
