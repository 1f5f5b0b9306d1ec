"""The sealer thread and the consumer thread's back-pressure seals."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from pegasus_kafka.ring import sealer as sealer_mod
from pegasus_kafka.ring.sealer import MAX_PENDING, Sealer

PIECES = 20


class _Partition:
    """Stands for a scan partition with frozen generations: one seal at a time,
    a pause before each of its pieces."""

    def __init__(self) -> None:
        self.pending = MAX_PENDING + 1
        self.seal_lock = threading.Lock()
        self.sealer_started = threading.Event()
        self.store: Any = SimpleNamespace(path="part")

    def pending_seals(self) -> int:
        return self.pending

    def seal(self, pause: Callable[[], None] = lambda: None) -> bool:
        with self.seal_lock:
            if not self.pending:
                return False
            self.sealer_started.set()
            for _ in range(PIECES):
                pause()
            self.pending -= 1
            return True


def _held_by_the_sealer_thread(sealer: Sealer, part: _Partition, release: threading.Event) -> None:
    """Queue ``part`` and wait until the sealer thread has claimed it; its seal
    then waits for ``release``."""
    original = part.seal

    def slow_seal(pause: Callable[[], None] = lambda: None) -> bool:
        release.wait(10)
        return original(pause)

    part.seal = slow_seal  # type: ignore[method-assign]
    with sealer._cond:
        sealer._queue[id(part)] = part  # type: ignore[assignment]
        sealer._cond.notify()
    deadline = time.monotonic() + 10
    while id(part) not in sealer._busy and time.monotonic() < deadline:
        time.sleep(0.01)  # poll: the sealer thread claims it
    assert id(part) in sealer._busy


def test_back_pressure_does_not_wait_for_the_sealer_giving_way_to_it() -> None:
    """The consumer thread, in a live batch, waits for the sealer's seal of the
    partition it offers. The sealer must not give way to that batch, which
    applies nothing until the seal is done."""
    part = _Partition()
    sealer = Sealer("r")
    try:
        gate = threading.Event()
        original = sealer._give_way

        def give_way() -> None:
            gate.wait(10)  # from the first piece on, the batch below is live
            original()

        sealer._give_way = give_way  # type: ignore[method-assign]
        with sealer.applying(live=True):
            with sealer._cond:  # the sealer thread starts this seal first
                sealer._queue[id(part)] = part  # type: ignore[assignment]
                sealer._cond.notify()
            assert part.sealer_started.wait(10)
            gate.set()
            started = time.monotonic()
            sealer.offer(part)  # type: ignore[arg-type]
            waited = time.monotonic() - started
        # Giving way to the batch, the sealer's seal alone would take
        # PIECES * GIVE_WAY_S (2 s).
        assert waited < PIECES * sealer_mod.GIVE_WAY_S / 2
        assert part.pending <= MAX_PENDING
    finally:
        sealer.stop()


def test_back_pressure_seals_another_partition_while_the_sealer_seals_its_own() -> None:
    """The consumer thread is held back by a partition the sealer thread is
    sealing. Meanwhile it seals another partition that waits, instead of
    waiting for that seal; then it waits for its own partition's seal."""
    held, other = _Partition(), _Partition()
    release = threading.Event()
    sealer = Sealer("r")
    try:
        _held_by_the_sealer_thread(sealer, held, release)
        with sealer._cond:
            sealer._queue[id(other)] = other  # type: ignore[assignment]
        offered = threading.Thread(target=sealer.offer, args=(held,), daemon=True)
        offered.start()
        deadline = time.monotonic() + 5
        while other.pending > 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # poll: the consumer thread seals the other partition
        assert other.pending == 0, "sealed while its own partition's seal was held up"
        assert offered.is_alive(), "and still waits for its own partition"
        release.set()
        offered.join(10)
        assert not offered.is_alive() and held.pending <= MAX_PENDING
    finally:
        release.set()
        sealer.stop()


def test_back_pressure_ends_when_its_partitions_seal_fails() -> None:
    """A seal that fails leaves its generations for the next open; the consumer
    thread goes on applying instead of waiting for it."""
    part = _Partition()

    def failing(pause: Callable[[], None] = lambda: None) -> bool:
        raise OSError("disk")

    part.seal = failing  # type: ignore[method-assign]
    sealer = Sealer("r")
    try:
        done = threading.Event()
        threading.Thread(target=lambda: (sealer.offer(part), done.set()), daemon=True).start()  # type: ignore[arg-type,func-returns-value]
        assert done.wait(10)
    finally:
        sealer.stop()


def test_help_seals_a_waiting_partition_while_the_sealer_seals_another() -> None:
    """The consumer thread, idle after a catch-up, seals one generation of a
    partition that waits, beside the sealer thread's seal; with no seal
    under way it leaves the work to the sealer thread."""
    held, waiting = _Partition(), _Partition()
    idle = Sealer("r")
    idle.stop()  # its thread is gone: no seal can be under way
    idle._queue[id(waiting)] = waiting  # type: ignore[assignment]
    assert not idle.help(), "with no seal under way, the sealer thread takes the work"
    assert waiting.pending == MAX_PENDING + 1
    release = threading.Event()
    sealer = Sealer("r")
    try:
        assert not sealer.help(), "nothing waits"
        _held_by_the_sealer_thread(sealer, held, release)
        assert not sealer.help(), "no other partition waits"
        with sealer._cond:
            sealer._queue[id(waiting)] = waiting  # type: ignore[assignment]
        before = waiting.pending
        assert sealer.help()
        assert waiting.pending == before - 1, "one generation, on the caller's thread"
        assert id(waiting) in sealer._queue, "queued again: it has more to do"
        assert held.pending == MAX_PENDING + 1, "the sealer thread's seal is still held up"
    finally:
        release.set()
        sealer.stop()
