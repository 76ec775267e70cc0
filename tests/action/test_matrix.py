"""The action as a build matrix runs it: many legs of one job in one workflow
run, started at the same moment as separate processes, every input at its
default, against the strict fakes of GitHub's REST API and the artifact
service; re-runs; a leg whose wheels all fail; a leg that never reports;
mislabelled and retag-only wheels; the comparison with the base branch."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fake_artifacts import FakeArtifactService, runtime_token
from support import HAVE_GCC, build_extension, build_lib_chain, write_wheel
from support_html import github_html, parse
from test_action import REPO_NAME, parse_outputs

RUN_BACKEND = "run-backend-matrix"
MATHY = dict(body="#include <math.h>", call="exp(1.0)")  # exp@GLIBC_2.29: not manylinux2014


@pytest.fixture
def artifacts():
    with FakeArtifactService(runtime_token(RUN_BACKEND, "job-0")) as service:
        yield service


@pytest.fixture(scope="module")
def exts(tmp_path_factory):
    if not HAVE_GCC:
        pytest.skip("gcc is not installed: the legs' extensions are compiled")
    d = tmp_path_factory.mktemp("exts")
    libs = build_lib_chain(d / "lib")
    return {
        "plain": build_extension(d / "p", "plain", call="1").read_bytes(),
        "mathy": build_extension(d / "m", "mathy", "-lm", "-fno-builtin", **MATHY).read_bytes(),
        # found through its own (inherited) RPATH, so every input stays at its default
        "linked": build_extension(d / "l", "linked", f"-L{libs}", "-l:libA.so.1", f"-Wl,-rpath,{libs}",
                                  "-Wl,--disable-new-dtags", body="int a_value(void);", call="a_value()").read_bytes(),
        "libs": libs,
    }


def leg_workspace(root: Path, name: str, wheels: dict[str, tuple[str, bytes]]) -> Path:
    """A runner of its own: the checkout with dist/ holding this leg's wheels."""
    ws = root / name / "ws"
    for filename, (module, data) in wheels.items():
        tag = filename[:-4].split("-", 2)[2]
        write_wheel(ws / "dist" / filename, {f"pkg/{module}.cpython-311-x86_64-linux-gnu.so": data}, tag=tag)
    return ws


def leg_env(ws: Path, fake, artifacts, job_backend: str, *, attempt: int = 1, event: dict | None = None,
            **inputs: str) -> dict:
    """What the runner gives the container of one leg: the same GITHUB_JOB for
    every leg, a runtime token of its own, the inputs at their defaults."""
    runner = ws.parent / "runner"
    runner.mkdir(exist_ok=True)
    payload = event or {"pull_request": {"number": 12, "head": {"sha": "c0ffee", "repo": {"full_name": REPO_NAME}},
                                         "base": {"ref": "main", "repo": {"full_name": REPO_NAME}}}}
    (runner / "event.json").write_text(json.dumps(payload))
    for name in ("output", "summary"):
        (runner / name).write_text("")
    token = artifacts.accept(runtime_token(RUN_BACKEND, job_backend))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "ACTIONS_"))
           and k not in ("LD_LIBRARY_PATH", "AUDITWHEEL_LD_LIBRARY_PATH")}
    env.update(
        GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(ws), GITHUB_EVENT_NAME="pull_request",
        GITHUB_EVENT_PATH=str(runner / "event.json"), GITHUB_REPOSITORY=REPO_NAME, GITHUB_RUN_ID="5151",
        GITHUB_RUN_ATTEMPT=str(attempt), GITHUB_SERVER_URL="https://github.example", GITHUB_JOB="build",
        GITHUB_WORKFLOW="wheels", GITHUB_WORKFLOW_REF=f"{REPO_NAME}/.github/workflows/wheels.yml@refs/pull/12/merge",
        GITHUB_SHA="mergesha", GITHUB_OUTPUT=str(runner / "output"), GITHUB_STEP_SUMMARY=str(runner / "summary"),
        ACTIONS_RUNTIME_TOKEN=token, ACTIONS_RESULTS_URL=artifacts.url,
        # the runner passes every input, at the default action.yml declares
        INPUT_GITHUB_TOKEN=fake.token, **{"INPUT_GITHUB-TOKEN": fake.token, "INPUT_API-URL": fake.url},
        WHEELVET_COMMENT_SETTLE="0.3,0.6,1.2",
    )
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    return env


