"""The audit's verdicts on in-memory wheels: crafted ELF facts, and a Host
that is an index of files, not the disk (no gcc, no file system)."""

from __future__ import annotations

import pytest

from support import DictFiles, craft_elf
from wheelvet.audit import AuditOptions, Host, analyze, classify_files
from wheelvet.elf import parse_elf
from wheelvet.errors import InvalidWheel
from wheelvet.policy import policy_set
from wheelvet.shortfall import shortfalls
from wheelvet.wheelfile import WheelContents, parse_wheel_name

EXT = "pkg/ext.cpython-311-x86_64-linux-gnu.so"
GLIBC = policy_set("glibc", "x86_64")
LIBC = ("libc.so.6",)


def ext(arch="x86_64", **kw) -> bytes:
    return craft_elf(arch, exports=("PyInit_ext",), **kw)


def contents(members: dict[str, bytes], *, tag="cp311-cp311-linux_x86_64", purelib=False) -> WheelContents:
    facts = {m: parse_elf(data) for m, data in members.items()}
    name = parse_wheel_name(f"pkg-1.0-{tag}.whl")
    return WheelContents(f"/nowhere/{name.filename}", name, purelib, (), tuple(facts), facts, True)


def host(files: dict[str, bytes] | None = None) -> Host:
    index = DictFiles({p: parse_elf(b) for p, b in (files or {}).items()})
    return Host(index, {libc: ("/usr/lib",) for libc in (None, "glibc", "musl")})


def judge(members, files=None, **options):
    options.setdefault("environ", {})
    return analyze(contents(members), AuditOptions(**options), host(files))


def test_a_clean_extension_meets_the_most_compatible_policy():
    a = judge({EXT: ext(needed=LIBC, imports=(("memcpy", "GLIBC_2.2.5", "libc.so.6"),))})
    assert a.audit.overall == a.audit.repairable == GLIBC.highest
    assert a.verdicts.symbols == GLIBC.highest and a.audit.meets("manylinux1_x86_64")


def test_a_symbol_version_limits_the_verdict_and_names_file_and_symbol():
    a = judge({EXT: ext(needed=("libm.so.6",), imports=(("exp", "GLIBC_2.29", "libm.so.6"),))})
    best = GLIBC.best_for_version("GLIBC_2.29")
    assert a.verdicts.symbols == a.audit.overall == best
    (s,) = shortfalls(a.audit, "manylinux2014_x86_64")
    assert (s.kind, s.subject, s.library, s.best) == ("symbol-version", "GLIBC_2.29", "libm.so.6", best.name)
    assert [(e.file, e.symbols) for e in s.evidence] == [(EXT, ("exp",))]


def test_external_libraries_found_and_not_found():
    lib = craft_elf(soname="libfoo.so.1", needed=LIBC, imports=(("puts", "GLIBC_2.34", "libc.so.6"),))
    wheel = {EXT: ext(needed=("libfoo.so.1", "libbar.so.2") + LIBC)}
    a = judge(wheel, {"/opt/lib/libfoo.so.1": lib}, ldpaths="/opt/lib")
    assert dict(a.audit.external_libs) == {"libfoo.so.1": "/opt/lib/libfoo.so.1", "libbar.so.2": None}
    assert a.verdicts.refs.is_linux and a.verdicts.found.is_linux  # libbar cannot be grafted
    kinds = {(s.kind, s.subject) for s in shortfalls(a.audit, GLIBC.highest)}
    assert {("external-library", "libfoo.so.1"), ("library-not-found", "libbar.so.2")} <= kinds
    # the grafted library's own symbol versions count: GLIBC_2.34 rules out manylinux2014 even after repair
    assert ("symbol-version", "GLIBC_2.34") in {(s.kind, s.subject) for s in shortfalls(a.audit, "manylinux2014_x86_64")}
    found = judge({EXT: ext(needed=("libfoo.so.1",) + LIBC)}, {"/opt/lib/libfoo.so.1": lib}, ldpaths="/opt/lib")
    assert found.verdicts.found == GLIBC.highest  # every external library found: grafting can reach any policy
    assert found.audit.repairable == found.verdicts.symbols == GLIBC.best_for_version("GLIBC_2.34")
    assert found.audit.overall.is_linux


