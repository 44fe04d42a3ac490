"""The fast paths' parser (cli/quick_parser.py): the option forms typer accepts, and a refusal (so typer
answers) for everything else."""

from __future__ import annotations

import pytest

from bindrift.cli.quick_parser import QuickParser, RefusedError
from bindrift.cli.scan_args import _parser as scan_parser


def _ingest_like() -> QuickParser:
    parser = QuickParser("input_file", many=False, default="-")
    parser.option("--from", dest="source", choices=("falco", "tetragon"), required=True)
    parser.flag("--check")
    parser.flag("--no-check", dest="check", value=False)
    return parser


def test_scan_options_in_every_form() -> None:
    args = scan_parser().parse(["a", "--format", "json", "-j2", "--min-severity=info", "-", "--no-hash", "-o", "-",
                                "--files-from", "list", "--", "-c"])  # fmt: skip
    assert args.paths == ["a", "-", "-c"]  # a lone dash is a value or a path, not an option
    assert (args.output_format, args.jobs, args.min_severity, args.no_hash) == ("json", 2, "info", True)
    assert (args.output, args.files_from, args.host_arch) == ("-", "list", None)


def test_defaults_and_the_last_value_wins() -> None:
    args = scan_parser().parse(["--format", "json", "-f", "sarif"])
    assert (args.paths, args.output_format, args.jobs, args.no_hash) == ([], "sarif", 0, False)
    assert args.min_severity == "low"


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--fmt", "json"], ["--form", "json"], ["--format"], ["--format", "xml"], ["--jobs", "two"],
     ["--jobs", "-1"], ["-x"], ["--no-hash=yes"], ["--output", "--no-hash"]],
)  # fmt: skip
def test_what_typer_must_answer_is_refused(argv: list[str]) -> None:
    with pytest.raises(RefusedError):
        scan_parser().parse(argv)


def test_single_positional_required_option_and_negative_flag() -> None:
    parser = _ingest_like()
    args = parser.parse(["--from", "falco", "--check", "--no-check"])
    assert (args.input_file, args.source, args.check) == ("-", "falco", False)
    assert parser.parse(["f.jsonl", "--from=tetragon"]).input_file == "f.jsonl"
    for argv in (["f.jsonl"], ["a", "b", "--from", "falco"], ["--from", "auditd"]):
        with pytest.raises(RefusedError):
            parser.parse(argv)
