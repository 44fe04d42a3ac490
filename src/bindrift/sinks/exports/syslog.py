"""Syslog (RFC 5424) over UDP or TCP (octet-counting framing, RFC 6587), one message per finding."""

from __future__ import annotations

import socket
from datetime import UTC

from bindrift.schema.finding import Finding
from bindrift.schema.severity import Severity
from bindrift.visible_text import visible

FACILITY_LOCAL0 = 16
SYSLOG_SEVERITY: dict[Severity, int] = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
SD_ID = "bindrift@32473"  # 32473 is the private enterprise number reserved for documentation (RFC 5612)
MAX_FIELD = 512


def _param(value: str) -> str:
    """An SD-PARAM value: hidden characters (controls, bidi, zero-width) shown as `⟨U+XXXX⟩`, cut at MAX_FIELD
    saying so, then `"`, `\\` and `]` escaped (RFC 5424 §6.3.3)."""
    return visible(value, MAX_FIELD).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_message(finding: Finding, hostname: str = "-", app: str = "bindrift") -> bytes:
    """The RFC 5424 message for `finding`."""
    pri = FACILITY_LOCAL0 * 8 + SYSLOG_SEVERITY[finding.severity]
    timestamp = finding.last_seen.astimezone(UTC).isoformat().replace("+00:00", "Z")
    r = finding.resource
    params = {
        "id": finding.id, "category": finding.category, "severity": finding.severity, "state": finding.state,
        "count": str(finding.count), "node": r.node, "namespace": r.namespace, "pod": r.pod,
        "container": r.container_name or r.container_id, "image": r.image, "path": finding.file.path,
        "sha256": finding.file.sha256,
    }  # fmt: skip
    data = " ".join(f'{key}="{_param(value)}"' for key, value in params.items() if value)
    message = visible(f"{finding.category}: {finding.summary}")
    return f"<{pri}>1 {timestamp} {hostname or '-'} {app} - finding [{SD_ID} {data}] \ufeff{message}".encode()


class SyslogSender:
    """Sends findings to a syslog collector at `host:port` over `udp` or `tcp`."""

    def __init__(self, host: str, port: int, protocol: str = "udp", hostname: str | None = None) -> None:
        self.address = (host, port)
        self.protocol = protocol
        self.hostname = hostname or socket.gethostname()

    def send(self, finding: Finding) -> None:
        message = format_message(finding, self.hostname)
        if self.protocol == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, self.address)
            return
        with socket.create_connection(self.address, timeout=10) as sock:
            sock.sendall(str(len(message)).encode() + b" " + message)
