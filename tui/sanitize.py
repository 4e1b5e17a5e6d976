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
"""

from __future__ import annotations

import re

from rich.markup import escape
from rich.text import Text

# C0 (including \t, \n, \r: a name is one line), DEL, C1; bidi embeddings, overrides,
# isolates and marks; line/paragraph separators that would break a one-line label.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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
