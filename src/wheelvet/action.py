"""``wheelvet action``: the GitHub Action's whole job, for any machine.

Given the environment the runner gives a container action (``INPUT_*``,
``GITHUB_*``, ``ACTIONS_RUNTIME_TOKEN``/``ACTIONS_RESULTS_URL``), it checks
every setting first, runs the ``before-repair`` command, audits (and
repairs) the wheels, compares them with the base branch's report, writes the
Markdown and JSON reports, the step summary, annotations and outputs,
uploads the artifacts and merges this leg's part into the pull request's one
wheelvet comment.

A leg of a build matrix is named after its job and its wheels' tags: that
names its artifacts (``wheelvet-<leg>`` with the wheels, ``wheelvet-report-<leg>``
with the JSON report) and its part of the comment, so that legs never collide
and a re-run replaces what its earlier attempt left.

Nothing from a wheel is executed or put into a shell command; the only
command run is ``before-repair``, exactly as the user wrote it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace

from .ahead import ahead
from .audit import AuditOptions, WheelAudit, analyze
from .errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_POLICY,
    EXIT_SERVICE,
    InvalidWheel,
    ServiceError,
    UsageError,
    WheelvetError,
)
from .escape import printable
from .github import commands
from .github.settings import Settings, redact
from .policy import PolicySet, policy_set, resolve
from .repair import RepairOptions, RepairSession, apply_plan, copy_atomically, plan_repair, read_ahead_options
from .report import markdown
from .report.compare import compare
from .report.view import PROBLEMS, BaseInfo, Leg, Report, WheelOutcome, merge_legs
from .wheelfile import read_wheel

REPORT_MD = "wheelvet-report.md"
REPORT_JSON = "wheelvet-report.json"
REPORT_ARTIFACT_PREFIX = "wheelvet-report-"
MAX_REPORT_JSON = 16 << 20  # a JSON report mode `report` reads
# The step's outputs (action.yml declares the same; a test keeps them in step).
OUTPUT_NAMES = ("wheels", "report", "report-json", "status", "policy", "artifact-id", "artifact-url", "comment-url")


@dataclass
class Processed:
    """One wheel's outcome with what it was judged from (the audit, for the comparison)."""

    outcome: WheelOutcome
    audit: WheelAudit | None = None
    output: str | None = None  # the wheel written (or, in mode audit, checked)


@dataclass
class Run:
    """What one run produced (mutable while the run goes on; not exported)."""

    processed: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # (level, file, message) annotations

    @property
    def outputs(self) -> list[str]:
        return [p.output for p in self.processed if p.output]


def _rel(path: str, workspace: str) -> str:
    try:
        rel = os.path.relpath(path, workspace)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _inside(path: str, directory: str) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(directory)
    return real == top or real.startswith(top.rstrip("/") + "/")


def _find_wheels(settings: Settings) -> list[str]:
    """The wheels the globs match, never the action's own outputs (``wheel-dir``)."""
    found: dict[str, None] = {}
    for pattern in settings.wheels:
        # (the workspace's own path is no pattern: /w/proj[1]/ must match itself)
        full = pattern if os.path.isabs(pattern) else os.path.join(glob.escape(settings.workspace), pattern)
        for path in sorted(glob.glob(full, recursive=True)):
            if os.path.isfile(path) and not _inside(path, settings.out_dir):
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


def _check_places(settings: Settings) -> None:
    """Everything the run will write to, checked before anything is done."""
    if not os.path.isdir(settings.workspace):
        raise UsageError(f"GITHUB_WORKSPACE {settings.workspace} is not a directory")
    out, ws = os.path.realpath(settings.out_dir), os.path.realpath(settings.workspace)
    shown = _rel(settings.out_dir, settings.workspace)
    if out == ws:
        raise UsageError(f"input wheel-dir: {shown} is the workspace itself; the wheels written would be taken "
                         "for inputs (the default is wheelvet-out)")
    if not _inside(out, ws):
        raise UsageError(f"input wheel-dir: {shown} is outside the workspace, where later steps and the "
                         "upload cannot find it")
    existing = out
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"input wheel-dir: {_rel(existing, ws)} exists and is not a directory")
    for what, path in (("GITHUB_OUTPUT", settings.output_file), ("GITHUB_STEP_SUMMARY", settings.summary_file)):
        if path:
            try:
                with open(path, "a", encoding="utf-8"):
                    pass
            except OSError as exc:
                raise UsageError(f"{what}: cannot write {path} ({exc.strerror or exc})") from None


