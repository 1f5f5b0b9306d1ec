"""The sealer thread and the consumer thread's back-pressure seals."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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
        self.store: Any = None

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


def test_a_back_pressure_seal_does_not_wait_for_the_sealer_giving_way_to_it() -> None:
    """The consumer thread, in a live batch, waits for a seal that first waits
    for the sealer's seal of the same partition. The sealer must not give way
    to that batch, which applies nothing until the seals are done."""
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
        assert part.pending == MAX_PENDING - 1
    finally:
        sealer.stop()
