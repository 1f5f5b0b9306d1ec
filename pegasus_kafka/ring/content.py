"""The digest of a scan partition's samples, whatever their physical layout.

Every sample (data type, host, point, scan time, value bits, quality, role,
transitions) hashes to 64 bits; a partition's sample digest is the sum of its
samples' hashes modulo 2**64. A sample hashes the same in the unsealed head
and in a sealed block, so sealing and merging blocks leave the digest as it
is and may run at any moment, on any thread, without making two rings that
applied the same offsets disagree. A single changed bit of a sample changes
its hash, and so the digest.

The mixer is SplitMix64's finaliser, applied column after column; numpy does
it for a whole frame or block at once.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import STATUS, Frame

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place: every caller passes an array of its own."""
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


@lru_cache(maxsize=4096)
def series_seed(dtype: int, host: str) -> int:
    """A stable 64-bit seed per (data type, "site/host")."""
    h = hashlib.blake2b(f"{dtype}/{host}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little")


def _term(
    seed: int,
    ikeys: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    flags: np.ndarray,
) -> int:
    n = len(ikeys)
    if n == 0:
        return 0
    h = _mix(np.ascontiguousarray(ikeys, np.int64).view(np.uint64) ^ np.uint64(seed))
    h ^= np.ascontiguousarray(times, np.int64).view(np.uint64)
    h = _mix(h)
    cols = np.ascontiguousarray(values, np.float64).reshape(n, -1).view(np.uint64)
    for c in range(cols.shape[1]):
        h ^= cols[:, c]
        h = _mix(h)
    h ^= flags
    return int(_mix(h).sum(dtype=np.uint64))


def _flags(quality: np.ndarray, role: np.ndarray | int, changes: np.ndarray | None) -> np.ndarray:
    f = quality.astype(np.uint64) | (np.asarray(role, np.uint64) << np.uint64(8))
    if changes is not None:
        f = f | (changes.astype(np.uint64) << np.uint64(16))
    return f


def frame_term(frame: Frame, host: str) -> int:
    """The digest term of a frame's samples."""
    changes = frame.changes if frame.data_type == STATUS else None
    return _term(
        series_seed(frame.data_type, host),
        frame.ikeys,
        np.full(frame.count, frame.scan_time_ms, np.int64),
        frame.values,
        _flags(frame.quality, frame.role, changes),
    )


def block_term(dtype: int, host: str, ikey: int, s: Samples) -> int:
    """The digest term of one point's samples from one host (a block's content)."""
    return samples_term(dtype, host, np.full(len(s), ikey, np.int64), s)


def samples_term(dtype: int, host: str, ikeys: np.ndarray, s: Samples) -> int:
    """The digest term of samples from one host, sample i of point ``ikeys[i]``
    (a segment's content)."""
    changes = s.changes if dtype == STATUS else None
    return _term(
        series_seed(dtype, host),
        ikeys,
        s.times,
        s.values,
        _flags(s.quality, s.role, changes),
    )
