"""The action's settings, read once from the environment into a frozen object.

A container action gets its inputs as ``INPUT_<NAME>`` variables, the name
upper-cased with dashes kept (``INPUT_WHEEL-DIR``), plus the runner's
``GITHUB_*`` variables and, for artifact uploads, ``ACTIONS_RUNTIME_TOKEN``
and ``ACTIONS_RESULTS_URL``.  Every input is checked here, before anything is
run or written: a bad one is one line (:class:`~wheelvet.errors.UsageError`,
exit 2) that never prints a secret.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..errors import InvalidInput, UsageError
from ..policy import resolve
from ..providers import Providers, find_providers

MODES = ("repair", "audit", "report")
COMMENT = ("auto", "always", "never")
FAIL_ON_WORDS = ("error", "never", "regression")
DEFAULT_REPORT_ID = "wheelvet"
DEFAULT_WHEEL_DIR = "wheelvet-out"  # not cibuildwheel's wheelhouse/, which holds the inputs

# input name -> default (what action.yml declares; the runner passes defaults
# too, but `wheelvet action` run by hand gets them from here)
INPUT_DEFAULTS = {
    "wheels": "dist/*.whl",
    "mode": "repair",
    "plat": "auto",
    "exclude": "",
    "providers": "",
    "wheel-dir": DEFAULT_WHEEL_DIR,
    "before-repair": "",
    "ld-library-path": "",
    "strip": "false",
    "retag": "false",
    "disable-isa-ext-check": "false",
    "allow-pure-python-wheel": "false",
    "fail-on": "error",
    "max-size-increase": "",
    "compare-to": "",
    "comment": "auto",
    "report-id": "",
    "expected-legs": "",
    "upload": "true",
    "artifact-name": "",
    "github-token": "",
    "api-url": "https://api.github.com",
}

# Where the runner puts secrets a container action can see.
SECRET_VARIABLES = ("INPUT_GITHUB-TOKEN", "INPUT_GITHUB_TOKEN", "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN",
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


def redact(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with every secret of ``environ`` (as given, and stripped) replaced by ``***``."""
    values = {v for name in SECRET_VARIABLES for raw in [environ.get(name) or ""] for v in (raw, raw.strip())}
    for value in sorted((v for v in values if len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def read_input(environ: Mapping[str, str], name: str) -> str:
    """An input as the runner passes it (dashes kept; spaces to underscores)."""
    key = "INPUT_" + name.replace(" ", "_").upper()
    value = environ.get(key)
    if value is None:
        value = environ.get(key.replace("-", "_"))  # tolerate hand-written environments
    return (value if value is not None else INPUT_DEFAULTS[name]).strip()


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


def _fail_on(value: str) -> tuple[str, ...]:
    """``error``, ``never``, ``regression`` and minimum policies, comma- or space-separated."""
    items = tuple(v for v in re.split(r"[\s,]+", value.lower()) if v) or ("error",)
    for item in items:
        if item in FAIL_ON_WORDS:
            continue
        known = any(resolve(item, arch) is not None for arch in ("x86_64", "aarch64", "i686", "ppc64le", "s390x",
                                                                  "armv7l", "riscv64", "loongarch64", "ppc64"))
        if not known and resolve(item) is None:
            raise UsageError(f"input fail-on: {item!r} is not error, never, regression or a policy name "
                             "(such as manylinux2014)")
    if "never" in items and len(items) > 1:
        raise UsageError("input fail-on: never cannot be combined with other conditions")
    return items


def _percent(name: str, value: str) -> float | None:
    if not value:
        return None
    m = re.fullmatch(r"(\d{1,6}(?:\.\d{1,3})?)\s*%?", value)
    if not m:
        raise UsageError(f"input {name}: expected a percentage such as 10%, got {value!r}")
    return float(m[1]) / 100


def _count(name: str, value: str) -> int | None:
    if not value:
        return None
    if not re.fullmatch(r"\d{1,4}", value) or int(value) < 1:
        raise UsageError(f"input {name}: expected a number of legs (1 or more), got {value!r}")
    return int(value)


@dataclass(frozen=True)
class PullRequest:
    number: int | None  # None: to be found from the head below (a fork's workflow_run)
    head_repo: str | None
    base_repo: str | None
    head_branch: str | None = None
    head_sha: str | None = None
    base_ref: str | None = None  # the branch it would merge into

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
    fail_on: tuple[str, ...]  # "error", "never", "regression", policy names
    comment: str
    report_id: str
    upload: bool
    artifact_name: str  # "" : derived per leg from the wheels' tags
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
    workflow: str = ""
    workflow_file: str = ""  # ci.yml, from GITHUB_WORKFLOW_REF
    run_attempt: int = 1
    sha: str = ""
    retag: bool = False
    disable_isa_ext_check: bool = False
    allow_pure_python_wheel: bool = False
    max_size_increase: float | None = None
    compare_to: str = ""  # "", a branch, or "none"
    expected_legs: int | None = None
    workflow_run_id: int | None = None  # the run a workflow_run event reports on
    event_problem: str | None = None  # why a pull_request/workflow_run event names no pull request
    providers: tuple[str, ...] = ()  # the `providers` input's lines: globs of wheels or directories, `env:PYTHON`

    @functools.cached_property
    def provider_set(self) -> Providers:
        """The ``providers`` input as the audit takes it (``--provider`` and
        ``--provider-env``): each line a glob of provider wheels or directories
        of them, or ``env:`` and a Python interpreter or a site-packages
        directory, relative to the workspace.  Read when first asked, after
        ``before-repair`` (which may download or install them)."""
        paths: list[str] = []
        envs: list[str] = []
        for line in self.providers:
            is_env = line.startswith("env:")
            value = line[4:].strip() if is_env else line
            full = value if os.path.isabs(value) else os.path.join(self.workspace, value)
            if is_env:
                envs.append(full)
                continue
            found = sorted(glob.glob(full, recursive=True))
            if not found:
                raise UsageError(f"input providers: {line!r} matches no wheel or directory in the workspace")
            paths += found
        try:
            return find_providers(paths, envs)
        except InvalidInput as exc:
            raise UsageError(f"input providers: {exc}") from None

    @property
    def out_dir(self) -> str:
        return self.wheel_dir if os.path.isabs(self.wheel_dir) else os.path.join(self.workspace, self.wheel_dir)

    @property
    def base_ref(self) -> str | None:
        """The branch to compare with: ``compare-to``, or the pull request's base; None: no comparison."""
        if self.compare_to.lower() == "none":
            return None
        return self.compare_to or (self.pull_request.base_ref if self.pull_request else None)

    @property
    def run_url(self) -> str | None:
        if not (self.repository and self.run_id):
            return None
        attempt = f"/attempts/{self.run_attempt}" if self.run_attempt > 1 else ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}{attempt}"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        get = lambda name: read_input(environ, name)  # noqa: E731
        mode = get("mode").lower()
        if mode not in MODES:
            raise UsageError(f"input mode: expected one of {', '.join(MODES)}, got {mode!r}")
        comment = get("comment").lower()
        if comment not in COMMENT:
            raise UsageError(f"input comment: expected one of {', '.join(COMMENT)}, got {comment!r}")
        plat = get("plat") or "auto"
        if plat != "auto" and not any(resolve(plat, a) for a in ("x86_64", "aarch64", "i686", "ppc64le", "s390x",
                                                                   "armv7l", "riscv64", "loongarch64", "ppc64")) \
                and resolve(plat) is None:
            raise UsageError(f"input plat: {plat!r} is not auto or a policy name (such as manylinux2014)")
        wheels = tuple(w for line in get("wheels").splitlines() for w in line.split() if w)
        exclude = tuple(line.strip() for line in get("exclude").splitlines() if line.strip())
        providers = tuple(line.strip() for line in get("providers").splitlines() if line.strip())
        workspace = environ.get("GITHUB_WORKSPACE") or os.getcwd()
        job = environ.get("GITHUB_JOB", "")
        workflow_ref = environ.get("GITHUB_WORKFLOW_REF", "")
        attempt = environ.get("GITHUB_RUN_ATTEMPT", "1")
        event, event_error = _read_event(environ.get("GITHUB_EVENT_PATH"))
        pull_request = _pull_request(event)
        wheel_dir = get("wheel-dir") or DEFAULT_WHEEL_DIR
        artifact_name = get("artifact-name")
        if artifact_name and any(c in artifact_name for c in '":<>|*?\r\n\\/'):
            raise UsageError(f"input artifact-name: {artifact_name!r} holds a character artifact names cannot have")
        return cls(
            wheels=wheels or (INPUT_DEFAULTS["wheels"],),
            mode=mode,
            plat=plat,
            exclude=exclude,
            wheel_dir=wheel_dir,
            before_repair=get("before-repair"),
            ld_library_path=get("ld-library-path"),
            strip=_bool("strip", get("strip")),
            fail_on=_fail_on(get("fail-on")),
            comment=comment,
            report_id=get("report-id") or DEFAULT_REPORT_ID,
            upload=_bool("upload", get("upload")),
            artifact_name=artifact_name,
            token=read_secret("input github-token", get("github-token") or environ.get("GITHUB_TOKEN", "")),
            api_url=check_api_url(get("api-url") or environ.get("GITHUB_API_URL") or INPUT_DEFAULTS["api-url"]),
            workspace=workspace,
            event_name=environ.get("GITHUB_EVENT_NAME", ""),
            repository=environ.get("GITHUB_REPOSITORY", ""),
            run_id=environ.get("GITHUB_RUN_ID", ""),
            server_url=environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
            job=job,
            output_file=environ.get("GITHUB_OUTPUT") or None,
            summary_file=environ.get("GITHUB_STEP_SUMMARY") or None,
            pull_request=pull_request,
            runtime_token=read_secret("ACTIONS_RUNTIME_TOKEN", environ.get("ACTIONS_RUNTIME_TOKEN", "")),
            results_url=environ.get("ACTIONS_RESULTS_URL", ""),
            workflow=environ.get("GITHUB_WORKFLOW", ""),
            workflow_file=workflow_ref.split("@", 1)[0].rsplit("/", 1)[-1] if ".github/workflows/" in workflow_ref else "",
            run_attempt=int(attempt) if attempt.isdigit() and 0 < int(attempt) < 10_000 else 1,
            sha=_str(event, "pull_request", "head", "sha") or _str(event, "workflow_run", "head_sha")
            or environ.get("GITHUB_SHA", ""),
            retag=_bool("retag", get("retag")),
            disable_isa_ext_check=_bool("disable-isa-ext-check", get("disable-isa-ext-check")),
            allow_pure_python_wheel=_bool("allow-pure-python-wheel", get("allow-pure-python-wheel")),
            max_size_increase=_percent("max-size-increase", get("max-size-increase")),
            compare_to=get("compare-to"),
            expected_legs=_count("expected-legs", get("expected-legs")),
            workflow_run_id=_int(event, "workflow_run", "id"),
            providers=providers,
            event_problem=event_problem(environ.get("GITHUB_EVENT_NAME", ""), event, event_error, pull_request),
        )


def check_api_url(url: str) -> str:
    """``api-url`` as the client takes it (no trailing slash), or a usage
    error saying what is wrong with it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise UsageError(f"input api-url: {url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not parts.hostname or any(c.isspace() for c in url):
        raise UsageError(f"input api-url: {url!r} is not an http(s) URL with a host "
                         "(such as https://api.github.com or https://ghe.example.com/api/v3)")
    return url.rstrip("/")


def _read_event(event_path: str | None) -> tuple[dict, str | None]:
    """The event payload ({} when there is none or it is not a JSON object)
    and, if it could not be read as one, why."""
    if not event_path:
        return {}, "GITHUB_EVENT_PATH is not set"
    try:
        with open(event_path, "rb") as f:
            raw = f.read(MAX_EVENT_BYTES + 1)
    except OSError as exc:
        return {}, f"the event file cannot be read ({exc.strerror or exc})"
    if len(raw) > MAX_EVENT_BYTES:
        return {}, f"the event file is larger than {MAX_EVENT_BYTES >> 20} MiB"
    try:
        event = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return {}, "the event file is not UTF-8"
    except (ValueError, RecursionError):
        return {}, "the event file is not JSON"
    if not isinstance(event, dict):
        return {}, "the event file is not a JSON object"
    return event, None


# The runner's payloads are a few hundred KiB at most (a pull request with
# its repository objects); a larger file is not one.
MAX_EVENT_BYTES = 32 << 20
PR_EVENTS = ("pull_request", "pull_request_target", "workflow_run")


def event_problem(event_name: str, event: dict, event_error: str | None, pr: PullRequest | None) -> str | None:
    """Why an event that should name a pull request names none (None when it
    names one, or is not such an event: a push, a workflow_run of a push)."""
    if pr is not None or event_name not in PR_EVENTS:
        return None
    if event_error is not None:
        return event_error
    if event_name == "workflow_run":
        run = event.get("workflow_run")
        if not isinstance(run, dict):
            return "its payload holds no workflow_run object"
        if run.get("event") not in ("pull_request", "pull_request_target"):
            return None  # a run of a push or a schedule: there is no pull request to name
        return "its workflow_run names no pull request (no pull_requests entry, no head_branch and head_sha)"
    return "its payload holds no pull_request object with a number"


def _get(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` where each level is an object, else None (events of any shape)."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _str(data: Any, *keys: str) -> str | None:
    value = _get(data, *keys)
    return value if isinstance(value, str) and value else None


def _int(data: Any, *keys: str) -> int | None:
    value = _get(data, *keys)  # (GitHub's numbers and ids are below 2**53; a larger one is not one)
    return value if type(value) is int and 0 < value < 1 << 53 else None


def _pull_request(event: dict) -> PullRequest | None:
    """The pull request of a pull_request / pull_request_target event, or the
    one a workflow_run event reports on, if any."""
    pr = event.get("pull_request")
    run = event.get("workflow_run")
    if pr is None and isinstance(run, dict) and run.get("event") in ("pull_request", "pull_request_target", None):
        # a workflow_run event: commenting from the base repository on what a
        # pull request's workflow reported.  GitHub lists the pull request,
        # except for one from a fork: then it is looked up by its head.
        listed = run.get("pull_requests")
        if isinstance(listed, list) and listed and isinstance(listed[0], dict):
            pr = listed[0]
        elif _str(run, "head_branch") and _str(run, "head_sha"):
            return PullRequest(None, _str(run, "head_repository", "full_name"), _str(run, "repository", "full_name"),
                               _str(run, "head_branch"), _str(run, "head_sha"))
    if not isinstance(pr, dict) or _int(pr, "number") is None:
        return None
    return PullRequest(pr["number"], _str(pr, "head", "repo", "full_name"), _str(pr, "base", "repo", "full_name"),
                       base_ref=_str(pr, "base", "ref"))


__all__ = ["DEFAULT_REPORT_ID", "DEFAULT_WHEEL_DIR", "INPUT_DEFAULTS", "PullRequest", "Settings", "read_input",
           "read_secret", "redact"]
