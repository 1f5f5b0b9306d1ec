"""A scan partition's blocks on disk: staging them, and merging small ones.

A seal writes segments, many points' runs of one (data type, host, day) in
one value (:mod:`pegasus_kafka.ring.segments`). Merges are tiered by seal
number:

- level 1: once seal ``s``, a multiple of ``FANIN``, has committed, the
  segments of seals ``(s - FANIN, s]`` become one compressed block per
  (point, host, day), keyed with the group's last segment seal;
- level ``L`` from 2 to ``MAX_LEVEL``: after seal ``s``, when ``s`` is a
  multiple of ``FANIN**L`` (the largest such ``L``), every (point, host,
  day)'s blocks of seals ``(s - FANIN**L, s]`` become one block, keyed with
  seal ``s``.

A sample is rewritten at most ``MAX_LEVEL`` times, and a point's recent day
is read from a few blocks instead of hundreds.

A merge changes no sample, so the digest stays as it is (see
:mod:`pegasus_kafka.ring.content`); rings that merge at other moments, or a
block merge a crash skipped, leave other block boundaries, never other
data. A merged block holds the samples in the order a reader of what it
replaces sees them (by time, earlier seals first), so reads give the same
answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from pegasus_kafka.errors import StoreError
from pegasus_kafka.ring import blocks, encoder, rollup
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.ring.layout import block_keys
from pegasus_kafka.ring.segments import Segment
from pegasus_kafka.ring.store import Batch
from pegasus_kafka.schema import LIMIT

FANIN = 8
MAX_LEVEL = 2
#: points a level-1 merge encodes per piece, which bounds its memory and lock time
CHUNK_POINTS = 2048
#: blocks a merge reads per piece: a piece is the work between two chances for
#: the sealer to give way to live ingest
MERGE_BLOCKS = 4096
_DAY_PREFIX = 15  # data type, ikey, host, day: the block key without its seal

#: (merged block's key, keys of the blocks it replaces, their contents)
Group = tuple[bytes, list[bytes], list[bytes]]


def span_due(seq: int) -> int:
    """How many seals the block merge after seal ``seq`` covers (levels 2 and
    up); 0 when none is due."""
    span = 0
    for level in range(2, MAX_LEVEL + 1):
        if seq % FANIN**level == 0:
            span = FANIN**level
    return span


def first_level_due(lowest: int, last_sealed: int) -> int | None:
    """The seal ending the level-1 merge of the segments of seal ``lowest`` and
    its group, when seals up to ``last_sealed`` have committed; None until then."""
    hi = -(-lowest // FANIN) * FANIN
    return hi if MAX_LEVEL >= 1 and hi <= last_sealed else None


def merged_pieces(
    segs: list[Segment], points: int, summarise: bool
) -> Iterator[tuple[np.ndarray, list[bytes], list[bytes | None]]]:
    """The runs of one (data type, host, day)'s segments, given in seal order,
    merged per point and encoded as blocks, ``points`` points a piece: (each
    point's ikey, its block, its summary or None). Ties in time keep seal
    order, and within a seal the order the segment holds."""
    first = segs[0].samples
    width = 1 if first.values.ndim == 1 else int(first.values.shape[1])
    if any(s.samples.values.shape[1:] != first.values.shape[1:] for s in segs) or any(
        (s.samples.changes is None) != (first.changes is None) for s in segs
    ):
        raise StoreError("segments of different layouts in one (data type, host, day)")
    min_summary = rollup.MIN_SUMMARY_SAMPLES if summarise else -1
    every = np.unique(np.concatenate([s.ikeys for s in segs]))
    for i in range(0, len(every), points):
        piece = every[i : i + points]
        lo, hi = int(piece[0]), int(piece[-1])
        # Only the segments holding some of the piece's points.
        sources = [s.columns() for s in segs if int(s.ikeys[0]) <= hi and int(s.ikeys[-1]) >= lo]
        blobs, summaries = encoder.merge_segments(
            sources, piece, width, blocks.RAW_BELOW, blocks.VERSION, min_summary
        )
        yield piece, blobs, summaries


def stage_blocks(
    batch: Batch,
    dtype: int,
    s: Samples,
    starts: np.ndarray,
    keys: list[bytes],
) -> None:
    """Stage runs of ``s`` (run g begins at ``starts[g]``) as blocks under ``keys``,
    with their summaries; outside the digest, which counts the samples themselves."""
    min_summary = rollup.MIN_SUMMARY_SAMPLES if dtype != LIMIT else -1
    stage_coded(batch, keys, *blocks.encode_summarised(s, starts, min_summary))


def stage_coded(
    batch: Batch, keys: list[bytes], blobs: list[bytes], summaries: list[bytes | None]
) -> None:
    """Stage encoded blocks under ``keys``, and the summaries of those that have one."""
    batch.put_many_raw("blocks", keys, blobs)
    kept = [(k, v) for k, v in zip(keys, summaries, strict=True) if v is not None]
    if kept:
        batch.put_many_raw("summaries", [k for k, _ in kept], [v for _, v in kept])


def collect(
    snap: Any, dtype: int, ikeys: list[int], hosts: int, days: list[int], lo: int, hi: int
) -> list[Group]:
    """Every (point, host, day) with two or more blocks of seals ``(lo, hi]``."""
    out: list[Group] = []
    it = snap.iter()
    # Bound once: this loop runs for every block a merge reads.
    seek, valid, key_of, value_of, advance = it.seek, it.valid, it.key, it.value, it.next
    last = hi.to_bytes(8, "big")
    per_point = hosts * len(days)
    starts = block_keys(
        dtype,
        np.repeat(np.asarray(ikeys, np.int64), per_point),
        np.tile(np.repeat(np.arange(hosts), len(days)), len(ikeys)),
        np.tile(np.asarray(days, np.int64), len(ikeys) * hosts),
        lo + 1,
    )
    for start in starts:
        prefix = start[:_DAY_PREFIX]
        keys: list[bytes] = []
        blobs: list[bytes] = []
        seek(start)
        while valid():
            key = key_of()
            # Equal lengths: bytes order is the seal numbers' order.
            if key[:_DAY_PREFIX] != prefix or key[_DAY_PREFIX:] > last:
                break
            keys.append(key)
            blobs.append(value_of())
            advance()
        if len(keys) > 1:
            out.append((prefix + last, keys, blobs))
    return out


def stage_merge(batch: Batch, dtype: int, groups: list[Group]) -> None:
    """Stage each group's blocks replaced by one block of all their samples."""
    samples, starts = blocks.decode_many([b for _, _, blobs in groups for b in blobs])
    block_group = np.repeat(np.arange(len(groups)), [len(blobs) for _, _, blobs in groups])
    counts = np.diff(np.append(starts, len(samples)))
    group = np.repeat(block_group, counts)
    # By group, then time; ties keep block order (earlier seals first).
    order = np.lexsort((np.arange(len(samples)), samples.times, group))
    merged = samples.take(order)
    firsts = np.searchsorted(group[order], np.arange(len(groups)))
    # Deletes first: the merged key is often one of the replaced ones. Only
    # blocks large enough to have summaries have one to delete.
    summarised = (counts >= rollup.MIN_SUMMARY_SAMPLES).tolist()
    replaced = [key for _, keys, _ in groups for key in keys]
    batch.delete_many_raw("blocks", replaced)
    batch.delete_many_raw("summaries", [k for k, s in zip(replaced, summarised, strict=True) if s])
    stage_blocks(batch, dtype, merged, firsts, [key for key, _, _ in groups])
