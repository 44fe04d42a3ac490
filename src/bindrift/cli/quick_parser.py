"""The command-line parser of the fast paths (scan_args, ingest_args): it never prints or exits; whatever it
does not accept raises RefusedError, and the command line then goes to the typer application, which answers
help and errors. Hand-written: argparse and what it imports (shutil, gettext, locale) were 2.5 ms of the
scan's start-up (`python -X importtime`), which bench/run.py measures against readelf. It takes `--name value`,
`--name=value`, `-n value`, `-nvalue`, flags, positionals anywhere and `--` before positionals only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any


class RefusedError(Exception):
    """Something the typer command must answer: an unknown option, a missing or invalid value."""


class _Option:
    __slots__ = ("choices", "const", "convert", "dest", "takes_value")

    def __init__(
        self, dest: str, takes_value: bool, const: Any, choices: Sequence[str] | None, convert: Callable[[str], Any]
    ) -> None:
        self.dest = dest
        self.takes_value = takes_value
        self.const = const
        self.choices = choices
        self.convert = convert


class QuickParser:
    """Options (with a value, or flags) and one positional (a list, or a single optional value)."""

    def __init__(self, positional: str, many: bool, default: Any = None) -> None:
        self._options: dict[str, _Option] = {}
        self._defaults: dict[str, Any] = {positional: [] if many else default}
        self._positional = positional
        self._many = many
        self._required: list[str] = []

    def option(
        self,
        *names: str,
        dest: str | None = None,
        default: Any = None,
        choices: Sequence[str] | None = None,
        convert: Callable[[str], Any] = str,
        required: bool = False,
    ) -> None:
        """An option taking one value (`--name value` or `--name=value`)."""
        dest = dest or names[0].lstrip("-").replace("-", "_")
        self._add(names, _Option(dest, True, None, choices, convert), default)
        if required:
            self._required.append(dest)

    def flag(self, *names: str, dest: str | None = None, value: bool = True, default: bool = False) -> None:
        """An option without a value: `dest` becomes `value`."""
        dest = dest or names[0].lstrip("-").replace("-", "_")
        self._add(names, _Option(dest, False, value, None, str), default)

    def _add(self, names: tuple[str, ...], option: _Option, default: Any) -> None:
        for name in names:
            self._options[name] = option
        self._defaults.setdefault(option.dest, default)

    def parse(self, argv: Sequence[str]) -> SimpleNamespace:
        """The values of `argv`, defaults filled in; RefusedError when typer must answer."""
        values = dict(self._defaults)
        values[self._positional] = list(values[self._positional]) if self._many else values[self._positional]
        given: list[str] = []
        seen: set[str] = set()
        args = iter(argv)
        for arg in args:
            if arg == "--":
                given.extend(args)
                break
            if not arg.startswith("-") or arg == "-":
                given.append(arg)
                continue
            name, attached = self._split(arg)
            option = self._options.get(name)
            if option is None:
                raise RefusedError(f"unknown option {arg!r}")
            seen.add(option.dest)
            if not option.takes_value:
                if attached is not None:
                    raise RefusedError(f"{name} takes no value")
                values[option.dest] = option.const
                continue
            value = attached if attached is not None else next(args, None)
            if value is None or (attached is None and value.startswith("-") and value != "-"):
                raise RefusedError(f"{name} needs a value")
            values[option.dest] = self._convert(option, value)
        if len(given) > 1 and not self._many:
            raise RefusedError("too many arguments")
        if given:
            values[self._positional] = given if self._many else given[0]
        if missing := [dest for dest in self._required if dest not in seen]:
            raise RefusedError(f"missing {', '.join(missing)}")
        return SimpleNamespace(**values)

    def _split(self, arg: str) -> tuple[str, str | None]:
        """The option name and its attached value, if any (`--name=value`, `-nvalue`)."""
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            return name, value if eq else None
        if arg[:2] in self._options and len(arg) > 2:
            return arg[:2], arg[2:]
        return arg, None

    @staticmethod
    def _convert(option: _Option, value: str) -> Any:
        if option.choices is not None and value not in option.choices:
            raise RefusedError(f"{value!r} is not one of {', '.join(option.choices)}")
        try:
            return option.convert(value)
        except ValueError as exc:
            raise RefusedError(str(exc)) from exc
