"""`repair` of the real platform wheels whose ELF files sit in a Root-Is-Purelib: true
tree (nvidia-nvtx-cu12, nvidia-cuda-runtime-cu12, pyinstaller, wasmtime), against
auditwheel 6.8.2's `repair` of the same files.

`test_conformance.py` compares `show --json` on them (the tools agree). Here both
tools repair each wheel and must agree on every member but the two that differ by
design (docs/differences.md), which are checked as recorded below:

* WHEEL: wheelvet sets ``Root-Is-Purelib: false`` (binaries belong in platlib);
  auditwheel keeps ``true``;
* the file name of wasmtime, tagged manylinux1 but needing GLIBC_2.28: auditwheel
  keeps the false manylinux1 tag beside manylinux_2_28, wheelvet drops it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wheelcache  # noqa: E402

PURELIB_PLATFORM = {e.filename: e for e in wheelcache.load_wheels()
                    if e.project in ("nvidia-nvtx-cu12", "nvidia-cuda-runtime-cu12", "pyinstaller", "wasmtime")}

#: filename -> (auditwheel's output name, wheelvet's), where they differ by design.
NAME_DIFFERENCES = {
    "wasmtime-50.0.1-py3-none-manylinux1_x86_64.whl": (
        "wasmtime-50.0.1-py3-none-manylinux1_x86_64.manylinux_2_28_x86_64.whl",
        "wasmtime-50.0.1-py3-none-manylinux_2_28_x86_64.whl",
    ),
}


def _repair(tool: str, wheel: Path, out: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if k not in (*wheelcache._LD_VARS, "AUDITWHEEL_PLAT")}
    env.update(SOURCE_DATE_EPOCH="1700000000", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=str(wheelcache.SRC_DIR))
    p = subprocess.run([sys.executable, "-m", tool, "repair", "-w", str(out), str(wheel)], capture_output=True,
                       text=True, env=env, timeout=wheelcache.TOOL_TIMEOUT)
    assert p.returncode == 0, f"{tool} repair failed:\n{p.stderr[-3000:]}"
    found = [p for p in out.iterdir() if p.suffix == ".whl"]
    assert len(found) == 1, found
    return found[0]


def _headers(data: bytes) -> dict[str, list[str]]:
    msg = HeaderParser().parsestr(data.decode())
    return {k: sorted(msg.get_all(k)) for k in set(msg.keys())}


def _members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


@pytest.mark.conformance
@pytest.mark.parametrize("wheel_filename", sorted(PURELIB_PLATFORM), ids=sorted(PURELIB_PLATFORM))
def test_repair_matches_auditwheel_but_for_the_recorded_differences(conformance, tmp_path, wheel_filename):
    wheel = conformance.wheel_path(wheel_filename)
    if conformance.oracle_skip:
        pytest.skip(conformance.oracle_skip)
    theirs = _repair("auditwheel", wheel, tmp_path / "auditwheel")
    ours = _repair("wheelvet", wheel, tmp_path / "wheelvet")
    expected_names = NAME_DIFFERENCES.get(wheel_filename, (theirs.name, theirs.name))
    assert (theirs.name, ours.name) == expected_names

    a, w = _members(theirs), _members(ours)
    dist_info = next(n.split("/", 1)[0] for n in w if n.endswith(".dist-info/WHEEL"))
    wheel_file = f"{dist_info}/WHEEL"
    head_a, head_w = _headers(a[wheel_file]), _headers(w[wheel_file])
    assert head_a.pop("Root-Is-Purelib") == ["true"]  # auditwheel leaves it
    assert head_w.pop("Root-Is-Purelib") == ["false"]  # wheelvet: binaries belong in platlib
    for name, head in ((theirs.name, head_a), (ours.name, head_w)):  # each tool's Tag lines are its name's
        assert sorted(head.pop("Tag")) == sorted(str(t) for t in parse_wheel_filename(name)[3])
    assert head_a == head_w
    others = {n for n in a.keys() | w.keys() if n not in (wheel_file, f"{dist_info}/RECORD")}
    different = sorted(n for n in others if a.get(n) != w.get(n))
    assert different == [], f"members that differ: {different[:10]}"