# ------------------------------------------------------------------ the leg


def leg_name(settings: Settings, wheels: list[str]) -> tuple[str, str]:
    """(key, label) of this leg: its job and its wheels' Python and platform
    tags, the same in every attempt of the run, different between legs that
    build different wheels.  The key is also its artifacts' name."""
    pythons, platforms = set(), set()
    for path in wheels:
        parts = os.path.basename(path)[:-4].split("-")
        if len(parts) >= 5:
            pythons.add(parts[-3])
            found = [p for p in map(resolve, parts[-1].split(".")) if p is not None]
            platforms.add(PolicySet.least(*found).name if found else parts[-1].split(".")[0])
    tags = [*sorted(pythons), *sorted(platforms)]
    label = " · ".join(x for x in (settings.job or settings.workflow or "wheelvet", " ".join(sorted(pythons)),
                                   " ".join(sorted(platforms))) if x)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join([settings.job or "wheels", *tags])).strip("-") or "wheels"
    if len(slug) > 100:  # artifact names stay readable: the start, and a hash of the rest
        slug = f"{slug[:90]}-{hashlib.sha256(slug.encode()).hexdigest()[:8]}"
    return slug, label


def _display(settings: Settings):
    """Host paths as the user knows them: workspace-relative, or as the image has them."""
    return lambda path: _rel(path, settings.workspace)


def _audit_options(settings: Settings, env: dict) -> AuditOptions:
    return AuditOptions(environ=env, exclude=settings.exclude, disable_isa_ext_check=settings.disable_isa_ext_check,
                        allow_pure_python_wheel=settings.allow_pure_python_wheel, providers=settings.provider_set)


def _read_one(path: str, settings: Settings, env: dict, count: int):
    """A wheel's analysis (read while the wheel before it is handled: :func:`ahead`)."""
    options = _audit_options(settings, env)
    return analyze(read_wheel(path, jobs=read_ahead_options(options, count).jobs), options)


def _one_wheel(path: str, settings: Settings, env: dict, run: Run, session: RepairSession | None,
               analysis) -> None:
    """Audit (and in repair mode, repair) one wheel; ``analysis``: its
    analysis, or the WheelvetError reading it raised (read ahead)."""
    rel = _rel(path, settings.workspace)
    name = os.path.basename(path)
    audit_options = _audit_options(settings, env)
    display = _display(settings)
    size = os.path.getsize(path)
    asked = None if settings.plat == "auto" else settings.plat
    if isinstance(analysis, WheelvetError):
        run.processed.append(Processed(markdown.outcome_from_error(name, str(analysis), input_size=size)))
        run.problems.append(("error", rel, str(analysis)))
        return
    audit = analysis.audit
    if audit.error is not None or (audit.pure and settings.mode == "audit"):
        outcome = markdown.outcome_from_audit(audit, input_size=size, error=audit.error, display=display)
        run.processed.append(Processed(outcome, audit, path if audit.error is None else None))
        if audit.error is not None:
            run.problems.append(("error", rel, audit.error))
        return
    if settings.mode == "audit":
        outcome = markdown.outcome_from_audit(audit, input_size=size, policy=asked, display=display)
        run.processed.append(Processed(outcome, audit, path))
        if outcome.status in PROBLEMS:
            run.problems.append(("error", rel, f"{audit.wheel}: {outcome.why}"))
        return
    out_dir = settings.out_dir
    try:
        if audit.pure or (not settings.retag and asked is None and _meets_its_claims(audit)):
            # What cibuildwheel hands over already meets every tag it claims:
            # it passes through with its name (`retag: true` retags it).
            written = copy_atomically(path, out_dir, session)
            outcome = markdown.outcome_from_audit(audit, input_size=size, output_size=size, display=display)
            run.processed.append(Processed(replace(outcome, output=os.path.basename(written)), audit, written))
            return
        plan = plan_repair(analysis, RepairOptions(plat=settings.plat, strip=settings.strip, exclude=settings.exclude))
        written = apply_plan(plan, analysis, out_dir, environ=env, audit_options=audit_options, session=session)
    except WheelvetError as exc:  # refused (cannot meet the policy) or failed (patchelf, verification)
        outcome = markdown.outcome_from_audit(audit, input_size=size, error=exc, policy=asked, display=display)
        run.processed.append(Processed(outcome, audit))
        run.problems.append(("error", rel, str(exc)))
        return
    outcome = markdown.outcome_from_audit(audit, plan=plan, output_path=written, input_size=size, display=display)
    run.processed.append(Processed(outcome, audit, written))
    if outcome.status == "mislabelled":
        run.problems.append(("error", rel, f"{audit.wheel}: {outcome.why}; written as "
                                           f"{os.path.basename(written)}"))
    if outcome.rise:
        r = outcome.rise
        run.problems.append(("warning", rel, f"{audit.wheel}: grafting raised its tag from {r.before} to {r.after} "
                                             f"({r.library} needs {r.version}): repair it in the image it was built in"))


