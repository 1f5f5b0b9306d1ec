"""The ring's compiled kernels, made ready before a server takes partitions.

numba compiles a kernel at its first call for each kind of array it meets
(frames decoded from Kafka are read-only; blocks are not), or loads
it from its cache. Compiling holds the GIL for seconds, which the first batch
or seal would take from live ingest; :func:`warm` makes every variant ready.
"""

from __future__ import annotations

import numpy as np

from pegasus_kafka.ring import content, encoder
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import ANALOG, LIMIT, STATUS, Frame


def _frame(dtype: int, n: int) -> Frame:
    width = 4 if dtype == LIMIT else 1
    read_only = np.frombuffer(bytes(8 * n * width), np.float64)
    return Frame(
        site="s",
        host="h",
        role=0,
        seq=0,
        scan_time_ms=0,
        scan_period_ms=5000,
        data_type=dtype,
        chunk=0,
        ikeys=np.frombuffer(np.arange(n, dtype=np.int64).tobytes(), np.int64),
        values=read_only.reshape(n, 4) if width == 4 else read_only,
        quality=np.frombuffer(bytes(n), np.uint8),
        changes=np.frombuffer(bytes(n if dtype == STATUS else 0), np.uint8),
    )


def warm() -> None:
    """Compile (or load from numba's cache) every kernel variant a ring server runs."""
    encoder.warm()
    for dtype in (ANALOG, STATUS, LIMIT):
        content.frame_term(_frame(dtype, 4), "s/h")
        n = 4
        content.block_term(
            dtype,
            "s/h",
            1,
            Samples(
                times=np.zeros(n, np.int64),
                values=np.zeros((n, 4) if dtype == LIMIT else n),
                quality=np.zeros(n, np.uint8),
                role=np.zeros(n, np.uint8),
                changes=np.zeros(n, np.uint8) if dtype == STATUS else None,
            ),
        )
