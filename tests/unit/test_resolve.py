"""ld.so search rules over an index of files (a dict here, the disk in use)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import DictFiles, cc, craft_elf
from wheelvet.elf import parse_elf
from wheelvet.resolve import (
    HostFiles,
    SearchConfig,
    WheelFiles,
    borrow_resolutions,
    elf_libc,
    parse_ld_so_conf,
    resolve_tree,
    split_path_list,
    wheel_path,
)


def lib(arch="x86_64", **kw):
    return parse_elf(craft_elf(arch, **kw))


NO_SYSTEM = SearchConfig(conf=(), use_interp_dirs=False)


def test_rpath_before_ld_library_path_before_runpath():
    files = DictFiles({
        "/r/libx.so": lib(soname="libx.so"),
        "/env/libx.so": lib(soname="libx.so"),
        "/run/libx.so": lib(soname="libx.so"),
    })
    cfg = SearchConfig(env=("/env",), conf=())
    t = resolve_tree("/a/root.so", lib(needed=("libx.so",), rpath="/r"), files, cfg)
    assert t.libraries["libx.so"].realpath == "/r/libx.so"
    t = resolve_tree("/a/root.so", lib(needed=("libx.so",), runpath="/run"), files, cfg)
    assert t.libraries["libx.so"].realpath == "/env/libx.so"  # RUNPATH comes after LD_LIBRARY_PATH
    t = resolve_tree("/a/root.so", lib(needed=("libx.so",), runpath="/run"), files, NO_SYSTEM)
    assert t.libraries["libx.so"].realpath == "/run/libx.so"


def test_rpath_is_ignored_when_runpath_is_present():
    files = DictFiles({"/r/libx.so": lib(), "/run/libx.so": lib()})
    t = resolve_tree("/a/root.so", lib(needed=("libx.so",), rpath="/r", runpath="/run"), files, NO_SYSTEM)
    assert t.libraries["libx.so"].realpath == "/run/libx.so"


def test_rpath_is_inherited_by_dependencies_but_runpath_is_not():
    files = DictFiles({
        "/d/liba.so": lib(needed=("libb.so",)),
        "/d/libb.so": lib(),
    })
    t = resolve_tree("/a/root.so", lib(needed=("liba.so",), rpath="/d"), files, NO_SYSTEM)
    assert t.libraries["libb.so"].realpath == "/d/libb.so"
    t = resolve_tree("/a/root.so", lib(needed=("liba.so",), runpath="/d"), files, NO_SYSTEM)
    assert t.libraries["liba.so"].realpath == "/d/liba.so"
    assert t.libraries["libb.so"].realpath is None  # as ld.so: RUNPATH serves direct needs only


def test_origin_expansion():
    files = DictFiles({"/w/pkg.libs/libx.so": lib()})
    for rp in ("$ORIGIN/../pkg.libs", "${ORIGIN}/../pkg.libs"):
        t = resolve_tree("/w/pkg/ext.so", lib(needed=("libx.so",), rpath=rp), files, NO_SYSTEM)
        assert t.libraries["libx.so"].realpath == "/w/pkg.libs/libx.so"


def test_incompatible_architecture_is_skipped():
    files = DictFiles({"/one/libx.so": lib("x86_64"), "/two/libx.so": lib("aarch64")})
    cfg = SearchConfig(conf=("/one", "/two"), use_interp_dirs=False)
    t = resolve_tree("/w/ext.so", lib("aarch64", needed=("libx.so",)), files, cfg)
    assert t.libraries["libx.so"].realpath == "/two/libx.so"
    t = resolve_tree("/w/ext.so", lib("ppc64le", needed=("libx.so",)), files, cfg)
    assert t.libraries["libx.so"].realpath is None


def test_already_loaded_by_soname_is_reused():
    files = DictFiles({
        "/p/libfoo.so": lib(soname="libfoo.so.1"),
        "/q/libfoo.so.1": lib(soname="libfoo.so.1"),
        "/p/libuser.so": lib(needed=("libfoo.so.1",)),
    })
    cfg = SearchConfig(conf=("/p", "/q"), use_interp_dirs=False)
    t = resolve_tree("/w/ext.so", lib(needed=("libfoo.so", "libuser.so")), files, cfg)
    assert t.libraries["libfoo.so.1"].realpath == "/p/libfoo.so"


def test_breadth_first_loading_order():
    # root needs a then b; a needs c; b's RPATH would find a different c.
    files = DictFiles({
        "/sys/liba.so": lib(needed=("libc2.so",)),
        "/b/libb.so": lib(),
        "/sys/libc2.so": lib(soname="libc2.so"),
        "/other/libc2.so": lib(soname="libc2.so"),
    })
    cfg = SearchConfig(conf=("/sys", "/b"), use_interp_dirs=False)
    t = resolve_tree("/w/ext.so", lib(needed=("liba.so", "libb.so", "libc2.so"), rpath="/other"), files, cfg)
    # the root's own need is met first (BFS), through its RPATH
    assert t.libraries["libc2.so"].realpath == "/other/libc2.so"


def test_exclude_by_soname_and_by_path():
    files = DictFiles({"/s/libx.so.1": lib(needed=("liby.so",)), "/s/liby.so": lib()})
    cfg = SearchConfig(conf=("/s",), use_interp_dirs=False)
    t = resolve_tree("/w/e.so", lib(needed=("libx.so.1",)), files, cfg, exclude=("libx.so*",))
    assert "libx.so.1" not in t.libraries and t.needed == () and "liby.so" not in t.libraries
    t = resolve_tree("/w/e.so", lib(needed=("libx.so.1",)), files, cfg, exclude=("/s/*",))
    assert t.needed == ()


def test_libpython_is_not_searched():
    files = DictFiles({"/s/libpython3.11.so.1.0": lib()})
    cfg = SearchConfig(conf=("/s",), use_interp_dirs=False)
    t = resolve_tree("/w/e.so", lib(needed=("libpython3.11.so.1.0",)), files, cfg)
    assert t.libraries["libpython3.11.so.1.0"].realpath is None


def test_interpreter_directories_are_searched():
    files = DictFiles({"/lib/ld-linux-x86-64.so.2": lib(), "/usr/lib/libq.so": lib()})
    cfg = SearchConfig(conf=())
    t = resolve_tree("/w/exe", lib(needed=("libq.so",), interp="/lib/ld-linux-x86-64.so.2"), files, cfg)
    assert t.libraries["libq.so"].realpath == "/usr/lib/libq.so"
    assert t.libraries["ld-linux-x86-64.so.2"].realpath == "/lib/ld-linux-x86-64.so.2"


def test_borrow_resolutions_from_a_tree_that_loads_the_file():
    files = DictFiles({"/x/libdep.so": lib(needed=("libdeep.so",)), "/x/libdeep.so": lib()})
    ref = resolve_tree("/w/ext.so", lib(needed=("libinner.so", "libdep.so"), rpath="/x:/w"),
                       DictFiles({**files.files, "/w/libinner.so": lib(needed=("libdep.so",))}), NO_SYSTEM)
    inner = resolve_tree("/w/libinner.so", lib(needed=("libdep.so",)), files, NO_SYSTEM)
    assert not inner.complete
    fixed = borrow_resolutions(inner, ref)
    assert fixed.libraries["libdep.so"].realpath == "/x/libdep.so"
    assert fixed.libraries["libdeep.so"].realpath == "/x/libdeep.so"


def test_wheel_members_live_under_a_virtual_root_over_the_host(tmp_path, need_gcc):
    host_lib = cc(tmp_path / "libhost.so.1", {"h.c": "int h(void){return 1;}"}, "-Wl,-soname,libhost.so.1")
    members = {"pkg/ext.so": lib(needed=("libin.so", "libhost.so.1"), rpath="$ORIGIN/../pkg.libs"),
               "pkg.libs/libin.so": lib()}
    files = WheelFiles(members, HostFiles())
    cfg = SearchConfig(env=(str(tmp_path),), conf=(), use_interp_dirs=False)
    t = resolve_tree(wheel_path("pkg/ext.so"), members["pkg/ext.so"], files, cfg)
    assert t.libraries["libin.so"].realpath == wheel_path("pkg.libs/libin.so")
    assert t.libraries["libhost.so.1"].realpath == str(host_lib)


def test_ld_so_conf_includes(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("/opt/a  # comment\n\n")
    (tmp_path / "conf.d" / "b.conf").write_text("include /nonexistent/*.conf\n/opt/b\n")
    (tmp_path / "ld.so.conf").write_text("# top\ninclude conf.d/*.conf\n/opt/top\nhwcap 0 nosegneg\n")
    assert parse_ld_so_conf(str(tmp_path / "ld.so.conf")) == ["/opt/a", "/opt/b", "/opt/top"]


def test_include_loops_terminate(tmp_path):
    (tmp_path / "ld.so.conf").write_text(f"include {tmp_path}/ld.so.conf\n/opt/x\n")
    assert "/opt/x" in parse_ld_so_conf(str(tmp_path / "ld.so.conf"))


def test_split_path_list():
    assert split_path_list("/a::/b/../c:$ORIGIN/x")[0] == "/a"
    assert split_path_list("/a::/b/../c")[2] == "/c"
    assert len(split_path_list("/a::/b")) == 3  # the empty entry is the current directory
    assert split_path_list("") == []


def test_ldpaths_replace_the_system_search():
    cfg = SearchConfig.from_environment({"LD_LIBRARY_PATH": "/l", "AUDITWHEEL_LD_LIBRARY_PATH": "/a"}, "/x:/y")
    assert cfg.conf == ("/x", "/y") and cfg.env == ("/a",) and not cfg.use_interp_dirs
    cfg = SearchConfig.from_environment({"LD_LIBRARY_PATH": "/l", "AUDITWHEEL_LD_LIBRARY_PATH": "/a"})
    assert cfg.conf is None and cfg.env == ("/a", "/l")


@pytest.mark.parametrize("facts,name,expected", [
    (dict(interp="/lib/ld-musl-x86_64.so.1"), "x", "musl"),
    (dict(interp="/lib64/ld-linux-x86-64.so.2"), "x", "glibc"),
    (dict(needed=("libc.musl-x86_64.so.1",)), "x", "musl"),
    (dict(needed=("libc.so.6",)), "x", "glibc"),
    (dict(), "m.cpython-311-x86_64-linux-musl.so", "musl"),
    (dict(), "m.cpython-311-x86_64-linux-gnu.so", "glibc"),
    (dict(), "m.cpython-39-x86_64-linux-gnu.so", None),
    (dict(), "m.so", None),
])
def test_elf_libc(facts, name, expected):
    assert elf_libc(lib(**facts), name) == expected


def test_musl_loader_answers_its_own_names():
    from wheelvet.resolve import is_musl_builtin

    files = DictFiles({"/usr/lib/libc.so": lib(), "/usr/lib/libfoo.so": lib()})
    cfg = SearchConfig(conf=("/usr/lib",), use_interp_dirs=False)
    root = lib(needed=("libc.so", "libm.so.6", "libfoo.so"))
    t = resolve_tree("/w/e.so", root, files, cfg, libc="musl")
    assert t.libraries["libc.so"].realpath is None and t.libraries["libm.so.6"].realpath is None
    assert t.libraries["libfoo.so"].realpath == "/usr/lib/libfoo.so"
    t = resolve_tree("/w/e.so", root, files, cfg, libc="glibc")
    assert t.libraries["libc.so"].realpath == "/usr/lib/libc.so"
    assert is_musl_builtin("libpthread.so.0") and is_musl_builtin("ld-musl-aarch64.so.1")
    assert not is_musl_builtin("libcrypto.so.3") and not is_musl_builtin("libmagic.so.1")


# ---------------------------------------------------------------- search-path entries
# How each loader reads an entry (checked against the real loaders in
# tests/integration/test_loader_oracle.py); origin /o.

GLIBC_ENTRIES = {
    "$ORIGIN": "/o", "${ORIGIN}": "/o", "$ORIGIN/../lib": "/lib", "${ORIGIN}/x/": "/o/x",
    "$ORIGIN-x": "/o-x", "$ORIGIN.d": "/o.d", "${ORIGIN}x": "/ox", "$ORIGIN/$FOO": "/o/$FOO",
    "$ORIGIN/a$": "/o/a$", "$ORIGIN/$LIBX": "/o/$LIBX", "$ORIGIN/${LIBX}": "/o/${LIBX}",
    "/opt/$PLATFORMS": "/opt/$PLATFORMS", "$ORIGIN//./x": "/o/x", "/a/$ORIGIN": "/a/o",
    "$ORIGIN$ORIGIN": "/o/o",
    # unknown: (why contains)
    "$ORIGINAL": "relative", "$ORIGIN_X": "relative", "${ORIGIN": "relative", "$$ORIGIN": "relative",
    "lib": "relative", "": "empty", "$ORIGIN/$LIB": "$LIB", "$ORIGIN/${LIB}": "$LIB", "/usr/$LIB": "$LIB",
    "$ORIGIN/$PLATFORM": "$PLATFORM", "$LIB": "the entry is relative", "$ORIGIN/lib$PLATFORM.d": "$PLATFORM",
}


@pytest.mark.parametrize("entry", sorted(GLIBC_ENTRIES))
def test_glibc_reads_each_entry(entry):
    from wheelvet.resolve import search_path

    d = search_path(entry or ":", "/o", "glibc")[0]  # (a list of one empty entry is ":")
    expected = GLIBC_ENTRIES[entry]
    if expected.startswith("/"):
        assert d.path == expected and d.why is None, d
    else:
        assert d.path is None and expected in d.why, d
    if expected == "relative" and "$" in entry:  # says why it is not a token
        assert "starts no token" in d.why, d


MUSL_ENTRIES = {
    "$ORIGIN": "/o", "${ORIGIN}": "/o", "$ORIGINAL": "/oAL", "$ORIGIN_X": "/o_X", "$ORIGIN-x": "/o-x",
    "$ORIGIN/../lib": "/lib", "lib": "relative", "${ORIGIN": "ignores", "$ORIGIN/$LIB": "ignores",
    "$FOO:$ORIGIN": "ignores", "$ORIGIN/a$": "ignores", "$$ORIGIN": "ignores",
}


@pytest.mark.parametrize("entry", sorted(MUSL_ENTRIES))
def test_musl_reads_each_entry(entry):
    from wheelvet.resolve import search_path

    found = search_path(entry, "/o", "musl")
    expected = MUSL_ENTRIES[entry]
    if expected.startswith("/"):
        assert [d.path for d in found] == [expected]
    elif expected == "ignores":  # musl skips the whole list: certain, nothing searched
        assert len(found) == 1 and found[0].path is None and not found[0].doubt and "ignores this whole list" in found[0].why
    else:
        assert found[0].path is None and expected in found[0].why


def test_empty_entries_and_separators_differ_between_the_loaders():
    from wheelvet.resolve import search_path

    assert [d.why and "empty" in d.why for d in search_path("/a::/b:", "/o", "glibc")] == [None, True, None, True]
    assert [d.path for d in search_path("/a::/b:\n/c", "/o", "musl")] == ["/a", "/b", "/c"]  # musl splits on newlines too


def test_origin_paths_that_leave_the_wheel_depend_on_where_it_is_installed():
    from wheelvet.resolve import search_path

    origin = wheel_path("pkg")
    assert search_path("$ORIGIN/../x", origin, "glibc")[0].path == wheel_path("x")
    for entry in ("$ORIGIN/../..", "$ORIGIN/../../lib", "$ORIGIN/x/../../../lib"):
        for libc in ("glibc", "musl"):
            d = search_path(entry, origin, libc)[0]
            assert d.path is None and "out of the wheel" in d.why, (entry, libc)


def test_token_entries_inside_the_wheel_match_the_directories_they_may_name():
    from wheelvet.resolve import search_path

    d = search_path("$ORIGIN/$LIB", wheel_path("pkg"), "glibc")[0]
    for name in ("lib", "lib64", "lib/x86_64-linux-gnu"):
        assert d.pattern.fullmatch(wheel_path(f"pkg/{name}"))
    for name in ("pkg", "pkg/$LIB", "other/lib64"):
        assert not d.pattern.fullmatch(wheel_path(name))
    d = search_path("$ORIGIN/$PLATFORM/x", wheel_path("pkg"), "glibc")[0]
    assert d.pattern.fullmatch(wheel_path("pkg/haswell/x")) and not d.pattern.fullmatch(wheel_path("pkg/a/b/x"))
    d = search_path("$ORIGIN/$LIB/../..", wheel_path("pkg"), "glibc")[0]
    assert d.pattern.fullmatch(wheel_path("anything/at/all"))  # ".." after a token: anywhere in the wheel


def test_rpath_and_runpath_order_and_inheritance_under_musl():
    """musl: LD_LIBRARY_PATH before the object's path, DT_RUNPATH read like
    DT_RPATH and inherited (checked against musl's loader in the oracle test)."""
    files = DictFiles({"/r/libx.so": lib(soname="libx.so"), "/env/libx.so": lib(soname="libx.so"),
                       "/d/liba.so": lib(needed=("libb.so",)), "/d/libb.so": lib()})
    cfg = SearchConfig(env=("/env",), conf=(), use_interp_dirs=False)
    t = resolve_tree("/a/root.so", lib(needed=("libx.so",), rpath="/r"), files, cfg, libc="musl")
    assert t.libraries["libx.so"].realpath == "/env/libx.so"
    t = resolve_tree("/a/root.so", lib(needed=("liba.so",), runpath="/d"), files, NO_SYSTEM, libc="musl")
    assert t.libraries["libb.so"].realpath == "/d/libb.so"


def test_unknown_entries_leave_a_library_unknown_never_found():
    members = {"pkg/ext.so": lib(needed=("libd.so",), rpath="$ORIGIN/$LIB:$ORIGIN/../pkg.libs"),
               "pkg.libs/libd.so": lib(), "pkg/lib64/libd.so": lib()}
    files = WheelFiles(members, DictFiles({}))
    t = resolve_tree(wheel_path("pkg/ext.so"), members["pkg/ext.so"], files, NO_SYSTEM, libc="glibc")
    got = t.libraries["libd.so"]
    assert got.realpath is None and "$LIB" in got.unknown
    # the same without a copy where $LIB may point: found, and certain
    members.pop("pkg/lib64/libd.so")
    files = WheelFiles(members, DictFiles({}))
    t = resolve_tree(wheel_path("pkg/ext.so"), members["pkg/ext.so"], files, NO_SYSTEM, libc="glibc")
    assert t.libraries["libd.so"].realpath == wheel_path("pkg.libs/libd.so") and t.libraries["libd.so"].unknown is None


@pytest.mark.parametrize("libc,value,kept", [
    ("glibc", "$ORIGIN/../pkg.libs:/usr/lib:$ORIGIN", ["$ORIGIN/../pkg.libs", "$ORIGIN"]),
    ("glibc", "${ORIGIN}/x:$ORIGIN/x", ["${ORIGIN}/x", "$ORIGIN/x"]),
    ("glibc", "$ORIGINAL:$ORIGIN/$LIB:$ORIGIN/../..:lib:", []),  # relative, unknown, out of the wheel, empty
    ("musl", "$ORIGINAL", ["$ORIGINAL"]),  # musl: the object's directory + "AL", in the wheel
    ("musl", "$ORIGIN/../pkg.libs:$LIB", []),  # musl ignores the whole list
])
def test_entries_inside_the_wheel_for_a_repair_to_keep(libc, value, kept):
    from wheelvet.resolve import entries_inside_wheel

    assert entries_inside_wheel(value, "pkg", libc) == kept
