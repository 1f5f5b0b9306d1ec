"""Segments: many points' runs in one value, read back exactly, one point at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rocksdict import Options, Rdict

from pegasus_kafka.errors import StoreError
from pegasus_kafka.ring import segments
from pegasus_kafka.ring.blocks import Samples


def runs(width: int, changes: bool) -> tuple[Samples, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    ikeys = np.array([-5, 3, 9, 40], np.int64)
    counts = np.array([2, 1, 4, 3])
    n = int(counts.sum())
    shape: tuple[int, ...] = (n,) if width == 1 else (n, width)
    s = Samples(
        times=np.arange(n, dtype=np.int64) * 5000,
        values=rng.normal(size=shape),
        quality=rng.integers(0, 255, n).astype(np.uint8),
        role=rng.integers(0, 2, n).astype(np.uint8),
        changes=rng.integers(0, 9, n).astype(np.uint8) if changes else None,
    )
    return s, ikeys, np.concatenate(([0], np.cumsum(counts)[:-1]))


@pytest.mark.parametrize(("width", "changes"), [(1, False), (4, False), (1, True)])
def test_every_run_reads_back_bit_for_bit(width: int, changes: bool) -> None:
    s, ikeys, starts = runs(width, changes)
    seg = segments.decode(segments.encode(s, ikeys, starts))
    ends = np.append(starts[1:], len(s))
    for ikey, a, b in zip(ikeys.tolist(), starts.tolist(), ends.tolist(), strict=True):
        got = seg.run(ikey)
        assert got is not None
        assert got.times.tolist() == s.times[a:b].tolist()
        assert got.values.tobytes() == s.values[a:b].tobytes()
        assert got.quality.tolist() == s.quality[a:b].tolist()
        assert got.role.tolist() == s.role[a:b].tolist()
        assert (got.changes is None) == (not changes)
    assert seg.run(4) is None and seg.run(41) is None and seg.run(-6) is None
    assert seg.row_ikeys().tolist() == np.repeat(ikeys, np.diff(np.append(starts, len(s)))).tolist()


def test_damaged_segments_are_store_errors() -> None:
    s, ikeys, starts = runs(1, False)
    blob = segments.encode(s, ikeys, starts)
    for bad in (blob[:5], blob[:-1], b"XX" + blob[2:], blob + b"\0"):
        with pytest.raises(StoreError):
            segments.decode(bad)


def test_a_point_is_found_in_the_segment_at_or_before_its_key(tmp_path: Path) -> None:
    db = Rdict(str(tmp_path / "db"), Options(raw_mode=True))
    s, ikeys, starts = runs(1, False)
    # Two segments of one (data type, host, day, seal), one of the next seal.
    first, second = slice(0, 2), slice(2, 4)
    cut = int(starts[2])
    db[segments.key(0, 1, 20000, 7, -5)] = segments.encode(
        s.take(slice(0, cut)), ikeys[first], starts[first]
    )
    db[segments.key(0, 1, 20000, 7, 9)] = segments.encode(
        s.take(slice(cut, len(s))), ikeys[second], starts[second] - cut
    )
    db[segments.key(0, 1, 20000, 8, -100)] = segments.encode(s, ikeys, starts)
    for ikey in ikeys.tolist():
        got = segments.find(db, 0, 1, 20000, 7, ikey)
        assert got is not None and len(got) > 0
    assert segments.find(db, 0, 1, 20000, 7, -6) is None, "before the seal's first segment"
    assert segments.find(db, 0, 1, 20000, 7, 10) is None, "within a segment, not in it"
    assert segments.find(db, 0, 2, 20000, 7, 3) is None, "another host"
    db.close()
