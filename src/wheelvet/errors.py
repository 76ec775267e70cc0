"""wheelvet's errors: one root, precise subclasses, each mapped to an exit code.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``;
nothing below the CLI prints or exits.  Messages quote names from wheels, so
they are made printable when the error is made (see :mod:`wheelvet.escape`).
"""

from __future__ import annotations

from .escape import printable


class WheelvetError(Exception):
    """Root of every error wheelvet reports to the user."""

    exit_code = 3

    def __init__(self, message: str = "") -> None:
        super().__init__(printable(str(message)))


class InvalidInput(WheelvetError):
    """The input (a wheel, an ELF file, a policy file) is not what it claims."""

    exit_code = 3


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
    """A command line that does not make sense (unknown policy name, ...)."""

    exit_code = 2
