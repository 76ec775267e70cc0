"""Fixtures for the repair conformance suite (see repaircache.py for the cache layout).

Nothing is built at collection time: the session fixture ``repair_suite`` starts, in
background threads, for each project the selected tests use: build from source (or take
the cached wheel), then auditwheel's repair (or its cached result) and the tool under
test's repair. Tests wait for the futures of their project.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also works with --import-mode=importlib

import repaircache  # noqa: E402

#: Name of the parameter that carries a project key in the tests.
PROJECT_PARAM = "project_key"


def _selected_keys(session: pytest.Session) -> list[str]:
    seen: dict[str, None] = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and PROJECT_PARAM in callspec.params:
            seen.setdefault(callspec.params[PROJECT_PARAM], None)
    return [k for k in seen if k in repaircache.PROJECTS_BY_KEY]


@dataclass
class ToolResult:
    run: repaircache.RepairRun
    analysis: dict[str, Any] | None = None
    analysis_error: str | None = None


@dataclass
class RepairSuite:
    tool: str
    tmp: Path
    oracle_skip: str | None
    pool: concurrent.futures.ThreadPoolExecutor
    build_futs: dict[str, concurrent.futures.Future] = field(default_factory=dict)
    oracle_futs: dict[str, concurrent.futures.Future] = field(default_factory=dict)
    tool_futs: dict[str, concurrent.futures.Future] = field(default_factory=dict)

    # -- background work (runs in the pool) --------------------------------------------

    def _pipeline(self, key: str) -> repaircache.BuildResult:
        """Build, then queue the oracle and the tool run for this project."""
        b = repaircache.ensure_built(repaircache.PROJECTS_BY_KEY[key])
        if b.path is not None:
            if self.oracle_skip is None:
                self.oracle_futs[key] = self.pool.submit(repaircache.repair_oracle, b.path)
            self.tool_futs[key] = self.pool.submit(self._run_tool, key, b.path)
        return b

    def _run_tool(self, key: str, wheel: Path) -> ToolResult:
        out = self.tmp / f"{self.tool}-{key}"
        if out.exists():
            shutil.rmtree(out)
        run = repaircache.run_repair(self.tool, wheel, out)
        res = ToolResult(run)
        if run.returncode == 0 and run.output is not None:
            try:
                res.analysis = repaircache.analyze_repaired(wheel, run.output)
            except Exception as exc:  # noqa: BLE001  (a broken output wheel is a finding)
                res.analysis_error = f"{type(exc).__name__}: {exc}"
        return res

    def start(self, key: str) -> None:
        if key not in self.build_futs:
            self.build_futs[key] = self.pool.submit(self._pipeline, key)

    # -- what the tests call -----------------------------------------------------------

    def build(self, key: str) -> Path:
        self.start(key)
        b = self.build_futs[key].result()
        if b.path is not None:
            return b.path
        if b.skip_reason:
            pytest.skip(b.skip_reason)
        pytest.fail(f"building {key} failed: {b.error}", pytrace=False)
        raise AssertionError  # unreachable

    def oracle(self, key: str) -> dict[str, Any]:
        self.build(key)
        if self.oracle_skip:
            pytest.skip(self.oracle_skip)
        res = self.oracle_futs[key].result()
        if "analysis" not in res:
            pytest.fail(f"the oracle failed: auditwheel repair exited {res['returncode']}, wrote "
                        f"{res['outputs']}:\n{res['stderr']}", pytrace=False)
        return res["analysis"]

    def tool_result(self, key: str) -> ToolResult:
        self.build(key)
        return self.tool_futs[key].result()

    def repaired(self, key: str) -> tuple[Path, dict[str, Any]]:
        """The tool's repaired wheel and its analysis; fails the test if there is none."""
        res = self.tool_result(key)
        run = res.run
        if run.returncode != 0 or run.output is None:
            what = (f"exited {run.returncode}" if run.returncode != 0
                    else f"exited 0 but wrote {run.outputs or 'nothing'} (expected exactly one .whl)")
            pytest.fail(f"`{self.tool} repair` {what}\n{run.describe()}", pytrace=False)
        if res.analysis is None:
            pytest.fail(f"could not read {run.output.name} written by `{self.tool} repair`: "
                        f"{res.analysis_error}", pytrace=False)
        return run.output, res.analysis


@pytest.fixture(scope="session")
def repair_suite(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RepairSuite:
    jobs = int(os.environ.get("WHEELVET_TEST_JOBS") or os.cpu_count() or 1)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(2, jobs), thread_name_prefix="repair")
    suite = RepairSuite(
        tool=repaircache.tool_under_test(),
        tmp=tmp_path_factory.mktemp("repair-conformance"),
        oracle_skip=repaircache.oracle_unavailable_reason(),
        pool=pool,
    )
    for key in _selected_keys(request.session):  # PROJECTS order: lxml (slowest build) first
        suite.start(key)
    yield suite
    pool.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- the venv


@dataclass
class Venv:
    python: Path
    installed: dict[str, Path] = field(default_factory=dict)  # key -> repaired wheel installed
    problems: dict[str, str] = field(default_factory=dict)  # key -> why it is not installed


@pytest.fixture(scope="session")
def repaired_venv(request: pytest.FixtureRequest, repair_suite: RepairSuite,
                  tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """One fresh venv (python -m venv) with every repaired wheel the selected tests use."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    proc = subprocess.run([sys.executable, "-m", "venv", str(root)], capture_output=True, text=True,
                          env=_clean_env(), timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"python -m venv failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    venv = Venv(python=root / "bin" / "python")
    for key in _selected_keys(request.session):
        try:
            wheel_path, _ = _repaired_or_reason(repair_suite, key)
        except _NotAvailable as exc:
            venv.problems[key] = str(exc)
            continue
        project = repaircache.PROJECTS_BY_KEY[key]
        deps, why = repaircache.ensure_runtime_deps(project)
        if why:
            venv.problems[key] = f"runtime dependencies unavailable: {why}"
            continue
        cmd = [str(venv.python), "-m", "pip", "install", "--no-index", "--no-deps",
               "--disable-pip-version-check", "-q", str(wheel_path), *map(str, deps)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), timeout=600)
        if proc.returncode != 0:
            venv.problems[key] = f"`{' '.join(cmd)}` failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        else:
            venv.installed[key] = wheel_path
    return venv


class _NotAvailable(Exception):
    pass


def _repaired_or_reason(suite: RepairSuite, key: str) -> tuple[Path, dict[str, Any]]:
    """Like suite.repaired(), but raises _NotAvailable instead of skipping/failing."""
    try:
        return suite.repaired(key)
    except BaseException as exc:  # pytest's Skipped / Failed are BaseExceptions
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise _NotAvailable(f"{type(exc).__name__}: {exc}") from None


def _clean_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    return {k: v for k, v in repaircache.repair_env().items() if k not in drop}
