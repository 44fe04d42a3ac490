"""A transient progress counter on stderr for long interactive scans."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager


def progress_for(interactive: bool) -> AbstractContextManager[Callable[[int], None] | None]:
    """A context yielding a hook that advances the counter, or None when not on a terminal."""
    return _live() if interactive else _none()


@contextmanager
def _none() -> Iterator[None]:
    yield None


@contextmanager
def _live() -> Iterator[Callable[[int], None]]:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("scanning: {task.completed} files"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("scan", total=None)
        yield lambda count: bar.advance(task, count)
