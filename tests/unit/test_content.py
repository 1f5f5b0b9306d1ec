"""The sample digest is a contract between rings: its terms are pinned."""

from __future__ import annotations

import numpy as np

from pegasus_kafka.ring import content
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import ANALOG, LIMIT, STATUS, Frame


def _frame(
    host: str, role: int, t: int, dtype: int, values: np.ndarray, **cols: np.ndarray
) -> Frame:
    n = len(values)
    return Frame(
        site="s",
        host=host,
        role=role,
        seq=3,
        scan_time_ms=t,
        scan_period_ms=5000,
        data_type=dtype,
        chunk=0,
        ikeys=cols.get("ikeys", np.arange(n, dtype=np.int64)),
        values=values,
        quality=cols.get("quality", np.zeros(n, np.uint8)),
        changes=cols.get("changes", np.zeros(0, np.uint8)),
    )


def test_sample_terms_keep_their_values() -> None:
    rng = np.random.default_rng(7)
    n = 50
    analog = _frame(
        "a",
        0,
        1_000_000,
        ANALOG,
        np.round(rng.normal(100, 5, n), 2),
        ikeys=np.arange(n, dtype=np.int64) + (5 << 40),
    )
    status = _frame(
        "b",
        1,
        1_000_037,
        STATUS,
        rng.integers(1, 3, n).astype(float),
        quality=rng.integers(0, 4, n).astype(np.uint8),
        changes=rng.integers(0, 3, n).astype(np.uint8),
    )
    limits = _frame("a", 0, 1_000_000, LIMIT, rng.normal(size=(n, 4)))
    block = Samples(
        times=np.arange(n, dtype=np.int64) * 5000,
        values=rng.normal(size=n),
        quality=np.zeros(n, np.uint8),
        role=np.zeros(n, np.uint8),
    )
    assert [
        content.frame_term(analog, "s/a"),
        content.frame_term(status, "s/b"),
        content.frame_term(limits, "s/a"),
        content.block_term(ANALOG, "s/a", 42, block),
    ] == [8306987775277412543, 14841002217856330966, 12960114112946052152, 14514498091629784149]
