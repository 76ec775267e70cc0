"""The exit codes: one table (errors.EXIT_CODES), the README shows it, and
every code is what some real run ends with."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import build_extension, clean_env, write_wheel
from wheelvet import cli
from wheelvet.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parents[2]
# Codes reached by tests elsewhere (they need a service fake or a signal): file, test, what it asserts.
ELSEWHERE = {
    5: ("tests/action/test_action.py", "test_artifact_service_failure_fails_the_step_without_leaking", "returncode == 5"),
    130: ("tests/integration/test_repair.py", "test_signal_during_repair_leaves_nothing", '("SIGINT", 130)'),
    143: ("tests/integration/test_repair.py", "test_signal_during_repair_leaves_nothing", '("SIGTERM", 143)'),
}


def test_the_readme_table_is_the_code_table():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Exit codes"):text.index("## Documentation")]
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", section, re.M))
    assert {int(k): v for k, v in rows.items()} == EXIT_CODES


def run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wheelvet", *args], capture_output=True, text=True,
                          env=env or clean_env(), timeout=300)


@pytest.fixture
def wheels(tmp_path, need_gcc):
    ext = build_extension(tmp_path / "b", "plain", call="1")
    ok = write_wheel(tmp_path / "ok-1.0-cp311-cp311-linux_x86_64.whl", {f"ok/{ext.name}": ext.read_bytes()})
    exp = build_extension(tmp_path / "m", "mathy", "-lm", "-fno-builtin", body="#include <math.h>", call="exp(1.0)")
    liar = write_wheel(tmp_path / "liar-1.0-cp311-cp311-manylinux1_x86_64.whl", {f"liar/{exp.name}": exp.read_bytes()},
                       tag="cp311-cp311-manylinux1_x86_64")  # exp@GLIBC_2.29 is not manylinux1
    broken = tmp_path / "broken-1.0-cp311-cp311-linux_x86_64.whl"
    broken.write_bytes(b"not a zip")
    return ok, liar, broken


def test_every_code_is_reached(wheels, tmp_path):
    ok, liar, broken = wheels
    failing_patchelf = tmp_path / "patchelf"
    failing_patchelf.write_text("#!/bin/sh\nexit 9\n")
    failing_patchelf.chmod(0o755)
    reached = {
        0: run("show", str(ok)),
        1: run("check", str(liar)),
        2: run("show", "--no-such-option", str(ok)),
        3: run("show", str(broken)),
        4: run("repair", "--strip", "-w", str(tmp_path / "out"), str(ok),
               env=clean_env(WHEELVET_PATCHELF=str(failing_patchelf), PATH="/nonexistent")),
    }
    for code, p in reached.items():
        assert p.returncode == code, (code, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr
        if code:
            assert len(p.stderr.strip().splitlines()) <= 1 or code == 1, p.stderr
    for code, (path, test, evidence) in ELSEWHERE.items():
        source = (ROOT / path).read_text()
        at = source.index(f"def {test}(")
        start, end = source.rfind("\n\n\n", 0, at), source.find("\n\n\n", at)
        assert evidence in source[start:end], (code, path, test)
    assert set(reached) | set(ELSEWHERE) | {70} == set(EXIT_CODES)


def test_an_internal_error_is_one_line_and_70(monkeypatch, capsys, wheels):
    def boom(*_a, **_k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_show", boom)
    assert cli.main(["show", str(wheels[0])]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (RuntimeError: a bug)" in err


def test_signal_handlers_are_set_for_the_call_and_restored(monkeypatch, wheels):
    """SIGINT and SIGTERM are wheelvet's while a command runs (so that a
    stop is remembered), and given back after; a SIGINT the process was
    started ignoring (a shell's background job) stays ignored."""
    import signal

    seen = {}

    def record(args, environ):
        seen["int"], seen["term"] = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        return 0

    monkeypatch.setattr(cli, "cmd_show", record)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert cli.main(["show", str(wheels[0])]) == 0
    assert seen["int"] is cli._on_sigint and seen["term"] is cli._on_sigterm
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert cli.main(["show", str(wheels[0])]) == 0
        assert seen["int"] == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
