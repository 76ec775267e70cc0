"""``wheelvet action``: the GitHub Action's whole job, for any machine.

Given the environment the runner gives a container action (``INPUT_*``,
``GITHUB_*``, ``ACTIONS_RUNTIME_TOKEN``/``ACTIONS_RESULTS_URL``), it runs the
``before-repair`` command, audits (and repairs) the wheels, writes the
Markdown and JSON reports, the step summary, annotations and outputs, uploads
the artifact and keeps one pull-request comment up to date.

Nothing from a wheel is executed or put into a shell command; the only
command run is ``before-repair``, exactly as the user wrote it.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from dataclasses import dataclass, field

from .audit import AuditOptions, analyze
from .errors import EXIT_INTERNAL, EXIT_OK, EXIT_POLICY, EXIT_SERVICE, ServiceError, UsageError, WheelvetError
from .github import commands
from .escape import printable
from .github.settings import Settings, redact
from .policy import PolicySet, policy_set, resolve
from .repair import RepairOptions, apply_plan, plan_repair
from .report import markdown
from .wheelfile import read_wheel

REPORT_MD = "wheelvet-report.md"
REPORT_JSON = "wheelvet-report.json"


@dataclass
class Run:
    """What one run produced (mutable while the run goes on; not exported)."""

    outcomes: list = field(default_factory=list)
    outputs: list = field(default_factory=list)  # paths of wheels written (or checked)
    reached: list = field(default_factory=list)  # (wheel, libc, arch, tag) reached
    problems: list = field(default_factory=list)  # (level, file, message) annotations


def _rel(path: str, workspace: str) -> str:
    try:
        rel = os.path.relpath(path, workspace)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _find_wheels(settings: Settings) -> list[str]:
    found: dict[str, None] = {}
    for pattern in settings.wheels:
        full = pattern if os.path.isabs(pattern) else os.path.join(settings.workspace, pattern)
        for path in sorted(glob.glob(full, recursive=True)):
            if os.path.isfile(path):
                found.setdefault(os.path.abspath(path), None)
    return list(found)


def _audit_environment(settings: Settings, environ: dict) -> dict:
    env = dict(environ)
    if settings.ld_library_path:
        extra = ":".join(p if os.path.isabs(p) else os.path.join(settings.workspace, p)
                         for p in settings.ld_library_path.split(":") if p)
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [extra, env.get("LD_LIBRARY_PATH", "")]))
    return env


def _before_repair(settings: Settings, environ: dict) -> None:
    if not settings.before_repair:
        return
    with commands.group("before-repair"):
        sys.stdout.flush()
        # The user's own command, run as written (never with text from wheels).
        done = subprocess.run(["/bin/sh", "-c", settings.before_repair], cwd=settings.workspace, env=environ)
    if done.returncode != 0:
        raise UsageError(f"before-repair failed with exit code {done.returncode}")


def _one_wheel(path: str, settings: Settings, env: dict, out_dir: str, run: Run) -> None:
    rel = _rel(path, settings.workspace)
    audit_options = AuditOptions(environ=env, exclude=settings.exclude)
    size = os.path.getsize(path)
    try:
        analysis = analyze(read_wheel(path), audit_options)
    except WheelvetError as exc:
        run.outcomes.append(markdown.outcome_from_error(os.path.basename(path), str(exc), input_size=size))
        run.problems.append(("error", rel, str(exc)))
        return
    audit = analysis.audit
    if audit.pure and audit.error is None:
        run.outcomes.append(markdown.outcome_from_audit(audit, input_size=size))
        return
    if audit.error is not None:
        run.outcomes.append(markdown.outcome_from_audit(audit, input_size=size, error=audit.error))
        run.problems.append(("error", rel, audit.error))
        return
    if settings.mode == "audit":
        wanted = [settings.plat] if settings.plat != "auto" else list(audit.platforms)
        failing = [t for t in wanted if not audit.meets(_with_arch(t, audit.arch))]
        error = f"does not meet {', '.join(failing)} (meets {audit.overall_tag})" if failing else None
        run.outcomes.append(markdown.outcome_from_audit(audit, input_size=size, error=error,
                                                        policy=None if settings.plat == "auto" else settings.plat))
        run.outputs.append(path)
        run.reached.append((audit.wheel, audit.libc, audit.arch, audit.overall_tag))
        if error:
            run.problems.append(("error", rel, f"{audit.wheel} {error}"))
        return
    options = RepairOptions(plat=settings.plat, strip=settings.strip, exclude=settings.exclude)
    try:
        plan = plan_repair(analysis, options)
        written = apply_plan(plan, analysis, out_dir, environ=env, audit_options=audit_options)
    except WheelvetError as exc:  # refused (cannot meet the policy) or failed (patchelf, verification)
        run.outcomes.append(markdown.outcome_from_audit(audit, input_size=size, error=exc,
                                                        policy=None if settings.plat == "auto" else settings.plat))
        run.problems.append(("error", rel, str(exc)))
        return
    run.outcomes.append(markdown.outcome_from_audit(audit, plan=plan, output_path=written, input_size=size,
                                                    output_size=os.path.getsize(written)))
    if plan.dropped_tags:
        run.problems.append(("warning", rel, f"{audit.wheel} claimed {', '.join(plan.dropped_tags)}, which it does not "
                                             f"meet: repaired to {plan.policy} ({plan.out_name})"))
    run.outputs.append(written)
    run.reached.append((audit.wheel, audit.libc, audit.arch, plan.policy))


def _with_arch(tag: str, arch: str | None) -> str:
    return tag if not arch or tag.endswith("_" + arch) or tag.startswith("linux") else f"{tag}_{arch}"


def _least_compatible(run: Run) -> str:
    found = [p for p in (resolve(tag) for _wheel, _libc, _arch, tag in run.reached) if p is not None]
    return PolicySet.least(*found).name if found else ""


def _failed(settings: Settings, run: Run) -> bool:
    if settings.fail_on == "never":
        return False
    broken = any(o.status in ("failed", "error") for o in run.outcomes)
    if settings.fail_on == "error":
        return broken
    # a minimum policy every wheel must reach
    for wheel, libc, arch, tag in run.reached:
        pset = policy_set(libc or "glibc", arch or "")
        floor, got = pset.get(_with_arch(settings.fail_on, arch)), pset.get(tag)
        if floor is None:
            raise UsageError(f"input fail-on: {settings.fail_on!r} is not error, never or a policy for {arch}")
        if got is None or not pset.reaches(got, floor.name):
            run.problems.append(("error", None, f"{wheel} reaches {tag}, below the fail-on floor {floor.name}"))
            broken = True
    return broken


def _comment_mode(settings: Settings, report) -> str | None:
    """"upsert", "update" (only an existing comment: nothing new to say) or None."""
    if settings.comment == "never" or settings.pull_request is None or not settings.token:
        return None
    if settings.comment == "always" or any(o.status in ("failed", "error", "repaired") for o in report.outcomes):
        return "upsert"
    return "update"


def run_action(environ: dict) -> int:
    settings = Settings.from_environment(environ)
    commands.mask(settings.token)
    commands.mask(settings.runtime_token)
    out_dir = settings.wheel_dir if os.path.isabs(settings.wheel_dir) else os.path.join(settings.workspace, settings.wheel_dir)
    os.makedirs(out_dir, exist_ok=True)
    run = Run()

    if settings.mode == "report":
        reports = []
        for path in _find_wheels(settings):
            with open(path, encoding="utf-8") as f:
                reports.append(markdown.Report.from_json(f.read()))
        if not reports:
            raise UsageError(f"mode report: no JSON report matches {' '.join(settings.wheels)}")
        report = markdown.combine(reports, report_id=settings.report_id)
    else:
        env = _audit_environment(settings, environ)
        _before_repair(settings, env)
        wheels = _find_wheels(settings)
        if not wheels:
            raise UsageError(f"no wheel matches {' '.join(settings.wheels)} in {settings.workspace}")
        for path in wheels:
            with commands.group(f"wheelvet {settings.mode} {os.path.basename(path)}"):
                _one_wheel(path, settings, env, out_dir, run)
        report = markdown.Report(report_id=settings.report_id, title=_title(settings), jobs=(settings.job_label,),
                                 outcomes=tuple(run.outcomes))

    failed = _failed(settings, run) if settings.mode != "report" else any(o.status in ("failed", "error") for o in report.outcomes)
    summary_url = f"{settings.server_url}/{settings.repository}/actions/runs/{settings.run_id}" if settings.run_id else None
    body = markdown.render_markdown(report, summary_url=summary_url)
    md_path = os.path.join(out_dir, REPORT_MD)
    json_path = os.path.join(out_dir, REPORT_JSON)
    _write_atomically(md_path, body)
    _write_atomically(json_path, report.to_json())
    # The step summary holds up to 1 MiB; the limit counts characters, so leave room.
    commands.append_summary(settings.summary_file, markdown.render_markdown(report, max_chars=900_000))

    for level, file, message in run.problems:
        commands.annotate(level, message, file=file, title="wheelvet")

    outputs = {
        "wheels": "\n".join(_rel(p, settings.workspace) for p in run.outputs),
        "report": _rel(md_path, settings.workspace),
        "report-json": _rel(json_path, settings.workspace),
        "status": "failure" if failed else "success",
        "policy": _least_compatible(run),
        "artifact-id": "",
        "artifact-url": "",
        "comment-url": "",
    }

    upload_failed = False
    if settings.upload and settings.mode == "repair" and run.outputs:
        upload_failed = not _upload(settings, run, json_path, outputs)

    comment_failed = False
    mode = _comment_mode(settings, report)
    if mode:
        try:
            _comment(settings, body, mode, outputs)
        except ServiceError as exc:
            commands.annotate("error", str(exc), title="wheelvet")
            comment_failed = True

    # A service that failed fails the step (exit 5) after the rest of the job ran.
    if upload_failed or comment_failed:
        outputs["status"] = "failure"
    commands.write_outputs(settings.output_file, outputs)
    print(f"wheelvet: {outputs['status']}: {len(run.outputs)} wheel(s); report in {outputs['report']}")
    return max(EXIT_POLICY if failed else EXIT_OK, EXIT_SERVICE if (upload_failed or comment_failed) else EXIT_OK)


def _comment(settings: Settings, body: str, mode: str, outputs: dict) -> None:
    from .github.comment import CommentResult, PullRequestCommenter, make_client

    commenter = PullRequestCommenter(make_client(settings.api_url, settings.token), settings.repository)
    pr = settings.pull_request
    number = pr.number
    if number is None and pr.head_repo and pr.head_branch and pr.head_sha:
        number = commenter.find_pull_request(pr.head_repo, pr.head_branch, pr.head_sha)
    if number is None:
        result = CommentResult("skipped", None, "no open pull request has this run's head commit")
    else:
        result = commenter.upsert(number, settings.report_id, body, create=mode == "upsert")
    if result.action == "skipped" and result.reason:
        commands.annotate("notice", f"no pull-request comment ({result.reason}); the job summary holds the report")
    elif result.url:
        outputs["comment-url"] = result.url


def _upload(settings: Settings, run: Run, json_path: str, outputs: dict) -> bool:
    from .github.artifacts import ArtifactError, artifact_url, upload_artifact

    if not settings.runtime_token or not settings.results_url:
        commands.annotate("warning", "upload: ACTIONS_RUNTIME_TOKEN / ACTIONS_RESULTS_URL are not set; "
                                     "no artifact (use upload: false and actions/upload-artifact instead)")
        return True
    files = [(os.path.basename(p), p) for p in run.outputs] + [(os.path.basename(json_path), json_path)]
    try:
        result = upload_artifact(settings.artifact_name, files, runtime_token=settings.runtime_token,
                                 results_url=settings.results_url)
    except ArtifactError as exc:
        commands.annotate("error", f"artifact upload failed: {exc}")
        return False
    outputs["artifact-id"] = str(result.artifact_id)
    if settings.repository and settings.run_id:
        outputs["artifact-url"] = artifact_url(settings.server_url, settings.repository, settings.run_id, result.artifact_id)
    return True


def _title(settings: Settings) -> str:
    return f"wheelvet {settings.mode}" + (f" ({settings.job})" if settings.job else "")


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(environ: dict | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    try:
        return run_action(env)
    except WheelvetError as exc:
        message = redact(str(exc), env)
        commands.annotate("error", message, title="wheelvet")
        print(f"wheelvet: error: {message}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - one line, and never a secret in it
        if env.get("WHEELVET_DEBUG"):
            raise
        print(printable(redact(f"wheelvet: internal error ({type(exc).__name__}: {exc}); please report it "
                               "(WHEELVET_DEBUG=1 shows the traceback)", env)), file=sys.stderr)
        return EXIT_INTERNAL


__all__ = ["main", "run_action"]
