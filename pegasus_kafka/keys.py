"""Invariant keys (IKeys) and how points map to partitions.

An IKey is a positive 63-bit integer: the site code in bits 40..54 and the
point's number within the site in bits 0..39. Numbers are handed out by the
collector's key registry and never reused, so a key survives renames and
moves and cannot collide with another site's.
"""

from __future__ import annotations

import numpy as np

SITE_SHIFT = 40
POINT_MASK = (1 << SITE_SHIFT) - 1
_MIX = np.uint64(0x9E3779B97F4A7C15)


def make_ikey(site_code: int, number: int) -> int:
    return (site_code << SITE_SHIFT) | (number & POINT_MASK)


def site_code_of(ikey: int) -> int:
    return ikey >> SITE_SHIFT


def partitions_of(ikeys: np.ndarray, partitions: int) -> np.ndarray:
    """Partition of each key: a multiplicative hash, identical in every process."""
    mixed = ikeys.astype(np.uint64) * _MIX
    return ((mixed >> np.uint64(32)) % np.uint64(partitions)).astype(np.int32)


def partition_of(ikey: int, partitions: int) -> int:
    return int(partitions_of(np.array([ikey], np.int64), partitions)[0])
