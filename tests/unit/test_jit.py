"""A warmed ring server compiles nothing more while it ingests and seals."""

from __future__ import annotations

import dataclasses

import numpy as np

from pegasus_kafka.ring import blocks, content, encoder, jit
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import LIMIT, STATUS, decode_frame, encode_frame


def _compiled() -> list[int]:
    return [len(k.signatures) for k in (content._sum_of_hashes, encoder._encode)]


def test_warm_compiles_every_variant_that_ingest_and_seals_run() -> None:
    jit.warm()
    before = _compiled()
    rng = np.random.default_rng(1)
    for dtype in range(4):
        n = 30
        width = 4 if dtype == LIMIT else 1
        frame = dataclasses.replace(
            jit._frame(dtype, n),
            ikeys=np.arange(n, dtype=np.int64) * 7,
            values=rng.normal(size=(n, width) if width > 1 else n),
            quality=rng.integers(0, 4, n).astype(np.uint8),
            changes=rng.integers(0, 3, n).astype(np.uint8)
            if dtype == STATUS
            else np.zeros(0, np.uint8),
        )
        # As the consumer thread meets it: decoded from the topic's bytes.
        received = decode_frame(encode_frame(frame))
        assert content.frame_term(received, "s/h") == content.frame_term(frame, "s/h")
        s = Samples(
            times=np.arange(n, dtype=np.int64),
            values=np.asarray(frame.values, np.float64).copy(),
            quality=frame.quality.copy(),
            role=np.zeros(n, np.uint8),
            changes=frame.changes.copy() if dtype == STATUS else None,
        )
        content.block_term(dtype, "s/h", 7, s)
        blocks.encode_many(s, np.array([0, 10], np.int64))
    assert _compiled() == before
