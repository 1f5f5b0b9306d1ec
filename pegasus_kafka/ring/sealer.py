"""Seals partitions' frozen heads on a thread of its own, so ingest never waits for one.

A seal re-encodes a generation of frames into per-point blocks: the slow part
of ingest, mostly numpy and zstd, which release the GIL. Running it here lets
the consumer thread keep every partition's new records flowing meanwhile.
What a seal writes, and the digest, do not depend on when it runs (see
:mod:`pegasus_kafka.ring.scan`). Partitions are served in the order they
asked, one generation at a time, so no partition waits behind another's
whole backlog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from pegasus_kafka.ring import metrics
from pegasus_kafka.ring.base import Materialiser

log = logging.getLogger(__name__)

#: frozen generations a partition may hold before ingest seals one itself
MAX_PENDING = 2


class Sealer:
    def __init__(self, ring: str) -> None:
        self.ring = ring
        self._queue: OrderedDict[int, Materialiser] = OrderedDict()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sealer", daemon=True)
        self._thread.start()

    def offer(self, mat: Materialiser) -> None:
        """Seal ``mat``'s pending generations soon; when it holds more than
        :data:`MAX_PENDING`, seal one now on the caller's thread (back-pressure)."""
        if mat.pending_seals() > MAX_PENDING:
            self._seal_one(mat)
        with self._cond:
            self._queue.setdefault(id(mat), mat)
            self._cond.notify()

    def _seal_one(self, mat: Materialiser) -> bool:
        started = time.perf_counter()
        try:
            done = mat.seal()
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
