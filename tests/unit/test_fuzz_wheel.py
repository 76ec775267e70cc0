"""Bounded property-based fuzzing of the wheel reader and the audit.

Mutated real wheels must give an audit or wheelvet's own error, never another
exception.  (A longer run: ``make fuzz``.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import craft_elf, write_wheel
from wheelvet.audit import AuditOptions, analyze, audit_wheel
from wheelvet.errors import WheelvetError
from wheelvet.repair import RepairOptions, plan_repair
from wheelvet.report import markdown, render_json, render_text
from wheelvet.wheelfile import read_wheel

# Cases per test: WHEELVET_FUZZ_WHEELS, else a quarter of WHEELVET_FUZZ_EXAMPLES
# (a wheel case costs more than an ELF case).
EXAMPLES = int(os.environ.get("WHEELVET_FUZZ_WHEELS") or int(os.environ.get("WHEELVET_FUZZ_EXAMPLES", "1000")) // 4)

_dir = Path(tempfile.mkdtemp(prefix="wheelvet-fuzz-seeds-"))
SEEDS = [
    write_wheel(_dir / "a-1.0-cp311-cp311-linux_x86_64.whl", {
        "a/m.cpython-311-x86_64-linux-gnu.so": craft_elf("x86_64", needed=("libc.so.6", "libfoo.so.1"), exports=("PyInit_m",),
                                                          imports=(("memcpy", "GLIBC_2.14", "libc.so.6"),)),
        "a/__init__.py": b"x = 1\n",
    }).read_bytes(),
    write_wheel(_dir / "b-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", {
        "b/m.so": craft_elf("aarch64", needed=("libc.so.6",), exports=("PyInit_m",)),
        "b.libs/libx.so": craft_elf("aarch64", soname="libx.so"),
    }, tag="cp311-cp311-manylinux_2_17_aarch64").read_bytes(),
]
OPTIONS = AuditOptions(environ={}, ldpaths="", jobs=1)


def mutate(draw, data: bytes, *, edits: int, kinds: list[str], words: list[bytes], keep: int) -> bytes:
    """Up to ``edits`` overwrites (a byte, a word from ``words``, 16 zeros)
    or a truncation (never below ``keep`` bytes), drawn by hypothesis."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, edits))):
        kind = draw(st.sampled_from(kinds))
        pos = draw(st.integers(0, len(out) - 1))
        if kind == "byte":
            out[pos] = draw(st.integers(0, 255))
        elif kind == "word" and pos + 4 <= len(out):
            out[pos:pos + 4] = draw(st.sampled_from(words))
        elif kind == "zero" and pos + 16 <= len(out):
            out[pos:pos + 16] = b"\0" * 16
        elif kind == "truncate":
            out = out[: max(pos, keep)]
    return bytes(out)


@st.composite
def mutated(draw):
    seed = draw(st.integers(0, len(SEEDS) - 1))
    return seed, mutate(draw, SEEDS[seed], edits=6, kinds=["byte", "word", "truncate", "zero"],
                        words=[b"\xff\xff\xff\xff", b"\0\0\0\0", b"\xff\xff\0\0", b"PK\x01\x02"], keep=1)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_wheels_give_an_audit_or_wheelvets_error(case):
    seed, data = case
    name = ["a-1.0-cp311-cp311-linux_x86_64.whl", "b-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"][seed]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        try:
            audit_wheel(str(path), OPTIONS)
        except WheelvetError as exc:
            assert "\n" not in str(exc) and name in str(exc)


# Byte mutations of a whole wheel almost always break a CRC or a RECORD hash,
# so the layers above the archive never see them.  Here the ELF members are
# mutated and the wheel written again, consistent: the ELF reader, the loader
# rules, the verdict, the repair plan and every renderer see the damage.

SEED_FILES = [
    ("a-1.0-cp311-cp311-linux_x86_64.whl", "cp311-cp311-linux_x86_64", {
        "a/m.cpython-311-x86_64-linux-gnu.so": craft_elf("x86_64", needed=("libc.so.6", "libm.so.6"), exports=("PyInit_m",),
                                                          imports=(("memcpy", "GLIBC_2.14", "libc.so.6"), ("exp", "GLIBC_2.29", "libm.so.6"))),
        "a.libs/liby.so.1": craft_elf("x86_64", soname="liby.so.1", needed=("libc.so.6",), rpath="$ORIGIN"),
    }),
    ("b-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", "cp311-cp311-manylinux_2_17_aarch64", {
        "b/m.so": craft_elf("aarch64", needed=("libc.so.6", "libx.so"), exports=("PyInit_m",)),
        "b.libs/libx.so": craft_elf("aarch64", soname="libx.so"),
    }),
]


@st.composite
def consistent_mutants(draw):
    seed = draw(st.integers(0, len(SEED_FILES) - 1))
    name, tag, files = SEED_FILES[seed]
    files = dict(files)
    member = draw(st.sampled_from(sorted(files)))
    files[member] = mutate(draw, files[member], edits=4, kinds=["byte", "word", "truncate"],
                           words=[b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x01\0\0\0", b"/\n\x1b\0"], keep=4)
    return name, tag, files


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(consistent_mutants())
def test_consistent_wheels_with_mutated_elf_files_audit_plan_and_render(case):
    name, tag, files = case
    with tempfile.TemporaryDirectory() as d:
        path = write_wheel(Path(d) / name, files, tag=tag)
        try:
            analysis = analyze(read_wheel(str(path), jobs=1), OPTIONS)
        except WheelvetError as exc:
            assert "\n" not in str(exc) and name in str(exc)
            return
        audit = analysis.audit
        render_text([audit])
        render_json([audit])
        leg = markdown.Leg("fuzz", "fuzz", (markdown.outcome_from_audit(audit, input_size=1),))
        report = markdown.Report(report_id="fuzz", legs=(leg,))
        markdown.render_markdown(report)
        if audit.error is None and not audit.pure:
            try:
                plan_repair(analysis, RepairOptions())
            except WheelvetError as exc:
                assert "\n" not in str(exc)
