"""Running `bindrift` as the tests do: the command beside this interpreter, waiting on what it logs and on
the findings it stores (bounded waits; a wait that runs out fails with what the log said)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until `predicate()` held; AssertionError naming `what` when it did not within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_logged(log: Path, text: str, timeout: float = 20) -> None:
    """Until `text` is in the log file; on a time-out the failure shows the log."""
    try:
        wait_for(lambda: text in log.read_text(), timeout, repr(text))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the log says:\n{log.read_text()[-4000:]}") from None


def stored(db: str, where: FindingFilter | None = None) -> list[Finding]:
    """The findings in the database `db` matching `where`."""
    store = SqlStore(db)
    try:
        return store.list_findings(where or FindingFilter(limit=1000))
    finally:
        store.close()


def wait_stored(db: str, where: FindingFilter | None = None, timeout: float = 10,
                keep: Callable[[Finding], bool] = lambda _finding: True) -> list[Finding]:  # fmt: skip
    """The matching findings (`keep` among `where`) as soon as there are any, or [] after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = [finding for finding in stored(db, where) if keep(finding)]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)
