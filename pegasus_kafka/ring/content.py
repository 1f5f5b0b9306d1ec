"""The digest of a scan partition's samples, whatever their physical layout.

Every sample (data type, host, point, scan time, value bits, quality, role,
transitions) hashes to 64 bits; a partition's sample digest is the sum of its
samples' hashes modulo 2**64. A sample hashes the same in the unsealed head
and in a sealed block, so sealing and merging blocks leave the digest as it
is and may run at any moment, on any thread, without making two rings that
applied the same offsets disagree. A single changed bit of a sample changes
its hash, and so the digest.

The mixer is SplitMix64's finaliser, applied column after column (ikey
xor the series' seed, then the time, each value's bits, and the flags:
quality, role << 8, transitions << 16), in one compiled loop over a whole
frame or block (``_kernels.c``).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from pegasus_kafka.ring import _kernels
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import STATUS, Frame

_NO_CHANGES = np.zeros(0, np.uint8)


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
    quality: np.ndarray,
    role: np.ndarray,
    changes: np.ndarray | None,
) -> int:
    n = len(ikeys)
    if n == 0:
        return 0
    words = np.ascontiguousarray(values, np.float64).reshape(n, -1)
    # One compiled loop without the GIL: the consumer thread digests every
    # frame it applies, while the sealer thread may run meanwhile.
    return _kernels.sum_of_hashes(
        seed,
        np.ascontiguousarray(ikeys, np.int64),
        np.ascontiguousarray(times, np.int64),
        words,
        words.shape[1],
        np.ascontiguousarray(quality, np.uint8),
        np.ascontiguousarray(role, np.uint8),
        _NO_CHANGES if changes is None else np.ascontiguousarray(changes, np.uint8),
    )


def frame_term(frame: Frame, host: str) -> int:
    """The digest term of a frame's samples."""
    changes = frame.changes if frame.data_type == STATUS else None
    return _term(
        series_seed(frame.data_type, host),
        frame.ikeys,
        np.full(frame.count, frame.scan_time_ms, np.int64),
        frame.values,
        frame.quality,
        np.full(frame.count, frame.role, np.uint8),
        changes,
    )


def block_term(dtype: int, host: str, ikey: int, s: Samples) -> int:
    """The digest term of one point's samples from one host (a block's content)."""
    return samples_term(dtype, host, np.full(len(s), ikey, np.int64), s)


def samples_term(dtype: int, host: str, ikeys: np.ndarray, s: Samples) -> int:
    """The digest term of samples from one host, sample i of point ``ikeys[i]``
    (a segment's content)."""
    changes = s.changes if dtype == STATUS else None
    return _term(series_seed(dtype, host), ikeys, s.times, s.values, s.quality, s.role, changes)
