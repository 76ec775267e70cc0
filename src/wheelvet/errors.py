"""wheelvet's errors and exit codes: one root, precise subclasses, one table.

Every error class carries the exit code the command line ends with; the CLI
and the action print ``str(error)`` on one line and exit with
``error.exit_code``; nothing below them prints or exits.  Messages quote
names from wheels, so they are made printable when the error is made (see
:mod:`wheelvet.escape`).  :data:`EXIT_CODES` is the table the README shows
(a test keeps the two in step).
"""

from __future__ import annotations

from .escape import printable

EXIT_OK = 0
EXIT_POLICY = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_REPAIR_FAILED = 4
EXIT_SERVICE = 5
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_POLICY: "a wheel does not meet the policy asked for (`check`, `repair`, `action`), "
                 "or is not a platform wheel (`show`, as auditwheel)",
    EXIT_USAGE: "usage error: an unknown option, policy name or action input, or runner settings the action "
                "cannot work with (`GITHUB_OUTPUT` not writable, `wheel-dir` a file...), before anything is written",
    EXIT_INVALID: "invalid input: not a zip, not a wheel name, missing `WHEEL`, a member whose CRC or RECORD hash "
                  "does not match, broken ELF... One line naming the wheel and member (`docs/hardening.md`)",
    EXIT_REPAIR_FAILED: "`repair` failed: patchelf or strip failed, the result did not pass verification, the "
                        "output could not be written (the directory named: the output's, or `TMPDIR`), or it "
                        "would replace an input or another wheel's output of the call (nothing is written)",
    EXIT_SERVICE: "`action`: GitHub or the artifact service failed (after bounded retries); the rest of the job "
                  "still ran",
    EXIT_INTERNAL: "internal error (a bug: one line; `WHEELVET_DEBUG=1` shows the traceback)",
    EXIT_INTERRUPTED: "interrupted (SIGINT); temporary files removed",
    EXIT_TERMINATED: "terminated (SIGTERM); temporary files removed",
}


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that cleanup (``finally``) runs."""


# The stop a signal asked for, kept: its exception may never reach the code
# it was meant for.  A signal that lands while a finalizer (``__del__``, a
# weak reference's callback) runs raises there, and CPython reports it as
# "Exception ignored" and goes on: a Ctrl-C would be lost, the work carried
# on to the end.  So what the handler raises is also remembered, and raised
# again at the next checkpoint (:func:`stop_if_signalled`).
_SIGNALLED: list[type[BaseException]] = []


def stop(kind: type[BaseException]):
    """What the signal handlers do: remember the stop ``kind`` asks for, and raise it."""
    if not _SIGNALLED:
        _SIGNALLED.append(kind)
    raise kind()


def stop_if_signalled() -> None:
    """Raise the stop a signal asked for, if one did: called where work may
    go on to write something (between the wheels of a call, before an
    output takes its name)."""
    if _SIGNALLED:
        raise _SIGNALLED[0]()


def signalled() -> bool:
    return bool(_SIGNALLED)


def forget_signals() -> None:
    """A new command begins: no stop is pending (for callers that run several in one process)."""
    _SIGNALLED.clear()


class WheelvetError(Exception):
    """Root of every error wheelvet reports to the user."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str = "") -> None:
        super().__init__(printable(str(message)))


class InvalidInput(WheelvetError):
    """The input (a wheel, an ELF file, a policy file) is not what it claims."""

    exit_code = EXIT_INVALID


class InvalidWheel(InvalidInput):
    """A wheel archive that cannot be read or violates the wheel format."""

    def __init__(self, wheel: str, problem: str, member: str | None = None) -> None:
        self.wheel = wheel
        self.member = member
        self.problem = problem
        where = f"{wheel}: {member}" if member else wheel
        super().__init__(f"{where}: {problem}")


class InvalidElf(InvalidInput):
    """An ELF file whose structures are truncated, inconsistent or absurd."""

    def __init__(self, problem: str, name: str = "") -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}" if name else problem)

    def located(self, name: str) -> InvalidElf:
        """The same problem, attributed to ``name`` (e.g. ``wheel: member``)."""
        return InvalidElf(self.problem, name)


class InvalidPolicy(InvalidInput):
    """Policy data that fails validation (e.g. PEP 600 monotonicity)."""


class UsageError(WheelvetError):
    """A command line or action input that does not make sense (unknown policy name, ...)."""

    exit_code = EXIT_USAGE


class MissingExtra(UsageError):
    """A command whose packages come with an extra that is not installed
    (``wheelvet action`` needs ``wheelvet[action]``)."""

    def __init__(self, command: str, extra: str, missing: str) -> None:
        self.extra = extra
        super().__init__(f"{command} needs the '{extra}' extra, which is not installed ({missing} is missing): "
                         f"pip install 'wheelvet[{extra}]'")


class RepairRefused(WheelvetError):
    """The wheel cannot meet the policy asked for."""

    exit_code = EXIT_POLICY


class RepairFailed(WheelvetError):
    """patchelf, strip, the verification of the result, or writing it failed."""

    exit_code = EXIT_REPAIR_FAILED


class ServiceError(WheelvetError):
    """GitHub's REST API or the Actions artifact service failed.  The message is
    one line and holds no secret."""

    exit_code = EXIT_SERVICE


__all__ = [
    "EXIT_CODES", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "EXIT_POLICY", "EXIT_REPAIR_FAILED",
    "EXIT_SERVICE", "EXIT_TERMINATED", "EXIT_USAGE", "InvalidElf", "InvalidInput", "InvalidPolicy", "InvalidWheel",
    "MissingExtra", "RepairFailed", "RepairRefused", "ServiceError", "Terminated", "UsageError", "WheelvetError",
    "forget_signals", "signalled", "stop", "stop_if_signalled",
]
