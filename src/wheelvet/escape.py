"""Text from wheels, made safe to print on a terminal or in a CI log.

File names, SONAMEs, RPATHs and symbol names come from untrusted wheels and
may hold anything but NUL: a newline that starts a GitHub workflow command
(``::set-output``, ``::add-mask``), terminal escape sequences, bidi overrides
that reorder what a reviewer reads, bytes that are not UTF-8.  Every line
wheelvet prints for people goes through :func:`printable`.  (JSON output is
escaped by the JSON encoder; Markdown by ``report.markdown``.)
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by "surrogateescape"
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` on one line, with every character that is not printable
    (controls, line breaks, format characters such as bidi overrides, lone
    surrogates) written as a Python-style escape: ``\\n``, ``\\x1b``, ``\\u202e``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


__all__ = ["printable"]
