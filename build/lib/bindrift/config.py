"""Settings from a TOML file (`BINDRIFT_CONFIG`, default `~/.config/bindrift/config.toml`), all optional:

database = "sqlite:////var/lib/bindrift/bindrift.db"   # or postgresql+psycopg://…; BINDRIFT_DB wins
retention_days = 90
[severity]                                              # overrides of the default severities
"Added Binary Executed" = "medium"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import msgspec

from bindrift.schema.severity import Severity


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """bindrift's settings."""

    database: str = ""
    retention_days: int = 90
    severity: dict[str, Severity] = msgspec.field(default_factory=dict)


def data_dir() -> Path:
    """bindrift's data folder: `$XDG_DATA_HOME/bindrift` (default ~/.local/share/bindrift)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "bindrift"


def config_path() -> Path:
    default = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "bindrift" / "config.toml"
    return Path(os.environ.get("BINDRIFT_CONFIG") or default)


def load_settings(path: Path | None = None) -> Settings:
    """The settings in `path` (or the default location); defaults when the file does not exist.
    Raises ValueError for a malformed file or unknown keys."""
    path = path or config_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return Settings()
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    try:
        return msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from exc
