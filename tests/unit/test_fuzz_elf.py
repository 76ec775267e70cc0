"""Bounded property-based fuzzing of the ELF reader.

Mutated real ELF files must give facts or wheelvet's own InvalidElf: never
another exception, never a hang.  The streaming reader must agree with the
in-memory one on every input.  (A longer run: ``make fuzz``.)
"""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import HAVE_GCC, craft_elf
from wheelvet.elf import parse_elf, read_elf_stream
from wheelvet.errors import InvalidElf

EXAMPLES = int(os.environ.get("WHEELVET_FUZZ_EXAMPLES", "1000"))

SEEDS = [
    craft_elf("x86_64", needed=("libc.so.6", "libm.so.6"), soname="libs.so", rpath="$ORIGIN",
              imports=(("memcpy", "GLIBC_2.14", "libc.so.6"), ("exp", "GLIBC_2.29", "libm.so.6"), ("u", None, None)),
              exports=("PyInit_s",), isa_needed=3),
    craft_elf("armv7l", needed=("libc.so.6",), imports=(("memcpy", "GLIBC_2.4", "libc.so.6"),)),
    craft_elf("s390x", needed=("libc.so.6",), runpath="/x", imports=(("memcpy", "GLIBC_2.2", "libc.so.6"),)),
]
if HAVE_GCC:
    import tempfile
    from pathlib import Path

    from support import cc

    with tempfile.TemporaryDirectory() as d:
        SEEDS.append(cc(Path(d) / "libf.so", {"f.c": "#include <math.h>\ndouble f(double x){return exp(x);}"}, "-lm",
                        "-Wl,-soname,libf.so").read_bytes())


def _both(data: bytes):
    outcome = []
    for reader in (lambda: parse_elf(data, "m.so"), lambda: read_elf_stream(lambda: io.BytesIO(data), len(data), "m.so")):
        try:
            outcome.append(reader())
        except InvalidElf as exc:
            assert "m.so" in str(exc)
            outcome.append("invalid")
    return outcome


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["byte", "word", "truncate"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "word" and pos + 8 <= len(data):
            data[pos : pos + 8] = draw(st.sampled_from([b"\xff" * 8, b"\0" * 8, b"\xf0\xff\xff\xff\0\0\0\0", (1 << 40).to_bytes(8, "little")]))
        elif kind == "truncate":
            data = data[: max(pos, 1)]
    return bytes(data)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_elf_gives_facts_or_invalid_elf(data):
    a, b = _both(data)
    assert a == b


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(st.binary(min_size=0, max_size=256))
def test_random_bytes_after_the_magic(data):
    a, b = _both(b"\x7fELF" + data)
    assert a == b


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_seeds_parse(seed):
    assert _both(SEEDS[seed])[0] != "invalid"
