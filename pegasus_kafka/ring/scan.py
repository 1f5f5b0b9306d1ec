"""Materialises one partition of the scan topic: current values and full history.

Layout of the partition's store:

``frames``     offset -> nothing, for each frame not yet sealed: Kafka holds
               its bytes (stores of formats up to 3 hold them here)
``segments``   data type | host id | UTC day | seal number | first ikey -> the
               runs of up to a thousand points (:mod:`pegasus_kafka.ring.segments`)
``blocks``     data type | ikey | host id | UTC day | seal number -> compressed block
``summaries``  the same key -> hourly summaries of the block (large blocks only)
``skips``      offset -> why a record was skipped (so the digest covers the skip)
``meta``       applied offset, digest, and this module's state (hosts, dedup,
               generations, current values as of the last seal)

Frames land in the head first, in memory. The store lists each frame's
offset and keeps none of its bytes: the topic holds them. Writing them to
the store as well, only to delete them at the next seal, would fill the
memory tables that segments need and stop writes while those flush (with
the GIL held): a catch-up takes about 15% longer that way. When the store
opens, the frames it lists are read again from the topic (``fetch``). When
the head holds ``seal_samples`` samples, or spans ``seal_span_ms`` of scan
time, it is frozen into a generation and a new head begins. Both thresholds
look only at record content, so every ring freezes at the same offsets and
numbers the same generations. Sealing a generation regroups its samples per (point, host, day)
into segments, which the first merge turns into blocks
(:mod:`pegasus_kafka.ring.tiers`). It runs whenever a sealer gets to it (a
thread of the server, or inline): the digest covers samples, not what holds
them (:mod:`pegasus_kafka.ring.content`), so a sample counts the same in a
frame, a segment and a block, and when a seal commits changes nothing a ring
can be compared on.

A seal writes its segments in pieces (each write holds the GIL, and one
write of a utility's generation would hold it for milliseconds), then
commits: one batch deletes the generation's frames, drops it from the frozen
list and lists its seal number among those held in segments. Until that
commit, queries read the generation from its frames and pass over its
segments, and so does the digest scan. A crash between the pieces and the
commit leaves the generation frozen, and its next seal writes the same
segments again.

A level-1 merge works the same way: it writes its blocks in pieces, keyed
with a seal number still listed as held in segments, then one batch deletes
the segments and the listing. Until then reads pass over blocks of listed
seal numbers; a crash leaves the merge due, and it is done again. Seals
and merges are in :mod:`pegasus_kafka.ring.sealing`.

Host ids number the (site, host) pairs in the order the partition first saw
them, which is the same on every ring.

Format 4 keeps the head's frames in Kafka only; a format-3 store, which
keeps their bytes, needs no migration: frames whose bytes it holds are read
from the store. Format 3 seals into segments. Format 2 sealed into blocks: such a store is
migrated when opened by dropping the blocks a seal cut short (its
generation is still frozen, and seals again into segments); its digest
stays, since both formats digest samples. A format-1 store (frames and
blocks digested as key-values) also has its digest recomputed from its
content, and its old digest checkpoints dropped.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pegasus_kafka.batchread import decode_frames
from pegasus_kafka.errors import MalformedRecord, StoreError
from pegasus_kafka.kafka.messages import Record
from pegasus_kafka.ring import blocks, content, rollup, segments, tiers, trend
from pegasus_kafka.ring.base import ApplyResult, Materialiser
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.ring.current import CurrentTable
from pegasus_kafka.ring.layout import (
    DAY_MS,
    block_day,
    block_key,
    block_seal,
    parse_block_key,
    series_prefix,
)
from pegasus_kafka.ring.sealing import K_STATE, Generation, Sealing
from pegasus_kafka.ring.store import MASK, PartitionStore, kv_hash, raw_items, u64
from pegasus_kafka.schema import STATUS, Frame, decode_frame, value_width

log = logging.getLogger(__name__)

FORMAT = 4
COLUMN_FAMILIES = ("frames", "segments", "blocks", "summaries", "skips")


def open_store(path: Path, sync: bool = False, checkpoint_every: int = 1000) -> PartitionStore:
    """A scan partition's store, in (or migrating to) this module's format.

    Unless ``sync``, it keeps no write-ahead log: the records are in Kafka,
    so a crash costs only their replay (see :mod:`pegasus_kafka.ring.store`).

    Segments are stored as they are (lz4 hardly shrinks them). RocksDB
    compresses them with zstd when a compaction rewrites them, not when a
    flush writes them: most are deleted by their level-1 merge before a
    compaction reads them, so compressing them at every flush spent RocksDB's
    threads' CPU, which the server's threads need, on bytes about to go. A
    flushed file RocksDB moves down as it is (when nothing overlaps it)
    stays uncompressed until a compaction rewrites it; it holds segments of
    the seals since the last level-1 merge, at most FANIN - 1 of them."""
    return PartitionStore(
        path,
        COLUMN_FAMILIES,
        sync,
        checkpoint_every,
        format_version=FORMAT,
        compression={"segments": "compacted"},
        wal=sync,
    )


#: a partition's records ``[first, end)`` as (offset, value), in offset order
Fetch = Callable[[int, int], Iterable[tuple[int, bytes | None]]]


@dataclass(frozen=True)
class View:
    """What reads of one data type see at one instant (see :meth:`ScanPartition.view`)."""

    hosts: list[str]
    frames: list[Frame]  # unsealed frames of the data type
    blocks: Any  # snapshot of the blocks
    segments: Any  # snapshot of the segments
    sealed: list[tuple[int, list[int]]]  # (seal number, days) held in segments

    @property
    def hidden(self) -> frozenset[int]:
        """Seal numbers whose blocks are a level-1 merge's, not yet the data."""
        return frozenset(seq for seq, _ in self.sealed)


