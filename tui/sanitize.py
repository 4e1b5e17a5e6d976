"""Untrusted strings drawn inertly (issue 8 item 5).

Run folder names, metric names, hyperparameters and child output come from files and
processes we do not control. Written to a terminal as they are, an `ESC ] 52` sequence sets the
clipboard, `ESC ] 0` retitles the window, `ESC [ 2 J` clears the screen, `\\r` overwrites what
was drawn before it, and a bidi override makes text read backwards. Rich markup in a name
(`[link=...]`) would be interpreted too.

The rule here: every control character (C0, DEL, C1) and every bidi control becomes a visible
escape such as `\\x1b` or `\\u202e`. Once the ESC byte is gone, the rest of any escape sequence
is plain printable text, so the sequence can neither act nor hide: a person sees what the file
tried to do. Markup is never interpreted because callers get a `rich.text.Text` (or an escaped
markup string), never an f-string spliced into markup.

File names that are not UTF-8 reach Python as lone surrogates (surrogateescape: byte 0x9b is
U+DC9B). No strict UTF-8 stream can write one, so they are escapes too: such a byte is shown as
`\\x9b`, any other lone surrogate as `\\udxxx` (issue 14). `json_safe` does the same to every
string of a JSON value, so `check --json` stays valid UTF-8 JSON.
"""

from __future__ import annotations

import re
from typing import Any

from rich.markup import escape
from rich.text import Text

# C0 (including \t, \n, \r: a name is one line), DEL, C1; bidi embeddings, overrides,
# isolates and marks; line/paragraph separators that would break a one-line label.
# lone surrogates (U+D800-U+DFFF) last: they stand for bytes that were not UTF-8
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _unsurrogate(match: re.Match[str]) -> str:
    return _visible(match)


def json_safe(value: Any) -> Any:
    """A JSON value with every string (keys included) free of lone surrogates, so that it
    encodes as valid UTF-8; control characters are left to the JSON encoder, which escapes
    them."""
    if isinstance(value, str):
        return _SURROGATE.sub(_unsurrogate, value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def clean(value: object, limit: int = 200) -> str:
    """`value` as one inert printable line; longer than `limit` characters is cut with `…`."""
    s = value if isinstance(value, str) else str(value)
    if len(s) > limit * 4:  # bound the work on a hostile multi-megabyte "name"
        s = s[: limit * 4]
    s = _UNSAFE.sub(_visible, s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def text(value: object, style: str = "", limit: int = 200) -> Text:
    """A Rich Text of the cleaned value: Text never interprets markup."""
    return Text(clean(value, limit), style=style)


def markup(value: object, limit: int = 200) -> str:
    """The cleaned value escaped for use inside a markup string."""
    return escape(clean(value, limit))
