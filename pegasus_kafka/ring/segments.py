"""Segments: what a seal writes, many points' samples of one (data type, host, day) in one value.

A seal regroups a generation's samples by point. Written as one block per
point, that costs a key, a put and a memtable entry per point, and the
first merge then seeks, reads and deletes each of those blocks again: at a
utility's size, where a generation holds a dozen samples per point, that
per-point work is about two fifths of what a seal and a merge cost. So a
seal writes segments instead (:func:`seal`): the columns of up to
:data:`RUNS` points' runs, stored as they are (RocksDB compresses them
with zstd, on threads of its own, when a compaction rewrites them), behind
an index of each run's point and first row. The first merge (see
:mod:`pegasus_kafka.ring.tiers`) turns :data:`~pegasus_kafka.ring.tiers.FANIN`
seals' segments into compressed per-point blocks, and until then a read of
one point finds its run in a segment by one seek and a binary search.

Key: data type | host id | UTC day | seal number | first point's ikey, so a
(data type, host, day)'s segments are contiguous, seal by seal, and the
segment that may hold a point is the last one at or before its key.

Value: a 14-byte header (magic ``PS``, version, values a sample holds, 1
when a changes column follows, a zero byte, then the runs and the samples
as little-endian u32), then little-endian columns: each run's ikey (i8)
and first row (i8); each sample's time (i8) and values (f8, a limit's
four side by side); each sample's quality, host role and, for status
points, transition count (u1 each).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from pegasus_kafka.errors import StoreError
from pegasus_kafka.ring import _kernels
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import Frame

#: runs (points) a segment holds at most
RUNS = 1024
# The seal's compiled writer (_seal.c) defines the layout this module reads.
_MAGIC = _kernels.SEGMENT_MAGIC
_VERSION = _kernels.SEGMENT_VERSION
_HEADER = struct.Struct("<2sBBBxII")  # magic, version, width, has changes, runs, samples
assert _HEADER.size == _kernels.SEGMENT_HEADER_SIZE
_NO_CHANGES = np.zeros(0, np.uint8)
_KEY = struct.Struct(">BHIQQ")
_GROUP = 7  # data type, host, day
_PREFIX = 15  # data type, host, day, seal: a key without its first ikey
_SIGN = 1 << 63


def key(dtype: int, host: int, day: int, seal: int, ikey: int) -> bytes:
    return _KEY.pack(dtype, host, day, seal, (ikey + _SIGN) & (2**64 - 1))


def group_of(key: bytes) -> bytes:
    """The (data type, host, day) a segment key names, as bytes."""
    return key[:_GROUP]


def parse_key(key: bytes) -> tuple[int, int, int, int, int]:
    """(data type, host, day, seal, first ikey) of a segment key."""
    dtype, host, day, seal, ikey = _KEY.unpack(key)
    return int(dtype), int(host), int(day), int(seal), int(ikey) - _SIGN


def seal(frames: list[Frame], width: int, status: bool) -> list[tuple[int, bytes]]:
    """One (host, day)'s frames of one data type, given in arrival order, as
    segments of up to :data:`RUNS` runs: the samples by point, then time,
    then arrival; each segment with its first point's ikey. One compiled call
    (``_seal.c``) that runs without the GIL."""
    columns = [
        (
            np.ascontiguousarray(f.ikeys, np.int64),
            np.ascontiguousarray(f.values, np.float64),
            np.ascontiguousarray(f.quality, np.uint8),
            np.ascontiguousarray(f.changes, np.uint8) if status else _NO_CHANGES,
            f.scan_time_ms,
            f.role,
        )
        for f in frames
    ]
    return _kernels.seal_segments(columns, width, 3 if status else 2, RUNS)


@dataclass(frozen=True)
class Segment:
    """A decoded segment: views into its bytes, which are never copied."""

    ikeys: np.ndarray  # one per run, ascending
    starts: np.ndarray  # each run's first row
    samples: Samples

    def run(self, ikey: int) -> Samples | None:
        """The samples of point ``ikey``; None when the segment has none."""
        i = int(np.searchsorted(self.ikeys, ikey))
        if i == len(self.ikeys) or int(self.ikeys[i]) != ikey:
            return None
        end = int(self.starts[i + 1]) if i + 1 < len(self.starts) else len(self.samples)
        return self.samples.take(slice(int(self.starts[i]), end))

    def columns(self) -> tuple[np.ndarray, ...]:
        """What the block coder merges (:func:`pegasus_kafka.ring.encoder.merge_segments`):
        ikeys, starts, times, values, quality, role and, for status points, changes."""
        s = self.samples
        tails = (s.quality, s.role) + (() if s.changes is None else (s.changes,))
        return (self.ikeys, self.starts, s.times, s.values, *tails)

    def row_ikeys(self) -> np.ndarray:
        """Each sample's point."""
        counts = np.diff(np.append(self.starts, len(self.samples)))
        return np.repeat(self.ikeys, counts)


def decode(blob: bytes) -> Segment:
    if len(blob) < _HEADER.size:
        raise StoreError("segment too short for its header")
    magic, version, width, has_changes, runs, n = _HEADER.unpack_from(blob)
    if magic != _MAGIC or version != _VERSION:
        raise StoreError("unknown segment format")
    if len(blob) != _HEADER.size + 16 * runs + n * (8 + 8 * width + 2 + has_changes):
        raise StoreError("segment has the wrong length")
    at = _HEADER.size

    def column(dtype: str, count: int) -> np.ndarray:
        nonlocal at
        out = np.frombuffer(blob, dtype, count, at)
        at += out.nbytes
        return out

    ikeys, starts = column("<i8", runs), column("<i8", runs)
    times, values = column("<i8", n), column("<f8", n * width)
    quality, role = column("u1", n), column("u1", n)
    changes = column("u1", n) if has_changes else None
    return Segment(
        ikeys=ikeys,
        starts=starts,
        samples=Samples(
            times=times,
            values=values.reshape(n, width) if width > 1 else values,
            quality=quality,
            role=role,
            changes=changes,
        ),
    )


def find(cf: Any, dtype: int, host: int, day: int, seal: int, ikey: int) -> Samples | None:
    """Point ``ikey``'s run in the (data type, host, day, seal)'s segments of
    ``cf`` (a column family or its snapshot); None when it has none."""
    it = cf.iter()
    wanted = key(dtype, host, day, seal, ikey)
    it.seek_for_prev(wanted)
    if not it.valid() or it.key()[:_PREFIX] != wanted[:_PREFIX]:
        return None
    return decode(it.value()).run(ikey)