def start(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wheelvet", "action"], env=env, cwd=env["GITHUB_WORKSPACE"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def wheelvet_comments(fake) -> list[dict]:
    return [c for c in fake.comments.get((REPO_NAME, 12), []) if c["body"].startswith("<!-- wheelvet-report: ")]


@pytest.fixture
def matrix(tmp_path, exts):
    """Four legs of job `build`, as cibuildwheel would hand them over."""
    return {
        "retag": leg_workspace(tmp_path, "retag", {"pkg-1.0-cp311-cp311-linux_x86_64.whl": ("plain", exts["plain"])}),
        "ok": leg_workspace(tmp_path, "ok", {"pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl":
                                             ("plain", exts["plain"])}),
        "mislabelled": leg_workspace(tmp_path, "bad", {"pkg-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl":
                                                       ("mathy", exts["mathy"])}),
        "grafts": leg_workspace(tmp_path, "grafts", {"pkg-1.0-cp39-cp39-linux_x86_64.whl": ("linked", exts["linked"])}),
    }


def test_four_legs_at_once_keep_their_artifacts_and_share_one_comment(matrix, fake_github, artifacts):
    envs = {name: leg_env(ws, fake_github, artifacts, f"job-{name}") for name, ws in matrix.items()}
    procs = {name: start(env) for name, env in envs.items()}  # all legs finish at the same moment
    results = {name: finish(p) for name, p in procs.items()}

    # every job exits as its wheels deserve
    assert {n: r[0] for n, r in results.items()} == {"retag": 0, "ok": 0, "mislabelled": 1, "grafts": 0}, results
    outputs = {n: parse_outputs(matrix[n].parent / "runner" / "output") for n in matrix}
    assert {n: o["status"] for n, o in outputs.items()} == {"retag": "success", "ok": "success",
                                                            "mislabelled": "failure", "grafts": "success"}
    # what cibuildwheel handed over and already meets its tags passes through with its name
    assert outputs["ok"]["wheels"] == "wheelvet-out/pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    # every leg's artifacts exist once, named after the leg; nothing was refused as a duplicate
    names = sorted(a.name for a in artifacts.finalized())
    assert len(names) == len(set(names)) == 8, names
    assert {n for n in names if n.startswith("wheelvet-report-")} == {
        "wheelvet-report-build-cp311-linux_x86_64", "wheelvet-report-build-cp312-manylinux_2_17_x86_64",
        "wheelvet-report-build-cp310-manylinux_2_17_x86_64", "wheelvet-report-build-cp39-linux_x86_64"}
    assert not artifacts.violations and not artifacts.deleted()
    for n in matrix:
        assert "409" not in results[n][1] + results[n][2]

    # the pull request holds exactly one wheelvet comment, listing every leg's wheels
    (comment,) = wheelvet_comments(fake_github)
    body = comment["body"]
    assert body.count("<!-- wheelvet-report: wheelvet -->") == 1
    tree = parse(github_html(body))
    (h3,) = tree.root.find("h3")
    assert h3.text() == "❌ 1 of 4 wheels is mislabelled manylinux2014: pkg cp310 · manylinux_2_17_x86_64 needs GLIBC_2.29"
    for short in ("cp311 · manylinux_2_5_x86_64", "cp312 · manylinux_2_17_x86_64", "cp310 · manylinux_2_17_x86_64",
                  "cp39 · manylinux_2_5_x86_64"):
        assert f"`{short}`" in body, short
    assert "from 4 legs" in tree.root.find("sub")[0].text()
    # nothing green for the wheel that does not meet its tags
    bad_rows = [tr for tr in tree.root.find("tr") if "cp310" in tr.text()]
    assert bad_rows and all("✅" not in tr.text() for tr in bad_rows)
    retagged = next(tr for tr in tree.root.find("tr") if "cp311" in tr.text())
    assert "retagged" in retagged.text()

    # a re-run of the failed leg: attempt 2 replaces its artifacts and its part, one comment still
    fixed = matrix["mislabelled"]
    for old in (fixed / "dist").iterdir():
        old.unlink()
    shutil.copy(matrix["ok"] / "dist" / "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                fixed / "dist" / "pkg-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    code, out, _err = finish(start(leg_env(fixed, fake_github, artifacts, "job-mislabelled-2", attempt=2)))
    assert code == 0, out
    assert sorted(a.name for a in artifacts.finalized()) == names  # the same 8 names, replaced
    assert sorted(json.loads(d)["name"] for d in artifacts.deleted()) == [
        "wheelvet-build-cp310-manylinux_2_17_x86_64", "wheelvet-report-build-cp310-manylinux_2_17_x86_64"]
    (comment,) = wheelvet_comments(fake_github)
    assert parse(github_html(comment["body"])).root.find("h3")[0].text() == "✅ 4 wheels meet their tags (1 repaired, 1 retagged)"


def test_a_leg_whose_wheels_all_fail_still_reports_and_mode_report_counts_the_missing(
        matrix, fake_github, artifacts, tmp_path):
    env = leg_env(matrix["mislabelled"], fake_github, artifacts, "job-bad", comment="never")
    assert finish(start(env))[0] == 1
    env = leg_env(matrix["ok"], fake_github, artifacts, "job-ok", comment="never")
    assert finish(start(env))[0] == 0
    reports = {a.name: a.files()["wheelvet-report.json"] for a in artifacts.finalized() if a.name.startswith("wheelvet-report-")}
    assert len(reports) == 2  # the failing leg's report is uploaded too
    # the workflow_run job downloads them (download-artifact, pattern wheelvet-report-*) and combines them
    ws = tmp_path / "report" / "ws"
    for name, data in reports.items():
        (ws / "reports" / name).mkdir(parents=True)
        (ws / "reports" / name / "wheelvet-report.json").write_bytes(data)
    fake_github.add_run(REPO_NAME, "wheels.yml", "feature", "c0ffee", conclusion="failure",
                        jobs=[("build (3.10)", "failure"), ("build (3.12)", "success"), ("build (3.13)", "cancelled")])
    run_id = fake_github.runs[REPO_NAME][-1]["id"]
    event = {"workflow_run": {"id": run_id, "event": "pull_request", "head_sha": "c0ffee",
                              "pull_requests": [{"number": 12}]}}
    env = leg_env(ws, fake_github, artifacts, "job-report", event=event, mode="report",
                  wheels="reports/*/wheelvet-report.json", **{"expected-legs": "3"})
    env["GITHUB_EVENT_NAME"] = "workflow_run"
    code, out, err = finish(start(env))
    assert code == 1, out + err  # a failed leg and a cancelled one: fail-on error
    (comment,) = wheelvet_comments(fake_github)
    body = comment["body"]
    assert "did not report" in body and "build (3.13) (cancelled)" in body and "build (3.10) (failure)" in body
    assert "❌ mislabelled" in body


def test_report_id_with_spaces_and_non_ascii_has_one_marker(matrix, fake_github, artifacts):
    for attempt in (1, 2):
        env = leg_env(matrix["mislabelled"], fake_github, artifacts, f"job-{attempt}", attempt=attempt,
                      **{"report-id": "Build wheels/build – prüfen"})
        assert finish(start(env))[0] == 1
    (comment,) = wheelvet_comments(fake_github)
    first, *rest = comment["body"].splitlines()
    assert first == "<!-- wheelvet-report: Build%20wheels/build%20%E2%80%93%20pr%C3%BCfen -->"
    assert not any(line.startswith("<!-- wheelvet-report") for line in rest)


def test_a_retag_alone_posts_no_comment_but_updates_one(matrix, fake_github, artifacts):
    env = leg_env(matrix["retag"], fake_github, artifacts, "job-retag")
    code, out, _ = finish(start(env))
    assert code == 0 and wheelvet_comments(fake_github) == [], out
    fake_github.add_comment(REPO_NAME, 12, "<!-- wheelvet-report: wheelvet -->\nan earlier report")
    assert finish(start(leg_env(matrix["retag"], fake_github, artifacts, "job-retag-2", attempt=2)))[0] == 0
    (comment,) = wheelvet_comments(fake_github)
    assert "🏷️ retagged" in comment["body"] and "an earlier report" not in comment["body"]


def test_the_action_never_takes_its_own_outputs_as_inputs(matrix, fake_github, artifacts):
    ws = matrix["retag"]
    env = leg_env(ws, fake_github, artifacts, "job-1", wheels="**/*.whl", upload="false", comment="never")
    assert finish(start(env))[0] == 0
    assert [p.name for p in (ws / "wheelvet-out").glob("*.whl")] == ["pkg-1.0-cp311-cp311-manylinux1_x86_64.manylinux_2_5_x86_64.whl"]
    code, out, _ = finish(start(leg_env(ws, fake_github, artifacts, "job-2", wheels="**/*.whl", upload="false",
                                        comment="never")))
    assert code == 0 and out.count("::group::wheelvet repair") == 1  # the earlier output is not audited again
    assert not (Path.cwd() / "wheelhouse").exists()


# ------------------------------------------------------------------ against the base branch


def base_report_zip(ws: Path) -> bytes:
    """What a base run's report artifact holds: the JSON report that leg wrote."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(ws / "wheelvet-out" / "wheelvet-report.json", "wheelvet-report.json")
    return buf.getvalue()


def test_a_regression_against_the_base_branch(tmp_path, exts, fake_github, artifacts):
    """On main, pkg cp310 was manylinux2014; this pull request makes it need GLIBC_2.29."""
    main = leg_workspace(tmp_path, "main", {"pkg-1.0-cp310-cp310-linux_x86_64.whl": ("plain", exts["plain"])})
    assert finish(start(leg_env(main, fake_github, artifacts, "job-main", upload="false", comment="never")))[0] == 0
    fake_github.add_run(REPO_NAME, "wheels.yml", "main", "base0sha",
                        artifacts={"wheelvet-report-build-cp310-linux_x86_64": base_report_zip(main),
                                   "wheelvet-build-cp310-linux_x86_64": b"wheels, not read"})
    pr = leg_workspace(tmp_path, "pr", {"pkg-1.0-cp310-cp310-linux_x86_64.whl": ("mathy", exts["mathy"])})
    code, out, err = finish(start(leg_env(pr, fake_github, artifacts, "job-pr", **{"fail-on": "error,regression"})))
    assert code == 1, out + err
    assert "regression against the base branch: manylinux_2_5_x86_64 -> manylinux_2_31_x86_64 (exp@GLIBC_2.29 in pkg/" in out
    body = wheelvet_comments(fake_github)[0]["body"]
    assert "**Against `main`:**" in body and "🔻 `cp310 · manylinux_2_31_x86_64`: `manylinux1` → `manylinux_2_31`" in body
    downloads = [r for r in fake_github.requests if r.path.startswith("/blob-download/")]
    assert len(downloads) == 1 and "Authorization" not in downloads[0].headers  # only the report, without the token
    # without the regression gate the same change is reported, not failed
    code, _out, _err = finish(start(leg_env(pr, fake_github, artifacts, "job-pr-2", attempt=2)))
    assert code == 0


def test_no_base_report_is_one_line_and_no_failure(matrix, fake_github, artifacts):
    fake_github.actions_read = False
    code, out, _ = finish(start(leg_env(matrix["grafts"], fake_github, artifacts, "job-1", comment="always")))
    assert code == 0, out
    body = wheelvet_comments(fake_github)[0]["body"]
    shown = parse(github_html(body)).root.text()
    assert "ℹ️ No comparison with main: the token may not read workflow runs (give the job the actions: read permission)" in shown, shown
    fake_github.actions_read = True
    fake_github.add_run(REPO_NAME, "wheels.yml", "main", "old", artifacts={"wheelvet-report-x": b"PK"}, expired=True)
    finish(start(leg_env(matrix["grafts"], fake_github, artifacts, "job-2", attempt=2, comment="always")))
    body = wheelvet_comments(fake_github)[0]["body"]
    assert "no successful run of wheels.yml on main left a wheelvet report" in body


def test_a_size_budget_against_the_base(tmp_path, exts, fake_github, artifacts):
    main = leg_workspace(tmp_path, "main", {"pkg-1.0-cp39-cp39-linux_x86_64.whl": ("plain", exts["plain"])})
    assert finish(start(leg_env(main, fake_github, artifacts, "job-main", upload="false", comment="never")))[0] == 0
    fake_github.add_run(REPO_NAME, "wheels.yml", "main", "b", artifacts={"wheelvet-report-build": base_report_zip(main)})
    grown = leg_workspace(tmp_path, "pr", {"pkg-1.0-cp39-cp39-linux_x86_64.whl": ("linked", exts["linked"])})
    code, out, _ = finish(start(leg_env(grown, fake_github, artifacts, "job-pr", **{"max-size-increase": "10%"})))
    assert code == 1 and "more than the max-size-increase of 10%" in out
    body = wheelvet_comments(fake_github)[0]["body"]
    assert "now grafts `libA.so.1`, `libB.so.2`" in body


def test_the_report_says_when_grafting_raised_a_wheels_tag(tmp_path, fake_github, artifacts):
    """The extension itself is manylinux1; the library it needs (from the build
    machine, grafted) needs GLIBC_2.29: the repaired wheel is less compatible
    than the wheel's own files, and the report says which library did it."""
    from support import cc

    lib = cc(tmp_path / "lib" / "libnewer.so.1", {"n.c": "#include <math.h>\ndouble newer(double x){return exp(x);}"},
             "-Wl,-soname,libnewer.so.1", "-lm", "-fno-builtin")
    ext = build_extension(tmp_path / "e", "riser", f"-L{lib.parent}", "-l:libnewer.so.1", f"-Wl,-rpath,{lib.parent}",
                          "-Wl,--disable-new-dtags", body="double newer(double);", call="newer(1.0)")
    ws = tmp_path / "rise" / "ws"
    write_wheel(ws / "dist" / "pkg-1.0-cp311-cp311-linux_x86_64.whl", {f"pkg/{ext.name}": ext.read_bytes()})
    code, out, err = finish(start(leg_env(ws, fake_github, artifacts, "job-rise", comment="always")))
    assert code == 0, out + err
    assert "::warning file=dist/pkg-1.0-cp311-cp311-linux_x86_64.whl,title=wheelvet::" in out
    assert "grafting raised its tag from manylinux_2_5_x86_64 to manylinux_2_31_x86_64" in out
    body = wheelvet_comments(fake_github)[0]["body"]
    assert "🔺" in body and "`GLIBC_2.29`" in body and "libnewer.so.1" in body


def test_a_fork_compares_with_its_read_only_token_and_reports_in_the_summary(tmp_path, exts, fake_github, artifacts):
    main = leg_workspace(tmp_path, "main", {"pkg-1.0-cp310-cp310-linux_x86_64.whl": ("plain", exts["plain"])})
    assert finish(start(leg_env(main, fake_github, artifacts, "job-main", upload="false", comment="never")))[0] == 0
    fake_github.add_run(REPO_NAME, "wheels.yml", "main", "b", artifacts={"wheelvet-report-build": base_report_zip(main)})
    fake_github.read_only = True  # a fork's token: it may read runs and artifacts, not write comments
    fork = leg_workspace(tmp_path, "fork", {"pkg-1.0-cp310-cp310-linux_x86_64.whl": ("mathy", exts["mathy"])})
    env = leg_env(fork, fake_github, artifacts, "job-fork", comment="always")
    code, out, _ = finish(start(env))
    assert code == 0 and "::notice::no pull-request comment (GitHub answered 403" in out
    summary = (fork.parent / "runner" / "summary").read_text()
    assert "**Against `main`:**" in summary and "🔻" in summary
    # and the JSON report a workflow_run job combines carries the comparison
    report = json.loads((fork / "wheelvet-out" / "wheelvet-report.json").read_text())
    assert report["base"]["ref"] == "main" and report["legs"][0]["outcomes"][0]["change"]["direction"] == "less-compatible"
