"""Detector stage: verdicts on analysed events — suspicious binary written, added binary executed."""
