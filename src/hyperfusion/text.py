"""Values and messages as a person reads them: one line, and short however long the value.

A table cell, a label or a key can be megabytes long (a pasted file, a binary blob read as text); an error that
quotes it whole is no longer a one-line error. `shown` quotes a value for a message, cut in the middle past
`LIMIT` characters; `one_line` is what the command line prints: whitespace collapsed, and any word or the whole
message cut the same way, so even a message built elsewhere stays readable. `format_table` is the one writer of tables
as text: markdown (report.md, explain's and a study's summary.md) or aligned plain columns (``validate``).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence
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


def format_table(
    header: Sequence[Any],
    rows: Sequence[Sequence[Any]],
    *,
    right: Collection[int] = (),
    markdown: bool = True,
    escape: bool = True,
) -> str:
    """A table as text, one line per row (header first), each line ending in a newline; cells are ``str(cell)``.

    ``markdown``: ``| a | b |`` lines under the header and its rule, the columns in ``right`` right-aligned
    (``---:``); ``escape`` writes a ``|`` in a body cell as ``\\|``. Otherwise aligned plain columns two spaces
    apart, the columns in ``right`` right-aligned, trailing spaces removed.
    """
    head = [str(c) for c in header]
    body = [[str(c) for c in row] for row in rows]
    if markdown:
        if escape:
            body = [[c.replace("|", "\\|") for c in row] for row in body]
        rule = "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"
        lines = ["| " + " | ".join(head) + " |", rule, *("| " + " | ".join(row) + " |" for row in body)]
    else:
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        lines = [
            "  ".join(
                c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
            ).rstrip()
            for row in [head, *body]
        ]
    return "".join(line + "\n" for line in lines)


def closest(key: str, valid: Iterable[str]) -> str | None:
    """The valid key closest to ``key`` (a likely typo of it), or None."""
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return match[0] if match else None


def nearest(key: str, valid: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest valid key, or ''."""
    match = closest(key, valid)
    return f" (did you mean {match!r}?)" if match else ""
