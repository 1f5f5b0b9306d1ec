"""Materialises one partition of the scan topic: current values and full history.

Layout of the partition's store:

``frames``  offset -> the frame's Avro bytes, for frames not yet sealed (the head)
``blocks``  data type | ikey | host id | UTC day | seal number -> compressed block
``skips``   offset -> why a record was skipped (so the digest covers the skip)
``meta``    applied offset, digest, and this module's state (hosts, dedup, current)

Frames land in the head first: that write is one put per frame, whatever the
number of points, which keeps ingest cheap. When the head holds
``seal_samples`` samples, or spans ``seal_span_ms`` of scan time, it is sealed:
its samples are regrouped per (point, host, day) into blocks and the head is
deleted, in the same batch. Both thresholds look only at record content, so
every ring seals at the same offsets and holds the same keys.

Host ids number the (site, host) pairs in the order the partition first saw
them, which is the same on every ring.
"""

from __future__ import annotations

import json
import logging
import struct
from typing import Any

import numpy as np

from pegasus_kafka.errors import MalformedRecord
from pegasus_kafka.kafka.messages import Record
from pegasus_kafka.ring import blocks, rollup, trend
from pegasus_kafka.ring.base import ApplyResult, Materialiser
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.ring.current import CurrentTable
from pegasus_kafka.ring.layout import DAY_MS, block_day, block_key, series_prefix
from pegasus_kafka.ring.store import Batch, PartitionStore, kv_hash, raw_items, u64
from pegasus_kafka.schema import LIMIT, STATUS, Frame, decode_frame

log = logging.getLogger(__name__)

COLUMN_FAMILIES = ("frames", "blocks", "summaries", "skips")
K_STATE = b"scan_state"


def width_of(dtype: int) -> int:
    return 4 if dtype == LIMIT else 1


