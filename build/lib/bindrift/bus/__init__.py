"""Distributed mode: node agents publish detections to NATS JetStream (through a bounded disk spool), and
central workers consume them as one group and run the findings pipeline against PostgreSQL."""
