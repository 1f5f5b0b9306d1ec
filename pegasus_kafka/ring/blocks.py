"""Lossless compressed blocks of one point's samples from one host.

A block holds ``n`` samples: times, values, quality, host role and (status
points) transition counts. Telemetry is quantized, so values are usually
exact decimals; when ``round(v * 10**k) / 10**k`` reproduces every value bit
for bit, the block stores the scaled integers as deltas, which compress to
about a byte a sample. Otherwise it stores XOR-ed float64 bit patterns. Both
paths are exact: decoding gives back the same bits.

Columns are byte-shuffled (all first bytes, then all second bytes, ...)
before one zstd pass, so slowly moving numbers become long runs. Blocks of
fewer than ``RAW_BELOW`` samples skip that pass: zstd gains little on a few
dozen bytes, and RocksDB compresses them together with their neighbours,
which are the same point's other blocks.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np
import zstandard

from pegasus_kafka.errors import StoreError
from pegasus_kafka.ring import encoder
from pegasus_kafka.ring.encoder import F_RAW, HEADER_SIZE, MAGIC, MODE_DECIMAL

VERSION = 1
RAW_BELOW = 32
#: samples decoded in one pass of :func:`decode_many`
DECODE_SAMPLES = 1 << 18
_HEADER_DTYPE = np.dtype(
    [
        ("magic", "S2"),
        ("version", "u1"),
        ("mode", "u1"),
        ("scale", "i1"),
        ("width", "u1"),
        ("has_changes", "u1"),
        ("n", "<u4"),
        ("t0", "<i8"),
    ]
)
_HEADER_SIZE = HEADER_SIZE
assert _HEADER_DTYPE.itemsize == _HEADER_SIZE

_local = threading.local()


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

    def take(self, rows: np.ndarray | slice) -> Samples:
        """The samples at ``rows`` (indices in that order, a mask, or a slice,
        which gives views)."""
        return Samples(
            times=self.times[rows],
            values=self.values[rows],
            quality=self.quality[rows],
            role=self.role[rows],
            changes=None if self.changes is None else self.changes[rows],
        )


def encode_many(s: Samples, starts: np.ndarray) -> list[bytes]:
    """Encode consecutive runs of ``s`` (run g begins at ``starts[g]``) as one block each,
    in one compiled call that runs without the GIL (:mod:`pegasus_kafka.ring.encoder`)."""
    return encode_summarised(s, starts, -1)[0]


def encode_summarised(s: Samples, starts: np.ndarray, min_summary: int) -> encoder.Coded:
    """:func:`encode_many`, with the summary (:mod:`pegasus_kafka.ring.rollup`)
    of each run of at least ``min_summary`` samples of one value column."""
    tails = [s.quality, s.role] + ([s.changes] if s.changes is not None else [])
    return encoder.encode_runs(s.times, s.values, tails, starts, RAW_BELOW, VERSION, min_summary)


def encode(s: Samples) -> bytes:
    return encode_many(s, np.zeros(1, np.int64))[0]


def decode(blob: bytes) -> Samples:
    return decode_many([blob])[0]


def _unzipped(blob: bytes) -> bytes:
    """A block with its body stored as it is (what a block under RAW_BELOW holds)."""
    if len(blob) < _HEADER_SIZE:
        raise StoreError("block too short for its header")
    if blob[3] & F_RAW:
        return blob
    try:
        body = _dctx().decompress(blob[_HEADER_SIZE:])
    except zstandard.ZstdError as exc:
        raise StoreError(f"block body does not decompress: {exc}") from None
    return blob[:3] + bytes([blob[3] | F_RAW]) + blob[4:_HEADER_SIZE] + body


def _grouped_scan(x: np.ndarray, starts: np.ndarray, gid: np.ndarray, xor: bool) -> np.ndarray:
    """Running sum (or XOR) of ``x`` restarting at every group's start."""
    if xor:
        acc = np.bitwise_xor.accumulate(x)
        return acc ^ (acc[starts] ^ x[starts])[gid]
    acc = np.cumsum(x)
    return acc - (acc[starts] - x[starts])[gid]


def decode_many(blobs: list[bytes]) -> tuple[Samples, np.ndarray]:
    """Decode blocks of one width all at once: their samples one block after
    another, and where each block begins (as :func:`encode_many` takes them).

    Bit for bit what :func:`decode` gives for each block; it is how merging
    reads thousands of small blocks without a Python step per sample.
    """
    if not blobs:
        return empty(), np.zeros(0, np.int64)
    whole = [_unzipped(b) for b in blobs]
    head = np.frombuffer(b"".join([w[:_HEADER_SIZE] for w in whole]), _HEADER_DTYPE)
    if (head["magic"] != MAGIC).any() or (head["version"] != VERSION).any():
        raise StoreError("unknown block format among the blocks")
    if (head["width"] != head["width"][0]).any() or (
        head["has_changes"] != head["has_changes"][0]
    ).any():
        raise StoreError("blocks of different layouts decoded together")
    # In passes of whole blocks of about DECODE_SAMPLES samples: a pass's
    # temporaries are a dozen arrays of its size, which stay in memory
    # already touched instead of faulting in hundreds of megabytes.
    counts = head["n"].astype(np.int64)
    ends = np.cumsum(counts)
    # A pass ends after the block in which each multiple of DECODE_SAMPLES falls.
    cuts = np.searchsorted(ends, np.arange(DECODE_SAMPLES, int(ends[-1]), DECODE_SAMPLES)) + 1
    bounds = np.unique(np.concatenate(([0], cuts, [len(whole)]))).tolist()
    if len(bounds) == 2:
        return _decode(whole, head)
    passes = [_decode(whole[a:b], head[a:b])[0] for a, b in itertools.pairwise(bounds)]
    return joined(passes), ends - counts


