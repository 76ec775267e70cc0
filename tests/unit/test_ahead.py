"""The next item worked on while this one is handled (wheelvet.ahead)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from wheelvet.ahead import ahead
from wheelvet.errors import WheelvetError

log = logging.getLogger("wheelvet.test_ahead")


def test_results_come_in_order_and_the_next_is_worked_on_meanwhile():
    started: dict[int, float] = {}
    handled: dict[int, float] = {}

    def work(i):
        started[i] = time.monotonic()
        time.sleep(0.05 * (3 - i % 3))  # (later items finish first if nothing held them)
        return i * i, threading.current_thread().name

    got = []
    for i, (square, thread) in ahead(range(6), work):
        handled[i] = time.monotonic()
        got.append(square)
        assert thread == "wheelvet-ahead"
        time.sleep(0.05)
    assert got == [i * i for i in range(6)]
    # item k+1 was started before item k was handed out and handled
    assert all(started[k + 1] <= handled[k] + 0.01 for k in range(5))


def test_caught_errors_are_results_and_others_are_raised_at_their_turn():
    def work(i):
        if i == 1:
            raise WheelvetError("wheel 1 is bad")
        if i == 3:
            raise ValueError("a bug")
        return i

    seen = []
    with pytest.raises(ValueError, match="a bug"):
        for i, result in ahead(range(5), work, catch=(WheelvetError,)):
            seen.append((i, str(result) if isinstance(result, WheelvetError) else result))
    assert seen == [(0, 0), (1, "wheel 1 is bad"), (2, 2)]


def test_one_item_is_worked_on_in_the_callers_thread():
    assert list(ahead(["x"], lambda s: threading.current_thread() is threading.main_thread())) == [("x", True)]
    assert list(ahead([], lambda s: s)) == []
    [(item, error)] = ahead(["x"], lambda s: (_ for _ in ()).throw(WheelvetError("no")), catch=(WheelvetError,))
    assert str(error) == "no"


class _Listed(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_what_work_logs_comes_out_with_its_item():
    listed = _Listed()
    log.addHandler(listed)
    log.setLevel(logging.INFO)
    try:
        def work(i):
            log.info("read %d", i)
            return i

        for i, _ in ahead(range(4), work):
            log.info("handled %d", i)
        assert listed.messages == [m for i in range(4) for m in (f"read {i}", f"handled {i}")]
        # nothing is held back once it is done: a later record goes straight out
        log.info("after")
        assert listed.messages[-1] == "after"
        assert not [f for f in log.filters if type(f).__name__ == "_Held"]
    finally:
        log.removeHandler(listed)


def _wait_for(test, timeout=10.0):
    end = time.monotonic() + timeout
    while not test():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def test_work_runs_two_items_ahead_and_no_further():
    started: list[int] = []

    def work(i):
        started.append(i)
        return i

    taken = []
    for i, result in ahead(range(6), work, depth=2):
        taken.append(result)
        if i == 0:
            # while item 0 is handled, items 1 and 2 are worked on, not 3
            assert _wait_for(lambda: len(started) >= 3)
            time.sleep(0.2)
            assert started == [0, 1, 2]
    assert taken == list(range(6)) and started == list(range(6))


def test_results_holding_many_bytes_keep_it_to_one_ahead():
    started: list[int] = []

    def work(i):
        started.append(i)
        return 150 if i == 1 else 10  # (item 1's result "holds" 150 bytes)

    for i, _ in ahead(range(6), work, depth=3, size=lambda r: r, max_held=100):
        if i == 0:
            # item 1 is always worked on; it holds more than max_held, so item 2 waits for it to be taken
            assert _wait_for(lambda: len(started) >= 2)
            time.sleep(0.2)
            assert started == [0, 1]
        if i == 1:
            # taken: items 2, 3 and 4 (10 bytes each) are worked on, up to depth; not 5
            assert _wait_for(lambda: len(started) >= 5)
            time.sleep(0.2)
            assert started == [0, 1, 2, 3, 4]
    assert started == list(range(6))


def test_a_caller_that_stops_early_stops_the_work():
    started: list[int] = []

    def work(i):
        started.append(i)
        return i

    for i, _ in ahead(range(10), work, depth=2):
        if i == 1:
            break
    # the worker ends (it does not wait for a caller that is gone), having
    # started items 0-3 at most: two ahead of item 1, none after the stop
    assert _wait_for(lambda: not [t for t in threading.enumerate() if t.name == "wheelvet-ahead" and t.is_alive()])
    assert len(started) <= 4