def test_exclusions_hold_at_every_depth():
    qux = craft_elf(soname="libqux.so.1", needed=("libfoo.so.1",))
    foo = craft_elf(soname="libfoo.so.1")
    files = {"/opt/lib/libqux.so.1": qux, "/opt/lib/libfoo.so.1": foo}
    wheel = {EXT: ext(needed=("libqux.so.1",) + LIBC)}
    assert set(dict(judge(wheel, files, ldpaths="/opt/lib").audit.external_libs)) == {"libqux.so.1", "libfoo.so.1"}
    for pattern in ("libfoo.so.1", "libfoo.so.*", "/opt/lib/libfoo*"):
        a = judge(wheel, files, ldpaths="/opt/lib", exclude=(pattern,))
        assert dict(a.audit.external_libs) == {"libqux.so.1": "/opt/lib/libqux.so.1"}, pattern
        assert a.verdicts.found == GLIBC.highest
    a = judge(wheel, files, ldpaths="/opt/lib", exclude=("libqux.so.1",))
    assert a.audit.external_libs == () and a.audit.overall == GLIBC.highest  # nor what only it needs


def test_blacklisted_symbols():
    a = judge({EXT: ext(needed=LIBC, imports=(("__cxa_thread_atexit_impl", None, None),))})
    assert a.verdicts.blacklist < GLIBC.highest and a.audit.overall == a.verdicts.blacklist
    s = next(s for s in shortfalls(a.audit, GLIBC.highest) if s.kind == "blacklisted-symbols")
    assert (s.library, s.remedy.names) == ("libc.so.6", ("__cxa_thread_atexit_impl",))


def test_isa_levels_beyond_the_baseline():
    wheel = {EXT: ext(needed=LIBC, isa_needed=4 | 2)}
    a = judge(wheel)
    assert a.verdicts.isa.is_linux and a.audit.unsupported_isa
    (s,) = [s for s in shortfalls(a.audit, GLIBC.highest) if s.kind == "isa-extension"]
    assert (s.subject, s.level) == (EXT, "x86_64_v3")
    assert judge(wheel, disable_isa_ext_check=True).audit.overall == GLIBC.highest


def test_a_library_of_the_wheel_relies_on_what_its_loader_loaded():
    """pkg/libinner.so needs libfoo, found only through the extension's RPATH."""
    wheel = {EXT: ext(needed=("libinner.so", "libfoo.so.1") + LIBC, rpath="$ORIGIN:/opt/lib"),
             "pkg/libinner.so": craft_elf(soname="libinner.so", needed=("libfoo.so.1",))}
    a = judge(wheel, {"/opt/lib/libfoo.so.1": craft_elf(soname="libfoo.so.1")})
    assert a.trees["pkg/libinner.so"].libraries["libfoo.so.1"].realpath == "/opt/lib/libfoo.so.1"
    assert a.roots == (EXT,)


def test_musl_is_judged_against_the_newest_musllinux_and_trusts_older_tags():
    wheel = {"pkg/ext.cpython-311-x86_64-linux-musl.so": craft_elf(exports=("PyInit_ext",), needed=("libc.musl-x86_64.so.1",))}
    a = analyze(contents(wheel, tag="cp311-cp311-musllinux_1_1_x86_64"), AuditOptions(environ={}), host())
    assert a.audit.libc == "musl" and a.audit.overall_tag == "musllinux_1_2_x86_64"
    assert [p.base for p in a.policies] == ["linux", "musllinux_1_2"]
    assert a.audit.meets("musllinux_1_1_x86_64") and not shortfalls(a.audit, "musllinux_1_1_x86_64")


def test_purelib_placement_is_a_warning_not_a_verdict():
    a = analyze(contents({EXT: ext(needed=LIBC)}, purelib=True), AuditOptions(environ={}), host())
    assert a.audit.overall == GLIBC.highest
    assert [(f.code, f.severity) for f in a.audit.findings] == [("elf-in-purelib", "warning")]


def test_one_wheel_one_architecture():
    with pytest.raises(InvalidWheel, match="built for aarch64"):
        classify_files(contents({EXT: ext(), "pkg/other.so": craft_elf("aarch64")}))
    c = classify_files(contents({EXT: ext(), "pkg/odd.so": craft_elf(machine=9999)}))
    assert list(c.valid) == [EXT] and [f.code for f in c.findings] == ["file-ignored"]


def test_the_host_is_the_only_way_to_the_machine():
    """An audit given an empty host finds nothing on this machine's disk."""
    a = judge({EXT: ext(needed=("libz.so.1", "libnotthere.so.1") + LIBC)})
    assert dict(a.audit.external_libs) == {"libnotthere.so.1": None}  # libz is whitelisted, never looked up
