"""Values and messages as a person reads them: one line, and short however long the value.

A table cell, a label or a key can be megabytes long (a pasted file, a binary blob read as text); an error that
quotes it whole is no longer a one-line error. `shown` quotes a value for a message, cut in the middle past
`LIMIT` characters; `one_line` is what the command line prints: whitespace collapsed, and any word or the whole
message cut the same way, so even a message built elsewhere stays readable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

#: The longest value quoted whole in a message.
LIMIT = 80
#: The longest message the command line prints whole.
MESSAGE_LIMIT = 2000


def shown(value: Any, limit: int = LIMIT) -> str:
    """``repr(value)``, or its head and tail around ``…`` and its length when longer than ``limit``."""
    text = repr(value)
    return _cut(text, limit, f"{len(str(value)):,} characters") if len(text) > limit else text


def one_line(message: str, *, word_limit: int = 2 * LIMIT, limit: int = MESSAGE_LIMIT) -> str:
    """A message on one line: whitespace collapsed, over-long words and an over-long message cut in the middle."""
    words = [
        _cut(w, word_limit, f"{len(w):,} characters") if len(w) > word_limit else w for w in message.split()
    ]
    text = " ".join(words)
    return _cut(text, limit, f"{len(text):,} characters") if len(text) > limit else text


def _cut(text: str, limit: int, what: str) -> str:
    keep = max(limit - len(what) - 8, 8)
    head, tail = text[: keep - keep // 3], text[len(text) - keep // 3 :]
    return f"{head}…[{what}]…{tail}"


def closest(key: str, valid: Iterable[str]) -> str | None:
    """The valid key closest to ``key`` (a likely typo of it), or None."""
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return match[0] if match else None


def nearest(key: str, valid: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest valid key, or ''."""
    match = closest(key, valid)
    return f" (did you mean {match!r}?)" if match else ""
