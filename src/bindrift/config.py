"""Settings from a TOML file (`BINDRIFT_CONFIG`, default `~/.config/bindrift/config.toml`), all optional:

database = "sqlite:////var/lib/bindrift/bindrift.db"   # or postgresql+psycopg://…; BINDRIFT_DB wins
retention_days = 90
[severity]                                              # overrides of the default severities
"Added Binary Executed" = "medium"
[scc]                                                   # the SCC export (docs/findings.md)
parent = "organizations/123/sources/456"
project = "my-project"                                  # with location: GKE full resource names
location = "europe-west1"
explorer_url = "https://bindrift.example:8080"          # externalUri: the finding in the Explorer
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import msgspec

from bindrift.schema.severity import Severity

MAX_SECRET_FILE = 1 * 2**20


def read_secret_file(path: Path) -> str:
    """The text of a file holding secrets (API tokens), once its descriptor shows a regular file that only
    its owner (root or this user) can read or write. ValueError, saying how to fix it, otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise ValueError(f"{path} holds secrets but is open to its group or others (mode {mode:04o}): "
                             f"chmod 600 {path}")  # fmt: skip
        if st.st_uid not in (0, os.geteuid()):
            raise ValueError(f"{path} holds secrets but belongs to uid {st.st_uid}: chown it to uid {os.geteuid()}")
        return fh.read(MAX_SECRET_FILE).decode()


class SccSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where SCC findings go and how their resources are named: `parent` is the SCC source
    (`organizations/ORG/sources/SOURCE`); `project` and `location` (the cluster's region or zone) give GKE
    full resource names; `explorer_url` makes `externalUri` link to the finding in the Incident Explorer."""

    parent: str = "organizations/0/sources/bindrift"
    project: str = ""
    location: str = ""
    explorer_url: str = ""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """bindrift's settings."""

    database: str = ""
    retention_days: int = 90
    severity: dict[str, Severity] = msgspec.field(default_factory=dict)
    scc: SccSettings = msgspec.field(default_factory=SccSettings)


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
