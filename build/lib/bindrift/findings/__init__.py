"""Findings stage: severity, MITRE ATT&CK, response steps, suppression, incidents, and the pipeline that
turns detections into stored findings."""
