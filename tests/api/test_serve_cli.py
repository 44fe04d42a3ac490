"""`bindrift serve` as a user starts it: loopback, a token made and kept when none is configured, the API
answering over real HTTP, and only the routes it was told to open answering without a token."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgspec

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_makes_and_keeps_a_token_and_answers_on_loopback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINDRIFT_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        server = subprocess.Popen([BINDRIFT, "serve", "--db", db, "--port", str(port), "--open-route", "metrics"],
                                  env=env, stderr=err, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        status = 0
        while status != 200 and time.monotonic() < deadline:
            try:
                status, _ = _get(base + "/healthz")
            except OSError:
                time.sleep(0.1)
        assert status == 200, log.read_text()
        token_file = tmp_path / "bindrift" / "api-token"
        assert f"sign in with the admin token in {token_file}" in log.read_text()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32 and token not in log.read_text(), "the token is never printed"
        assert _get(base + "/api/v1/findings")[0] == 401
        status, body = _get(base + "/api/v1/findings", token)
        assert status == 200 and msgspec.json.decode(body) == {"total": 0, "limit": 50, "offset": 0, "items": []}
        assert msgspec.json.decode(_get(base + "/api/v1/me", token)[1]) == {"name": "admin", "role": "admin"}
        assert _get(base + "/metrics")[0] == 200, "opened by --open-route metrics"
        assert _get(base + "/api/v1/openapi.json")[0] == 401, "not opened"
        assert _get(base + "/api/v1/openapi.json", token)[0] == 200
        listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"]  # fmt: skip
        assert listening == [f"0100007F:{port:04X}"], "loopback only by default"
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode in (0, -15), "a clean stop (uvicorn re-raises SIGTERM after shutting down)"
