"""Seals partitions' frozen heads on a thread of its own, so ingest never waits for one.

A seal re-encodes a generation of frames into per-point blocks: the slow part
of ingest, mostly numpy and zstd, which release the GIL. Running it here lets
the consumer thread keep every partition's new records flowing meanwhile.
What a seal writes, and the digest, do not depend on when it runs (see
:mod:`pegasus_kafka.ring.scan`). Partitions are served in the order they
asked, one generation at a time, so no partition waits behind another's
whole backlog.

A live server's ingest comes first. When the server is in sync, a batch
that did not fill holds the log's end: new data, waiting to become
queryable. While the consumer thread applies such a batch, and until
:data:`QUIET_S` after it (a poll's records come in a few batches), the
sealer waits before its next piece of a seal or a merge, for at most
:data:`GIVE_WAY_S` a piece. Both threads hold the GIL for much of their
work (the Python around numpy, and RocksDB writes), so otherwise they would
share it, and a poll that arrives during a seal would take about twice as
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
        self._queue: OrderedDict[int, Materialiser] = OrderedDict()
        self._cond = threading.Condition()
        self._stopped = False
        self._live_batch = False
        #: monotonic time from which the sealer need not wait
        self._quiet_from = 0.0
        self._applied = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sealer", daemon=True)
        self._thread.start()

    def offer(self, mat: Materialiser) -> None:
        """Seal ``mat``'s pending generations soon; when it holds more than
        :data:`MAX_PENDING`, seal one now on the caller's thread (back-pressure)."""
        if mat.pending_seals() > MAX_PENDING:
            # While the consumer thread waits here, it applies nothing; and its
            # seal may first wait for the sealer's seal of this partition, which
            # must not give way to the batch that waits for it.
            with self._applied:
                live, self._live_batch = self._live_batch, False
                self._applied.notify_all()
            try:
                self._seal_one(mat, inline=True)
            finally:
                with self._applied:
                    self._live_batch = live
        with self._cond:
            self._queue.setdefault(id(mat), mat)
            self._cond.notify()

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
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                _, mat = self._queue.popitem(last=False)
            if self._seal_one(mat) and mat.pending_seals():
                with self._cond:
                    self._queue.setdefault(id(mat), mat)

    def stop(self) -> None:
        """Stop after the seal in progress; pending ones wait for the next open."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=120)