class ScanPartition(Materialiser):
    """One scan-topic partition's RDS; all methods are safe across threads."""

    def __init__(self, store: PartitionStore, seal_samples: int, seal_span_ms: int) -> None:
        super().__init__(store)
        self.seal_samples = seal_samples
        self.seal_span_ms = seal_span_ms
        raw = store.state(K_STATE)
        state: dict[str, Any] = json.loads(raw) if raw else {}
        self.hosts: list[str] = state.get("hosts", [])
        self.periods: dict[str, int] = state.get("periods", {})
        self.dedup: dict[str, list[int]] = state.get("dedup", {})
        self.seal_seq: int = state.get("seal_seq", 0)
        self.current = [CurrentTable(width_of(t)) for t in range(4)]
        for t in range(4):
            snap = store.state(b"current/%d" % t)
            if snap:
                self.current[t] = CurrentTable.from_bytes(snap, width_of(t))
        # Unsealed frames: (offset, frame, digest term of its stored bytes).
        self.head: list[tuple[int, Frame, int]] = []
        self.head_samples = 0
        self.head_span = (0, 0)  # (earliest, latest) scan time in the head
        # Rebuild the in-memory head (and current values past the last seal)
        # from the frames the store still holds, in offset order.
        for key, value in raw_items(store.cf("frames").items()):
            offset = struct.unpack(">Q", key)[0]
            self._add_to_head(offset, decode_frame(value), kv_hash("frames", key, value))
        # A crash between a batch and the seal it made due leaves the seal to do.
        self.seal_due = self._should_seal()

    # -- ingest -----------------------------------------------------------------

    def _host_id(self, frame: Frame) -> int:
        name = f"{frame.site}/{frame.host}"
        if name not in self.hosts:
            self.hosts.append(name)
        self.periods[name] = frame.scan_period_ms
        return self.hosts.index(name)

    def _add_to_head(self, offset: int, frame: Frame, term: int) -> None:
        host_id = self._host_id(frame)
        t = frame.scan_time_ms
        first, last = self.head_span if self.head else (t, t)
        self.head_span = (min(first, t), max(last, t))
        self.head.append((offset, frame, term))
        self.head_samples += frame.count
        self.current[frame.data_type].update(frame, host_id)

    def _is_duplicate(self, frame: Frame) -> bool:
        # Per host and data type, a partition receives frames in (seq, chunk)
        # order: the collector sends them so, and the idempotent producer keeps it.
        name = f"{frame.site}/{frame.host}/{frame.data_type}"
        position = [frame.seq, frame.chunk]
        last = self.dedup.get(name)
        if last is not None and position <= last:
            return True
        self.dedup[name] = position
        return False

    def _should_seal(self) -> bool:
        if self.head_samples >= self.seal_samples:
            return True
        return bool(self.head) and self.head_span[1] - self.head_span[0] >= self.seal_span_ms

    def _apply_batch(self, records: list[Record]) -> tuple[int, ApplyResult]:
        """Apply records until the head is due for a seal; commit what was applied."""
        result = ApplyResult()
        done = len(records)
        with self.lock:
            batch = self.store.begin()
            for i, (offset, _key, value) in enumerate(records):
                try:
                    frame = decode_frame(value)
                except MalformedRecord as exc:
                    self._skip(batch, result, offset, str(exc))
                    continue
                if self._is_duplicate(frame):
                    result.duplicates += 1
                    continue
                term = batch.put("frames", u64(offset), value or b"")
                self._add_to_head(offset, frame, term)
                result.applied += 1
                result.samples += frame.count
                if self._should_seal():
                    self.seal_due = True
                    result.sealed = True
                    done = i + 1
                    break
            batch.put_state(K_STATE, self._state_bytes())
            self.store.commit(batch, records[done - 1][0] + 1)
        return done, result

    def seal(self) -> None:
        """Seal the head in a batch of its own, at the offset that made it due.

        While a seal is due nothing else changes this partition (its records
        wait), so the blocks are encoded without the lock and queries keep
        reading the head meanwhile; the lock is taken only to write the batch
        and drop the head.
        """
        batch = self.store.begin()
        self._encode_head(batch, self.seal_seq + 1)
        with self.lock:
            self._drop_head(batch)
            batch.put_state(K_STATE, self._state_bytes())
            self.store.commit(batch, self.store.applied_offset)
            self.seal_due = False

    def _state_bytes(self) -> bytes:
        state = {
            "hosts": self.hosts,
            "periods": self.periods,
            "dedup": self.dedup,
            "seal_seq": self.seal_seq,
        }
        return json.dumps(state, sort_keys=True).encode()

    def _encode_head(self, batch: Batch, seal_seq: int) -> None:
        """Stage the head's samples as per-(point, host, day) blocks of seal ``seal_seq``."""
        for dtype in range(4):
            frames = [f for _, f, _ in self.head if f.data_type == dtype]
            if frames:
                self._seal_type(batch, dtype, frames, seal_seq)

    def _drop_head(self, batch: Batch) -> None:
        """Complete a seal whose blocks are staged: delete the head's frames."""
        self.seal_seq += 1
        for offset, _, term in self.head:
            batch.delete("frames", u64(offset), term)
        for t in range(4):
            batch.put_state(b"current/%d" % t, self.current[t].to_bytes())
        self.head = []
        self.head_samples = 0

    def _seal_type(self, batch: Batch, dtype: int, frames: list[Frame], seal_seq: int) -> None:
        cols = _columns(frames, [self.hosts.index(f"{f.site}/{f.host}") for f in frames])
        day = cols["times"] // DAY_MS
        order = np.lexsort((cols["arrival"], cols["times"], day, cols["host"], cols["ikeys"]))
        ikeys, host, day = cols["ikeys"][order], cols["host"][order], day[order]
        change = (
            np.flatnonzero((np.diff(ikeys) != 0) | (np.diff(host) != 0) | (np.diff(day) != 0)) + 1
        )
        starts = np.concatenate(([0], change)).astype(np.int64)
        ordered = Samples(
            times=cols["times"][order],
            values=cols["values"][order],
            quality=cols["quality"][order],
            role=cols["role"][order],
            changes=cols["changes"][order] if dtype == STATUS else None,
        )
        blobs = blocks.encode_many(ordered, starts)
        summaries = rollup.summarise_many(ordered, starts) if dtype != LIMIT else None
        for g, (a, blob) in enumerate(zip(starts.tolist(), blobs, strict=True)):
            key = block_key(dtype, int(ikeys[a]), int(host[a]), int(day[a]), seal_seq)
            batch.put("blocks", key, blob)
            summary = summaries[g] if summaries is not None else None
            if summary is not None:
                batch.put("summaries", key, summary)

    def load_history(
        self,
        dtype: int,
        frame: Frame,
        times: np.ndarray,
        values: np.ndarray,
        quality: np.ndarray,
        days_per_batch: int = 30,
    ) -> None:
        """Bulk-load one point's history straight into sealed blocks.

        ``frame`` names the point (its single ikey), host, role and scan period,
        and is the point's current value afterwards. The samples come from
        outside the topic, so a store loaded this way holds more than a replay
        of its records: it is for benchmarks and one-off migrations, never for
        a ring that other rings are compared with unless they load the same.
        Times must be sorted.
        """
        ikey = int(frame.ikeys[0])
        with self.lock:
            host = self._host_id(frame)
            day = times // DAY_MS
            bounds = np.flatnonzero(np.diff(day)) + 1
            starts = np.concatenate(([0], bounds)).astype(np.int64)
            for first in range(0, len(starts), days_per_batch):
                a = int(starts[first])
                b = (
                    int(starts[first + days_per_batch])
                    if first + days_per_batch < len(starts)
                    else len(times)
                )
                self.seal_seq += 1
                piece = Samples(
                    times=times[a:b],
                    values=values[a:b],
                    quality=quality[a:b],
                    role=np.full(b - a, frame.role, np.uint8),
                    changes=np.zeros(b - a, np.uint8) if dtype == STATUS else None,
                )
                local = starts[first : first + days_per_batch] - a
                batch = self.store.begin()
                summaries = rollup.summarise_many(piece, local) if dtype != LIMIT else None
                for g, (start, blob) in enumerate(
                    zip(local.tolist(), blocks.encode_many(piece, local), strict=True)
                ):
                    key = block_key(dtype, ikey, host, int(day[a + start]), self.seal_seq)
                    batch.put("blocks", key, blob)
                    summary = summaries[g] if summaries is not None else None
                    if summary is not None:
                        batch.put("summaries", key, summary)
                batch.put_state(K_STATE, self._state_bytes())
                self.store.commit(batch, self.store.applied_offset)
            self.current[dtype].update(frame, host)
            batch = self.store.begin()
            batch.put_state(b"current/%d" % dtype, self.current[dtype].to_bytes())
            self.store.commit(batch, self.store.applied_offset)

    # -- reads ------------------------------------------------------------------

    def period_ms(self) -> int:
        return max(self.periods.values(), default=5000)

    def current_rows(self, dtype: int, ikeys: np.ndarray) -> dict[str, np.ndarray]:
        with self.lock:
            table = self.current[dtype]
            found, idx = table.lookup(ikeys)
            return {
                "found": found,
                "values": table.values[idx] if len(table) else np.full(len(ikeys), np.nan),
                "quality": table.quality[idx] if len(table) else np.zeros(len(ikeys), np.uint8),
                "time": table.time[idx] if len(table) else np.zeros(len(ikeys), np.int64),
                "host": table.host[idx] if len(table) else np.zeros(len(ikeys), np.int16),
            }

    def knows(self, dtype: int, ikey: int) -> bool:
        with self.lock:
            found, _ = self.current[dtype].lookup(np.array([ikey], np.int64))
            return bool(found[0])

    def history(self, dtype: int, ikey: int, t0: int, t1: int) -> dict[str, Samples]:
        """Raw samples of one point in [t0, t1], per host ("site/host")."""
        with self.lock:
            hosts = list(self.hosts)
            head = [f for _, f, _ in self.head if f.data_type == dtype]
            host_ids = [hosts.index(f"{f.site}/{f.host}") for f in head]
        blocks_cf = self.store.cf("blocks")
        out: dict[str, Samples] = {}
        for host_id, name in enumerate(hosts):
            parts = list(self._read_blocks(blocks_cf, dtype, ikey, host_id, t0, t1))
            mine = [f for f, h in zip(head, host_ids, strict=True) if h == host_id]
            parts.append(_head_samples(mine, ikey, dtype))
            merged = blocks.concat(parts)
            if len(merged):
                mask = (merged.times >= t0) & (merged.times <= t1)
                out[name] = blocks.select(merged, mask)
        return out

    def trend(self, dtype: int, ikey: int, t0: int, t1: int) -> rollup.Buckets:
        """Hourly buckets of the resolved series in [t0, t1] (see
        :func:`pegasus_kafka.ring.trend.read`)."""
        return trend.read(self, dtype, ikey, t0, t1)

    def _read_blocks(self, cf: Any, dtype: int, ikey: int, host: int, t0: int, t1: int) -> Any:
        prefix = series_prefix(dtype, ikey, host)
        it = cf.iter()
        it.seek(block_key(dtype, ikey, host, max(t0, 0) // DAY_MS, 0))
        last_day = t1 // DAY_MS
        while it.valid():
            key = it.key()
            if not key.startswith(prefix) or block_day(key) > last_day:
                break
            yield blocks.decode(it.value())
            it.next()


def _columns(frames: list[Frame], host_ids: list[int]) -> dict[str, np.ndarray]:
    counts = [f.count for f in frames]
    dtype = frames[0].data_type
    return {
        "ikeys": np.concatenate([f.ikeys for f in frames]),
        "values": np.concatenate([f.values for f in frames]),
        "quality": np.concatenate([f.quality for f in frames]),
        "changes": np.concatenate([f.changes for f in frames])
        if dtype == STATUS
        else np.zeros(sum(counts), np.uint8),
        "times": np.repeat(np.array([f.scan_time_ms for f in frames], np.int64), counts),
        "host": np.repeat(np.array(host_ids, np.int64), counts),
        "role": np.repeat(np.array([f.role for f in frames], np.uint8), counts),
        "arrival": np.repeat(np.arange(len(frames)), counts),
    }


def _head_samples(frames: list[Frame], ikey: int, dtype: int) -> Samples:
    hits = [(f, np.flatnonzero(f.ikeys == ikey)) for f in frames]
    hits = [(f, i) for f, i in hits if len(i)]
    if not hits:
        return blocks.empty(width_of(dtype))
    return Samples(
        times=np.array([f.scan_time_ms for f, i in hits for _ in i], np.int64),
        values=np.concatenate([f.values[i] for f, i in hits]),
        quality=np.concatenate([f.quality[i] for f, i in hits]),
        role=np.array([f.role for f, i in hits for _ in i], np.uint8),
        changes=np.concatenate([f.changes[i] for f, i in hits]) if dtype == STATUS else None,
    )
