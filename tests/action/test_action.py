"""`wheelvet action` as the runner starts it: a subprocess with the environment a
container action gets, against local fakes of GitHub's REST API (and of the
artifact service)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import build_extension, build_lib_chain, clean_env, write_wheel  # noqa: E402

REPO_NAME = "octo/wheels"


def parse_outputs(path: Path) -> dict[str, str]:
    out, text = {}, path.read_text()
    for m in re.finditer(r"^([a-z-]+)<<(\S+)\n(.*?)\n\2\n", text, re.S | re.M):
        out[m[1]] = m[3]
    return out


def runner_env(ws: Path, fake, *, event: str = "pull_request", fork: bool = False, **inputs: str) -> dict:
    runner = ws.parent / "runner"
    runner.mkdir(exist_ok=True)
    payload = {}
    if event == "pull_request":
        head = "stranger/wheels" if fork else REPO_NAME
        payload = {"pull_request": {"number": 12, "head": {"repo": {"full_name": head}}, "base": {"repo": {"full_name": REPO_NAME}}}}
    (runner / "event.json").write_text(json.dumps(payload))
    for name in ("output", "summary"):
        (runner / name).write_text("")
    env = clean_env(
        GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(ws), GITHUB_EVENT_NAME=event,
        GITHUB_EVENT_PATH=str(runner / "event.json"), GITHUB_REPOSITORY=REPO_NAME, GITHUB_RUN_ID="4242",
        GITHUB_SERVER_URL="https://github.example", GITHUB_JOB="wheels", GITHUB_WORKFLOW="ci",
        GITHUB_OUTPUT=str(runner / "output"), GITHUB_STEP_SUMMARY=str(runner / "summary"),
        # one leg at a time here: the comment's read-back need not wait for
        # legs finishing at the same moment (test_matrix.py sets its own)
        WHEELVET_COMMENT_SETTLE="0.05",
    )
    env.pop("GITHUB_TOKEN", None)
    defaults = {"INPUT_WHEELS": "dist/*.whl", "INPUT_LD-LIBRARY-PATH": "build/lib", "INPUT_UPLOAD": "false",
                "INPUT_GITHUB-TOKEN": fake.token, "INPUT_API-URL": fake.url}
    env.update(defaults)
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    return env


def run_action(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "wheelvet", "action"], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_repair_comment_created_then_edited(workspace, fake_github):
    env = runner_env(workspace, fake_github)
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stdout + p.stderr
    runner = workspace.parent / "runner"
    out = parse_outputs(runner / "output")
    from wheelvet.action import OUTPUT_NAMES

    assert set(out) == set(OUTPUT_NAMES)
    assert out["status"] == "success"
    assert out["policy"].startswith("manylinux_")
    wheels = out["wheels"].splitlines()
    assert len(wheels) == 1 and wheels[0].startswith("wheelvet-out/") and "manylinux" in wheels[0]
    names = zipfile.ZipFile(workspace / wheels[0]).namelist()
    assert any(n.startswith("pkg.libs/libA-") for n in names) and any(n.startswith("pkg.libs/libB-") for n in names)
    assert out["report"] == "wheelvet-out/wheelvet-report.md" and out["report-json"] == "wheelvet-out/wheelvet-report.json"
    report = json.loads((workspace / out["report-json"]).read_text())
    assert report["legs"][0]["outcomes"][0]["status"] == "repaired"
    assert {g["soname"] for g in report["legs"][0]["outcomes"][0]["grafted"]} == {"libA.so.1", "libB.so.2"}
    comments = fake_github.comments[(REPO_NAME, 12)]
    assert len(comments) == 1 and out["comment-url"] == comments[0]["html_url"]
    assert "libA.so.1" in comments[0]["body"] and "<table" not in comments[0]["body"][:50]
    summary = (runner / "summary").read_text()
    assert "libA.so.1" in summary
    assert "::group::" in p.stdout and "::add-mask::" in p.stdout

    # a second push: the same comment, edited
    (runner / "output").write_text("")
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stderr
    assert len(fake_github.comments[(REPO_NAME, 12)]) == 1
    assert parse_outputs(runner / "output")["comment-url"] == comments[0]["html_url"]
    assert sum(1 for r in fake_github.requests if r.method == "PATCH") == 1


def test_fork_pull_request_without_write_access_does_not_fail(workspace, fake_github):
    fake_github.read_only = True
    env = runner_env(workspace, fake_github, fork=True)
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stderr
    assert "::notice" in p.stdout and "403" in p.stdout
    runner = workspace.parent / "runner"
    assert parse_outputs(runner / "output")["comment-url"] == ""
    assert "libA.so.1" in (runner / "summary").read_text()


def test_push_event_posts_nothing(workspace, fake_github):
    env = runner_env(workspace, fake_github, event="push")
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stderr
    assert fake_github.requests == []


def test_failing_wheel_fails_the_step_with_an_annotation(workspace, fake_github, tmp_path):
    ext = build_extension(tmp_path / "m", "mathy", "-lm", "-fno-builtin", body="#include <math.h>", call="exp(1.0)")
    write_wheel(workspace / "dist" / "m-1.0-cp311-cp311-linux_x86_64.whl", {f"m/{ext.name}": ext.read_bytes()})
    env = runner_env(workspace, fake_github, plat="manylinux2014_x86_64")
    p = run_action(env, workspace)
    assert p.returncode == 1
    assert re.search(r"^::error file=dist/m-1\.0-cp311-cp311-linux_x86_64\.whl,title=wheelvet::.*GLIBC_2\.29", p.stdout, re.M)
    out = parse_outputs(workspace.parent / "runner" / "output")
    assert out["status"] == "failure"
    body = fake_github.comments[(REPO_NAME, 12)][0]["body"]
    assert "GLIBC_2.29" in body and "exp" in body
    env["INPUT_FAIL-ON"] = "never"
    (workspace.parent / "runner" / "output").write_text("")
    assert run_action(env, workspace).returncode == 0


def test_fail_on_a_minimum_policy(workspace, fake_github):
    env = runner_env(workspace, fake_github, **{"fail-on": "manylinux_2_99"})
    p = run_action(env, workspace)
    assert p.returncode == 2 and "fail-on" in p.stderr  # not a policy: a usage error, one line
    env = runner_env(workspace, fake_github, **{"fail-on": "manylinux2014"})
    assert run_action(env, workspace).returncode == 0  # the example reaches a more compatible tag


def test_audit_mode_checks_without_writing_wheels(workspace, fake_github):
    # its own tag, linux_x86_64, is met
    env = runner_env(workspace, fake_github, mode="audit")
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stdout
    out = parse_outputs(workspace.parent / "runner" / "output")
    assert out["status"] == "success" and out["wheels"] == "dist/pkg-1.0-cp311-cp311-linux_x86_64.whl"
    assert not any(Path(workspace, "wheelvet-out").glob("*.whl"))
    # manylinux2014 is not: its libraries are outside the wheel
    env = runner_env(workspace, fake_github, mode="audit", plat="manylinux2014")
    p = run_action(env, workspace)
    assert p.returncode == 1
    assert "cannot be manylinux_2_17_x86_64: needs libA.so.1" in p.stdout
    report = json.loads((workspace / "wheelvet-out" / "wheelvet-report.json").read_text())
    assert report["legs"][0]["outcomes"][0]["status"] == "failed"


def test_before_repair_runs_first_and_its_failure_stops_the_step(workspace, fake_github):
    env = runner_env(workspace, fake_github, **{"before-repair": "echo prepared > before.txt"})
    assert run_action(env, workspace).returncode == 0
    assert (workspace / "before.txt").read_text() == "prepared\n"
    env = runner_env(workspace, fake_github, **{"before-repair": "exit 7"})
    p = run_action(env, workspace)
    assert p.returncode == 2 and "before-repair failed with exit code 7" in p.stderr


def test_report_mode_combines_job_reports_into_one_comment(workspace, fake_github, tmp_path):
    env = runner_env(workspace, fake_github, comment="never")
    assert run_action(env, workspace).returncode == 0
    reports = workspace / "reports"
    (reports / "a").mkdir(parents=True)
    (reports / "b").mkdir()
    data = json.loads((workspace / "wheelvet-out" / "wheelvet-report.json").read_text())
    (reports / "a" / "wheelvet-report.json").write_text(json.dumps(data))
    data["legs"][0]["key"] = "wheels-cp311-linux_aarch64"
    data["legs"][0]["label"] = "wheels · cp311 · linux_aarch64"
    data["legs"][0]["outcomes"][0]["wheel"] = "pkg-1.0-cp311-cp311-linux_aarch64.whl"
    data["legs"][0]["outcomes"][0]["claimed"] = ["linux_aarch64"]
    (reports / "b" / "wheelvet-report.json").write_text(json.dumps(data))
    env = runner_env(workspace, fake_github, mode="report", wheels="reports/*/wheelvet-report.json", **{"report-id": "wheels"})
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stderr
    comments = fake_github.comments[(REPO_NAME, 12)]
    assert len(comments) == 1
    assert "linux_aarch64" in comments[0]["body"] and "linux_x86_64" in comments[0]["body"]


def test_token_never_leaks(workspace, fake_github):
    env = runner_env(workspace, fake_github)
    p = run_action(env, workspace)
    assert p.returncode == 0
    token = fake_github.token
    runner = workspace.parent / "runner"
    places = [p.stderr, (runner / "output").read_text(), (runner / "summary").read_text()]
    places += [c["body"] for c in fake_github.comments[(REPO_NAME, 12)]]
    places += [f.read_text(errors="replace") for f in (workspace / "wheelvet-out").glob("*.json")]
    places += [f.read_text(errors="replace") for f in (workspace / "wheelvet-out").glob("*.md")]
    for whl in (workspace / "wheelvet-out").glob("*.whl"):
        places.append(whl.read_bytes().decode("latin-1"))
    assert all(token not in text for text in places)
    # stdout carries it exactly once: in the ::add-mask:: command that hides it
    assert p.stdout.count(token) == 1 and f"::add-mask::{token}" in p.stdout


def test_no_wheels_is_a_clear_error(tmp_path, fake_github):
    ws = tmp_path / "empty"
    ws.mkdir()
    p = run_action(runner_env(ws, fake_github), ws)
    assert p.returncode == 2 and "no wheel matches dist/*.whl" in p.stderr


def test_artifact_upload_through_the_artifact_service(workspace, fake_github):
    from fake_artifacts import FakeArtifactService, runtime_token

    token = runtime_token("run-backend-1", "job-backend-7")
    with FakeArtifactService(token) as service:
        env = runner_env(workspace, fake_github, upload="true", **{"artifact-name": "wheels-linux"})
        env.update(ACTIONS_RUNTIME_TOKEN=token, ACTIONS_RESULTS_URL=service.url + "/")
        p = run_action(env, workspace)
        assert p.returncode == 0, p.stdout + p.stderr
        out = parse_outputs(workspace.parent / "runner" / "output")
        stored = service.artifact("wheels-linux")
        assert out["artifact-id"] == str(stored.artifact_id)
        assert out["artifact-url"] == f"https://github.example/{REPO_NAME}/actions/runs/4242/artifacts/{stored.artifact_id}"
        files = stored.files()
        wheel = out["wheels"]
        assert files[Path(wheel).name] == (workspace / wheel).read_bytes()
        assert json.loads(files["wheelvet-report.json"])["legs"][0]["outcomes"][0]["status"] == "repaired"
        assert not service.violations
        assert token not in p.stdout.replace(f"::add-mask::{token}", "") and token not in p.stderr


def test_artifact_service_failure_fails_the_step_without_leaking(workspace, fake_github):
    from fake_artifacts import FakeArtifactService, runtime_token

    token = runtime_token("run-backend-1", "job-backend-7")
    with FakeArtifactService(token) as service:
        service.fail_next(1, 403)
        env = runner_env(workspace, fake_github, upload="true")
        env.update(ACTIONS_RUNTIME_TOKEN=token, ACTIONS_RESULTS_URL=service.url)
        p = run_action(env, workspace)
        assert p.returncode == 5  # the README's code for a service that failed
        assert parse_outputs(workspace.parent / "runner" / "output")["status"] == "failure"
        assert "::error::artifact upload failed" in p.stdout
        assert token not in p.stdout.replace(f"::add-mask::{token}", "")
        # the rest of the job still happened: the report and the comment
        assert len(fake_github.comments[(REPO_NAME, 12)]) == 1


def test_workflow_run_event_comments_on_its_pull_request(workspace, fake_github):
    env = runner_env(workspace, fake_github, event="workflow_run")
    event = {"workflow_run": {"id": 99, "head_sha": "abc", "pull_requests": [{"number": 31, "head": {"sha": "abc"}}]}}
    Path(env["GITHUB_EVENT_PATH"]).write_text(json.dumps(event))
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stderr
    assert len(fake_github.comments[(REPO_NAME, 31)]) == 1


def test_workflow_run_from_a_fork_finds_its_pull_request_by_head(workspace, fake_github):
    fake_github.add_pull(REPO_NAME, 40, "stranger/wheels", "feature", "0ld")  # same branch, older head
    fake_github.add_pull(REPO_NAME, 41, "stranger/wheels", "feature", "c0ffee")
    env = runner_env(workspace, fake_github, event="workflow_run")
    event = {"workflow_run": {"id": 99, "event": "pull_request", "head_sha": "c0ffee", "head_branch": "feature",
                              "pull_requests": [], "head_repository": {"full_name": "stranger/wheels"},
                              "repository": {"full_name": REPO_NAME}}}
    Path(env["GITHUB_EVENT_PATH"]).write_text(json.dumps(event))
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stderr
    assert len(fake_github.comments[(REPO_NAME, 41)]) == 1 and (REPO_NAME, 40) not in fake_github.comments


def test_a_mislabelled_wheel_fails_the_step_and_is_written_honestly(workspace, fake_github, tmp_path):
    """A manylinux2014 wheel that needs GLIBC_2.29: no green anywhere; the wheel
    written under the tag it meets; the symbol and file named."""
    ext = build_extension(tmp_path / "m", "mathy", "-lm", "-fno-builtin", body="#include <math.h>", call="exp(1.0)")
    for old in (workspace / "dist").iterdir():
        old.unlink()
    write_wheel(workspace / "dist" / "m-1.0-cp311-cp311-manylinux2014_x86_64.whl", {f"m/{ext.name}": ext.read_bytes()},
                tag="cp311-cp311-manylinux2014_x86_64")
    p = run_action(runner_env(workspace, fake_github), workspace)
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(r"^::error file=dist/m-1\.0-cp311-cp311-manylinux2014_x86_64\.whl,title=wheelvet::.*claims "
                     r"manylinux2014_x86_64 but needs GLIBC_2\.29 from libm\.so\.6 \(exp in m/mathy", p.stdout, re.M)
    out = parse_outputs(workspace.parent / "runner" / "output")
    assert out["status"] == "failure"
    (written,) = out["wheels"].splitlines()
    assert "manylinux2014" not in written and "manylinux_2_17" not in written
    body = fake_github.comments[(REPO_NAME, 12)][0]["body"]
    assert "✅" not in body.split("<sub>")[0]
    assert "❌ mislabelled" in body and "`GLIBC_2.29`" in body and "m/mathy" in body


def test_names_from_wheels_never_reach_a_shell(workspace, fake_github, tmp_path):
    """Member names full of shell syntax are data: nothing runs them."""
    evil = {"pkg/$(touch pwned-1).py": b"", "pkg/`touch pwned-2`.py": b"", "pkg/;touch pwned-3;.py": b""}
    ext = build_extension(tmp_path / "e", "spam", f"-L{workspace / 'build' / 'lib'}", "-l:libA.so.1",
                          body="int a_value(void);", call="a_value()")
    for old in (workspace / "dist").iterdir():
        old.unlink()
    write_wheel(workspace / "dist" / "pkg-1.0-cp311-cp311-linux_x86_64.whl", {f"pkg/{ext.name}": ext.read_bytes(), **evil})
    env = runner_env(workspace, fake_github, strip="true", **{"before-repair": "true"})
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stdout + p.stderr
    for d in (workspace, tmp_path, Path.cwd()):
        assert not list(d.glob("pwned-*"))


def test_hostile_names_never_become_workflow_commands(workspace, fake_github, tmp_path):
    """A wheel whose extension needs a library named like a workflow command
    (or a terminal escape) cannot inject into the log: the error annotation
    carries the name escaped, on one line, and so does the comment."""
    from support import craft_elf

    elf = craft_elf("x86_64", needed=("libc.so.6", "libx.so\n::error::injected\n::add-mask::x", "liby\x1b[2J.so"),
                    exports=("PyInit_spam",), imports=(("memcpy", "GLIBC_2.14", "libc.so.6"),))
    for old in (workspace / "dist").iterdir():
        old.unlink()
    write_wheel(workspace / "dist" / "pkg-1.0-cp311-cp311-linux_x86_64.whl", {"pkg/spam.so": elf})
    p = run_action(runner_env(workspace, fake_github), workspace)
    assert p.returncode == 1, p.stdout + p.stderr
    commands = [line for line in p.stdout.splitlines() if line.startswith("::")]
    assert not [c for c in commands if c.startswith(("::error::injected", "::add-mask::x"))], commands
    assert all(re.match(r"::(add-mask|group|endgroup|error|warning|notice)[ :]", c) for c in commands), commands
    error = next(c for c in commands if c.startswith("::error "))
    assert "libx.so\\n::error::injected\\n::add-mask::x" in error and "liby\\x1b[2J.so" in error
    assert "\x1b" not in p.stdout + p.stderr
    body = fake_github.comments[(REPO_NAME, 12)][0]["body"]
    assert "\x1b" not in body and "\n::error::injected" not in body


def test_providers_input_takes_libraries_from_the_wheels_required(workspace, fake_github):
    lib = workspace / "build" / "lib"
    write_wheel(workspace / "deps" / "prov-1.0-py3-none-manylinux_2_17_x86_64.whl",
                {"prov/lib/libA.so.1": (lib / "libA.so.1").read_bytes(), "prov/lib/libB.so.2": (lib / "libB.so.2").read_bytes()},
                tag="py3-none-manylinux_2_17_x86_64", purelib=True)
    dist = workspace / "dist" / "pkg-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(dist) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if ".dist-info/" not in n}
    write_wheel(dist, files, requires=("prov==1.*",))
    p = run_action(runner_env(workspace, fake_github, providers="deps/*.whl\n"), workspace)
    assert p.returncode == 0, p.stdout + p.stderr
    out = parse_outputs(workspace.parent / "runner" / "output")
    (wheel,) = out["wheels"].splitlines()
    assert not any(".libs/" in n for n in zipfile.ZipFile(workspace / wheel).namelist())  # nothing grafted
    outcome = json.loads((workspace / out["report-json"]).read_text())["legs"][0]["outcomes"][0]
    assert outcome["status"] == "repaired" and outcome["grafted"] == []
    assert outcome["provided"] == [{"soname": "libA.so.1", "distribution": "prov", "version": "1.0",
                                    "path": "prov/lib/libA.so.1", "requirement": "prov==1.*"}]


def test_a_providers_line_that_matches_nothing_is_a_usage_error(workspace, fake_github):
    p = run_action(runner_env(workspace, fake_github, providers="deps/*.whl"), workspace)
    assert p.returncode == 2 and "input providers: 'deps/*.whl' matches no wheel or directory" in p.stderr, p.stderr
