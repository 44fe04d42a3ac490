"""bindrift: runtime threat detection for Linux containers (suspicious binaries, container drift)."""

__version__ = "0.1.0"
