"""Least privilege on disk: a new SQLite database and its WAL and shared-memory files are 0600 even under
a permissive umask; a tokens file its group or others can read is refused with a message saying how to fix
it, by the library and by `bindrift serve`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from tests.detections import detection
from typer.testing import CliRunner

from bindrift.cli.main import app
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.sinks.api.auth import Principal, load_tokens
from bindrift.sinks.store.sql_store import SqlStore

SECRET = "s" * 24


def test_database_and_wal_are_created_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SqlStore(f"sqlite:///{tmp_path / 'findings.db'}")
        try:
            FindingsPipeline(store).process(detection())  # a write: the WAL exists now
            names = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        finally:
            store.close()
    finally:
        os.umask(old)
    assert {"findings.db", "findings.db-wal", "findings.db-shm"} <= set(names)
    assert {mode for name, mode in names.items() if name.startswith("findings.db")} == {0o600}, names


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_tokens_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"admin carol {SECRET}\n")
    path.chmod(mode)
    with pytest.raises(ValueError, match=rf"open to its group or others \(mode {mode:04o}\): chmod 600 "):
        load_tokens(path)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(app, ["serve", "--tokens-file", str(path), "--db", db], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "chmod 600" in result.output


def test_tokens_file_0600_or_0400_is_read(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"admin carol {SECRET}\n")
    for mode in (0o600, 0o400):
        path.chmod(mode)
        assert load_tokens(path).authenticate(f"Bearer {SECRET}") == Principal("carol", "admin")
    os.chown(path, 65534, 65534)  # another user's file (it could rewrite the tokens)
    with pytest.raises(ValueError, match="belongs to uid 65534"):
        load_tokens(path)
