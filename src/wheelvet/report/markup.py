"""Escaping for the Markdown report: the only way text reaches a template.

Every value a template prints goes through one of these filters, which
return :class:`Safe` strings; the environment refuses any other string.  The
rules are described in ``docs/report.md``.  :func:`report_marker` is the one
hidden marker by which the action finds its comment again.
"""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import quote, urlsplit

class Safe(str):
    """Text an escaping filter produced: the only strings a template may print."""


_NEWLINES = re.compile(r"\r\n?|[\n\t\v\f\x85\u2028\u2029]")
_ASCII_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_MD_SPECIAL = re.compile(
    r"[\\`*~\[\]<>&|$:]"  # code, emphasis, strikethrough, links, HTML, entities, cells, math, URL autolinks
    r"|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"  # "_" can only delimit emphasis next to a non-alphanumeric
    r"|(?<=www)\.",  # www.example.com autolinks
    re.IGNORECASE,
)
_GITHUB_REFS = re.compile(r"[@#]")  # @user, @org/team mentions and #123 references


def _clean(value: object) -> str:
    """One line, no control or format characters (bidi overrides, lone surrogates)."""
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    text = _NEWLINES.sub(" ", value)
    if text.isascii():
        return _ASCII_CONTROLS.sub("\ufffd", text)
    return "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cf", "Cs") else c for c in text)


def _no_refs(text: str) -> str:
    """A word joiner after @ and # keeps GitHub from notifying users or linking issues."""
    return _GITHUB_REFS.sub(lambda m: m.group() + "\u2060", text)


_LINE_START = re.compile(r"^(?:[#+=-]|\d+(?=[.)]))")  # headings, list items, setext underlines


def md_text(value: object) -> str:
    """Literal text in GFM inline content: table cells, paragraphs, list items, headings.

    Leading and trailing spaces go (Markdown would drop them anyway).
    """
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(), _clean(value).strip(" "))
    text = _LINE_START.sub(lambda m: m.group() + "\\" if m.group()[0].isdigit() else "\\" + m.group(), text)
    return Safe(_no_refs(text))


def md_code(value: object) -> str:
    """A code span (not for table cells, where ``|`` would split it)."""
    text = _clean(value) or " "
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    if text.strip(" ") and (text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " ")):
        text = f" {text} "  # one space each side is stripped back off
    return Safe(f"{fence}{text}{fence}")


def html_text(value: object) -> str:
    """Text inside an HTML block (``<summary>``) or an HTML element."""
    return Safe(html.escape(_no_refs(_clean(value)), quote=True))


def human_size(value: int | None) -> str:
    if value is None:
        return Safe("—")
    if value < 1024:
        return Safe(f"{value} B")
    size = float(value)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return Safe(f"{size:.1f} {unit}")
    raise AssertionError  # unreachable


def report_marker(report_id: str) -> str:
    """The hidden first line the action finds its comment by."""
    return f"<!-- wheelvet-report: {quote(report_id, safe='/:+=', errors='surrogatepass')} -->"


def link(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"summary_url must be an http(s) URL, not {url!r}")
    return Safe(quote(url, safe=":/?#&=%+,;@!$*", errors="surrogatepass"))


__all__ = ["Safe", "html_text", "human_size", "link", "md_code", "md_text", "report_marker"]
