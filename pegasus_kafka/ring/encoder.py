"""The block encoder: one compiled call that runs without the GIL.

A ring server's consumer thread applies batches in Python while its sealer
thread encodes the merged blocks. Both threads share one GIL, and numpy
gives it up and takes it back around every call: beside a thread running
Python, each of an encoder's thousands of calls waits for its turn, so the
two threads run one after the other while a core stands idle. This encoder
is one call per piece of a merge (``_kernels.c``): the scales, the deltas,
the byte shuffle, the headers and zstd (the system's libzstd), block after
block, while the consumer thread keeps the GIL.

The layout is :mod:`pegasus_kafka.ring.blocks`'s, which decodes it.
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


def encode_runs(
    times: np.ndarray,
    values: np.ndarray,
    tails: list[np.ndarray],
    starts: np.ndarray,
    raw_below: int,
    version: int,
) -> list[bytes]:
    """One block per run: ``values`` is (n,) or (n, width); ``tails`` the byte
    columns (quality, role and, for status points, transitions); run g begins
    at ``starts[g]``. Blocks of fewer than ``raw_below`` samples keep their
    body as it is."""
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
        )
    except RuntimeError as exc:  # zstd's error, with its code
        raise StoreError(str(exc)) from None
