"""Bearer-token authentication with two roles: `read` (explore) and `admin` (also change states).

Tokens come from the environment (`BINDRIFT_ADMIN_TOKEN`, `BINDRIFT_READ_TOKEN`) or a tokens file with
one `ROLE NAME SECRET` per line; the name is who a state change is recorded as. Tokens travel only in
the `Authorization` header, never in URLs, and are compared in constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["read", "admin"]
ROLES: tuple[Role, ...] = ("read", "admin")
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented a token."""

    name: str
    role: Role


class TokenSet:
    """The accepted tokens."""

    def __init__(self, tokens: dict[str, Principal]) -> None:
        for secret in tokens:
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(f"API tokens must be at least {MIN_SECRET_LENGTH} characters long")
        self._tokens = dict(tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def authenticate(self, header: str | None) -> Principal | None:
        """The principal of an `Authorization: Bearer …` header, or None."""
        if not header:
            return None
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        found = None
        for secret, principal in self._tokens.items():  # no early exit: the time does not tell which matched
            if hmac.compare_digest(secret.encode(), presented.strip().encode()):
                found = principal
        return found


def parse_tokens_file(path: Path) -> dict[str, Principal]:
    """`ROLE NAME SECRET` lines; `#` comments and blank lines are skipped."""
    tokens: dict[str, Principal] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3 or fields[0] not in ROLES:
            raise ValueError(f"{path}:{number}: expected 'read|admin NAME SECRET'")
        role: Role = "admin" if fields[0] == "admin" else "read"
        tokens[fields[2]] = Principal(fields[1], role)
    return tokens


def load_tokens(tokens_file: Path | None = None) -> TokenSet:
    """Tokens from `tokens_file` and the environment."""
    tokens = parse_tokens_file(tokens_file) if tokens_file else {}
    if os.environ.get("BINDRIFT_ADMIN_TOKEN"):
        tokens[os.environ["BINDRIFT_ADMIN_TOKEN"]] = Principal("admin", "admin")
    if os.environ.get("BINDRIFT_READ_TOKEN"):
        tokens[os.environ["BINDRIFT_READ_TOKEN"]] = Principal("reader", "read")
    return TokenSet(tokens)


def new_secret() -> str:
    """A fresh random token."""
    return secrets.token_urlsafe(32)
