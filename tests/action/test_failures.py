"""The action on bad settings and failing services, class by class.

Each class is a generator of cases, run as the runner starts the action (a
subprocess, the environment a container action gets, local fakes of the
services).  The promises, for every case: no traceback and no internal
error; one ``wheelvet: error:`` line on stderr naming what is wrong, with the
exit code the README's table gives for it; no token in any output; and for a
setting refused up front, nothing written (no wheel, no report, no outputs).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_action import REPO_NAME, parse_outputs, run_action, runner_env  # noqa: E402

from wheelvet.errors import EXIT_INVALID, EXIT_OK, EXIT_SERVICE, EXIT_USAGE  # noqa: E402


def _runner(ws: Path) -> Path:
    return ws.parent / "runner"


def _assert_promises(p, ws: Path, fake, code: int, *, says: str | None = None, nothing_written: bool = False):
    out = p.stdout + p.stderr
    assert p.returncode == code, out
    assert "internal error" not in out and "Traceback" not in out, out
    for secret in (fake.token,):
        assert secret not in p.stderr and secret not in p.stdout.replace(f"::add-mask::{secret}", ""), out
    if code in (EXIT_USAGE, EXIT_INVALID):
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("wheelvet: error: "), p.stderr
        if says:
            assert says in lines[0], lines[0]
        assert sum(1 for line in p.stdout.splitlines() if line.startswith("::error")) == 1, p.stdout
    if nothing_written:
        assert not (ws / "wheelvet-out").exists() or not any((ws / "wheelvet-out").iterdir())
        runner = _runner(ws)
        for name in ("output", "summary"):
            f = runner / name
            assert not f.is_file() or f.read_text() == "", (name, f.read_text())
        assert fake.requests == [] or all(r[0] == "GET" for r in fake.requests)


# ------------------------------------------------------------ event payloads
# The runner writes the payload; a self-hosted runner, an act-style local
# runner or a re-dispatched event may hand over anything.  The wheels are
# repaired all the same; a payload that holds no pull request posts nothing
# and says so.

PR_PAYLOADS = {
    "not-json": b"{not json",
    "not-utf8": b"\xff\xfe{\x00}",
    "empty": b"",
    "a-list": b"[]",
    "pr-is-a-string": json.dumps({"pull_request": "12"}).encode(),
    "number-is-a-string": json.dumps({"pull_request": {"number": "12"}}).encode(),
    "number-is-a-float": json.dumps({"pull_request": {"number": 12.5}}).encode(),
    "number-is-true": json.dumps({"pull_request": {"number": True}}).encode(),
    "number-400-digits": b'{"pull_request": {"number": ' + b"9" * 400 + b"}}",
    "number-5000-digits": b'{"pull_request": {"number": ' + b"9" * 5000 + b"}}",
    "deep": b'{"pull_request": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "head-is-a-list": json.dumps({"pull_request": {"number": 12, "head": [], "base": "main"}}).encode(),
}
RUN_PAYLOADS = {
    "run-is-a-number": json.dumps({"workflow_run": 5}).encode(),
    "pull-requests-a-string": json.dumps({"workflow_run": {"event": "pull_request", "pull_requests": "x"}}).encode(),
    "pull-request-number-a-string": json.dumps({"workflow_run": {"event": "pull_request",
                                                                 "pull_requests": [{"number": "a"}]}}).encode(),
    "head-branch-a-number": json.dumps({"workflow_run": {"event": "pull_request", "head_branch": 5,
                                                         "head_sha": "abc"}}).encode(),
    "head-repository-a-number": json.dumps({"workflow_run": {"event": "pull_request", "head_branch": "b",
                                                             "head_sha": "0" * 40, "head_repository": 3}}).encode(),
}


@pytest.mark.parametrize("payload", list(PR_PAYLOADS), ids=list(PR_PAYLOADS))
def test_a_pull_request_event_of_any_shape(workspace, fake_github, payload):
    env = runner_env(workspace, fake_github)
    (_runner(workspace) / "event.json").write_bytes(PR_PAYLOADS[payload])
    p = run_action(env, workspace)
    if payload == "head-is-a-list":  # the number is there: the comment is posted
        _assert_promises(p, workspace, fake_github, EXIT_OK)
        assert len(fake_github.comments[(REPO_NAME, 12)]) == 1
        return
    _assert_promises(p, workspace, fake_github, EXIT_OK)
    assert fake_github.comments.get((REPO_NAME, 12)) is None
    assert "::warning" in p.stdout and "no pull request" in p.stdout, p.stdout
    assert parse_outputs(_runner(workspace) / "output")["wheels"]  # the wheels were repaired all the same


@pytest.mark.parametrize("payload", list(RUN_PAYLOADS), ids=list(RUN_PAYLOADS))
def test_a_workflow_run_event_of_any_shape(workspace, fake_github, payload):
    env = runner_env(workspace, fake_github, event="workflow_run")
    (_runner(workspace) / "event.json").write_bytes(RUN_PAYLOADS[payload])
    p = run_action(env, workspace)
    _assert_promises(p, workspace, fake_github, EXIT_OK)
    assert fake_github.comments.get((REPO_NAME, 12)) is None
    assert parse_outputs(_runner(workspace) / "output")["wheels"]


def test_a_missing_event_file(workspace, fake_github):
    env = runner_env(workspace, fake_github)
    env["GITHUB_EVENT_PATH"] = str(workspace / "nowhere" / "event.json")
    p = run_action(env, workspace)
    _assert_promises(p, workspace, fake_github, EXIT_OK)
    assert "no pull request" in p.stdout


# --------------------------------------------------------- the REST API down


def _closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("api", ["closed-port", "status-500", "status-401", "html-page"])
def test_the_rest_api_failing(workspace, fake_github, api):
    env = runner_env(workspace, fake_github)
    if api == "closed-port":
        env["INPUT_API-URL"] = _closed_port()
    else:
        fake_github.fail_all = {"status-500": (500, b'{"message": "boom"}'), "status-401": (401, b'{"message": "Bad credentials"}'),
                                "html-page": (200, b"<html>a captive portal</html>")}[api]
    env["WHEELVET_RETRY_DELAYS"] = "0,0"
    p = run_action(env, workspace)
    _assert_promises(p, workspace, fake_github, EXIT_SERVICE)
    errors = [line for line in p.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "GitHub" in errors[0], p.stdout
    out = parse_outputs(_runner(workspace) / "output")
    assert out["status"] == "failure" and out["wheels"]  # the rest of the job ran
    assert all((workspace / w).is_file() for w in out["wheels"].splitlines())


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com", "http://[::1", "https://", "http://a b/"])
def test_an_api_url_that_is_no_url(workspace, fake_github, url):
    env = runner_env(workspace, fake_github)
    env["INPUT_API-URL"] = url
    p = run_action(env, workspace)
    _assert_promises(p, workspace, fake_github, EXIT_USAGE, says="api-url", nothing_written=True)


# ------------------------------------------------- files the runner names


def _unwritable(ws: Path, how: str) -> str:
    if how == "a-directory":
        d = ws.parent / "runner" / "a-dir"
        d.mkdir(exist_ok=True)
        return str(d)
    if how == "missing-parent":
        return str(ws.parent / "runner" / "gone" / "file")
    if how == "under-a-file":
        return str(ws.parent / "runner" / "event.json" / "file")
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["a-directory", "missing-parent", "under-a-file"])
@pytest.mark.parametrize("which", ["GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"])
def test_a_runner_file_that_cannot_be_written(workspace, fake_github, which, how):
    env = runner_env(workspace, fake_github)
    env[which] = _unwritable(workspace, how)
    p = run_action(env, workspace)
    _assert_promises(p, workspace, fake_github, EXIT_USAGE, says=which, nothing_written=True)


@pytest.mark.parametrize("how", ["a-file", "under-a-file", "the-workspace", "outside"])
def test_a_wheel_dir_that_cannot_be_one(workspace, fake_github, how):
    if how == "a-file":
        (workspace / "out.txt").write_text("x")
        value = "out.txt"
    elif how == "under-a-file":
        (workspace / "out.txt").write_text("x")
        value = "out.txt/wheels"
    elif how == "the-workspace":
        value = "."
    else:
        value = "../elsewhere"
    env = runner_env(workspace, fake_github, **{"wheel-dir": value})
    p = run_action(env, workspace)
    _assert_promises(p, workspace, fake_github, EXIT_USAGE, says="wheel-dir", nothing_written=True)
    assert not (workspace.parent / "elsewhere").exists()


# ------------------------------------------------------ inputs refused early

BAD_INPUTS = {
    "fail-on": ["errors", "error,sometimes", "never,error", "manylinux_2_99_x86_64x"],
    "mode": ["repaired", ""],
    "comment": ["sometimes"],
    "upload": ["yes please"],
    "retag": ["maybe"],
    "plat": ["manylinux_2_17_sparc", "musllinux_x86_64", "linux"],
    "max-size-increase": ["10 percent", "-5%", "lots"],
    "expected-legs": ["0", "-1", "two", "9" * 400],
    "artifact-name": ["a/b", "a:b", "a\nb"],
    "strip": ["nope"],
    "api-url": ["not a url"],
}
BAD_CASES = [(k, v) for k, vs in BAD_INPUTS.items() for v in vs]


@pytest.mark.parametrize(("name", "value"), BAD_CASES, ids=[f"{k}={v[:20]!r}" for k, v in BAD_CASES])
def test_an_input_refused_before_anything_is_written(workspace, fake_github, name, value):
    env = runner_env(workspace, fake_github, **{name: value})
    p = run_action(env, workspace)
    _assert_promises(p, workspace, fake_github, EXIT_USAGE, says=name, nothing_written=True)


# ------------------------------------------------- report mode, bad reports

BAD_REPORTS = {
    "broken": b'{"legs": [',
    "not-utf8": b'{"legs": [], "id": "\xff\xfe"}',
    "400-digit-number": b'{"version": ' + b"9" * 400 + b', "legs": []}',
    "5000-digit-number": b'{"version": ' + b"9" * 5000 + b', "legs": []}',
    "infinity": b'{"version": 1e400, "legs": []}',
    "nan": b'{"version": NaN, "legs": []}',
    "a-list": b"[]",
    "legs-a-string": b'{"version": 2, "legs": "x"}',
    "outcome-status-a-number": b'{"version": 2, "legs": [{"key": "a", "outcomes": [{"wheel": "x.whl", "status": 5}]}]}',
    "deep": b'{"legs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge": b'{"legs": [], "pad": "' + b"x" * (65 << 20) + b'"}',
    "empty": b"",
}


@pytest.mark.parametrize("kind", list(BAD_REPORTS), ids=list(BAD_REPORTS))
def test_report_mode_on_a_report_that_is_broken(workspace, fake_github, kind):
    reports = workspace / "reports" / "leg-1"
    reports.mkdir(parents=True)
    (reports / "wheelvet-report.json").write_bytes(BAD_REPORTS[kind])
    env = runner_env(workspace, fake_github, mode="report", wheels="reports/*/wheelvet-report.json")
    p = run_action(env, workspace)
    _assert_promises(p, workspace, fake_github, EXIT_INVALID, says="wheelvet-report.json", nothing_written=True)


# ------------------------------------------- wheel names with odd characters

ODD_NAMES = {
    "escape": "pkg-1.0-cp311-cp311-linux_x86_64\x1b[2J.whl",
    "bidi": "pkg\u202e-1.0-cp311-cp311-linux_x86_64.whl",
    "newline": "pkg-1.0-cp311-cp311-linux_x86_64\n::error::x.whl",
    "brackets": "pkg-1.0[x]-cp311-cp311-linux_x86_64.whl",
    "workflow-command": "::set-output name=x::y-1.0-cp311-cp311-linux_x86_64.whl",
}


@pytest.mark.parametrize("kind", list(ODD_NAMES) + ["not-utf8"], ids=list(ODD_NAMES) + ["not-utf8"])
def test_a_wheel_name_with_odd_characters_is_named_not_obeyed(workspace, fake_github, kind):
    dist = workspace / "dist"
    good = next(dist.glob("*.whl"))
    if kind == "not-utf8":
        target = os.path.join(os.fsencode(dist), b"pkg-1.0\xff-cp311-cp311-linux_x86_64.whl")
    else:
        target = os.fsencode(dist / ODD_NAMES[kind])
    os.rename(os.fsencode(good), target)
    env = runner_env(workspace, fake_github)
    p = run_action(env, workspace)
    out = p.stdout + p.stderr
    assert "internal error" not in out and p.returncode in (0, 1), out
    # every wheel matched is accounted for: processed (and named, escaped) or refused in the report
    report = json.loads((workspace / "wheelvet-out" / "wheelvet-report.json").read_text())
    assert len(report["legs"][0]["outcomes"]) == 1, report
    for line in p.stdout.splitlines():  # no name from a wheel starts a workflow command of its own
        assert not line.startswith("::set-output") and "\x1b" not in line and "\u202e" not in line
    assert not any(line.startswith("::error::x.whl") for line in p.stdout.splitlines())


def test_a_workspace_whose_path_holds_glob_characters(tmp_path, need_gcc, fake_github):
    from support import build_extension, write_wheel

    ws = tmp_path / "proj[1]" / "ws"
    ext = build_extension(tmp_path / "b", "spam")
    write_wheel(ws / "dist" / "pkg-1.0-cp311-cp311-linux_x86_64.whl", {f"pkg/{ext.name}": ext.read_bytes()})
    env = runner_env(ws, fake_github)
    p = run_action(env, ws)
    assert p.returncode == 0, p.stdout + p.stderr
    wheels = parse_outputs(ws.parent / "runner" / "output")["wheels"].splitlines()
    assert len(wheels) == 1 and zipfile.is_zipfile(ws / wheels[0])
