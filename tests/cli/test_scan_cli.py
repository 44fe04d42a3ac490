"""`bindrift scan` as users run it: the installed command, real binaries, exit codes and every format."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
TRUE = os.path.realpath(shutil.which("true") or "/usr/bin/true")
REQUIRED_KEYS = {"path", "sha256", "size", "arch", "bits", "endian", "type", "osabi", "interpreter", "linking",
                 "runs", "findings", "image", "layer"}  # fmt: skip


def run(*args: str, stdin: bytes | None = None, columns: int = 80) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [BINDRIFT, "scan", *args], capture_output=True, input=stdin, env=env, timeout=120, check=False
    )


def lines(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def arm64_busybox(test_binaries: Path) -> Path:
    return test_binaries / "busybox-static-arm64" / "bin" / "busybox"


def test_json_lines_schema_and_values(arm64_busybox: Path) -> None:
    result = run("--format", "json", "--host-arch", "x86_64", TRUE, str(arm64_busybox))
    assert result.returncode == 1, result.stderr
    native, foreign = lines(result)
    for obj in (native, foreign):
        assert obj.keys() >= REQUIRED_KEYS
    assert native["path"] == TRUE and native["findings"] == [] and native["runs"] == "native"
    assert native["sha256"] == hashlib.sha256(Path(TRUE).read_bytes()).hexdigest()
    assert native["size"] == os.path.getsize(TRUE)
    assert (foreign["arch"], foreign["bits"], foreign["endian"], foreign["type"], foreign["linking"]) == (
        "aarch64",
        64,
        "little",
        "exec",
        "static",
    )
    finding = foreign["findings"][0]  # type: ignore[index]
    assert finding["category"] == "incompatible-architecture" and finding["check"] == "foreign_arch"
    assert finding["severity"] == "high" and "aarch64" in finding["detail"]
    assert set(finding) == {"category", "check", "severity", "title", "detail", "ref", "evidence"}
    assert b"2 ELF file(s), 1 finding(s) (1 high)" in result.stderr


def test_min_severity_filters_findings_and_exit_status(arm64_busybox: Path) -> None:
    assert run("--format", "json", "--min-severity", "critical", str(arm64_busybox)).returncode == 0
    quiet = lines(run("--format", "json", "--min-severity", "critical", str(arm64_busybox)))
    assert quiet[0]["findings"] == [] and quiet[0]["arch"] == "aarch64", "the ELF is still inventoried"
    assert run("--format", "json", "--no-hash", TRUE).returncode == 0
    assert lines(run("--format", "json", "--no-hash", TRUE))[0]["sha256"] is None


def test_usage_and_io_errors_exit_2(tmp_path: Path) -> None:
    missing = run("--format", "json", TRUE, str(tmp_path / "missing"))
    assert missing.returncode == 2
    assert [obj["path"] for obj in lines(missing)] == [TRUE], "other paths are still reported"
    assert b"missing" in missing.stderr
    assert run("--host-arch", "vax11", TRUE).returncode == 2
    assert run("--min-severity", "urgent", TRUE).returncode == 2


def test_directory_walk_skips_symlinks_and_counts_non_elf(tmp_path: Path, arm64_busybox: Path) -> None:
    (tmp_path / "sub").mkdir()
    shutil.copy(TRUE, tmp_path / "sub" / "tool")
    (tmp_path / "notes.txt").write_text("not an ELF")
    (tmp_path / "link-to-arm64").symlink_to(arm64_busybox)
    (tmp_path / "dir-link").symlink_to(arm64_busybox.parent, target_is_directory=True)
    os.mkfifo(tmp_path / "fifo")
    result = run("--format", "json", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert [obj["path"] for obj in lines(result)] == [str(tmp_path / "sub" / "tool")]
    assert b"1 non-ELF file(s) skipped" in result.stderr


def test_parallel_jobs_give_the_same_output(tmp_path: Path, arm64_busybox: Path) -> None:
    for i in range(200):
        os.link(TRUE, tmp_path / f"true-{i:03}")
        os.link(arm64_busybox, tmp_path / f"bb-{i:03}")
    one = run("--format", "json", "--jobs", "1", str(tmp_path))
    two = run("--format", "json", "--jobs", "2", str(tmp_path))
    assert one.returncode == two.returncode == 1
    assert one.stdout == two.stdout
    assert len(lines(two)) == 400


def test_files_from_nul_list(tmp_path: Path, arm64_busybox: Path) -> None:
    listing = tmp_path / "list"
    listing.write_bytes(f"{TRUE}\0{arm64_busybox}\0".encode())
    result = run("--format", "json", "--files-from", str(listing))
    assert [obj["path"] for obj in lines(result)] == [TRUE, str(arm64_busybox)]
    from_stdin = run("--format", "json", "--files-from", "-", stdin=f"{TRUE}\n".encode())
    assert [obj["path"] for obj in lines(from_stdin)] == [TRUE]


def test_sarif_log_structure(arm64_busybox: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.sarif"
    result = run("--format", "sarif", "--output", str(out), TRUE, str(arm64_busybox))
    assert result.returncode == 1
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (sarif_run,) = log["runs"]
    driver = sarif_run["tool"]["driver"]
    assert driver["name"] == "bindrift" and driver["informationUri"]
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert rule_ids == ["incompatible-architecture/foreign_arch"]
    rule = driver["rules"][0]
    assert rule["shortDescription"]["text"] and rule["defaultConfiguration"]["level"] == "error"
    assert rule["properties"]["security-severity"] == "8.0"
    (result_obj,) = sarif_run["results"]
    assert result_obj["ruleId"] == rule_ids[0] and result_obj["ruleIndex"] == 0 and result_obj["level"] == "error"
    assert result_obj["message"]["text"].startswith(str(arm64_busybox))
    uri = result_obj["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == arm64_busybox.as_uri()
    assert result_obj["partialFingerprints"]["sha256/v1"] == hashlib.sha256(arm64_busybox.read_bytes()).hexdigest()
    assert sarif_run["invocations"][0]["executionSuccessful"] is True


def test_table_renders_hostile_names_inert(tmp_path: Path, arm64_busybox: Path) -> None:
    hostile = tmp_path / "[red]x[blink]\x1b[2J.elf"
    shutil.copy(arm64_busybox, hostile)
    result = run(str(hostile), columns=400)
    assert result.returncode == 1
    text = result.stdout.decode()
    assert "\x1b" not in text, "no terminal escape reaches the output"
    assert "[red]x[blink]⟨U+001B⟩[2J.elf" in text, "markup shown literally, the escape as text"
    assert "foreign_arch" in text


def test_version_and_help() -> None:
    version = subprocess.run([BINDRIFT, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("bindrift ")
    help_text = subprocess.run([BINDRIFT, "scan", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--format", "--min-severity", "--no-hash", "--host-arch", "--jobs", "--files-from"):
        assert option in help_text


def test_special_files_named_on_the_command_line_exit_2(tmp_path: Path) -> None:
    import socket

    os.mkfifo(tmp_path / "fifo")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "sock"))
    (tmp_path / "fifo-link").symlink_to(tmp_path / "fifo")
    try:
        named = [str(tmp_path / "fifo"), str(tmp_path / "sock"), "/dev/null", str(tmp_path / "fifo-link")]
        result = run("--format", "json", *named, TRUE)
    finally:
        listener.close()
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr
    assert [obj["path"] for obj in lines(result)] == [TRUE], "the other paths are still scanned"
    errors = result.stderr.decode()
    for path, kind in zip(named, ("a FIFO", "a socket", "a character device", "a FIFO"), strict=True):
        assert f"{path}: not a regular file or directory: {kind}" in errors


def test_unreadable_file_gives_a_per_file_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    shutil.copy(TRUE, secret)
    secret.chmod(0o000)
    # Root reads any file: the scan runs without the capabilities that override file permissions.
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    result = subprocess.run(
        [*drop, BINDRIFT, "scan", "--format", "json", str(secret), TRUE], capture_output=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr
    assert f"{secret}: Permission denied".encode() in result.stderr
    assert [obj["path"] for obj in lines(result)] == [TRUE]
