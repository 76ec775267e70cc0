"""Fixtures for the auditwheel conformance suite (see wheelcache.py for the cache layout)."""

from __future__ import annotations

import concurrent.futures
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also works with --import-mode=importlib

import wheelcache  # noqa: E402

#: Name of the parameter that carries a wheel's filename in the conformance tests.
WHEEL_PARAM = "wheel_filename"


def _selected_filenames(session: pytest.Session) -> list[str]:
    """Filenames of the wheels the selected tests use, in test order, without repeats."""
    seen: dict[str, None] = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and WHEEL_PARAM in callspec.params:
            seen.setdefault(callspec.params[WHEEL_PARAM], None)
    return list(seen)


@dataclass
class Conformance:
    """Session state: which wheels are here, and futures for both tools' reports."""

    entries: dict[str, wheelcache.WheelEntry]
    fetched: dict[str, wheelcache.FetchResult]
    oracle_skip: str | None
    pool: concurrent.futures.ThreadPoolExecutor
    oracle_futs: dict[str, concurrent.futures.Future] = field(default_factory=dict)
    wheelvet_futs: dict[str, concurrent.futures.Future] = field(default_factory=dict)

    def wheel_path(self, filename: str) -> Path:
        """The cached wheel, or skip (unavailable offline) / fail (integrity problem)."""
        res = self.fetched.get(filename)
        if res is None:  # selected in a way we did not foresee: fetch it now
            res = self.fetched[filename] = wheelcache.fetch_wheel(self.entries[filename])
        if res.path is not None:
            return res.path
        if res.skip_reason:
            pytest.skip(res.skip_reason)
        pytest.fail(res.error or f"{filename}: unavailable for an unknown reason", pytrace=False)
        raise AssertionError  # unreachable

    def oracle(self, filename: str) -> dict[str, Any]:
        path = self.wheel_path(filename)
        if self.oracle_skip:
            pytest.skip(self.oracle_skip)
        fut = self.oracle_futs.get(filename)
        if fut is None:
            fut = self.oracle_futs[filename] = self.pool.submit(
                wheelcache.oracle_result, self.entries[filename], path
            )
        return fut.result()

    def wheelvet(self, filename: str) -> wheelcache.ToolRun:
        path = self.wheel_path(filename)
        fut = self.wheelvet_futs.get(filename)
        if fut is None:
            fut = self.wheelvet_futs[filename] = self.pool.submit(
                wheelcache.run_show, "wheelvet", path, wheelcache.TOOL_TIMEOUT
            )
        return fut.result()


@pytest.fixture(scope="session")
def wheel_entries() -> dict[str, wheelcache.WheelEntry]:
    return {e.filename: e for e in wheelcache.load_wheels()}


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest, wheel_entries) -> Conformance:
    """Download the selected wheels, then start both tools on them in the background.

    Oracle results come from the cache when present. Work is spread over
    ``$WHEELVET_TEST_JOBS`` (default: CPU count) worker threads, each driving one
    subprocess; tests simply wait for the futures of their wheel.
    """
    wanted = [f for f in _selected_filenames(request.session) if f in wheel_entries]
    fetched = wheelcache.fetch_all([wheel_entries[f] for f in wanted])
    jobs = int(os.environ.get("WHEELVET_TEST_JOBS") or os.cpu_count() or 1)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="conformance")
    state = Conformance(
        entries=wheel_entries,
        fetched=fetched,
        oracle_skip=wheelcache.oracle_unavailable_reason(),
        pool=pool,
    )
    # Queue work in test order so the first tests are not kept waiting.
    for f in wanted:
        path = fetched[f].path
        if path is None:
            continue
        if state.oracle_skip is None:
            state.oracle_futs[f] = pool.submit(wheelcache.oracle_result, wheel_entries[f], path)
        state.wheelvet_futs[f] = pool.submit(wheelcache.run_show, "wheelvet", path, wheelcache.TOOL_TIMEOUT)
    yield state
    pool.shutdown(wait=False, cancel_futures=True)
