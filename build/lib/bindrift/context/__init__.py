"""Context stage: which container an event belongs to, and what is known about it (runtime, names, image,
Kubernetes pod, overlay layers)."""
