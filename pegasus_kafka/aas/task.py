"""One partition of one advanced application: its miner, the metadata of its
points, its store and its positions in the three topics it reads.

Commit order, for every checkpoint of a partition:

1. The exceptions mined since the last checkpoint have been handed to the
   producer; the runner flushes it, so every one of them is acknowledged by
   Kafka before anything is recorded as done.
2. :meth:`AppTask.checkpoint` writes the miner's state, the metadata versions
   learnt, and the next offset of the scan partition, of the meta partition
   and of every events partition in one RocksDB WriteBatch.
3. Last, the runner commits the scan offset to the consumer group, which only
   serves Kafka's lag tooling: on assignment a task resumes from its store.

A crash between 1 and 2 replays the records since the last checkpoint. Mining
is a pure function of those records, so the replay republishes exactly the
same exceptions with the same ids, and consumers drop the repeats; nothing
mined is ever lost.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol, cast

from pegasus_kafka.aas.meta import MetaIndex
from pegasus_kafka.aas.points import PointTable
from pegasus_kafka.errors import MalformedRecord
from pegasus_kafka.ring.store import PartitionStore, u64
from pegasus_kafka.schema import Frame, decode_frame, decode_record

log = logging.getLogger(__name__)

POINTS = "points"
K_TABLE = b"aas.table"
K_STATE = b"aas.state"


class Miner(Protocol):
    app: str
    record: str
    uses_events: bool
    table: PointTable
    mined: int

    def on_frame(self, frame: Frame, meta: MetaIndex) -> list[dict[str, Any]]: ...

    def on_event(self, event: dict[str, Any], meta: MetaIndex) -> list[dict[str, Any]]: ...

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


class AppTask:
    def __init__(self, path: Path, partition: int, miner: Miner, sync: bool = False) -> None:
        self.partition = partition
        self.miner = miner
        self.store = PartitionStore(path, (POINTS,), sync=sync, checkpoint_every=0)
        self.meta = MetaIndex()
        for key, value in self.store.cf(POINTS).items():
            self.meta.load(int.from_bytes(cast(bytes, key), "big"), cast(bytes, value))
        table = self.store.state(K_TABLE)
        if table is not None:
            miner.table.load(table)
        raw = self.store.state(K_STATE)
        saved = json.loads(raw) if raw else {}
        if "miner" in saved:
            miner.restore(saved["miner"])
        self.scan_pos = self.store.applied_offset
        self.meta_pos = int(saved.get("meta_pos", 0))
        self.events_pos: dict[int, int] = {int(k): v for k, v in saved.get("events", {}).items()}
        self.malformed = 0
        self._batch = self.store.begin()

    def on_scan(self, offset: int, value: bytes | None) -> list[dict[str, Any]]:
        if offset < self.scan_pos:
            return []
        self.scan_pos = offset + 1
        try:
            frame = decode_frame(value)
        except MalformedRecord as exc:
            self._malformed("scan", offset, exc)
            return []
        return self.miner.on_frame(frame, self.meta)

    def on_meta(self, offset: int, value: bytes | None) -> None:
        if offset < self.meta_pos:
            return
        self.meta_pos = offset + 1
        try:
            rec = decode_record("pegasus.PointMeta", value)
        except MalformedRecord as exc:
            self._malformed("meta", offset, exc)
            return
        encoded = self.meta.add(rec)
        if encoded is not None:
            self._batch.put(POINTS, u64(int(rec["ikey"])), encoded)

    def wants_event(self, partition: int, offset: int) -> bool:
        """Whether the event at (partition, offset) is new to this task; it is then
        counted as seen, whatever it turns out to hold."""
        if offset < self.events_pos.get(partition, 0):
            return False
        self.events_pos[partition] = offset + 1
        return True

    def _malformed(self, what: str, offset: int, exc: MalformedRecord) -> None:
        self.malformed += 1
        log.warning(
            "malformed record skipped app=%s partition=%d topic=%s offset=%d error=%s",
            self.miner.app,
            self.partition,
            what,
            offset,
            exc,
        )

    def checkpoint(self) -> None:
        """Write state and positions atomically (step 2 of the commit order)."""
        batch = self._batch
        batch.put_state(K_TABLE, self.miner.table.pack())
        state = {
            "miner": self.miner.state(),
            "meta_pos": self.meta_pos,
            "events": {str(k): v for k, v in sorted(self.events_pos.items())},
        }
        batch.put_state(K_STATE, json.dumps(state, sort_keys=True).encode())
        self.store.commit(batch, self.scan_pos)
        self._batch = self.store.begin()

    def close(self) -> None:
        self.store.close()