def _meets_its_claims(audit: WheelAudit) -> bool:
    """Whether every platform tag of the wheel's name is a policy it meets (no linux_* tag)."""
    tags = audit.platforms
    return bool(tags) and all(audit.meets(t) is True and not t.startswith("linux_") for t in tags)


# ------------------------------------------------------------------ judgement


def _gates(settings: Settings, report: Report, run: Run) -> bool:
    """Whether the step fails, by ``fail-on`` (and ``max-size-increase``)."""
    if "never" in settings.fail_on:
        return False
    failed = False
    outcomes = report.outcomes
    if "error" in settings.fail_on:
        failed |= any(o.status in PROBLEMS for o in outcomes)
        if report.missing_legs:
            failed = True
            run.problems.append(("error", None, f"{len(report.missing_legs)} leg(s) did not report: "
                                                f"{', '.join(report.missing_legs)}"))
    for floor_name in (f for f in settings.fail_on if f not in ("error", "never", "regression")):
        for o in outcomes:
            got = resolve(o.reached) if o.reached else None
            if got is None:
                continue
            pset = policy_set(got.libc, got.arch)
            floor = pset.get(floor_name if floor_name.endswith("_" + got.arch) else f"{floor_name}_{got.arch}")
            if floor is None:
                continue
            if not pset.reaches(got, floor.name):
                run.problems.append(("error", None, f"{o.wheel} reaches {got.name}, below the fail-on floor {floor.name}"))
                failed = True
    if "regression" in settings.fail_on:
        for o in outcomes:
            c = o.change
            if c and (c.direction == "less-compatible" or c.grafted_added):
                what = (f"{c.before} -> {c.after}" + (f" ({c.cause})" if c.cause else "")
                        if c.direction == "less-compatible" else f"newly grafts {', '.join(c.grafted_added)}")
                run.problems.append(("error", None, f"{o.wheel}: regression against the base branch: {what}"))
                failed = True
    if settings.max_size_increase is not None:
        for o in outcomes:
            c = o.change
            if c and c.size_before and c.size_after and c.size_after > c.size_before * (1 + settings.max_size_increase):
                run.problems.append(("error", None, f"{o.wheel}: {c.size_before} -> {c.size_after} bytes, more than "
                                                    f"the max-size-increase of {settings.max_size_increase:.0%}"))
                failed = True
    return failed


def _to_say(legs) -> bool:
    """Whether a report has something for a reviewer (a reason to create the comment)."""
    return any(o.status in PROBLEMS or o.status == "repaired" or o.rise
               or (o.change and (o.change.direction != "same" or o.change.grafted_added or o.change.grafted_removed))
               for g in legs for o in g.outcomes)


# ------------------------------------------------------------------ the base branch


