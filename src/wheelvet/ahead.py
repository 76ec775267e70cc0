"""Work on the next item while the caller handles this one.

A wheelhouse is read, checked and repaired one wheel after another.  Reading
and checking a wheel (inflating its members, hashing them for RECORD,
parsing its ELF files) reads only its own file and is mostly C code that
runs without the GIL; the repair of the wheel before it is busy meanwhile with
patchelf, its own compression and its files.  :func:`ahead` runs ``work``
on the next item on a thread of its own, so that the two overlap on two
cores, and hands results out strictly in the items' order.

What ``work`` logs is held back and emitted when its item is handed out, so
``-v`` reads as if the wheels had been taken one at a time.  An error it
raises reaches the caller with its item (``catch``: as the result; anything
else: raised there).  The thread is a daemon: an interrupted caller does not
wait for it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Held(logging.Filter):
    """Holds back the records that worker threads log, each thread's apart."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[int, list[logging.LogRecord]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        held = self.held.get(record.thread)
        if held is None:
            return True
        held.append(record)
        return False


class _Job(threading.Thread):
    def __init__(self, work: Callable, item, held: _Held) -> None:
        super().__init__(name="wheelvet-ahead", daemon=True)
        self.work, self.item, self._held = work, item, held
        self.result = self.error = None
        self.records: list[logging.LogRecord] = []

    def run(self) -> None:
        self._held.held[threading.get_ident()] = self.records
        try:
            self.result = self.work(self.item)
        except BaseException as exc:  # (handed to the caller with the item)
            self.error = exc
        finally:
            self._held.held.pop(threading.get_ident(), None)


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger("wheelvet")] + [
        lg for name, lg in list(logging.Logger.manager.loggerDict.items())
        if name.startswith("wheelvet.") and isinstance(lg, logging.Logger)]


def ahead(items: Iterable[T], work: Callable[[T], R], *, catch: tuple[type[BaseException], ...] = ()
          ) -> Iterator[tuple[T, R | BaseException]]:
    """``(item, work(item))`` for each item, in order, ``work`` running one
    item ahead; an exception of ``catch`` it raised is handed out in place
    of the result, any other is raised when its item's turn comes."""
    items = list(items)
    if len(items) < 2:  # (nothing to overlap)
        for item in items:
            try:
                yield item, work(item)
            except catch as exc:
                yield item, exc
        return
    held = _Held()
    loggers = _loggers()
    for lg in loggers:
        lg.addFilter(held)
    try:
        job = _Job(work, items[0], held)
        job.start()
        for k in range(len(items)):
            job.join()
            done = job
            if k + 1 < len(items):
                job = _Job(work, items[k + 1], held)
                job.start()
            for record in done.records:
                logging.getLogger(record.name).callHandlers(record)
            if done.error is not None:
                if isinstance(done.error, catch):
                    yield done.item, done.error
                    continue
                raise done.error
            yield done.item, done.result
    finally:
        for lg in loggers:
            lg.removeFilter(held)


__all__ = ["ahead"]
