"""`wheelvet show` / `check` end to end on wheels built here with gcc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import EXT_SUFFIX, HAVE_MUSL_GCC, build_extension, cc, clean_env, craft_elf, write_wheel
from wheelvet.errors import InvalidWheel

TAG = "cp311-cp311-linux_x86_64"


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "wheelvet", *args], capture_output=True, text=True,
                       env=env if env is not None else clean_env(), cwd=cwd, timeout=300)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def show_json(wheel: Path, *extra: str, env: dict | None = None) -> dict:
    p = run("show", "--json", *extra, str(wheel), env=env)
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout)




def ext_wheel(tmp_path: Path, module: str, *flags: str, body: str = "", call: str = "0", name: str = "pkg-1.0", extra: dict | None = None, tag: str = TAG) -> Path:
    ext = build_extension(tmp_path / "build", module, *flags, body=body, call=call)
    files = {f"pkg/{ext.name}": ext.read_bytes(), "pkg/__init__.py": b""}
    files.update(extra or {})
    return write_wheel(tmp_path / f"{name}-{tag}.whl", files, tag=tag)


def test_external_library_chain(tmp_path, libs):
    whl = ext_wheel(tmp_path, "spam", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);", call="a_value()")
    d = show_json(whl, env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert d["external_libs"] == {"libA.so.1": str(libs / "libA.so.1"), "libB.so.2": str(libs / "libB.so.2")}
    assert d["overall_tag"] == "linux_x86_64"
    assert d["repairable_tag"] == d["sym_tag"] != "linux_x86_64"
    up = d["policy_upgrades"][d["sym_tag"]]
    assert up["libs_to_eliminate"] == ["libA.so.1", "libB.so.2"]
    # AUDITWHEEL_LD_LIBRARY_PATH finds them too; without either they are not found
    d2 = show_json(whl, env=clean_env(AUDITWHEEL_LD_LIBRARY_PATH=str(libs)))
    assert d2["external_libs"] == d["external_libs"]
    d3 = show_json(whl)
    assert d3["external_libs"] == {"libA.so.1": None}
    assert any(f["code"] == "library-not-found" and "libA.so.1" in f["message"] for f in d3["findings"])


def test_ldpaths_replace_the_system_search(tmp_path, libs):
    whl = ext_wheel(tmp_path, "spam", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);", call="a_value()")
    d = show_json(whl, "--ldpaths", str(libs))
    assert set(d["external_libs"]) == {"libA.so.1", "libB.so.2"}
    # the system's directories are gone: libc.so.6 is not found any more (but it is whitelisted)
    assert d["external_libs"]["libA.so.1"] == str(libs / "libA.so.1")


def test_per_symbol_attribution_of_too_recent_versions(tmp_path, need_gcc):
    # exp() and log() take GLIBC_2.29 on x86-64; memcpy is old.
    whl = ext_wheel(tmp_path, "mathy", "-lm", "-fno-builtin", body="#include <math.h>\n#include <string.h>\nstatic char buf[8];",
                    call="exp((double)(long)buf) + log(2.0) + (long)memcpy(buf, \"x\", 1)")
    d = show_json(whl)
    ext = f"pkg/mathy{EXT_SUFFIX}"
    uses = {(u["file"], u["library"], u["version"]): u["symbols"] for u in d["symbol_versions"]}
    assert uses[(ext, "libm.so.6", "GLIBC_2.29")] == ["exp", "log"]
    m2017 = d["policy_upgrades"]["manylinux_2_17_x86_64"]["too_recent_symbols"]
    assert {"file": ext, "library": "libm.so.6", "version": "GLIBC_2.29", "symbols": ["exp", "log"]} in m2017
    assert all(u["version"] != "GLIBC_2.2.5" for u in m2017)
    assert "GLIBC_2.29" in d["versioned_symbols"]["libm.so.6"]
    p = run("show", str(whl))
    assert "GLIBC_2.29 from libm.so.6" in p.stdout and "exp, log" in p.stdout


def test_check_uses_the_tags_in_the_file_name(tmp_path, need_gcc):
    whl = ext_wheel(tmp_path, "mathy", "-lm", "-fno-builtin", body="#include <math.h>", call="exp(1.0)",
                    tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    p = run("check", str(whl))
    assert p.returncode == 1
    assert "claims manylinux_2_17_x86_64" in p.stdout and "GLIBC_2.29 from libm.so.6 is too recent (exp)" in p.stdout
    assert "claims manylinux2014_x86_64" in p.stdout
    assert run("check", "--plat", "manylinux_2_31_x86_64", str(whl)).returncode == 0
    assert run("check", "--plat", "manylinux_2_35", str(whl)).returncode == 0
    assert run("check", "--plat", "manylinux2014", str(whl)).returncode == 1
    bad = run("check", "--plat", "manylinux_9_99", str(whl))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_check_passes_an_honest_wheel(tmp_path, need_gcc):
    # this machine's glibc: whatever sym_tag the build gets, name the wheel with it
    whl = ext_wheel(tmp_path, "plain", call="1")
    tag = show_json(whl)["overall_tag"]
    honest = ext_wheel(tmp_path, "plain", call="1", tag=f"cp311-cp311-{tag}", name="honest-1.0")
    p = run("check", str(honest))
    assert p.returncode == 0, p.stdout
    assert f"meets {tag}" in p.stdout


def test_blacklisted_symbol(tmp_path, need_gcc):
    whl = ext_wheel(tmp_path, "tls", body="extern int __cxa_thread_atexit_impl(void (*)(void *), void *, void *);\nstatic void f(void *p) {}",
                    call="__cxa_thread_atexit_impl(f, 0, 0)")
    d = show_json(whl)
    up = d["policy_upgrades"]["manylinux_2_17_x86_64"]
    assert up["blacklisted_symbols"] == {"libc.so.6": ["__cxa_thread_atexit_impl"]}
    assert "manylinux_2_24_x86_64" not in d["policy_upgrades"] or "blacklisted_symbols" not in d["policy_upgrades"]["manylinux_2_24_x86_64"]


def test_isa_extension_makes_the_wheel_linux_only(tmp_path, need_gcc):
    body = "double f(double *a, int n){double s=0; for(int i=0;i<n;i++) s+=a[i]*a[i]; return s;}"
    whl = ext_wheel(tmp_path, "fast", "-O3", "-march=x86-64-v3", "-mneeded", body=body, call="0")
    d = show_json(whl)
    assert d["unsupported_isa"] is True and d["overall_tag"] == "linux_x86_64"
    ext = f"pkg/fast{EXT_SUFFIX}"
    assert next(f for f in d["files"] if f["path"] == ext)["isa_level"] == "x86_64_v3"
    assert ext in d["policy_upgrades"]["manylinux_2_5_x86_64"]["unsupported_isa_files"]
    d = show_json(whl, "--disable-isa-ext-check")
    assert d["unsupported_isa"] is False and d["overall_tag"] != "linux_x86_64"


def test_linking_libpython_is_reported(tmp_path, need_gcc):
    ext = build_extension(tmp_path / "b", "emb")
    data = craft_elf("x86_64", needed=("libpython3.11.so.1.0", "libc.so.6"), exports=("PyInit_emb",))
    whl = write_wheel(tmp_path / "emb-1.0-cp311-cp311-linux_x86_64.whl", {f"emb{EXT_SUFFIX}": data, "other" + ext.name: ext.read_bytes()})
    d = show_json(whl)
    assert "libpython3.11.so.1.0" in d["external_libs"] and d["overall_tag"] == "linux_x86_64"
    assert any(f["code"] == "links-libpython" for f in d["findings"])


def test_library_inside_the_wheel_through_origin_rpath(tmp_path, libs):
    # pkg/_x.so needs libB through RPATH $ORIGIN/../pkg.libs: internal, not external
    whl = ext_wheel(tmp_path, "inner", f"-L{libs}", "-l:libB.so.2", "-Wl,-rpath,$ORIGIN/../pkg.libs",
                    body="int b_value(void);", call="b_value()", extra={"pkg.libs/libB.so.2": (libs / "libB.so.2").read_bytes()})
    d = show_json(whl)
    assert d["external_libs"] == {}
    assert d["overall_tag"] == d["sym_tag"]


def test_executable_in_data_scripts_is_audited(tmp_path, libs):
    exe = cc(tmp_path / "tool", {"t.c": "int a_value(void); int main(void){return a_value();}"}, f"-L{libs}", "-l:libA.so.1", f"-Wl,-rpath-link,{libs}", shared=False)
    whl = write_wheel(tmp_path / "tool-1.0-py3-none-linux_x86_64.whl",
                      {"tool-1.0.data/scripts/tool": exe.read_bytes(), "tool/__init__.py": b""}, tag="py3-none-linux_x86_64")
    d = show_json(whl, env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert set(d["external_libs"]) == {"libA.so.1", "libB.so.2"}
    f = next(f for f in d["files"] if f["path"] == "tool-1.0.data/scripts/tool")
    assert f["extension"] is False and f["libc"] == "glibc"


def test_elf_in_purelib_keeps_its_tags_with_a_warning(tmp_path, need_gcc):
    """Where a binary installs does not change what it needs: auditwheel's
    show reaches the same tag; the placement is a warning, not a verdict."""
    ext = build_extension(tmp_path / "b", "pure")
    tag = "cp311-cp311-manylinux_2_17_x86_64"
    root = write_wheel(tmp_path / f"pure-1.0-{tag}.whl", {f"pure{EXT_SUFFIX}": ext.read_bytes()}, purelib=True, tag=tag)
    data = write_wheel(tmp_path / f"pure2-1.0-{tag}.whl", {f"pure2-1.0.data/purelib/pure{EXT_SUFFIX}": ext.read_bytes()},
                       tag=tag)
    for whl in (root, data):
        d = show_json(whl)
        assert d["overall_tag"].startswith("manylinux_2_"), d["overall_tag"]
        found = [f for f in d["findings"] if f["code"] == "elf-in-purelib"]
        assert [f["severity"] for f in found] == ["warning"]
        p = run("check", str(whl))
        assert p.returncode == 0 and "ok" in p.stdout, p.stdout + p.stderr


def test_repair_moves_root_purelib_binaries_to_platlib(tmp_path, need_gcc):
    ext = build_extension(tmp_path / "b", "pure")
    whl = write_wheel(tmp_path / "pure-1.0-cp311-cp311-linux_x86_64.whl", {f"pure{EXT_SUFFIX}": ext.read_bytes()},
                      purelib=True)
    out = tmp_path / "out"
    p = run("repair", "-w", str(out), str(whl))
    assert p.returncode == 0, p.stderr
    assert "Root-Is-Purelib set to false" in p.stdout
    (fixed,) = out.iterdir()
    wheel_file = zipfile.ZipFile(fixed).read("pure-1.0.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: false" in wheel_file and "true" not in wheel_file
    assert not [f for f in show_json(fixed)["findings"] if f["code"] == "elf-in-purelib"]


def test_repair_refuses_binaries_in_data_purelib(tmp_path, need_gcc):
    ext = build_extension(tmp_path / "b", "pure")
    whl = write_wheel(tmp_path / "pure2-1.0-cp311-cp311-linux_x86_64.whl",
                      {f"pure2-1.0.data/purelib/pure{EXT_SUFFIX}": ext.read_bytes()})
    out = tmp_path / "out"
    p = run("repair", "-w", str(out), str(whl))
    assert p.returncode == 1 and ".data/purelib" in p.stderr and whl.name in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not out.exists() or not list(out.iterdir())


def test_pure_python_wheel(tmp_path):
    whl = write_wheel(tmp_path / "p-1.0-py3-none-any.whl", {"p/__init__.py": b"x = 1\n"}, tag="py3-none-any")
    p = run("show", "--json", str(whl))
    assert p.returncode == 1 and "platform wheel" in json.loads(p.stdout)["error"]
    p = run("show", "--json", "--allow-pure-python-wheel", str(whl))
    assert p.returncode == 0 and json.loads(p.stdout) == {"version": 1, "wheel": whl.name, "pure": True}
    assert run("check", "--allow-pure-python-wheel", str(whl)).returncode == 0


def test_foreign_architecture_never_matches_host_libraries(tmp_path):
    # An aarch64 extension needing libffi.so.8: this x86-64 host has one, which must not match.
    data = craft_elf("aarch64", needed=("libffi.so.8", "libc.so.6"), exports=("PyInit__ffi",),
                     imports=(("memcpy", "GLIBC_2.17", "libc.so.6"), ("ffi_call", "LIBFFI_BASE_8.0", "libffi.so.8")))
    whl = write_wheel(tmp_path / "f-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", {"f/_ffi.cpython-311-aarch64-linux-gnu.so": data},
                      tag="cp311-cp311-manylinux_2_17_aarch64")
    d = show_json(whl)
    assert d["external_libs"] == {"libffi.so.8": None}
    assert d["sym_tag"] == "manylinux_2_17_aarch64" and d["overall_tag"] == "linux_aarch64"
    assert d["arch"] == "aarch64" and d["libc"] == "glibc"


@pytest.mark.parametrize("arch,version,expected", [
    ("i686", "GLIBC_2.1", "manylinux_2_5_i686"),
    ("ppc64le", "GLIBC_2.17", "manylinux_2_17_ppc64le"),
    ("s390x", "GLIBC_2.2", "manylinux_2_17_s390x"),
    ("armv7l", "GLIBC_2.28", "manylinux_2_28_armv7l"),
    ("riscv64", "GLIBC_2.27", "manylinux_2_31_riscv64"),
    ("loongarch64", "GLIBC_2.36", "manylinux_2_36_loongarch64"),
])
def test_foreign_architectures_get_their_policies(tmp_path, arch, version, expected):
    data = craft_elf(arch, needed=("libc.so.6",), exports=("PyInit_m",), imports=(("memcpy", version, "libc.so.6"),))
    whl = write_wheel(tmp_path / f"m-1.0-cp311-cp311-linux_{arch}.whl", {"m.so": data}, tag=f"cp311-cp311-linux_{arch}")
    d = show_json(whl)
    assert d["overall_tag"] == expected and d["arch"] == arch


def test_files_of_two_architectures_are_invalid_input(tmp_path):
    x86 = craft_elf("x86_64", needed=("libc.so.6",), exports=("PyInit_m",), imports=(("memcpy", "GLIBC_2.14", "libc.so.6"),))
    arm = craft_elf("aarch64", needed=("libc.so.6",), imports=(("memcpy", "GLIBC_2.99", "libc.so.6"),))
    whl = write_wheel(tmp_path / "m-1.0-cp311-cp311-linux_x86_64.whl", {"m.so": x86, "data/arm.so": arm})
    p = run("show", str(whl))
    assert p.returncode == 3 and p.stderr.count("\n") == 1
    assert f"{whl.name}: data/arm.so: ELF file built for aarch64, but its tags say x86_64" in p.stderr
    untagged = write_wheel(tmp_path / "n-1.0-py3-none-any.whl", {"a/m.so": x86, "b/arm.so": arm}, tag="py3-none-any")
    p = run("show", str(untagged))
    assert p.returncode == 3 and "b/arm.so: ELF file built for aarch64, but a/m.so is x86_64" in p.stderr


@pytest.mark.skipif(not HAVE_MUSL_GCC, reason="musl-gcc is not installed (Debian package musl-tools)")
def test_musl_binary_is_judged_against_musllinux(tmp_path):
    ext = cc(tmp_path / "b" / "m.cpython-311-x86_64-linux-musl.so", {"m.c": "#include <string.h>\nsize_t PyInit_m(const char*s){return strlen(s);}"})
    import subprocess as sp
    sp.run(["musl-gcc", "-shared", "-fPIC", "-o", str(ext), str(tmp_path / "b" / ".src-m.cpython-311-x86_64-linux-musl.so" / "m.c")], check=True)
    whl = write_wheel(tmp_path / "m-1.0-cp311-cp311-linux_x86_64.whl", {"m.cpython-311-x86_64-linux-musl.so": ext.read_bytes()})
    d = show_json(whl)
    assert d["libc"] == "musl"
    # Debian's musl-gcc links "libc.so", which musl's loader answers itself
    assert "libc.so" in next(f for f in d["files"])["needed"]
    assert d["overall_tag"] == d["sym_tag"] == "musllinux_1_2_x86_64"
    assert d["external_libs"] == {}


def test_several_wheels_give_a_json_array_in_argument_order(tmp_path, need_gcc):
    a = ext_wheel(tmp_path, "one", call="1", name="a-1.0")
    b = ext_wheel(tmp_path, "two", call="2", name="b-1.0")
    p = run("show", "--json", str(b), str(a))
    assert p.returncode == 0
    docs = json.loads(p.stdout)
    assert [x["wheel"] for x in docs] == [b.name, a.name]
    text = run("show", str(a), str(b)).stdout
    assert text.index(a.name) < text.index(b.name)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.write_bytes(b"not a zip at all"), "not a zip archive"),
    (lambda p: p.write_bytes(b""), "not a zip archive"),
])
def test_invalid_input_exits_3_with_one_line(tmp_path, make, needle):
    whl = tmp_path / "x-1.0-py3-none-any.whl"
    make(whl)
    p = run("show", str(whl))
    assert p.returncode == 3
    assert p.stderr.count("\n") == 1 and needle in p.stderr and whl.name in p.stderr


def test_bad_wheel_file_name(tmp_path):
    bad = tmp_path / "not-a-wheel.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("a", "b")
    p = run("show", str(bad))
    assert p.returncode == 3 and "not a valid wheel file name" in p.stderr


def test_missing_wheel_metadata(tmp_path):
    whl = tmp_path / "x-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("x/__init__.py", "")
    p = run("show", str(whl))
    assert p.returncode == 3 and "no .dist-info directory" in p.stderr


def test_missing_file(tmp_path):
    p = run("show", str(tmp_path / "nope-1.0-py3-none-any.whl"))
    assert p.returncode == 3 and "no such file" in p.stderr


def test_truncated_elf_member(tmp_path, need_gcc):
    ext = build_extension(tmp_path / "b", "cut")
    whl = write_wheel(tmp_path / "cut-1.0-cp311-cp311-linux_x86_64.whl", {f"cut{EXT_SUFFIX}": ext.read_bytes()[:200]})
    p = run("show", str(whl))
    assert p.returncode == 3 and f"cut{EXT_SUFFIX}" in p.stderr and whl.name in p.stderr


def test_usage_errors_exit_2():
    p = run("show")
    assert p.returncode == 2
    p = run("frobnicate")
    assert p.returncode == 2


def test_one_bad_wheel_among_good_ones(tmp_path, need_gcc):
    good = ext_wheel(tmp_path, "g", call="1", name="good-1.0")
    bad = tmp_path / "bad-1.0-py3-none-any.whl"
    bad.write_bytes(b"junk")
    p = run("show", "--json", str(good), str(bad))
    assert p.returncode == 3
    docs = json.loads(p.stdout)
    assert docs[0]["wheel"] == good.name and "overall_tag" in docs[0]
    assert docs[1]["wheel"] == bad.name and "not a zip archive" in docs[1]["error"]


def test_python_dash_m_and_console_script_agree(tmp_path, need_gcc):
    whl = ext_wheel(tmp_path, "same", call="1")
    exe = Path(sys.executable).with_name("wheelvet")
    if not exe.exists():
        pytest.skip("the wheelvet console script is not installed next to this Python")
    a = subprocess.run([str(exe), "show", "--json", str(whl)], capture_output=True, text=True, env=clean_env())
    assert a.stdout == run("show", "--json", str(whl)).stdout


def _rewrite_member(wheel: Path, member: str, data: bytes, out: Path) -> Path:
    """``wheel`` with ``member``'s bytes replaced and RECORD left as it was (its hash now wrong)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, data if info.filename == member else src.read(info.filename))
    return out