def _compare_with_base(settings: Settings, processed: list[Processed]) -> tuple[list[Processed], BaseInfo | None, tuple]:
    ref = settings.base_ref
    if ref is None or settings.pull_request is None and not settings.compare_to:
        return processed, None, ()
    if not settings.token or not settings.workflow_file or not settings.repository:
        return processed, BaseInfo(ref, note="no token, workflow file or repository to look the base run up with"), ()
    from .github.base import BaseReports
    from .github.rest import make_client

    found = BaseReports(make_client(settings.api_url, settings.token, lazy=False), settings.repository,
                        settings.token).find(
        settings.workflow_file, ref)
    if found.report is None:
        return processed, found.info, ()
    changed, info = compare([(p.outcome, p.audit) for p in processed], found.report, found.info)
    return [replace(p, outcome=o) for p, o in zip(processed, changed)], info, tuple(o.key for o in found.report.outcomes)


# ------------------------------------------------------------------ mode report


def _read_reports(settings: Settings) -> list[Report]:
    paths = _find_wheels(settings)
    if not paths:
        raise UsageError(f"mode report: no JSON report matches {' '.join(settings.wheels)}")
    reports = []
    for path in paths:
        rel = _rel(path, settings.workspace)
        try:
            if os.path.getsize(path) > MAX_REPORT_JSON:
                raise ValueError(f"more than {MAX_REPORT_JSON} bytes")
            with open(path, encoding="utf-8") as f:
                reports.append(Report.from_json(f.read()))
        except UnicodeDecodeError:
            raise InvalidWheel(rel, "not UTF-8: not a wheelvet JSON report") from None
        except ValueError as exc:
            raise InvalidWheel(rel, f"not a wheelvet JSON report: {exc}") from None
        except OSError as exc:
            raise UsageError(f"mode report: cannot read {rel} ({exc.strerror or exc})") from None
    return reports


def _missing_jobs(settings: Settings) -> tuple[str, ...]:
    """Jobs of the reported run that did not succeed (cancelled, crashed, failed before reporting)."""
    if not (settings.workflow_run_id and settings.token and settings.repository):
        return ()
    from .github.rest import RestError, calling, make_client

    try:
        with calling("could not list the reported run's jobs", settings.api_url):
            run = make_client(settings.api_url, settings.token, lazy=False).get_repo(
                settings.repository).get_workflow_run(settings.workflow_run_id)
            return tuple(f"{j.name} ({j.conclusion or j.status})" for j in run.jobs()
                         if j.conclusion not in ("success", "skipped"))
    except RestError as exc:
        commands.annotate("notice", f"{exc}; legs that never reported are counted with expected-legs only")
        return ()


# ------------------------------------------------------------------ the run


