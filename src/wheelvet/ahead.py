"""Work on the next items while the caller handles this one.

A wheelhouse is read, checked and repaired one wheel after another.  Reading
and checking a wheel (inflating its members, hashing them for RECORD,
parsing its ELF files) reads only its own file and is mostly C code that
runs without the GIL; the repair of the wheel before it is busy meanwhile with
patchelf, its own compression and its files.  :func:`ahead` runs ``work``
on the next items, one after another on a thread of its own, so that the
two overlap on two cores, and hands results out strictly in the items'
order; how far it runs ahead is bounded by a count and by the bytes its
waiting results hold.

What ``work`` logs is held back and emitted when its item is handed out, so
``-v`` reads as if the wheels had been taken one at a time.  An error it
raises reaches the caller with its item (``catch``: as the result; anything
else: raised there).  The thread is a daemon: an interrupted caller does not
wait for it.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

from .errors import stop_if_signalled

T = TypeVar("T")
R = TypeVar("R")

# Items worked on ahead of the caller, at most.  One ahead leaves a core idle
# whenever an item's work and the caller's handling of the item before it
# take different times (lxml's first wheel: ~1 s of handling against 0.2 s
# of reading); two ahead absorb that (5 lxml wheels: 1.97 -> 1.86 s, median
# of 6) for one more item's results held in memory.
DEPTH = 2
# ... and only while the results waiting hold less than this (a wheel read
# ahead for its repair holds its patched members' input, inflated and as
# compressed: up to 768 MiB for a torch-sized one).
MAX_HELD = 256 << 20


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


class _Done:
    """One item's outcome, with what its work logged."""

    def __init__(self, item) -> None:
        self.item = item
        self.result = self.error = None
        self.bytes = 0  # what its result holds (``size``)
        self.records: list[logging.LogRecord] = []


class _Worker(threading.Thread):
    """Works on the items in order, ahead of the caller: the first item
    after the one the caller holds always, a further one only while fewer
    than ``depth`` are waiting or being worked on and the results waiting
    hold less than ``max_held`` bytes (``size`` of each)."""

    def __init__(self, items: list, work: Callable, held: _Held, depth: int,
                 size: Callable[[object], int] | None, max_held: int) -> None:
        super().__init__(name="wheelvet-ahead", daemon=True)
        self.items, self.work, self._held = items, work, held
        self.depth, self.size, self.max_held = depth, size, max_held
        self.ready = threading.Condition()
        self.pending = 0  # items started and not yet taken by the caller
        self.held_bytes = 0  # what the results waiting hold
        self.done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        self.stopped = False

    def run(self) -> None:
        ident = threading.get_ident()
        for item in self.items:
            with self.ready:
                self.ready.wait_for(lambda: self.stopped or self.pending == 0 or (
                    self.pending < self.depth and self.held_bytes < self.max_held))
                if self.stopped:
                    return
                self.pending += 1
            done = _Done(item)
            self._held.held[ident] = done.records
            try:
                done.result = self.work(item)
                done.bytes = self.size(done.result) if self.size is not None else 0
            except BaseException as exc:  # (handed to the caller with the item)
                done.error = exc
            finally:
                self._held.held.pop(ident, None)
            with self.ready:
                self.held_bytes += done.bytes
            self.done.put(done)

    def take(self) -> _Done:
        """The next item's outcome (waiting for it), which frees its place."""
        done = self.done.get()
        with self.ready:
            self.pending -= 1
            self.held_bytes -= done.bytes
            self.ready.notify()
        return done

    def stop(self) -> None:
        """Start nothing more (the item being worked on is finished, and dropped)."""
        with self.ready:
            self.stopped = True
            self.ready.notify()


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger("wheelvet")] + [
        lg for name, lg in list(logging.Logger.manager.loggerDict.items())
        if name.startswith("wheelvet.") and isinstance(lg, logging.Logger)]


def ahead(items: Iterable[T], work: Callable[[T], R], *, catch: tuple[type[BaseException], ...] = (),
          depth: int = DEPTH, size: Callable[[R], int] | None = None, max_held: int = MAX_HELD
          ) -> Iterator[tuple[T, R | BaseException]]:
    """``(item, work(item))`` for each item, in order, ``work`` running on
    one thread up to ``depth`` items ahead of the caller (beyond the first,
    only while the results waiting hold under ``max_held`` bytes, as
    ``size`` counts them); an exception of ``catch`` it raised is handed out
    in place of the result, any other is raised when its item's turn comes."""
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
    worker = _Worker(items, work, held, max(1, depth), size, max_held)
    try:
        worker.start()
        for _ in items:
            done = worker.take()
            stop_if_signalled()  # (a Ctrl-C swallowed meanwhile: nothing more is handed out)
            for record in done.records:
                logging.getLogger(record.name).callHandlers(record)
            if done.error is not None:
                if isinstance(done.error, catch):
                    yield done.item, done.error
                    continue
                raise done.error
            yield done.item, done.result
    finally:
        worker.stop()
        for lg in loggers:
            lg.removeFilter(held)


__all__ = ["ahead"]
