"""Lossless compressed blocks of one point's samples from one host.

A block holds ``n`` samples: times, values, quality, host role and (status
points) transition counts. Telemetry is quantized, so values are usually
exact decimals; when ``round(v * 10**k) / 10**k`` reproduces every value bit
for bit, the block stores the scaled integers as deltas, which compress to
about a byte a sample. Otherwise it stores XOR-ed float64 bit patterns. Both
paths are exact: decoding gives back the same bits.

Columns are byte-shuffled (all first bytes, then all second bytes, ...)
before one zstd pass, so slowly moving numbers become long runs.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

import numpy as np
import zstandard

from pegasus_kafka.errors import StoreError

MAGIC = b"PB"
VERSION = 1
# magic, version, mode, scale, width, has_changes, n, t0
_HEADER = struct.Struct("<2sBBbBBIq")
MODE_FLOAT, MODE_DECIMAL = 0, 1
_MAX_EXACT = 2.0**52

_local = threading.local()


def _cctx() -> zstandard.ZstdCompressor:
    ctx = getattr(_local, "cctx", None)
    if ctx is None:
        ctx = _local.cctx = zstandard.ZstdCompressor(level=3)
    return ctx


def _dctx() -> zstandard.ZstdDecompressor:
    ctx = getattr(_local, "dctx", None)
    if ctx is None:
        ctx = _local.dctx = zstandard.ZstdDecompressor()
    return ctx


@dataclass(frozen=True)
class Samples:
    """Columns of a point's samples; ``values`` is (n,) or (n, 4) for limits."""

    times: np.ndarray  # int64
    values: np.ndarray  # float64
    quality: np.ndarray  # uint8
    role: np.ndarray  # uint8
    changes: np.ndarray | None = None  # uint8, status points only

    def __len__(self) -> int:
        return int(self.times.shape[0])


def _shuffle(a: np.ndarray) -> bytes:
    raw = np.ascontiguousarray(a).view(np.uint8).reshape(len(a), a.itemsize)
    return raw.T.tobytes()


def _unshuffle(data: bytes, dtype: str, n: int) -> np.ndarray:
    size = np.dtype(dtype).itemsize
    return np.frombuffer(data, np.uint8).reshape(size, n).T.copy().view(dtype).reshape(n)


def _decimal_scale(flat: np.ndarray) -> int | None:
    """The smallest k in 0..6 for which the values are exact k-place decimals."""
    if flat.size == 0 or not np.all(np.isfinite(flat)):
        return None
    for k in range(7):
        scale = 10.0**k
        scaled = np.round(flat * scale)
        if np.max(np.abs(scaled)) >= _MAX_EXACT:
            return None
        if np.array_equal(scaled / scale, flat):
            return k
    return None


def encode(s: Samples) -> bytes:
    n = len(s)
    width = 1 if s.values.ndim == 1 else s.values.shape[1]
    # Limits are stored column by column so each limit's runs stay together.
    flat = np.ascontiguousarray(s.values.T if width > 1 else s.values, dtype=np.float64).ravel()
    t0 = int(s.times[0]) if n else 0
    times = np.diff(s.times.astype(np.int64), prepend=t0)
    scale = _decimal_scale(flat)
    if scale is not None:
        ints = np.round(flat * 10.0**scale).astype(np.int64)
        value_bytes = _shuffle(np.diff(ints, prepend=0))
        mode = MODE_DECIMAL
    else:
        bits = flat.view(np.uint64)
        value_bytes = _shuffle(bits ^ np.concatenate(([np.uint64(0)], bits[:-1])))
        mode, scale = MODE_FLOAT, 0
    has_changes = s.changes is not None
    parts = [
        _shuffle(times),
        value_bytes,
        s.quality.astype(np.uint8).tobytes(),
        s.role.astype(np.uint8).tobytes(),
    ]
    if has_changes:
        assert s.changes is not None
        parts.append(s.changes.astype(np.uint8).tobytes())
    header = _HEADER.pack(MAGIC, VERSION, mode, scale, width, int(has_changes), n, t0)
    return header + _cctx().compress(b"".join(parts))


def decode(blob: bytes) -> Samples:
    try:
        magic, version, mode, scale, width, has_changes, n, t0 = _HEADER.unpack_from(blob)
    except struct.error:
        raise StoreError("block too short for its header") from None
    if magic != MAGIC or version != VERSION:
        raise StoreError(f"unknown block format {magic!r} v{version}")
    body = _dctx().decompress(blob[_HEADER.size :])
    nv = n * width
    sizes = [8 * n, 8 * nv, n, n, n if has_changes else 0]
    if len(body) != sum(sizes):
        raise StoreError("block body has the wrong length")
    offsets = np.cumsum([0, *sizes])
    chunk = [body[offsets[i] : offsets[i + 1]] for i in range(5)]
    times = t0 + np.cumsum(_unshuffle(chunk[0], "<i8", n))
    if mode == MODE_DECIMAL:
        ints = np.cumsum(_unshuffle(chunk[1], "<i8", nv))
        flat = ints.astype(np.float64) / 10.0**scale
    else:
        bits = _unshuffle(chunk[1], "<u8", nv)
        flat = np.bitwise_xor.accumulate(bits).view(np.float64)
    values = flat.reshape(width, n).T.copy() if width > 1 else flat
    return Samples(
        times=times,
        values=values,
        quality=np.frombuffer(chunk[2], np.uint8).copy(),
        role=np.frombuffer(chunk[3], np.uint8).copy(),
        changes=np.frombuffer(chunk[4], np.uint8).copy() if has_changes else None,
    )


def concat(parts: list[Samples]) -> Samples:
    """Join sample runs and order them by time (stable, so arrival order breaks ties)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty()
    if len(parts) == 1:
        return parts[0]
    times = np.concatenate([p.times for p in parts])
    order = np.argsort(times, kind="stable")
    has_changes = all(p.changes is not None for p in parts)
    return Samples(
        times=times[order],
        values=np.concatenate([p.values for p in parts])[order],
        quality=np.concatenate([p.quality for p in parts])[order],
        role=np.concatenate([p.role for p in parts])[order],
        changes=np.concatenate([p.changes for p in parts])[order] if has_changes else None,
    )


def empty(width: int = 1) -> Samples:
    shape: tuple[int, ...] = (0,) if width == 1 else (0, width)
    return Samples(
        times=np.zeros(0, np.int64),
        values=np.zeros(shape, np.float64),
        quality=np.zeros(0, np.uint8),
        role=np.zeros(0, np.uint8),
    )


def select(s: Samples, mask: np.ndarray) -> Samples:
    return Samples(
        times=s.times[mask],
        values=s.values[mask],
        quality=s.quality[mask],
        role=s.role[mask],
        changes=None if s.changes is None else s.changes[mask],
    )
