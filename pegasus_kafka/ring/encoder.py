"""The block coder: one compiled call that runs without the GIL.

A ring server's consumer thread applies batches in Python while its sealer
thread merges and encodes blocks. Both threads share one GIL, and numpy
gives it up and takes it back around every call: beside a thread running
Python, each of a merge's thousands of calls waits for its turn, so the two
threads run one after the other while a core stands idle. The coder is one
call per piece of a merge (``_coder.c``): ordering each point's samples,
the scales, the deltas, the byte shuffle, the headers, zstd (the system's
libzstd) and the summaries, block after block, while the consumer thread
keeps the GIL.

The layouts are :mod:`pegasus_kafka.ring.blocks`'s, which decodes blocks,
and :mod:`pegasus_kafka.ring.rollup`'s, which decodes summaries.
"""

from __future__ import annotations

import numpy as np

from pegasus_kafka.errors import StoreError
from pegasus_kafka.ring import _kernels

# The header the encoder writes: magic, version, mode, scale, width, has
# changes, n (u32), t0 (i64); the mode is MODE_DECIMAL (else float bits),
# with F_RAW when the body is stored as it is, not zstd-compressed.
MAGIC = _kernels.MAGIC
HEADER_SIZE = _kernels.HEADER_SIZE
MODE_DECIMAL = _kernels.MODE_DECIMAL
F_RAW = _kernels.F_RAW
#: zstd level of block bodies
LEVEL = 3


#: each block and its summary (None for a block without one)
Coded = tuple[list[bytes], list[bytes | None]]
#: a segment's columns: ikeys, run starts, times, values, then its byte columns
Source = tuple[np.ndarray, ...]


def encode_runs(
    times: np.ndarray,
    values: np.ndarray,
    tails: list[np.ndarray],
    starts: np.ndarray,
    raw_below: int,
    version: int,
    min_summary: int = -1,
) -> Coded:
    """One block per run: ``values`` is (n,) or (n, width); ``tails`` the byte
    columns (quality, role and, for status points, transitions); run g begins
    at ``starts[g]``. Blocks of fewer than ``raw_below`` samples keep their
    body as it is. Runs of one value column and at least ``min_summary``
    samples get a summary (none when it is negative)."""
    width = 1 if values.ndim == 1 else int(values.shape[1])
    try:
        return _kernels.encode_runs(
            np.ascontiguousarray(times, np.int64),
            np.ascontiguousarray(values, np.float64),
            np.ascontiguousarray(np.stack(tails), np.uint8),
            np.ascontiguousarray(starts, np.int64),
            width,
            len(tails),
            raw_below,
            version,
            LEVEL,
            min_summary,
        )
    except RuntimeError as exc:  # zstd's error, with its code
        raise StoreError(str(exc)) from None


def merge_segments(
    sources: list[Source],
    piece: np.ndarray,
    width: int,
    raw_below: int,
    version: int,
    min_summary: int,
) -> Coded:
    """One block per point of ``piece`` (ascending): its runs in ``sources``,
    given in seal order, merged by time, ties in seal order. Each source's
    points ascend, and each of its runs is in time order."""
    try:
        return _kernels.merge_segments(
            sources,
            np.ascontiguousarray(piece, np.int64),
            width,
            len(sources[0]) - 4 if sources else 2,
            raw_below,
            version,
            LEVEL,
            min_summary,
        )
    except RuntimeError as exc:  # zstd's error, with its code
        raise StoreError(str(exc)) from None
