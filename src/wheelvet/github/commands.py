"""Workflow commands, step outputs and the step summary (files the runner reads)."""

from __future__ import annotations

import os
import sys
import uuid
from typing import Mapping, TextIO

from ..escape import printable


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", out: TextIO | None = None, **properties: str | int | None) -> None:
    """``::name key=value,...::message`` with the runner's escaping, on one
    printable line (a name from a wheel may hold escapes, bidi controls or
    bytes that are not UTF-8: shown escaped, never obeyed)."""
    props = ",".join(f"{k}={_escape_property(printable(str(v)))}" for k, v in properties.items() if v is not None)
    (out or sys.stdout).write(f"::{name}{' ' + props if props else ''}::{_escape_data(printable(message))}\n")


def mask(secret: str, out: TextIO | None = None) -> None:
    if secret:
        command("add-mask", secret, out)


def annotate(level: str, message: str, *, file: str | None = None, title: str | None = None, out: TextIO | None = None) -> None:
    """An ``error`` / ``warning`` / ``notice`` annotation (one printable line)."""
    command(level, message, out, file=file, title=title)


class group:
    """``::group::`` ... ``::endgroup::`` around long logs."""

    def __init__(self, title: str, out: TextIO | None = None) -> None:
        self.title = title
        self.out = out

    def __enter__(self) -> group:
        command("group", self.title, self.out)
        return self

    def __exit__(self, *exc) -> None:
        command("endgroup", "", self.out)


def write_outputs(path: str | None, outputs: Mapping[str, str]) -> None:
    """Append step outputs; every value uses a delimiter it cannot contain."""
    if not path:
        return
    # (a path that is not UTF-8 cannot be written as it is: its bytes are shown escaped)
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
            f.write(f"{name}<<{delimiter}{os.linesep}{value}{os.linesep}{delimiter}{os.linesep}")


def append_summary(path: str | None, markdown: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(markdown if markdown.endswith("\n") else markdown + "\n")
