"""Pure parts of repair planning: names, tags, RPATH entries."""

from __future__ import annotations

import hashlib

from wheelvet.repair import RepairPlan, grafted_name
from wheelvet.repair.apply import _rewrite_wheel_file
from wheelvet.repair.plan import _kept_rpath_entries, _new_name, _new_wheel_tags

M17 = ("manylinux_2_17_x86_64", "manylinux2014_x86_64")


def test_new_name_replaces_linux_and_keeps_other_tags():
    name, plats, dropped = _new_name("pkg-1.0-cp311-cp311-linux_x86_64.whl", M17, True)
    assert name == "pkg-1.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl" and not dropped
    name, _, _ = _new_name("pkg-1.0-cp311-cp311-manylinux_2_28_x86_64.whl", M17, True)
    assert name == "pkg-1.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
    name, _, dropped = _new_name("tool-1.0-py3-none-any.whl", M17, True)
    assert dropped and name == "tool-1.0-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    assert _new_name("pkg-1.0-cp311-cp311-linux_x86_64.whl", M17, False)[0] == "pkg-1.0-cp311-cp311-linux_x86_64.whl"
    name, _, _ = _new_name("pkg-1.0-1build-cp39.cp311-abi3-linux_aarch64.whl", ("manylinux_2_28_aarch64",), True)
    assert name == "pkg-1.0-1build-cp39.cp311-abi3-manylinux_2_28_aarch64.whl"


def test_wheel_tags_for_every_python_abi_pair():
    old = ("cp311-cp311-linux_x86_64", "cp311-abi3-linux_x86_64")
    assert _new_wheel_tags(old, M17, {"linux_x86_64"}) == (
        "cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64",
        "cp311-abi3-manylinux_2_17_x86_64", "cp311-abi3-manylinux2014_x86_64")
    kept = _new_wheel_tags(("cp311-cp311-manylinux_2_28_x86_64",), M17, set())
    assert kept[0] == "cp311-cp311-manylinux_2_28_x86_64" and len(kept) == 3


def test_wheel_file_rewrite_keeps_other_headers():
    plan = RepairPlan("w", "p", M17, "o.whl", wheel_tags=("cp311-cp311-manylinux_2_17_x86_64",), root_is_purelib=False)
    out = _rewrite_wheel_file(b"Wheel-Version: 1.0\nGenerator: x\nRoot-Is-Purelib: true\nTag: cp311-cp311-linux_x86_64\nBuild: 1\n", plan)
    assert out == b"Wheel-Version: 1.0\nGenerator: x\nRoot-Is-Purelib: false\nTag: cp311-cp311-manylinux_2_17_x86_64\nBuild: 1\n"


def test_rpath_entries_inside_the_wheel_are_kept():
    assert _kept_rpath_entries("$ORIGIN/../pkg.internal:/usr/lib:$ORIGIN/../../../outside:${ORIGIN}", "pkg/sub") == [
        "$ORIGIN/../pkg.internal", "${ORIGIN}"]
    assert _kept_rpath_entries("$ORIGIN/$LIB", "pkg") == []
    assert _kept_rpath_entries("$ORIGINAL/x:$ORIGIN/x", "pkg") == ["$ORIGIN/x"]  # not the $ORIGIN token
    assert _kept_rpath_entries(None, "pkg") == []


def test_grafted_name_carries_the_content_hash(tmp_path):
    lib = tmp_path / "libffi.so.8.1.2"
    lib.write_bytes(b"\x7fELF not really")
    short = hashlib.sha256(lib.read_bytes()).hexdigest()[:8]
    assert grafted_name(str(lib)) == f"libffi-{short}.so.8.1.2"
    again = tmp_path / f"libffi-{short}.so.8.1.2"
    again.write_bytes(lib.read_bytes())
    assert grafted_name(str(again)) == again.name  # already carries its hash: unchanged


def test_patchelf_command_lines():
    from wheelvet.repair import Edit, Patchelf

    p = Patchelf(binary="/bin/patchelf")
    assert p.command(Edit("/w/m0", "pkg/x.so")) is None
    assert p.command(Edit("/w/m0", "pkg/x.so", replace_needed=(("libA.so.1", "libA-1234abcd.so.1"),),
                          remove_needed=("libpython3.11.so.1.0",), rpath="$ORIGIN/../pkg.libs")) == [
        "/bin/patchelf", "--replace-needed", "libA.so.1", "libA-1234abcd.so.1", "--remove-needed",
        "libpython3.11.so.1.0", "--force-rpath", "--set-rpath", "$ORIGIN/../pkg.libs", "/w/m0"]
    assert p.command(Edit("/w/g0", "pkg.libs/libB", soname="libB-1.so.2", clear_rpath=True)) == [
        "/bin/patchelf", "--set-soname", "libB-1.so.2", "--remove-rpath", "/w/g0"]
