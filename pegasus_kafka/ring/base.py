"""What every partition materialiser shares: applying records in checkpoint-sized batches."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pegasus_kafka.kafka.messages import Record
from pegasus_kafka.ring.store import Batch, PartitionStore, split_at_checkpoints, u64


@dataclass
class ApplyResult:
    applied: int = 0
    samples: int = 0
    duplicates: int = 0
    sealed: bool = False
    dead: list[tuple[int, str]] = field(default_factory=list)

    def merge(self, other: ApplyResult) -> None:
        self.applied += other.applied
        self.samples += other.samples
        self.duplicates += other.duplicates
        self.sealed = self.sealed or other.sealed
        self.dead.extend(other.dead)


class Materialiser:
    """One partition's RDS in its store; subclasses apply one atomic batch.

    A materialiser may need to reorganise its store after a given record (the
    scan partition seals its head into blocks). That point is a function of
    the records alone. :meth:`apply_until_seal` stops right there, so a server
    can make every partition's new records visible before it spends time on
    seals; :meth:`seal` then does it in a batch of its own at the same offset.
    """

    #: a seal falls due after the last record applied; it must run before the next
    seal_due = False

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        self.lock = threading.RLock()

    def apply(self, records: list[Record]) -> ApplyResult:
        """Apply records (offset, key, value) in offset order, sealing in place."""
        result = ApplyResult()
        while records:
            done, part = self.apply_until_seal(records)
            result.merge(part)
            records = records[done:]
        if self.seal_due:
            self.seal()
        return result

    def apply_until_seal(self, records: list[Record]) -> tuple[int, ApplyResult]:
        """Apply records in offset order until a seal falls due: (records applied, result).

        They are committed in batches cut at the store's digest checkpoints,
        so every ring records its digest at the same offsets. A seal still due
        (after a restart) is done first.
        """
        if self.seal_due:
            self.seal()
        result = ApplyResult()
        done = 0
        for chunk in split_at_checkpoints(records, self.store.checkpoint_every):
            if not chunk:
                continue
            n, part = self._apply_batch(chunk)
            result.merge(part)
            done += n
            if n < len(chunk):
                break
        return done, result

    def _apply_batch(self, records: list[Record]) -> tuple[int, ApplyResult]:
        """Apply and commit a prefix of ``records`` (all, unless a seal falls due)."""
        raise NotImplementedError

    def seal(self) -> None:
        """Do the seal that fell due, in its own batch at the applied offset."""
        self.seal_due = False

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
