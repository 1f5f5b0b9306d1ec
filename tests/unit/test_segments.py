"""Segments: many points' runs in one value, read back exactly, one point at a time."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from rocksdict import Options, Rdict

from pegasus_kafka.errors import StoreError
from pegasus_kafka.ring import blocks, segments, tiers
from pegasus_kafka.ring.blocks import Samples
from pegasus_kafka.schema import STATUS, Frame


def encoded(s: Samples, ikeys: np.ndarray, starts: np.ndarray) -> bytes:
    """A segment of runs of ``s`` written as the layout says, field by field: the
    reference the seal's compiled writer is held to."""
    n, width = len(s), 1 if s.values.ndim == 1 else s.values.shape[1]
    head = struct.pack("<2sBBBxII", b"PS", 1, width, s.changes is not None, len(ikeys), n)
    cols = [ikeys.astype("<i8"), starts.astype("<i8"), s.times.astype("<i8")]
    cols += [s.values.astype("<f8"), s.quality, s.role]
    cols += [] if s.changes is None else [s.changes]
    return head + b"".join(np.ascontiguousarray(c).tobytes() for c in cols)


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
    seg = segments.decode(encoded(s, ikeys, starts))
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
    blob = encoded(s, ikeys, starts)
    for bad in (blob[:5], blob[:-1], b"XX" + blob[2:], blob + b"\0"):
        with pytest.raises(StoreError):
            segments.decode(bad)


def test_a_point_is_found_in_the_segment_at_or_before_its_key(tmp_path: Path) -> None:
    db = Rdict(str(tmp_path / "db"), Options(raw_mode=True))
    s, ikeys, starts = runs(1, False)
    # Two segments of one (data type, host, day, seal), one of the next seal.
    first, second = slice(0, 2), slice(2, 4)
    cut = int(starts[2])
    db[segments.key(0, 1, 20000, 7, -5)] = encoded(
        s.take(slice(0, cut)), ikeys[first], starts[first]
    )
    db[segments.key(0, 1, 20000, 7, 9)] = encoded(
        s.take(slice(cut, len(s))), ikeys[second], starts[second] - cut
    )
    db[segments.key(0, 1, 20000, 8, -100)] = encoded(s, ikeys, starts)
    for ikey in ikeys.tolist():
        got = segments.find(db, 0, 1, 20000, 7, ikey)
        assert got is not None and len(got) > 0
    assert segments.find(db, 0, 1, 20000, 7, -6) is None, "before the seal's first segment"
    assert segments.find(db, 0, 1, 20000, 7, 10) is None, "within a segment, not in it"
    assert segments.find(db, 0, 2, 20000, 7, 3) is None, "another host"
    db.close()


@pytest.mark.parametrize("width", [1, 4])
@pytest.mark.parametrize("status", [False, True])
def test_pieces_merge_each_point_by_time_keeping_seal_order_on_ties(
    width: int, status: bool
) -> None:
    rng = np.random.default_rng(11 + width)
    day0 = 19_000 * 86_400_000
    pool = rng.choice(1 << 50, 300, replace=False).astype(np.int64) - (1 << 49)
    segs = []
    for seal in range(8):
        ikeys = np.sort(rng.choice(pool, int(rng.integers(1, 200)), replace=False))
        # Long runs in some seals: blocks that are compressed and summarised.
        counts = rng.integers(1, 6 if seal % 3 else 400, len(ikeys))
        n = int(counts.sum())
        # Few distinct times, spread over the whole day: ties within and
        # across seals, and seals out of time order; the last seals in time
        # order after the others, which is the common case.
        spots = [0, 5_000, 86_399_999, 40_000_000] if seal < 6 else [86_400_000 + seal]
        times = day0 + rng.choice(spots, n)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        for a, b in zip(starts, np.append(starts[1:], n), strict=True):
            times[a:b].sort()
        shape: tuple[int, ...] = (n,) if width == 1 else (n, width)
        # Rows are told apart by their values, which compare ties' order too.
        s = Samples(
            times,
            np.round(rng.normal(size=shape), 2),
            rng.integers(0, 255, n).astype(np.uint8),
            rng.integers(0, 2, n).astype(np.uint8),
            rng.integers(0, 9, n).astype(np.uint8) if status else None,
        )
        segs.append(segments.Segment(ikeys, starts, s))

    got = {}
    summaries = {}
    for keys, blobs, sums in tiers.merged_pieces(segs, 64, width == 1):
        assert len(keys) == len(blobs) == len(sums) <= 64
        for ikey, blob, summary in zip(keys.tolist(), blobs, sums, strict=True):
            got[ikey] = blocks.decode(blob)
            summaries[ikey] = summary

    want: dict[int, list[Samples]] = {}
    for seg in segs:
        for ikey in seg.ikeys.tolist():
            run = seg.run(ikey)
            assert run is not None
            want.setdefault(ikey, []).append(run)
    assert list(got) == sorted(want)
    for ikey, parts in want.items():
        # A stable sort of the runs joined in seal order: ties keep that order.
        joined = blocks.joined(parts)
        expected = joined.take(np.argsort(joined.times, kind="stable"))
        for column in ("times", "values", "quality", "role", "changes"):
            assert np.array_equal(getattr(got[ikey], column), getattr(expected, column)), column
        wanted = blocks.encode_summarised(
            expected, np.zeros(1, np.int64), 120 if width == 1 else -1
        )
        assert blocks.encode(expected) == blocks.encode(got[ikey])
        assert summaries[ikey] == wanted[1][0]
    assert any(v is not None for v in summaries.values()) == (width == 1)


