"""What each output can hold: text from the target (names, bodies, headers) made safe for
the terminal, XML and HTML, shown rather than dropped.

A target's endpoint names and its responses are arbitrary text: a NUL or a form feed makes
``junit.xml`` ill-formed (XML 1.0 cannot hold them, even escaped), an escape sequence in a
body clears the reader's terminal, a bidirectional override reorders what a line seems to
say, and a lone surrogate cannot be encoded at all. Each writer passes its text through
the function for its format, which replaces every such character with a visible escape
in Python's notation (``\\x1b``, ``\\u202e``, ``\\udc80``), so a reader still sees that it
was there. JSON needs none of this (``json`` escapes what JSON cannot hold), nor does the
generated regression test (``repr``).
"""

from __future__ import annotations

import re

__all__ = ["html", "terminal", "visible", "xml"]

# C0 controls but tab and newline, DEL, C1 controls, bidirectional embeddings, overrides
# and isolates, and lone surrogates
_TERMINAL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
# what XML 1.0 cannot hold (Char production), plus what the terminal cannot show
_XML = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\u061b\u061d-\u200d\u2010-\u2029\u202f-\u2065\u206a-\ud7ff"
    "\ue000-\ufffd\U00010000-\U0010ffff]"
)


def visible(character: str) -> str:
    """One character as Python writes it in a string literal: ``\\x1b``, ``\\u202e``."""
    code = ord(character)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal(text: str) -> str:
    """``text`` with no character that drives a terminal (escape sequences, carriage
    returns, bidirectional controls) or cannot be encoded."""
    return _TERMINAL.sub(lambda m: visible(m.group()), text)


def xml(text: str) -> str:
    """``text`` that XML 1.0 can hold (escape ``<`` and ``&`` as usual on top of it)."""
    return _XML.sub(lambda m: visible(m.group()), text)


def html(text: str) -> str:
    """``text`` for an HTML page: as for XML (a NUL, a form feed are parse errors)."""
    return xml(text)
