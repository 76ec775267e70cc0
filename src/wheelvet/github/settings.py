"""The action's settings, read once from the environment into a frozen object.

A container action gets its inputs as ``INPUT_<NAME>`` variables, the name
upper-cased with dashes kept (``INPUT_WHEEL-DIR``), plus the runner's
``GITHUB_*`` variables and, for artifact uploads, ``ACTIONS_RUNTIME_TOKEN``
and ``ACTIONS_RESULTS_URL``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import UsageError

MODES = ("repair", "audit", "report")
COMMENT = ("auto", "always", "never")

# input name -> default (what action.yml declares; the runner passes defaults
# too, but `wheelvet action` run by hand gets them from here)
INPUT_DEFAULTS = {
    "wheels": "dist/*.whl",
    "mode": "repair",
    "plat": "auto",
    "exclude": "",
    "wheel-dir": "wheelhouse",
    "before-repair": "",
    "ld-library-path": "",
    "strip": "false",
    "fail-on": "error",
    "comment": "auto",
    "report-id": "",
    "upload": "true",
    "artifact-name": "",
    "github-token": "",
    "api-url": "https://api.github.com",
}


def read_input(environ: Mapping[str, str], name: str) -> str:
    """An input as the runner passes it (dashes kept; spaces to underscores)."""
    key = "INPUT_" + name.replace(" ", "_").upper()
    value = environ.get(key)
    if value is None:
        value = environ.get(key.replace("-", "_"))  # tolerate hand-written environments
    return (value if value is not None else INPUT_DEFAULTS[name]).strip()


# Where the runner puts secrets a container action can see.
SECRET_VARIABLES = ("INPUT_GITHUB-TOKEN", "INPUT_GITHUB_TOKEN", "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN",
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


def redact(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with every secret of ``environ`` (as given, and stripped) replaced by ``***``."""
    values = {v for name in SECRET_VARIABLES for raw in [environ.get(name) or ""] for v in (raw, raw.strip())}
    for value in sorted((v for v in values if len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def read_secret(what: str, value: str) -> str:
    """A token as pasted into a secret: surrounding whitespace stripped, then
    refused (without ever printing it) unless it is printable ASCII, which
    every GitHub token and the runtime's JWT are."""
    value = value.strip()
    if any(not "!" <= c <= "~" for c in value):
        raise UsageError(f"{what}: the token holds whitespace, control or non-ASCII characters, which no GitHub "
                         "token has (check the secret; its value is not printed)")
    return value


def _bool(name: str, value: str) -> bool:
    v = value.lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off", ""):
        return False
    raise UsageError(f"input {name}: expected true or false, got {value!r}")


@dataclass(frozen=True)
class PullRequest:
    number: int | None  # None: to be found from the head below (a fork's workflow_run)
    head_repo: str | None
    base_repo: str | None
    head_branch: str | None = None
    head_sha: str | None = None

    @property
    def from_fork(self) -> bool:
        return bool(self.head_repo and self.base_repo and self.head_repo != self.base_repo)


@dataclass(frozen=True)
class Settings:
    wheels: tuple[str, ...]
    mode: str
    plat: str
    exclude: tuple[str, ...]
    wheel_dir: str
    before_repair: str
    ld_library_path: str
    strip: bool
    fail_on: str  # "error", "never", or a policy name
    comment: str
    report_id: str
    upload: bool
    artifact_name: str
    token: str = field(repr=False)
    api_url: str
    workspace: str
    event_name: str
    repository: str
    run_id: str
    server_url: str
    job: str
    output_file: str | None
    summary_file: str | None
    pull_request: PullRequest | None
    runtime_token: str = field(repr=False, default="")
    results_url: str = ""
    job_label: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        get = lambda name: read_input(environ, name)  # noqa: E731
        mode = get("mode").lower()
        if mode not in MODES:
            raise UsageError(f"input mode: expected one of {', '.join(MODES)}, got {mode!r}")
        comment = get("comment").lower()
        if comment not in COMMENT:
            raise UsageError(f"input comment: expected one of {', '.join(COMMENT)}, got {comment!r}")
        wheels = tuple(w for line in get("wheels").splitlines() for w in line.split() if w)
        exclude = tuple(line.strip() for line in get("exclude").splitlines() if line.strip())
        workspace = environ.get("GITHUB_WORKSPACE") or os.getcwd()
        event_name = environ.get("GITHUB_EVENT_NAME", "")
        job = environ.get("GITHUB_JOB", "")
        report_id = get("report-id") or f"{environ.get('GITHUB_WORKFLOW', 'wheelvet')}/{job or 'job'}"
        return cls(
            wheels=wheels or (INPUT_DEFAULTS["wheels"],),
            mode=mode,
            plat=get("plat") or "auto",
            exclude=exclude,
            wheel_dir=get("wheel-dir") or "wheelhouse",
            before_repair=get("before-repair"),
            ld_library_path=get("ld-library-path"),
            strip=_bool("strip", get("strip")),
            fail_on=(get("fail-on") or "error"),
            comment=comment,
            report_id=report_id,
            upload=_bool("upload", get("upload")),
            artifact_name=get("artifact-name") or f"wheelvet-{job or 'wheels'}",
            token=read_secret("input github-token", get("github-token") or environ.get("GITHUB_TOKEN", "")),
            api_url=(get("api-url") or environ.get("GITHUB_API_URL") or INPUT_DEFAULTS["api-url"]).rstrip("/"),
            workspace=workspace,
            event_name=event_name,
            repository=environ.get("GITHUB_REPOSITORY", ""),
            run_id=environ.get("GITHUB_RUN_ID", ""),
            server_url=environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
            job=job,
            output_file=environ.get("GITHUB_OUTPUT") or None,
            summary_file=environ.get("GITHUB_STEP_SUMMARY") or None,
            pull_request=_pull_request(environ.get("GITHUB_EVENT_PATH")),
            runtime_token=read_secret("ACTIONS_RUNTIME_TOKEN", environ.get("ACTIONS_RUNTIME_TOKEN", "")),
            results_url=environ.get("ACTIONS_RESULTS_URL", ""),
            job_label=" ".join(filter(None, [environ.get("GITHUB_WORKFLOW", ""), job])) or "wheelvet",
        )


def _pull_request(event_path: str | None) -> PullRequest | None:
    """The pull request of a pull_request / pull_request_target event, if any."""
    if not event_path:
        return None
    try:
        with open(event_path, encoding="utf-8") as f:
            event = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(event, dict):
        return None
    pr = event.get("pull_request")
    run = event.get("workflow_run")
    if pr is None and isinstance(run, dict) and run.get("event") in ("pull_request", "pull_request_target", None):
        # a workflow_run event: commenting from the base repository on what a
        # pull request's workflow reported.  GitHub lists the pull request,
        # except for one from a fork: then it is looked up by its head.
        if run.get("pull_requests"):
            pr = run["pull_requests"][0]
        elif run.get("head_branch") and run.get("head_sha"):
            head_repo = (run.get("head_repository") or {}).get("full_name")
            base_repo = (run.get("repository") or {}).get("full_name")
            return PullRequest(None, head_repo, base_repo, run["head_branch"], run["head_sha"])
    if not isinstance(pr, dict) or not isinstance(pr.get("number"), int):
        return None
    head = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
    base = ((pr.get("base") or {}).get("repo") or {}).get("full_name")
    return PullRequest(pr["number"], head, base)
