"""The SBOM repair writes: real grafts of Debian's libraries, owners from the
real dpkg database, checked by a CycloneDX validator and against auditwheel."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import EXT_SUFFIX, build_extension, clean_env, write_wheel

TAG = "cp311-cp311-linux_x86_64"
HAVE_DPKG = shutil.which("dpkg") is not None and Path("/var/lib/dpkg/status").exists()
FFI = Path("/usr/lib/x86_64-linux-gnu/libffi.so.8")
BZ2 = Path("/lib/x86_64-linux-gnu/libbz2.so.1.0")  # dpkg registers it under /lib (merged /usr)
needs_debian = pytest.mark.skipif(not (HAVE_DPKG and FFI.exists() and BZ2.exists()),
                                  reason="needs dpkg with libffi8 and libbz2-1.0 (Debian 12)")


def validate(text: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_4).validate_str(text)
    assert error is None, error


def deb_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=True)
    return out.stdout


def quote(value: str) -> str:
    from urllib.parse import quote as q

    return q(value, safe="")


def ext_wheel(tmp_path: Path, *libs: str, name: str = "sbomdemo", body: str = "", call: str = "0") -> Path:
    ext = build_extension(tmp_path / "build", "ext", *libs, body=body, call=call)
    return write_wheel(tmp_path / f"{name}-0.1-{TAG}.whl", {f"{name}/ext{EXT_SUFFIX}": ext.read_bytes()}, tag=TAG)


def repair(tool: str, wheel: Path, out: Path, env: dict) -> Path:
    env = dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    p = subprocess.run([sys.executable, "-m", tool, "repair", "-w", str(out), str(wheel)], capture_output=True,
                       text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    (found,) = out.glob("*.whl")
    return found


def sbom_of(wheel: Path) -> tuple[str, str | None]:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".dist-info/sboms/auditwheel.cdx.json")]
        record = next(zf.read(n).decode() for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        return record, zf.read(names[0]).decode("ascii") if names else None


@needs_debian
def test_sbom_names_each_grafted_files_package_and_hashes_the_rest(tmp_path, libs):
    wheel = ext_wheel(tmp_path, f"-L{libs}", "-l:libA.so.1", f"-L{FFI.parent}", "-l:libffi.so.8", "-l:libbz2.so.1.0",
                      body="int a_value(void); extern char ffi_type_uint8; const char *BZ2_bzlibVersion(void);",
                      call="a_value() + ((volatile char *)&ffi_type_uint8)[0] + (BZ2_bzlibVersion() != 0)")
    env = clean_env(LD_LIBRARY_PATH=str(libs), SOURCE_DATE_EPOCH="1700000000")
    fixed = repair("wheelvet", wheel, tmp_path / "out", env)
    record, text = sbom_of(fixed)
    assert text is not None and not text.endswith("\n")
    validate(text)
    sbom = json.loads(text)
    member = "sbomdemo-0.1.dist-info/sboms/auditwheel.cdx.json"
    assert f"\n{member},sha256=" in record  # RECORD lists it, with its hash

    purl = f"pkg:pypi/sbomdemo@0.1?file_name={quote(fixed.name)}"
    assert sbom["metadata"]["component"] == sbom["components"][0] == {
        "type": "library", "bom-ref": purl, "name": "sbomdemo", "version": "0.1", "purl": purl}
    assert sbom["metadata"]["tools"] == [{"name": "wheelvet", "version": "0.1.0"}]
    libraries = {c["name"]: c for c in sbom["components"][1:] if c["type"] == "library"}
    assert set(libraries) == {"libffi8", "libbz2-1.0"}
    # the path as the loader finds it (ld.so.conf lists /lib/x86_64-linux-gnu first), as auditwheel names it
    for package, host in (("libffi8", "/lib/x86_64-linux-gnu/libffi.so.8.1.2"),
                          ("libbz2-1.0", "/lib/x86_64-linux-gnu/libbz2.so.1.0.4")):
        version = deb_version(package)
        c = libraries[package]
        assert c["version"] == version
        assert c["purl"] == f"pkg:deb/debian/{quote(package)}@{quote(version)}"
        assert c["bom-ref"] == c["purl"] + "#" + hashlib.sha256(host.encode()).hexdigest()
    # libA and libB (built here, owned by no package): name and content hash
    files = sorted((c["name"], c["hashes"][0]["content"]) for c in sbom["components"] if c["type"] == "file")
    assert files == sorted((p.name, hashlib.sha256(p.read_bytes()).hexdigest())
                           for p in (libs / "libA.so.1", libs / "libB.so.2"))
    refs = [c["bom-ref"] for c in sbom["components"][1:]]
    assert sbom["dependencies"] == [{"ref": purl, "dependsOn": refs}] + [{"ref": r} for r in refs]

    # Reproducible, and a repaired wheel repaired again keeps its bytes.
    again = repair("wheelvet", wheel, tmp_path / "again", env)
    assert again.read_bytes() == fixed.read_bytes()
    twice = repair("wheelvet", fixed, tmp_path / "twice", env)
    assert twice.read_bytes() == fixed.read_bytes()


@needs_debian
def test_sbom_is_auditwheels_where_auditwheel_finds_the_owner(tmp_path):
    """libffi8 (dpkg knows it under /usr/lib): the same document as auditwheel
    6.8.2's but for the tool that wrote it."""
    wheel = ext_wheel(tmp_path, f"-L{FFI.parent}", "-l:libffi.so.8", body="extern char ffi_type_uint8;",
                      call="((volatile char *)&ffi_type_uint8)[0]")
    env = clean_env(SOURCE_DATE_EPOCH="1700000000")
    ours = repair("wheelvet", wheel, tmp_path / "wheelvet", env)
    theirs = repair("auditwheel", wheel, tmp_path / "auditwheel", env)
    assert ours.name == theirs.name
    _, mine = sbom_of(ours)
    _, oracle = sbom_of(theirs)
    assert oracle is not None
    expected = json.loads(oracle)
    expected["metadata"]["tools"] = [{"name": "wheelvet", "version": "0.1.0"}]
    assert mine == json.dumps(expected)  # same fields, order and serialisation


