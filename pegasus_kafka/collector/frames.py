"""Cuts one host's scan into scan frames: by data type, by partition, by size.

Every point goes to the partition its invariant key hashes to, on both hosts,
so a point's two streams meet in one partition and its RDS is a function of
that partition alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pegasus_kafka.keys import partitions_of
from pegasus_kafka.schema import LIMIT, STATUS, Frame


@dataclass(frozen=True)
class Scan:
    """One host's reading of one data type at one scan, as columns."""

    data_type: int
    ikeys: np.ndarray
    values: np.ndarray  # (n,) or (n, 4) for limits
    quality: np.ndarray
    changes: np.ndarray | None = None


@dataclass(frozen=True)
class ScanHeader:
    site: str
    host: str
    role: int
    seq: int
    scan_time_ms: int
    scan_period_ms: int


def cut_frames(
    header: ScanHeader,
    scan: Scan,
    partitions: int,
    frame_points: int,
    first_chunks: list[int] | None = None,
) -> list[tuple[int, Frame]]:
    """(partition, frame) pairs, keys sorted within each frame.

    A partition's frames are numbered from its entry in ``first_chunks``
    (default 0): a scan polled in groups numbers its frames on from the
    previous group's, so (scan, chunk) grows along each partition.
    """
    parts = partitions_of(scan.ikeys, partitions)
    # Ordered by (partition, key). A source reads its points in key order, and
    # a stable radix sort on the partition alone then keeps the keys sorted.
    ikeys = scan.ikeys
    by_key = (
        np.arange(len(ikeys))
        if (ikeys[1:] >= ikeys[:-1]).all()
        else np.argsort(ikeys, kind="stable")
    )
    order = by_key[np.argsort(parts[by_key].astype(np.uint16), kind="stable")]
    parts_sorted = parts[order]
    bounds = np.searchsorted(parts_sorted, np.arange(partitions + 1))
    out = []
    for p in range(partitions):
        sel = order[bounds[p] : bounds[p + 1]]
        first = first_chunks[p] if first_chunks is not None else 0
        for chunk, start in enumerate(range(0, len(sel), frame_points), start=first):
            rows = sel[start : start + frame_points]
            changes = (
                scan.changes[rows]
                if scan.data_type == STATUS and scan.changes is not None
                else np.zeros(len(rows) if scan.data_type == STATUS else 0, np.uint8)
            )
            out.append(
                (
                    p,
                    Frame(
                        site=header.site,
                        host=header.host,
                        role=header.role,
                        seq=header.seq,
                        scan_time_ms=header.scan_time_ms,
                        scan_period_ms=header.scan_period_ms,
                        data_type=scan.data_type,
                        chunk=chunk,
                        ikeys=scan.ikeys[rows],
                        values=scan.values[rows]
                        if scan.data_type != LIMIT
                        else scan.values[rows, :],
                        quality=scan.quality[rows],
                        changes=changes,
                    ),
                )
            )
    return out
