"""Temporary files and directories that wheelvet knows for its own.

An output is written under a temporary name in its directory and renamed
into place; work files live in directories of the system's temporary
directory (``TMPDIR``).  A run killed with SIGKILL (an out-of-memory kill, a
cancelled CI job) cannot remove them, so each carries a name that marks it as
wheelvet's and holds an exclusive ``flock`` for as long as its process
lives.  The kernel releases the lock when the process dies however it dies;
a later run that finds such a name whose lock it can take removes it (and
says so).  A name whose lock is held belongs to a live run, in this process
namespace or another one sharing the directory, and is left alone.

Names: ``.<output>.<pid>.<random>.wheelvet-tmp`` beside an output;
``wheelvet-<role>-<random>/`` in ``TMPDIR``, holding ``.wheelvet-lock``.
Where the file system has no ``flock`` (some network file systems), nothing
is locked and nothing is swept: the names still say whose they are.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time

log = logging.getLogger("wheelvet")

TMP_SUFFIX = ".wheelvet-tmp"
DIR_PREFIX = "wheelvet-"
LOCK_NAME = ".wheelvet-lock"
ROLES = ("repair", "session", "deflated")
# A name younger than this is left alone even when its lock is free: its
# maker may be between creating it and locking it.
GRACE_SECONDS = 10.0
# A directory of ours without a lock file (an older wheelvet's) is removed
# once it is this old.
UNLOCKED_MAX_AGE = 24 * 3600.0

_held: dict[str, int] = {}  # path -> the descriptor whose lock marks it live
_held_lock = threading.Lock()
_swept: set[str] = set()  # directories swept by this process


def _lock(fd: int) -> bool:
    """Take ``fd``'s exclusive lock without waiting; False if another holds it.
    A file system without flock counts as held (never swept)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.ENOLCK, errno.EOPNOTSUPP,
                             errno.EINVAL):
            raise
        return False


def _hold(path: str, fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # (no flock here: the file is ours all the same)
    with _held_lock:
        _held[path] = fd


def _release(path: str) -> None:
    with _held_lock:
        fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)


def _old_enough(st: os.stat_result, age: float) -> bool:
    return time.time() - st.st_mtime >= age


def _abandoned(marker: str) -> bool:
    """Whether the run that made ``marker`` (a regular file, not a link) is
    dead: the file is past the grace period and its lock is free."""
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # (renamed or removed meanwhile, or a link: not ours)
    try:
        st = os.fstat(fd)
        return stat.S_ISREG(st.st_mode) and _old_enough(st, GRACE_SECONDS) and _lock(fd)
    except OSError:
        return False
    finally:
        os.close(fd)


def _unswept(directory: str) -> list[os.DirEntry]:
    """The entries of ``directory`` that this process does not hold, the
    first time it is asked about that directory (none after)."""
    key = os.path.realpath(directory)
    if key in _swept:
        return []
    _swept.add(key)
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    with _held_lock:
        return [e for e in entries if e.path not in _held]


# ------------------------------------------------------------ beside outputs


def output_temporary(out_dir: str, name: str) -> str:
    """Create (exclusively) and lock the temporary name ``name`` is written
    under in ``out_dir``; :func:`done` releases it once renamed or removed.
    Sweeps ``out_dir`` of what killed runs left, the first time."""
    sweep_output_dir(out_dir)
    while True:
        path = os.path.join(out_dir, f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            continue
        _hold(path, fd)
        return path


def done(path: str) -> None:
    """The temporary ``path`` is finished: removed if it is still there (not
    renamed into place) and its lock released."""
    try:
        os.unlink(path)
    except OSError:
        pass  # (renamed, or the directory refuses even that)
    _release(path)


def sweep_output_dir(out_dir: str) -> list[str]:
    """Remove the temporary outputs in ``out_dir`` whose runs are dead;
    returns their names.  Once per directory and process."""
    removed = []
    for entry in _unswept(out_dir):
        if entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX) and _abandoned(entry.path):
            try:
                os.unlink(entry.path)
                removed.append(entry.name)
            except OSError:
                pass
    for name in removed:
        log.warning("removed %s from %s: a temporary file a killed run left", name, out_dir)
    return removed


# ------------------------------------------------------------ in TMPDIR


def temp_root() -> str:
    """The directory work files go to: ``TMPDIR`` where it is set to a
    directory, as it is (Python's own choice moves on to /tmp when TMPDIR is
    full; a user who set it wants to hear that it is full), else Python's."""
    chosen = os.environ.get("TMPDIR")
    if chosen and os.path.isdir(chosen):
        return os.path.abspath(chosen)
    return tempfile.gettempdir()


def work_dir(role: str) -> str:
    """A new directory of ours in ``TMPDIR`` (``wheelvet-<role>-XXXX``),
    locked while this process lives; :func:`remove_work_dir` removes it.
    Sweeps ``TMPDIR`` of what killed runs left, the first time."""
    assert role in ROLES, role
    top = temp_root()
    sweep_temp_dir(top)
    path = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{role}-", dir=top)
    fd = os.open(os.path.join(path, LOCK_NAME), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    _hold(path, fd)
    return path


def remove_work_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    _release(path)


def sweep_temp_dir(directory: str | None = None) -> list[str]:
    """Remove wheelvet's work directories in ``directory`` (``TMPDIR``) whose
    runs are dead; returns their names.  Once per directory and process."""
    top = directory or temp_root()
    removed = []
    uid = os.getuid()
    for entry in _unswept(top):
        if not any(entry.name.startswith(f"{DIR_PREFIX}{role}-") for role in ROLES):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
            continue
        lock = os.path.join(entry.path, LOCK_NAME)
        if (_old_enough(st, UNLOCKED_MAX_AGE) if not os.path.lexists(lock) else _abandoned(lock)):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    if removed:
        log.warning("removed %d work director%s from %s that killed runs left: %s", len(removed),
                    "y" if len(removed) == 1 else "ies", top, ", ".join(removed[:5]) + (" ..." if len(removed) > 5 else ""))
    return removed


__all__ = ["DIR_PREFIX", "LOCK_NAME", "TMP_SUFFIX", "done", "output_temporary", "remove_work_dir", "sweep_output_dir",
           "sweep_temp_dir", "temp_root", "work_dir"]