@needs_debian
def test_a_file_dpkg_registered_under_lib_where_auditwheel_writes_no_sbom(tmp_path):
    wheel = ext_wheel(tmp_path, "-l:libbz2.so.1.0", body="const char *BZ2_bzlibVersion(void);",
                      call="BZ2_bzlibVersion() != 0")
    env = clean_env(SOURCE_DATE_EPOCH="1700000000")
    _, theirs = sbom_of(repair("auditwheel", wheel, tmp_path / "auditwheel", env))
    assert theirs is None  # it resolves /lib -> /usr/lib first, and dpkg does not know that name
    _, ours = sbom_of(repair("wheelvet", wheel, tmp_path / "wheelvet", env))
    assert [c["name"] for c in json.loads(ours)["components"]] == ["sbomdemo", "libbz2-1.0"]


def test_no_graft_no_sbom(tmp_path, need_gcc):
    wheel = ext_wheel(tmp_path)
    _, text = sbom_of(repair("wheelvet", wheel, tmp_path / "out", clean_env()))
    assert text is None


def test_dry_run_names_the_sbom(tmp_path, libs):
    wheel = ext_wheel(tmp_path, f"-L{libs}", "-l:libA.so.1", body="int a_value(void);", call="a_value()")
    p = subprocess.run([sys.executable, "-m", "wheelvet", "repair", "--dry-run", str(wheel)], capture_output=True,
                       text=True, env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert p.returncode == 0, p.stderr
    assert "  sbom: sbomdemo-0.1.dist-info/sboms/auditwheel.cdx.json" in p.stdout
