"""Text from wheels printed for people: one line, nothing a terminal or a CI
log would act on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wheelvet.escape import printable


@pytest.mark.parametrize("raw,shown", [
    ("libfoo.so.1", "libfoo.so.1"),
    ("libü ñ.so", "libü ñ.so"),  # printable non-ASCII stays readable
    ("libfoo.so\n::error::pwned", "libfoo.so\\n::error::pwned"),  # a GitHub workflow command
    ("a\r\tb", "a\\r\\tb"),
    ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),  # terminal escape sequences
    ("lib\u202eos.so", "lib\\u202eos.so"),  # a bidi override reorders what a reviewer reads
    ("lib\udcffx.so", "lib\\xffx.so"),  # a byte that is not UTF-8 (kept by surrogateescape)
    ("\x7f\x85\u2028", "\\x7f\\x85\\u2028"),  # DEL, NEL, line separator
    ("\U000e0001", "\\U000e0001"),  # a tag character
])
def test_examples(raw, shown):
    assert printable(raw) == shown


@given(st.text(st.characters(blacklist_categories=())))
def test_any_text_comes_out_as_one_printable_line(text):
    out = printable(text)
    assert out.isprintable() and "\n" not in out and "\x1b" not in out
    if text.isprintable():
        assert out == text
