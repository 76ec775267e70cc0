"""Renderers are pure functions of WheelAudit: checked against golden files.

Regenerate the golden files after an intended change with
``WHEELVET_UPDATE_GOLDEN=1 pytest tests/unit/test_report.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support import check_golden, craft_elf, write_wheel
from wheelvet.audit import AuditOptions, audit_wheel
from wheelvet.report import audit_to_json, render_json, render_text

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("WHEELVET_UPDATE_GOLDEN"))




@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    """Deterministic audits: crafted aarch64 binaries never match host files."""
    d = tmp_path_factory.mktemp("golden")
    ext = craft_elf("aarch64", needed=("libffi.so.8", "libm.so.6", "libc.so.6"), exports=("PyInit__core",),
                    imports=(("exp", "GLIBC_2.29", "libm.so.6"), ("log", "GLIBC_2.29", "libm.so.6"),
                             ("memcpy", "GLIBC_2.17", "libc.so.6"), ("__cxa_thread_atexit_impl", "GLIBC_2.18", "libc.so.6"),
                             ("ffi_call", "LIBFFI_BASE_8.0", "libffi.so.8")))
    helper = craft_elf("aarch64", needed=("libc.so.6",), soname="libhelper.so",
                       imports=(("memcpy", "GLIBC_2.17", "libc.so.6"),))
    a = write_wheel(d / "demo-1.0-cp311-cp311-manylinux_2_17_aarch64.whl",
                    {"demo/_core.cpython-311-aarch64-linux-gnu.so": ext, "demo.libs/libhelper.so": helper,
                     "demo/__init__.py": b""}, tag="cp311-cp311-manylinux_2_17_aarch64")
    clean = craft_elf("aarch64", needed=("libc.so.6",), exports=("PyInit_ok",), imports=(("memcpy", "GLIBC_2.17", "libc.so.6"),))
    b = write_wheel(d / "ok-2.0-cp311-cp311-manylinux2014_aarch64.whl", {"ok.cpython-311-aarch64-linux-gnu.so": clean},
                    tag="cp311-cp311-manylinux2014_aarch64")
    opts = AuditOptions(environ={}, ldpaths="")
    return [audit_wheel(str(a), opts), audit_wheel(str(b), opts)]


def test_text_report(audits):
    check_golden("show.txt", render_text(audits))


def test_json_report(audits):
    text = json.dumps(json.loads(render_json(audits)), indent=2, sort_keys=True) + "\n"
    check_golden("show.json", text)


def test_renderers_are_pure(audits):
    assert render_text(audits) == render_text(audits)
    one = audit_to_json(audits[0])
    assert json.loads(render_json(audits[:1])) == one


def test_json_keeps_auditwheel_field_order(audits):
    keys = list(audit_to_json(audits[0]))
    assert keys[:11] == ["version", "wheel", "pure", "overall_tag", "sym_tag", "pyfpe", "ucs2",
                         "unsupported_isa", "versioned_symbols", "external_libs", "policy_upgrades"]