def test_pieces_of_segments_of_different_layouts_are_refused() -> None:
    s, ikeys, starts = runs(1, False)
    wide, _, _ = runs(4, False)
    with pytest.raises(StoreError, match="different layouts"):
        list(
            tiers.merged_pieces(
                [segments.Segment(ikeys, starts, s), segments.Segment(ikeys, starts, wide)], 8, True
            )
        )


@pytest.mark.parametrize("width", [1, 4])
@pytest.mark.parametrize("status", [False, True])
@pytest.mark.parametrize("spread", [1 << 20, 1 << 62])
def test_a_seal_orders_a_groups_samples_by_point_time_and_arrival(
    width: int, status: bool, spread: int
) -> None:
    rng = np.random.default_rng(5 + width + status)
    pool = rng.choice(spread, 50, replace=False).astype(np.int64) - spread // 2
    frames = []
    for seq in range(12):
        n = int(rng.integers(0, 40))
        ikeys = np.sort(rng.choice(pool, n, replace=False))
        if seq % 5 == 4:  # not sorted by point, with a point twice
            ikeys = rng.permutation(np.append(ikeys, ikeys[:1]))
            n = len(ikeys)
        shape: tuple[int, ...] = (n,) if width == 1 else (n, width)
        frames.append(
            Frame(
                "north", "ems-a", int(rng.integers(0, 2)), seq,
                1_700_000_000_000 + int(rng.choice([0, 5_000, 3_000_000])), 5000,
                STATUS if status else 0, 0, ikeys, rng.normal(size=shape),
                rng.integers(0, 9, n).astype(np.uint8),
                rng.integers(0, 9, n).astype(np.uint8) if status else np.zeros(0, np.uint8),
            )
        )  # fmt: skip

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segments, "RUNS", 7)
        sealed = segments.seal(frames, width, status)
    # Each segment holds RUNS runs but the last, and is what the layout's
    # reference writer gives for them.
    decoded = [segments.decode(blob) for _, blob in sealed]
    assert [len(d.ikeys) for d in decoded[:-1]] == [7] * (len(decoded) - 1)
    assert [first for first, _ in sealed] == [int(d.ikeys[0]) for d in decoded]
    for d, (_, blob) in zip(decoded, sealed, strict=True):
        assert encoded(d.samples, d.ikeys, d.starts) == blob

    rows = [
        (int(k), f.scan_time_ms, arrival, place, v.tobytes(), int(q), f.role)
        for arrival, f in enumerate(frames)
        for place, (k, v, q) in enumerate(zip(f.ikeys, f.values, f.quality, strict=True))
    ]
    rows.sort(key=lambda r: r[:4])
    got = [
        (k, int(t), v.tobytes(), int(q), int(r))
        for d in decoded
        for k, t, v, q, r in zip(
            d.row_ikeys().tolist(), d.samples.times, d.samples.values,
            d.samples.quality, d.samples.role, strict=True,
        )
    ]  # fmt: skip
    assert got == [(r[0], r[1], r[4], r[5], r[6]) for r in rows]
    if status:
        changes = [int(c) for d in decoded for c in d.samples.changes]  # type: ignore[union-attr]
        want = {(a, p): int(f.changes[p]) for a, f in enumerate(frames) for p in range(f.count)}
        assert changes == [want[(r[2], r[3])] for r in rows]
    # One run per point, in point order.
    keys = [k for d in decoded for k in d.ikeys.tolist()]
    assert keys == sorted({r[0] for r in rows})


def test_a_seal_refuses_frames_of_the_wrong_width() -> None:
    frame = Frame(
        "north", "ems-a", 0, 1, 1_700_000_000_000, 5000, 0, 0,
        np.arange(3, dtype=np.int64), np.zeros(3), np.zeros(3, np.uint8), np.zeros(0, np.uint8),
    )  # fmt: skip
    with pytest.raises(ValueError, match="different lengths"):
        segments.seal([frame], 4, False)