def test_worker_processes_read_what_one_process_reads(tmp_path, need_gcc, monkeypatch):
    """A wheel large enough to be read on two worker processes gives the
    same facts (imports with their versions, init functions, dlopen hints)
    and the same errors as one read in this process: what crosses between
    the processes (each member's entry as plain values, each file's facts
    as columns) is what was meant."""
    from wheelvet import wheelfile

    monkeypatch.setattr(wheelfile, "PARALLEL_MIN_BYTES", 0)
    body = ('#include <math.h>\n#include <string.h>\n'
            'const char *hint = "libplugin.so.3";\n'
            'double f(double x) { return exp(x) + strlen(hint); }\n')
    files = {}
    for i in range(6):
        files[f"pkg/m{i}{EXT_SUFFIX}"] = build_extension(tmp_path / f"b{i}", f"m{i}", "-lm", body=body).read_bytes()
    files.update({f"pkg/data{i}.txt": os.urandom(2000) for i in range(40)})
    wheel = write_wheel(tmp_path / "pkg-1.0-cp311-cp311-linux_x86_64.whl", files)
    one, two = wheelfile.read_wheel(str(wheel), jobs=1), wheelfile.read_wheel(str(wheel), jobs=2)
    assert one == two and len(two.elf) == 6
    facts = two.elf[f"pkg/m0{EXT_SUFFIX}"]
    assert facts.init_functions == frozenset({"PyInit_m0"}) and facts.dlopen_hints == ("libplugin.so.3",)
    assert [f.dlopen_hints for f in one.elf.values()] == [f.dlopen_hints for f in two.elf.values()]
    assert any(s.name == "exp" and s.version and s.version.startswith("GLIBC_") for s in facts.imports)
    # a member whose bytes no longer match RECORD: the same error either way
    bad = _rewrite_member(wheel, "pkg/data7.txt", os.urandom(2000), tmp_path / "bad" / wheel.name)  # (its size as RECORD says)
    errors = []
    for jobs in (1, 2):
        with pytest.raises(InvalidWheel) as caught:
            wheelfile.read_wheel(str(bad), jobs=jobs)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "pkg/data7.txt" in errors[0] and "RECORD" in errors[0]
