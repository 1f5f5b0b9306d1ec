"""Sealing a scan partition's frozen generations, and merging what seals wrote.

A seal regroups a generation's samples per (point, host, day) into segments
(:mod:`pegasus_kafka.ring.segments`); merges turn them into blocks and merge
blocks (:mod:`pegasus_kafka.ring.tiers`). Each writes in pieces outside the
partition's lock, then commits in one batch; what reads do meanwhile, and
after a crash, is in :mod:`pegasus_kafka.ring.scan`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pegasus_kafka.errors import StoreClosed
from pegasus_kafka.ring import segments, tiers
from pegasus_kafka.ring.current import CurrentTable
from pegasus_kafka.ring.layout import DAY_MS, block_keys
from pegasus_kafka.ring.store import PartitionStore, raw_items, raw_keys, u64
from pegasus_kafka.schema import LIMIT, STATUS, Frame, value_width

K_STATE = b"scan_state"


@dataclass
class Generation:
    """A frozen head: its seal number, frames, and current values after its last frame."""

    seq: int
    frames: list[tuple[int, Frame]]
    end: int  # the offset after its last frame
    current: list[bytes]


class Sealing:
    """The scan partition's seals and merges (mixed into
    :class:`~pegasus_kafka.ring.scan.ScanPartition`, which holds this state)."""

    store: PartitionStore
    lock: threading.RLock
    hosts: list[str]
    seal_seq: int
    current: list[CurrentTable]
    #: frozen generations waiting for their seal, oldest first
    frozen: list[Generation]
    #: seal number -> the days it touched, for every seal held in segments
    in_segments: dict[int, list[int]]
    #: generations frozen when the store opened: a seal cut short may have
    #: written some of their segments
    _cut_short: set[int]
    _seal_lock: threading.Lock

    def _state_bytes(self) -> bytes:
        raise NotImplementedError

    def pending_seals(self) -> int:
        """Frozen generations waiting for their seal, plus one when a level-1
        merge is due."""
        with self.lock:
            return len(self.frozen) + int(self._first_level_due() is not None)

    def _first_level_due(self) -> int | None:
        if not self.in_segments:
            return None
        last_sealed = self.frozen[0].seq - 1 if self.frozen else self.seal_seq
        return tiers.first_level_due(min(self.in_segments), last_sealed)

    def seal(self, pause: Callable[[], None] = lambda: None) -> bool:
        """Seal the oldest frozen generation, then do the merges due; False when
        there was nothing to do (or the store has closed). Encoding runs
        outside the partition's lock, so ingest and queries go on meanwhile;
        the lock is held only for each write. ``pause`` runs before each piece
        of the work: each data type's sorting, each piece's write, the
        commit, and each piece of a merge's reading, merging and write."""
        with self._seal_lock:
            done = self._seal_oldest(pause)
            while True:
                with self.lock:
                    hi = None if self.store.closed else self._first_level_due()
                if hi is None or not self._merge_segments(hi, pause):
                    return done
                done = True
                span = tiers.span_due(hi)
                if span:
                    self._merge(hi - span, hi, pause)

    def _seal_oldest(self, pause: Callable[[], None]) -> bool:
        """Seal the oldest frozen generation into segments; the caller holds the
        seal lock."""
        with self.lock:
            if not self.frozen or self.store.closed:
                return False
            gen = self.frozen[0]
            hosts = list(self.hosts)
        try:
            if gen.seq in self._cut_short:
                self._drop_segments(gen.seq)
                self._cut_short.discard(gen.seq)
            for dtype in range(4):
                frames = [f for _, f in gen.frames if f.data_type == dtype]
                if frames:
                    self._seal_type(dtype, frames, hosts, gen.seq, pause)
            batch = self.store.begin()
            for offset, _ in gen.frames:
                batch.delete_raw("frames", u64(offset))
            for t, table in enumerate(gen.current):
                batch.put_state(b"current/%d" % t, table)
            # The days each seal touched, for the merges that cover it.
            days = sorted({f.scan_time_ms // DAY_MS for _, f in gen.frames})
            batch.put_state(b"days/%d" % gen.seq, json.dumps(days).encode())
            batch.delete_raw("meta", b"days/%d" % (gen.seq - tiers.FANIN**tiers.MAX_LEVEL))
        except StoreClosed:
            return False
        pause()
        with self.lock:
            if self.store.closed:
                return False
            self.frozen.pop(0)
            self.in_segments[gen.seq] = days
            batch.put_state(K_STATE, self._state_bytes())
            self.store.commit(batch, self.store.applied_offset)
        return True

    def _drop_segments(self, seq: int) -> None:
        """Delete what a seal of generation ``seq`` that was cut short wrote: this
        seal may cut its segments elsewhere."""
        snap = self.store.cf("segments").snapshot()
        batch = self.store.begin()
        # Keys only: the values are not needed to know what to drop.
        keys = [k for k in raw_keys(snap.keys()) if segments.parse_key(k)[3] == seq]
        del snap
        batch.delete_many_raw("segments", keys)
        with self.lock:
            self.store.write_derived(batch)

    def _merge_segments(self, hi: int, pause: Callable[[], None]) -> bool:
        """The level-1 merge of the segments of seals up to ``hi`` into blocks
        (see :mod:`pegasus_kafka.ring.tiers`); False if the store closed."""
        with self.lock:
            if self.store.closed:
                return False
            seals = sorted(seq for seq in self.in_segments if seq <= hi)
            snap = self.store.cf("segments").snapshot()
        # Keyed with a seal number still listed as held in segments, so reads
        # pass over these blocks until the commit below.
        top = seals[-1]
        replaced: list[bytes] = []
        try:
            group: list[tuple[bytes, bytes]] = []
            for key, value in raw_items(snap.items()):
                if group and segments.group_of(key) != segments.group_of(group[0][0]):
                    self._merge_group(group, top, pause)
                    replaced += [k for k, _ in group]
                    group = []
                if segments.parse_key(key)[3] <= hi:
                    group.append((key, value))
            if group:
                self._merge_group(group, top, pause)
                replaced += [k for k, _ in group]
            pause()
            batch = self.store.begin()
            batch.delete_many_raw("segments", replaced)
            with self.lock:
                if self.store.closed:
                    return False
                for seq in seals:
                    del self.in_segments[seq]
                batch.put_state(K_STATE, self._state_bytes())
                self.store.commit(batch, self.store.applied_offset)
        except StoreClosed:
            return False
        return True

    def _merge_group(
        self, group: list[tuple[bytes, bytes]], top: int, pause: Callable[[], None]
    ) -> None:
        """Write one (data type, host, day)'s segments, in seal order, as blocks."""
        dtype, host, day, _, _ = segments.parse_key(group[0][0])
        segs = [segments.decode(value) for _, value in group]
        pieces = tiers.merged_pieces(segs, tiers.CHUNK_POINTS, dtype != LIMIT)
        for ikeys, blobs, summaries in pieces:
            pause()
            batch = self.store.begin()
            keys = block_keys(
                dtype, ikeys, np.full(len(ikeys), host), np.full(len(ikeys), day), top
            )
            tiers.stage_coded(batch, keys, blobs, summaries)
            pause()
            with self.lock:
                self.store.write_derived(batch)

    def _merge(self, lo: int, hi: int, pause: Callable[[], None]) -> None:
        """Merge every (point, host, day)'s blocks of seals (lo, hi] into one
        (see :mod:`pegasus_kafka.ring.tiers`); the caller holds the seal lock."""
        days: set[int] = set()
        try:
            for seq in range(lo + 1, hi + 1):
                raw = self.store.state(b"days/%d" % seq)
                if raw is None:  # blocks loaded around the seals: leave them
                    return
                days.update(json.loads(raw))
        except StoreClosed:
            return
        with self.lock:
            if self.store.closed:
                return
            hosts = len(self.hosts)
            points = [self.current[t].keys.tolist() for t in range(4)]
            snap = self.store.cf("blocks").snapshot()
        # A series has up to FANIN of a level's blocks to merge.
        step = max(1, tiers.MERGE_BLOCKS // max(hosts * tiers.FANIN, 1))
        try:
            for dtype in range(4):
                for i in range(0, len(points[dtype]), step):
                    pause()
                    chunk = points[dtype][i : i + step]
                    groups = tiers.collect(snap, dtype, chunk, hosts, sorted(days), lo, hi)
                    if not groups:
                        continue
                    pause()
                    batch = self.store.begin()
                    tiers.stage_merge(batch, dtype, groups)
                    pause()
                    with self.lock:
                        if self.store.closed:
                            return
                        self.store.commit(batch, self.store.applied_offset)
        except StoreClosed:
            return

    def _seal_type(
        self,
        dtype: int,
        frames: list[Frame],
        hosts: list[str],
        seal_seq: int,
        pause: Callable[[], None],
    ) -> None:
        # A frame is one host's scan at one time, so it lies in one (host,
        # day): its segments' group. Frames keep their arrival order in a group.
        groups: dict[tuple[int, int], list[Frame]] = {}
        for f in frames:
            if not f.count:  # a frame without samples has none to seal
                continue
            where = (hosts.index(f"{f.site}/{f.host}"), f.scan_time_ms // DAY_MS)
            groups.setdefault(where, []).append(f)
        # Segments are written about CHUNK_POINTS runs at a time, with a pause
        # before each group's seal and each write.
        width = value_width(dtype)
        per_write = max(1, tiers.CHUNK_POINTS // segments.RUNS)
        batch, staged = self.store.begin(), 0
        for (host, day), group in sorted(groups.items()):
            pause()
            for first, blob in segments.seal(group, width, dtype == STATUS):
                key = segments.key(dtype, host, day, seal_seq, first)
                batch.put_raw("segments", key, blob)
                staged += 1
                if staged >= per_write:
                    pause()
                    with self.lock:
                        self.store.write_derived(batch)
                    batch, staged = self.store.begin(), 0
        if staged:
            pause()
            with self.lock:
                self.store.write_derived(batch)