def _decode(whole: list[bytes], head: np.ndarray) -> tuple[Samples, np.ndarray]:
    """:func:`decode_many` of uncompressed blocks and their parsed headers."""
    lens = np.fromiter(map(len, whole), np.int64, len(whole))
    width, has_changes = int(head["width"][0]), bool(head["has_changes"][0])
    counts = head["n"].astype(np.int64)
    row = 8 + 8 * width + 2 + int(has_changes)
    if (lens != _HEADER_SIZE + counts * row).any():
        raise StoreError("block body has the wrong length")
    n = int(counts.sum())
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    gid = np.repeat(np.arange(len(whole)), counts)
    fcounts, fstarts = counts * width, starts * width
    fgid = np.repeat(np.arange(len(whole)), fcounts)
    steps = np.empty(n, np.int64)
    words = np.empty(n * width, np.uint64)
    tails = np.empty((2 + int(has_changes), n), np.uint8)
    # Blocks of one length share a layout: each such group is un-shuffled as
    # the rows of one matrix, then its samples go to their blocks' places.
    for c in np.unique(counts).tolist():
        same = np.flatnonzero(counts == c)
        k = len(same)
        matrix = np.frombuffer(b"".join([whole[i] for i in same.tolist()]), np.uint8)
        matrix = matrix.reshape(k, _HEADER_SIZE + c * row)[:, _HEADER_SIZE:]
        rows: np.ndarray | slice
        frows: np.ndarray | slice
        if same[-1] - same[0] + 1 == k:  # neighbours: their samples are one range
            first = int(starts[same[0]])
            rows = slice(first, first + k * c)
            frows = slice(first * width, (first + k * c) * width)
        else:
            rows = (starts[same][:, None] + np.arange(c)).ravel()
            frows = (fstarts[same][:, None] + np.arange(c * width)).ravel()
        steps[rows] = _unshuffled(matrix[:, : 8 * c]).view("<i8").ravel()
        words[frows] = _unshuffled(matrix[:, 8 * c : 8 * c * (1 + width)]).view("<u8").ravel()
        rest = matrix[:, 8 * c * (1 + width) :].reshape(k, -1, c)
        tails[:, rows] = rest.transpose(1, 0, 2).reshape(len(tails), k * c)
    times = head["t0"].astype(np.int64)[gid] + _grouped_scan(steps, starts, gid, xor=False)
    # Values: per block, the limit columns one after another, shuffled as one run.
    mode = head["mode"] & ~np.uint8(F_RAW)
    decimal = mode == MODE_DECIMAL
    flat = np.empty(0)
    if decimal.any():  # scaled integers, delta-coded
        ints = _grouped_scan(words.view(np.int64), fstarts, fgid, xor=False)
        scale = np.power(10.0, head["scale"].astype(np.float64))[fgid]
        flat = ints.astype(np.float64) / scale
    if not decimal.all():  # raw doubles, XOR-coded
        bits = _grouped_scan(words, fstarts, fgid, xor=True).view(np.float64)
        flat = bits if not decimal.any() else np.where(decimal[fgid], flat, bits)
    if width > 1:
        pos = np.arange(n, dtype=np.int64) - starts[gid]
        cols = fstarts[gid][:, None] + np.arange(width)[None, :] * counts[gid][:, None]
        values = flat[cols + pos[:, None]]
    else:
        values = flat
    return (
        Samples(
            times=times,
            values=values,
            quality=tails[0],
            role=tails[1],
            changes=tails[2] if has_changes else None,
        ),
        starts,
    )


def _unshuffled(m: np.ndarray) -> np.ndarray:
    """Rows of byte-shuffled 8-byte values back to (rows, values, 8) bytes."""
    k, size = m.shape
    return np.ascontiguousarray(m.reshape(k, 8, size // 8).transpose(0, 2, 1))


def concat(parts: list[Samples]) -> Samples:
    """Join sample runs and order them by time (stable, so arrival order breaks ties)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty()
    if len(parts) == 1:
        return parts[0]
    whole = joined(parts)
    times = whole.times
    if not (np.diff(times) < 0).any():
        # Already in time order (blocks read in key order usually are): a stable
        # sort would leave it as it is.
        return whole
    return whole.take(np.argsort(times, kind="stable"))


def joined(parts: list[Samples]) -> Samples:
    """The runs one after another, as they are."""
    has_changes = all(p.changes is not None for p in parts)
    return Samples(
        times=np.concatenate([p.times for p in parts]),
        values=np.concatenate([p.values for p in parts]),
        quality=np.concatenate([p.quality for p in parts]),
        role=np.concatenate([p.role for p in parts]),
        changes=np.concatenate([p.changes for p in parts]) if has_changes else None,
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
    """The samples where ``mask`` holds; ``s`` itself when it holds everywhere."""
    return s if mask.all() else s.take(mask)
