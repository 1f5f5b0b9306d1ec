"""What every partition materialiser shares: applying records in checkpoint-sized batches."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pegasus_kafka.kafka.messages import Record
from pegasus_kafka.ring.store import Batch, PartitionStore, split_at_checkpoints, u64


@dataclass
class ApplyResult:
    applied: int = 0
    samples: int = 0
    duplicates: int = 0
    dead: list[tuple[int, str]] = field(default_factory=list)

    def merge(self, other: ApplyResult) -> None:
        self.applied += other.applied
        self.samples += other.samples
        self.duplicates += other.duplicates
        self.dead.extend(other.dead)


class Materialiser:
    """One partition's RDS in its store; subclasses apply one atomic batch.

    A materialiser may reorganise its store after given records (the scan
    partition seals its head into blocks). Where that falls due is a function
    of the records alone; when it is done is not, and must not change what
    rings compare: :meth:`ingest` applies records and leaves due work
    pending, :meth:`seal` does one piece of it, on any thread.
    """

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        self.lock = threading.RLock()

    def apply(self, records: list[Record]) -> ApplyResult:
        """Apply records (offset, key, value) in offset order, sealing in place."""
        result = self.ingest(records)
        while self.seal():
            pass
        return result

    def ingest(self, records: list[Record]) -> ApplyResult:
        """Apply records in offset order, committed in batches cut at the store's
        digest checkpoints, so every ring records its digest at the same offsets.
        Seals that fall due stay pending (:meth:`pending_seals`)."""
        result = ApplyResult()
        for chunk in split_at_checkpoints(records, self.store.checkpoint_every):
            if chunk:
                result.merge(self._apply_batch(chunk))
        return result

    def _apply_batch(self, records: list[Record]) -> ApplyResult:
        """Apply and commit ``records`` in one batch."""
        raise NotImplementedError

    def pending_seals(self) -> int:
        return 0

    def seal(self, pause: Callable[[], None] = lambda: None) -> bool:
        """Do one pending seal; False when none is pending. ``pause`` runs between
        pieces of the work, where the caller may give way to ingest."""
        return False

    def scan_digest(self) -> tuple[int, int, int]:
        """(applied offset, recorded digest, digest recomputed from disk)."""
        return self.store.scan_digest(self.lock)

    @staticmethod
    def _skip(batch: Batch, result: ApplyResult, offset: int, reason: str) -> None:
        """Record a record that cannot be applied: in the store, so the digest
        covers the skip on every ring, and in the result, for the dead-letter topic."""
        batch.put("skips", u64(offset), reason.encode())
        result.dead.append((offset, reason))

    def close(self) -> None:
        # Under the lock: a snapshot or scan in progress finishes before the store goes.
        with self.lock:
            self.store.close()
