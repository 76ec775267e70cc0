"""A real provider from PyPI: nvidia-cuda-runtime-cu12 ships libcudart.so.12.

A C extension declares cudaRuntimeGetVersion by hand (the wheel's headers need
``crt/`` headers from another wheel), links the wheel's libcudart.so.12, and is
repaired with the provider given: nothing is grafted, its RPATH leads to
``nvidia/cuda_runtime/lib``.  Installed with the provider into a fresh venv,
it imports and calls the runtime with no GPU and no driver (the runtime
answers its own version: 12090 for 12.9).  The wheel comes from the
conformance suite's cache (``wheelcache``); offline with an empty cache, the
test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wheelcache  # noqa: E402
from support import HAVE_GCC, build_extension, write_wheel  # noqa: E402

CUDART = "nvidia_cuda_runtime_cu12-12.9.79-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
LIB = "nvidia/cuda_runtime/lib/libcudart.so.12"
BODY = ("typedef int cudaError_t; extern cudaError_t cudaRuntimeGetVersion(int *v);\n"
        "static long rt(void) { int v = -1; int e = cudaRuntimeGetVersion(&v); return e ? -e : v; }")


def _wheelvet(*args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "wheelvet", *args], capture_output=True, text=True,
                       env=wheelcache.tool_env(), timeout=wheelcache.TOOL_TIMEOUT)
    assert "Traceback" not in p.stderr, p.stderr
    return p


@pytest.mark.conformance
def test_an_extension_linking_libcudart_uses_the_provider_s_copy(conformance, tmp_path):
    if not HAVE_GCC:
        pytest.skip("gcc is not installed: the extension is built for real")
    cudart = conformance.wheel_path(CUDART)
    sdk = tmp_path / "sdk"
    with zipfile.ZipFile(cudart) as zf:
        zf.extract(LIB, sdk)
    ext = build_extension(tmp_path / "build", "cudaver", f"-L{sdk / LIB.rsplit('/', 1)[0]}", "-l:libcudart.so.12",
                          body=BODY, call="rt()")
    pkg = write_wheel(tmp_path / "cudaver-0.1-cp311-cp311-linux_x86_64.whl",
                      {"cudaver/__init__.py": b"from .cudaver import value\n", f"cudaver/{ext.name}": ext.read_bytes()},
                      requires=("nvidia-cuda-runtime-cu12==12.*",))

    report = json.loads(_wheelvet("show", "--json", "--provider", str(cudart), str(pkg)).stdout)
    assert report["external_libs"] == {}
    assert report["provided_libs"]["libcudart.so.12"] | {"needed_by": None, "unreached": None} == {
        "distribution": "nvidia-cuda-runtime-cu12", "version": "12.9.79", "path": LIB,
        "requirement": "nvidia-cuda-runtime-cu12==12.*", "needed_by": None, "unreached": None}
    # libcudart needs GLIBC_2.17 (clock_gettime): the extension cannot be manylinux1 with it
    assert report["overall_tag"] == "manylinux_2_17_x86_64"
    uses = report["policy_upgrades"]["manylinux_2_5_x86_64"]["too_recent_symbols"]
    assert {(u["file"], u["provider"], u["version"]) for u in uses} >= {
        (LIB, "nvidia-cuda-runtime-cu12 12.9.79", "GLIBC_2.17")}

    out = tmp_path / "out"
    p = _wheelvet("repair", "-w", str(out), "--provider", str(cudart.parent), str(pkg))  # the whole cache directory
    assert p.returncode == 0, p.stderr
    (fixed,) = out.iterdir()
    assert fixed.name == "cudaver-0.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    assert not any("cudart" in n for n in zipfile.ZipFile(fixed).namelist())

    sdk.rename(tmp_path / "sdk-gone")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(fixed), str(cudart)],
                   check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "AUDITWHEEL_LD_LIBRARY_PATH")}
    code = ("import cudaver; print(cudaver.value(), "
            "*sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libcudart' in l}))")
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    out_fields = res.stdout.split()
    assert out_fields[0] == "12090", res.stderr
    assert out_fields[1:] == [os.path.realpath(next(env_dir.glob(f"lib/python3*/site-packages/{LIB}")))]

    # the same, learnt from the environment the provider is installed in
    again = json.loads(_wheelvet("show", "--json", "--provider-env", str(py), str(fixed)).stdout)
    assert again["provided_libs"]["libcudart.so.12"]["unreached"] == [] and again["findings"] == []