class ScanPartition(Sealing, Materialiser):
    """One scan-topic partition's RDS; all methods are safe across threads."""

    def __init__(
        self,
        store: PartitionStore,
        seal_samples: int,
        seal_span_ms: int,
        fetch: Fetch | None = None,
    ) -> None:
        """``fetch`` reads the partition's records from its topic: the frames
        of the head the store lists, which it does not hold."""
        if store.format_version != FORMAT:
            raise ValueError("open a scan partition's store with scan.open_store")
        super().__init__(store)
        self.seal_samples = seal_samples
        self.seal_span_ms = seal_span_ms
        raw = store.state(K_STATE)
        state: dict[str, Any] = json.loads(raw) if raw else {}
        self.hosts: list[str] = state.get("hosts", [])
        self.periods: dict[str, int] = state.get("periods", {})
        self.dedup: dict[str, list[int]] = state.get("dedup", {})
        self.seal_seq: int = state.get("seal_seq", 0)
        self.in_segments: dict[int, list[int]] = {
            seq: days for seq, days in state.get("segments", [])
        }
        self.current = [CurrentTable(value_width(t)) for t in range(4)]
        for t in range(4):
            snap = store.state(b"current/%d" % t)
            if snap:
                self.current[t] = CurrentTable.from_bytes(snap, value_width(t))
        self.frozen: list[Generation] = []
        self._seal_lock = threading.Lock()
        self.head: list[tuple[int, Frame]] = []
        self.head_samples = 0
        self.head_span = (0, 0)  # (earliest, latest) scan time in the head
        self._rebuild([(seq, end) for seq, end in state.get("frozen", [])], fetch)
        self._cut_short = {g.seq for g in self.frozen}
        if store.upgrade_from is not None:
            self._migrate(store.upgrade_from)

    def _rebuild(self, frozen: list[tuple[int, int]], fetch: Fetch | None) -> None:
        """Rebuild the frozen generations, the head and the current values past
        the last seal from the frames the store lists, in offset order."""
        listed = [
            (struct.unpack(">Q", key)[0], value)
            for key, value in raw_items(self.store.cf("frames").items())
        ]
        fetched = self._fetch_frames([offset for offset, value in listed if not value], fetch)
        for offset, value in listed:
            while frozen and offset >= frozen[0][1]:
                seq, end = frozen.pop(0)
                self._freeze(end, seq)
            self._add_to_head(offset, decode_frame(value or fetched[offset]))
        for seq, end in frozen:
            self._freeze(end, seq)
        # A format-1 store holds a head that was due when it stopped.
        if self._should_seal():
            self.seal_seq += 1
            self._freeze(self.store.applied_offset, self.seal_seq)

    def _fetch_frames(self, offsets: list[int], fetch: Fetch | None) -> dict[int, bytes | None]:
        """The bytes of the frames at ``offsets`` (ascending), read from the topic."""
        if not offsets:
            return {}
        if fetch is None:
            raise StoreError(
                f"store {self.store.path} lists frames at offsets {offsets[0]} to {offsets[-1]} "
                "whose bytes are in Kafka: open it with a way to read its topic"
            )
        wanted = set(offsets)
        found = {o: v for o, v in fetch(offsets[0], offsets[-1] + 1) if o in wanted}
        if len(found) != len(wanted):
            missing = sorted(wanted - set(found))
            raise StoreError(
                f"store {self.store.path}: the topic no longer holds the frames at offsets "
                f"{missing[0]} to {missing[-1]}; remove the store to replay the partition"
            )
        log.info(
            "head read from the topic path=%s frames=%d offsets=%d..%d",
            self.store.path,
            len(found),
            offsets[0],
            offsets[-1],
        )
        return found

    def _migrate(self, version: int) -> None:
        if version not in (1, 2, 3):
            raise ValueError(f"no migration from scan store format {version}")
        frozen = {g.seq for g in self.frozen}
        if frozen and version <= 2:
            blocks_cf = self.store.cf("blocks")
            cut_short = [k for k, _ in raw_items(blocks_cf.items()) if block_seal(k) in frozen]
            batch = self.store.begin()
            batch.delete_many_raw("blocks", cut_short)
            batch.delete_many_raw("summaries", cut_short)
            self.store.write_derived(batch)
        if version == 1:
            _, _, digest = self.scan_digest()
            self.store.set_format_version(digest)
        else:  # formats 2 and 3 digest samples too
            self.store.set_format_version(self.store.digest, keep_checkpoints=True)
        log.info("scan store migrated path=%s from=%d to=%d", self.store.path, version, FORMAT)

    # -- ingest -----------------------------------------------------------------

    def _host_id(self, frame: Frame) -> int:
        name = f"{frame.site}/{frame.host}"
        if name not in self.hosts:
            self.hosts.append(name)
        self.periods[name] = frame.scan_period_ms
        return self.hosts.index(name)

    def _add_to_head(self, offset: int, frame: Frame) -> int:
        host_id = self._host_id(frame)
        t = frame.scan_time_ms
        first, last = self.head_span if self.head else (t, t)
        self.head_span = (min(first, t), max(last, t))
        self.head.append((offset, frame))
        self.head_samples += frame.count
        self.current[frame.data_type].update(frame, host_id)
        return host_id

    def _freeze(self, end: int, seq: int) -> None:
        """Turn the head into generation ``seq``; a new head begins at ``end``."""
        current = [table.to_bytes() for table in self.current]
        self.frozen.append(Generation(seq, self.head, end, current))
        self.head = []
        self.head_samples = 0

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

    def _apply_batch(self, records: list[Record]) -> ApplyResult:
        result = ApplyResult()
        with self.lock:
            batch = self.store.begin()
            frames = decode_frames([value for _, _, value in records])
            for (offset, _key, _value), frame in zip(records, frames, strict=True):
                if isinstance(frame, MalformedRecord):
                    self._skip(batch, result, offset, str(frame))
                    continue
                if self._is_duplicate(frame):
                    result.duplicates += 1
                    continue
                batch.put_raw("frames", u64(offset), b"")
                host_id = self._add_to_head(offset, frame)
                batch.add(content.frame_term(frame, self.hosts[host_id]))
                result.applied += 1
                result.samples += frame.count
                if self._should_seal():
                    self.seal_seq += 1
                    self._freeze(offset + 1, self.seal_seq)
            batch.put_state(K_STATE, self._state_bytes())
            self.store.commit(batch, records[-1][0] + 1)
        return result

    def _state_bytes(self) -> bytes:
        state = {
            "hosts": self.hosts,
            "periods": self.periods,
            "dedup": self.dedup,
            "seal_seq": self.seal_seq,
            "frozen": [[g.seq, g.end] for g in self.frozen],
            "segments": sorted([seq, days] for seq, days in self.in_segments.items()),
        }
        return json.dumps(state, sort_keys=True).encode()

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
                keys = [
                    block_key(dtype, ikey, host, int(day[a + start]), self.seal_seq)
                    for start in local.tolist()
                ]
                tiers.stage_blocks(batch, dtype, piece, local, keys)
                batch.add(content.block_term(dtype, self.hosts[host], ikey, piece))
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

    def view(self, dtype: int) -> View:
        """What reads of ``dtype`` see, at one instant, so a seal or a merge
        committing meanwhile neither hides nor doubles a sample. A frozen
        generation is read from its frames; blocks of a seal number still
        held in segments are a level-1 merge's, not yet the data."""
        with self.lock:
            frames = [f for g in self.frozen for _, f in g.frames if f.data_type == dtype]
            frames += [f for _, f in self.head if f.data_type == dtype]
            return View(
                hosts=list(self.hosts),
                frames=frames,
                blocks=self.store.cf("blocks").snapshot(),
                segments=self.store.cf("segments").snapshot(),
                sealed=sorted(self.in_segments.items()),
            )

    def history(self, dtype: int, ikey: int, t0: int, t1: int) -> dict[str, Samples]:
        """Raw samples of one point in [t0, t1], per host ("site/host")."""
        view = self.view(dtype)
        host_ids = [view.hosts.index(f"{f.site}/{f.host}") for f in view.frames]
        first_day, last_day = max(t0, 0) // DAY_MS, t1 // DAY_MS
        out: dict[str, Samples] = {}
        for host_id, name in enumerate(view.hosts):
            found = list(self._block_values(view, dtype, ikey, host_id, t0, t1))
            # One decode for all the blocks, in key order, as concat expects them.
            parts = [blocks.decode_many(found)[0]] if found else []
            # Segments hold seals later than every block's, earlier than the frames.
            for seq, days in view.sealed:
                for day in days:
                    if first_day <= day <= last_day:
                        run = segments.find(view.segments, dtype, host_id, day, seq, ikey)
                        if run is not None:
                            parts.append(run)
            mine = [f for f, h in zip(view.frames, host_ids, strict=True) if h == host_id]
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

    def scan_digest(self) -> tuple[int, int, int]:
        """(applied offset, recorded digest, digest recomputed from what is on disk):
        every sample in frames, segments and blocks, and every skip (see
        :mod:`pegasus_kafka.ring.content`). The frames are those the store
        lists, read from the topic when it opened or applied since."""
        with self.lock:
            hosts = list(self.hosts)
            snaps = {
                cf: self.store.cf(cf).snapshot() for cf in ("frames", "segments", "blocks", "skips")
            }
            sealed = set(self.in_segments)
            offset, recorded = self.store.applied_offset, self.store.digest
            unsealed = dict(self.head)
            for generation in self.frozen:
                unsealed.update(generation.frames)
        total = 0
        for key, value in raw_items(snaps["skips"].items()):
            total += kv_hash("skips", key, value)
        # The frames the store lists: their bytes, where it holds them, or else
        # the frames read from the topic.
        for key, value in raw_items(snaps["frames"].items()):
            try:
                frame = decode_frame(value) if value else unsealed[struct.unpack(">Q", key)[0]]
            except (MalformedRecord, KeyError):
                total += self._unreadable("frames", key, value)
                continue
            total += content.frame_term(frame, f"{frame.site}/{frame.host}")
        for key, value in raw_items(snaps["segments"].items()):
            dtype, host, _, seal, _ = segments.parse_key(key)
            if seal not in sealed:  # a seal cut short: its samples are in the frames
                continue
            try:
                seg = segments.decode(value)
            except StoreError:
                total += self._unreadable("segments", key, value)
                continue
            total += content.samples_term(dtype, hosts[host], seg.row_ikeys(), seg.samples)
        for key, value in raw_items(snaps["blocks"].items()):
            dtype, ikey, host, _, seal = parse_block_key(key)
            if seal in sealed:  # a merge's, not committed: its samples are in segments
                continue
            try:
                samples = blocks.decode(value)
            except (StoreError, ValueError):
                total += self._unreadable("blocks", key, value)
                continue
            total += content.block_term(dtype, hosts[host], ikey, samples)
        del snaps
        return offset, recorded, total & MASK

    def _unreadable(self, cf: str, key: bytes, value: bytes) -> int:
        """A digest term for damaged data: never a sample's, so the scan disagrees."""
        log.error("unreadable entry path=%s cf=%s key=%s", self.store.path, cf, key.hex())
        return kv_hash(cf, key, value)

    def _block_values(self, view: View, dtype: int, ikey: int, host: int, t0: int, t1: int) -> Any:
        """The blocks of one point and host over the days of [t0, t1], in key
        order, but those of the view's hidden seal numbers."""
        prefix = series_prefix(dtype, ikey, host)
        hidden = view.hidden
        it = view.blocks.iter()
        it.seek(block_key(dtype, ikey, host, max(t0, 0) // DAY_MS, 0))
        last_day = t1 // DAY_MS
        while it.valid():
            key = it.key()
            if not key.startswith(prefix) or block_day(key) > last_day:
                break
            if block_seal(key) not in hidden:
                yield it.value()
            it.next()


def _head_samples(frames: list[Frame], ikey: int, dtype: int) -> Samples:
    hits = [(f, np.flatnonzero(f.ikeys == ikey)) for f in frames]
    hits = [(f, i) for f, i in hits if len(i)]
    if not hits:
        return blocks.empty(value_width(dtype))
    return Samples(
        times=np.array([f.scan_time_ms for f, i in hits for _ in i], np.int64),
        values=np.concatenate([f.values[i] for f, i in hits]),
        quality=np.concatenate([f.quality[i] for f, i in hits]),
        role=np.array([f.role for f, i in hits for _ in i], np.uint8),
        changes=np.concatenate([f.changes[i] for f, i in hits]) if dtype == STATUS else None,
    )
