"""A detection the findings stage could not store: set aside with the reason, so an operator sees it and the
stage goes on with the rest."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

MAX_BODY = 64 * 1024  # bytes of the detection kept; `size` says how large it was
MAX_ERROR = 2000  # characters of the error kept


class DeadLetter(msgspec.Struct, frozen=True):
    """`message_id`: the bus message (or, on the local path, the id its encoding would have); `deliveries`: how
    many times it was tried; `body`: the encoded detection, its first MAX_BODY bytes."""

    message_id: str
    source: Literal["bus", "local"]
    node: str
    error: str
    deliveries: int
    at: datetime
    size: int
    body: bytes
