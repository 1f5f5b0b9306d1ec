"""Seals partitions' frozen heads on a thread of its own, so ingest never waits for one.

A seal regroups a generation of frames by point, and a merge encodes sealed
segments as compressed per-point blocks: the slow part of ingest, done in
compiled calls that release the GIL (``_seal.c``, ``_coder.c``). Running it
here lets the consumer thread keep every partition's new records flowing
meanwhile.
What a seal writes, and the digest, do not depend on when it runs (see
:mod:`pegasus_kafka.ring.scan`). Partitions are served in the order they
asked, one generation at a time, so no partition waits behind another's
whole backlog.

While the server catches up, ingest outruns the seals. A partition that
holds more than :data:`MAX_PENDING` frozen generations holds its ingest
back: the consumer thread seals too, until the partition is back within
the bound. It takes the next partition no thread is sealing, which need not
be its own, so the two threads seal different partitions side by side and
neither waits for the other's seal; when every partition that waits is
being sealed, it waits for a seal to end.

After a catch-up, the consumer thread helps with the seals that are left:
its records all applied, the seals still queued would otherwise run on the
sealer thread alone. With no records to apply, it seals a partition that
waits while the sealer thread seals another, then looks for records again
without waiting, until no partition waits. A live server's batches never
fill, so it leaves its seals to the sealer thread, and a seal never holds
back a scan.

A live server's ingest comes first. When the server is in sync, a batch
that did not fill holds the log's end: new data, waiting to become
queryable. While the consumer thread applies such a batch, and until
:data:`QUIET_S` after it (a poll's records come in a few batches), the
sealer waits before its next piece of a seal or a merge, for at most
:data:`GIVE_WAY_S` a piece. Both threads hold the GIL for part of their
work (the Python around the compiled calls, and RocksDB reads and writes), so
otherwise they would share it, and a poll that arrives during a seal would take about twice as
long to apply. While the server catches up, nothing waits: the seals keep
pace with ingest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from pegasus_kafka.ring import metrics
from pegasus_kafka.ring.base import Materialiser

log = logging.getLogger(__name__)

#: frozen generations a partition may hold before ingest seals one itself
MAX_PENDING = 2
#: quiet after a live batch before the sealer goes on
QUIET_S = 0.02
#: longest the sealer waits for quiet before its next piece of work
GIVE_WAY_S = 0.1


class Sealer:
    def __init__(self, ring: str) -> None:
        self.ring = ring
        #: partitions with seals to do, in the order they asked
        self._queue: OrderedDict[int, Materialiser] = OrderedDict()
        #: partitions a thread is sealing
        self._busy: set[int] = set()
        self._cond = threading.Condition()
        self._stopped = False
        self._live_batch = False
        #: monotonic time from which the sealer need not wait
        self._quiet_from = 0.0
        self._applied = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sealer", daemon=True)
        self._thread.start()

    def offer(self, mat: Materialiser) -> None:
        """Seal ``mat``'s pending generations soon; while it holds more than
        :data:`MAX_PENDING`, seal on the caller's thread too (back-pressure)."""
        with self._cond:
            self._queue.setdefault(id(mat), mat)
            self._cond.notify()
        if mat.pending_seals() <= MAX_PENDING:
            return
        # While the consumer thread seals, it applies nothing; and the
        # sealer's seals must not give way to the batch that waits for them.
        with self._applied:
            live, self._live_batch = self._live_batch, False
            self._applied.notify_all()
        try:
            while mat.pending_seals() > MAX_PENDING:
                other = self._next(waiting=mat)
                if other is None:
                    return
                if not self._seal_claimed(other, inline=True) and other is mat:
                    return  # its seal failed: ingest goes on, the next open seals
        finally:
            with self._applied:
                self._live_batch = live

    def help(self) -> bool:
        """Seal one generation of a waiting partition on the caller's thread,
        while the sealer thread seals another; False when none waits (see the
        module's docstring)."""
        with self._cond:
            mat = self._claim() if self._busy else None
        if mat is None:
            return False
        self._seal_claimed(mat, inline=True)
        return True

    def _next(self, waiting: Materialiser | None = None) -> Materialiser | None:
        """Claim the next partition to seal, waiting for one while every
        partition with seals to do is being sealed. None once stopped, or once
        no thread will seal ``waiting`` (its seal failed)."""
        with self._cond:
            while not self._stopped:
                mat = self._claim()
                if mat is not None:
                    return mat
                if waiting is not None and id(waiting) not in self._busy:
                    return None
                self._cond.wait()
            return None

    def _claim(self) -> Materialiser | None:
        """The partition that asked first among those no thread is sealing,
        taken from the queue; the caller holds ``_cond``."""
        for key, mat in self._queue.items():
            if key not in self._busy:
                del self._queue[key]
                self._busy.add(key)
                return mat
        return None

    def _seal_claimed(self, mat: Materialiser, inline: bool = False) -> bool:
        """Seal one generation of a claimed partition, then queue it again while
        it has more to do; False when nothing was sealed."""
        done = again = False
        try:
            done = self._seal_one(mat, inline)
            again = done and mat.pending_seals() > 0
        finally:
            with self._cond:
                self._busy.discard(id(mat))
                if again:
                    self._queue.setdefault(id(mat), mat)
                self._cond.notify_all()
        return done

    @contextmanager
    def applying(self, live: bool) -> Iterator[None]:
        """Marks the consumer thread's application of a batch; the sealer gives
        way to a ``live`` one."""
        if not live:
            yield
            return
        with self._applied:
            self._live_batch = True
        try:
            yield
        finally:
            with self._applied:
                self._live_batch = False
                self._quiet_from = time.monotonic() + QUIET_S
                self._applied.notify_all()

    def _give_way(self) -> None:
        deadline = time.monotonic() + GIVE_WAY_S
        with self._applied:
            while (now := time.monotonic()) < deadline:
                if self._live_batch:
                    self._applied.wait(deadline - now)
                elif now < self._quiet_from:
                    self._applied.wait(min(self._quiet_from, deadline) - now)
                else:
                    return

    def _seal_one(self, mat: Materialiser, inline: bool = False) -> bool:
        started = time.perf_counter()
        try:
            # A seal inline on the consumer thread has nothing to give way to.
            done = mat.seal() if inline else mat.seal(self._give_way)
        except Exception:
            # The generation's frames stay in the store; the next open seals them.
            log.exception("seal failed ring=%s path=%s", self.ring, mat.store.path)
            metrics.SEAL_ERRORS.labels(self.ring).inc()
            return False
        if done:
            metrics.SEAL.labels(self.ring).observe(time.perf_counter() - started)
        return done

    def _run(self) -> None:
        while (mat := self._next()) is not None:
            self._seal_claimed(mat)

    def stop(self) -> None:
        """Stop after the seal in progress; pending ones wait for the next open."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=120)
