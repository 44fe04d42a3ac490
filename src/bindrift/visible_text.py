"""Workload strings made inert and visible for a terminal, as the Explorer shows them: every character that
cannot be seen or that changes how the text around it reads (controls, bidirectional overrides and isolates,
zero-width and other format characters, unusual spaces, blank fillers, private-use and unassigned code points)
becomes a visible `⟨U+202E⟩`; values longer than a limit are cut, saying how much is left out."""

from __future__ import annotations

import unicodedata

HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp", "Zs"})
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _hidden(char: str) -> bool:
    return char != " " and (unicodedata.category(char) in HIDDEN_CATEGORIES or char in BLANK_LETTERS)


def visible(text: str, limit: int = 0) -> str:
    """`text` with hidden characters shown as `⟨U+XXXX⟩`; with a `limit`, cut after that many characters and
    marked `…(+N characters)`."""
    rest = 0
    if limit and len(text) > limit:
        text, rest = text[:limit], len(text) - limit
    if text.isprintable() and text.isascii():
        shown = text
    else:
        shown = "".join(f"⟨U+{ord(c):04X}⟩" if _hidden(c) else c for c in text)
    return f"{shown}…(+{rest} characters)" if rest else shown