def run_action(environ: dict) -> int:
    settings = Settings.from_environment(environ)
    commands.mask(settings.token)
    commands.mask(settings.runtime_token)
    _check_places(settings)
    if settings.pull_request is not None and settings.token and (settings.comment != "never" or settings.base_ref):
        from .github import comment  # noqa: F401 - PyGithub (wheelvet[action]) is needed: say so before any work
    run = Run()
    leg: Leg | None = None

    if settings.mode == "report":
        reports = _read_reports(settings)
        legs = merge_legs(g for r in reports for g in r.legs)
        missing = list(_missing_jobs(settings))
        if settings.expected_legs and len(legs) < settings.expected_legs and not missing:
            missing.append(f"{settings.expected_legs - len(legs)} of {settings.expected_legs} legs")
        report = Report(settings.report_id, _title(settings), legs, commit=settings.sha or (legs[-1].sha if legs else ""),
                        run_url=settings.run_url, summary_url=settings.run_url,
                        base=next((r.base for r in reports if r.base), None),
                        expected_legs=settings.expected_legs, missing_legs=tuple(missing))
    else:
        env = _audit_environment(settings, environ)
        _before_repair(settings, env)
        wheels = _find_wheels(settings)
        if not wheels:
            raise UsageError(f"no wheel matches {' '.join(settings.wheels)} in {settings.workspace}")
        os.makedirs(settings.out_dir, exist_ok=True)
        key, label = leg_name(settings, wheels)
        # One session for the job: the wheels of a release graft the same
        # libraries, each patched and compressed once (the outputs are the same).
        with RepairSession(wheels=len(wheels)) as session:
            session.protect(wheels)
            # (each wheel read and audited while the one before it is repaired)
            read = ahead(wheels, lambda p: _read_one(p, settings, env, len(wheels)), catch=(WheelvetError,))
            for path, analysis in read:
                with commands.group(printable(f"wheelvet {settings.mode} {os.path.basename(path)}")):
                    _one_wheel(path, settings, env, run, session, analysis)
        run.processed, base, base_keys = _compare_with_base(settings, run.processed)
        leg = Leg(key, label, tuple(p.outcome for p in run.processed), workflow=settings.workflow, job=settings.job,
                  run_id=int(settings.run_id) if settings.run_id.isdigit() else 0, run_attempt=settings.run_attempt,
                  sha=settings.sha, updated=time.time(), base_keys=base_keys)
        report = _report(settings, (leg,), base)

    os.makedirs(settings.out_dir, exist_ok=True)
    md_path = os.path.join(settings.out_dir, REPORT_MD)
    json_path = os.path.join(settings.out_dir, REPORT_JSON)
    _write_atomically(json_path, report.to_json())

    service_failed = False
    outputs = dict.fromkeys(OUTPUT_NAMES, "")
    outputs.update({"wheels": "\n".join(_rel(p, settings.workspace) for p in run.outputs),
                    "report": _rel(md_path, settings.workspace), "report-json": _rel(json_path, settings.workspace),
                    "policy": _least_compatible(report)})
    if leg is not None and settings.upload:
        service_failed |= not _upload(settings, run, leg, json_path, outputs)
        if outputs["artifact-url"]:
            leg = replace(leg, artifact_url=outputs["artifact-url"])
            report = _report(settings, (leg,), report.base)
    failed = _gates(settings, report, run)

    body = markdown.render_markdown(report)
    _write_atomically(md_path, body)
    # The step summary holds up to 1 MiB; the limit counts characters, so leave room: the full report.
    commands.append_summary(settings.summary_file, markdown.render_markdown(report, max_chars=900_000, marker=False))
    for level, file, message in run.problems:
        commands.annotate(level, message, file=file, title="wheelvet")

    if settings.comment != "never" and settings.event_problem:
        commands.annotate("warning", f"{settings.event_name} event: {settings.event_problem}; "
                                     "no pull request to comment on", title="wheelvet")
    if settings.comment != "never" and settings.pull_request is not None and settings.token:
        try:
            _comment(settings, report, leg, outputs)
        except ServiceError as exc:
            commands.annotate("error", str(exc), title="wheelvet")
            service_failed = True

    # A service that failed fails the step (exit 5) after the rest of the job ran.
    outputs["status"] = "failure" if (failed or service_failed) else "success"
    commands.write_outputs(settings.output_file, outputs)
    print(printable(f"wheelvet: {outputs['status']}: {len(run.outputs)} wheel(s); report in {outputs['report']}"))
    return max(EXIT_POLICY if failed else EXIT_OK, EXIT_SERVICE if service_failed else EXIT_OK)


def _report(settings: Settings, legs, base: BaseInfo | None) -> Report:
    legs = tuple(legs)
    if base is not None and legs:
        current = {o.key for g in legs for o in g.outcomes}
        base_keys = {k for g in legs for k in g.base_keys}
        base = replace(base, added=tuple(sorted(current - base_keys)) if base_keys else (),
                       removed=tuple(sorted(base_keys - current)))
    return Report(settings.report_id, _title(settings), legs, commit=settings.sha, run_url=settings.run_url,
                  summary_url=settings.run_url, base=base, expected_legs=settings.expected_legs)


def _least_compatible(report: Report) -> str:
    found = [p for p in (resolve(o.reached) for o in report.outcomes if o.reached) if p is not None]
    return PolicySet.least(*found).name if found else ""


def _upload(settings: Settings, run: Run, leg: Leg, json_path: str, outputs: dict) -> bool:
    """This leg's artifacts: the wheels (mode repair) and, always, the JSON report."""
    from .github.artifacts import ArtifactError, artifact_url, upload_artifact

    if not settings.runtime_token or not settings.results_url:
        commands.annotate("warning", "upload: ACTIONS_RUNTIME_TOKEN / ACTIONS_RESULTS_URL are not set; "
                                     "no artifact (use upload: false and actions/upload-artifact instead)")
        return True
    uploads = [(REPORT_ARTIFACT_PREFIX + leg.key, [(REPORT_JSON, json_path)])]
    if settings.mode == "repair" and run.outputs:
        files = [(os.path.basename(p), p) for p in run.outputs] + [(REPORT_JSON, json_path)]
        uploads.insert(0, (settings.artifact_name or f"wheelvet-{leg.key}", files))
    ok = True
    for n, (name, files) in enumerate(uploads):
        try:
            result = upload_artifact(name, files, runtime_token=settings.runtime_token, results_url=settings.results_url)
        except ArtifactError as exc:
            commands.annotate("error", f"artifact upload failed ({name}): {exc}")
            ok = False
            continue
        if result.replaced:
            commands.annotate("notice", f"artifact {name}: replaced the one an earlier attempt of this job left")
        if n == 0 and len(uploads) == 2:
            outputs["artifact-id"] = str(result.artifact_id)
            if settings.repository and settings.run_id:
                outputs["artifact-url"] = artifact_url(settings.server_url, settings.repository, settings.run_id,
                                                       result.artifact_id)
    return ok


def _other_legs(settings: Settings, leg: Leg | None) -> list[Leg]:
    """The parts other legs of this run uploaded (their report artifacts)."""
    if leg is None or not settings.runtime_token or not settings.results_url:
        return []
    from .github.artifacts import ArtifactError, read_artifacts

    try:
        found = read_artifacts(REPORT_ARTIFACT_PREFIX, REPORT_JSON, runtime_token=settings.runtime_token,
                               results_url=settings.results_url, skip=[REPORT_ARTIFACT_PREFIX + leg.key])
    except ArtifactError as exc:
        commands.annotate("notice", f"the other legs' reports could not be read ({exc}); the comment has the parts "
                                    "the legs wrote themselves")
        return []
    legs = []
    for data in found.values():
        try:
            legs += Report.from_json(data.decode("utf-8")).legs
        except (ValueError, UnicodeDecodeError):
            continue
    return legs


def _comment(settings: Settings, report: Report, leg: Leg | None, outputs: dict) -> None:
    from .github.comment import CommentResult, PullRequestCommenter, encode_legs
    from .github.rest import make_client

    commenter = PullRequestCommenter(make_client(settings.api_url, settings.token), settings.repository,
                                     settle=_settle(), api_url=settings.api_url)
    pr = settings.pull_request
    number = pr.number
    if number is None and pr.head_repo and pr.head_branch and pr.head_sha:
        number = commenter.find_pull_request(pr.head_repo, pr.head_branch, pr.head_sha)
    if number is None:
        result = CommentResult("skipped", None, "no open pull request has this run's head commit")
    else:
        known = [*_other_legs(settings, leg), *report.legs]
        create = settings.comment == "always" or _to_say(known) or bool(report.missing_legs)

        def render(legs: tuple[Leg, ...]) -> str:
            whole = _report(settings, legs, report.base) if leg is not None else replace(report, legs=legs)
            return markdown.render_markdown(whole, data=encode_legs(whole.legs))

        result = commenter.merge_legs(number, settings.report_id, known, render, create=create,
                                      settle=leg is not None)
    if result.action == "skipped" and result.reason:
        commands.annotate("notice", f"no pull-request comment ({result.reason}); the job summary holds the report")
    elif result.url:
        outputs["comment-url"] = result.url


def _settle() -> tuple[float, ...]:
    """The comment's read-back delays; ``WHEELVET_COMMENT_SETTLE`` (seconds, comma-separated) for tests."""
    raw = os.environ.get("WHEELVET_COMMENT_SETTLE", "")
    try:
        return tuple(float(x) for x in raw.split(",") if x.strip()) if raw else (1.0, 2.0, 4.0)
    except ValueError:
        return (1.0, 2.0, 4.0)


def _title(settings: Settings) -> str:
    return "wheelvet" + (f" · {settings.workflow}" if settings.workflow else "")


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.wheelvet-tmp"
    try:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
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


__all__ = ["leg_name", "main", "run_action"]
