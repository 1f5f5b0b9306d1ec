"""Trends from block summaries equal trends from decoded samples, whatever the
hosts did: failovers, missed scans, late resync, seals mid-day, the head."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pegasus_kafka.api.matrix import LINEAR, PREVIOUS, grid, regular
from pegasus_kafka.collector.frames import ScanHeader, cut_frames
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import SiteConfig
from pegasus_kafka.ring import blocks, rollup, tiers
from pegasus_kafka.ring.resolve import resolve
from pegasus_kafka.ring.rollup import HOUR_MS, grid_from_buckets
from pegasus_kafka.ring.scan import DAY_MS, ScanPartition, open_store
from pegasus_kafka.schema import ACCUMULATOR, ANALOG, BACKUP, LIMIT, PRIMARY, STATUS, encode_frame

PERIOD = 600_000  # ten minutes: a few days of scans stay small
SITE = SiteConfig(
    name="north",
    code=4,
    scan_period_ms=PERIOD,
    points=40,
    seed=3,
    status_rate=20_000.0,
    failover_scans=(200, 280),
)
SCANS = 470  # three days and a bit


def _frames(host: str, role: int, seq: int) -> list[bytes]:
    result = SimSource(SITE, host, role).read(seq)
    header = ScanHeader(SITE.name, host, result.role, seq, result.scan_time_ms, PERIOD)
    out = []
    for scan in result.scans:
        if scan.data_type == LIMIT:
            continue
        out.extend(encode_frame(f) for p, f in cut_frames(header, scan, 1, 100))
    return out


def _partition(tmp_path: Path, late: bool) -> ScanPartition:
    """Both hosts' scans, the primary missing some; with ``late``, the backup's
    scans of a stretch arrive long after the rest."""
    part = ScanPartition(open_store(tmp_path / "store"), 3000, 4 * HOUR_MS)
    # The site is small, so its blocks are too: summarise them all. Days still
    # in segments have no summaries: merging every other seal leaves none there.
    threshold, rollup.MIN_SUMMARY_SAMPLES = rollup.MIN_SUMMARY_SAMPLES, 1
    fanin, tiers.FANIN = tiers.FANIN, 2
    records: list[bytes] = []
    held: list[bytes] = []
    for seq in range(SCANS):
        if not 100 <= seq < 110:  # the primary misses these scans
            records.extend(_frames("ems-a", PRIMARY, seq))
        backup = _frames("ems-b", BACKUP, seq)
        (held if late and 230 <= seq < 280 else records).extend(backup)
        if seq == 420:
            records.extend(held)
    try:
        part.apply([(i, None, v) for i, v in enumerate(records)])
    finally:
        rollup.MIN_SUMMARY_SAMPLES = threshold
        tiers.FANIN = fanin
    in_segments = {day for days in part.in_segments.values() for day in days}
    assert in_segments <= {3}, "the last day alone is still in segments"
    return part


@pytest.fixture(scope="module", params=[False, True], ids=["in-order", "late-backup"])
def partition(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScanPartition]:
    part = _partition(tmp_path_factory.mktemp("rollup"), request.param)
    yield part
    part.close()


def _points(part: ScanPartition) -> list[tuple[int, int]]:
    field = SimSource(SITE, "ems-a").field
    return [(int(field.dtype[i]), int(field.ikeys[i])) for i in range(SITE.points)]


@pytest.mark.parametrize(
    ("t0", "t1", "step"),
    [
        (0, SCANS * PERIOD, HOUR_MS),
        (5 * HOUR_MS, 3 * DAY_MS - 1, HOUR_MS),
        (2 * HOUR_MS, 2 * DAY_MS + 7 * HOUR_MS + 123, 3 * HOUR_MS),
        (DAY_MS, SCANS * PERIOD, 24 * HOUR_MS),
    ],
)
def test_trend_from_summaries_equals_trend_from_samples(
    partition: ScanPartition, t0: int, t1: int, step: int
) -> None:
    times = grid(t0, t1, step)
    used_summaries = 0
    for dtype, ikey in _points(partition):
        for rule in (PREVIOUS, LINEAR) if dtype == ANALOG else (PREVIOUS,):
            streams = partition.history(dtype, ikey, t0 - HOUR_MS, t1)
            samples = resolve(
                [streams[h] for h in partition.hosts if h in streams], partition.period_ms()
            )
            want = regular(samples, times, step, rule)
            buckets = partition.trend(dtype, ikey, t0 - HOUR_MS, t1)
            got = grid_from_buckets(buckets, times, step, rule == LINEAR)
            for name in ("value", "min", "max", "count"):
                assert np.array_equal(want[name], got[name], equal_nan=True), (ikey, name)
            # An hour split between two blocks adds two partial sums.
            np.testing.assert_allclose(got["avg"], want["avg"], rtol=1e-12)
        used_summaries += 1
    assert used_summaries


def test_clean_days_are_answered_from_summaries(
    partition: ScanPartition, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Day 1 (scans 144..287) holds both failovers and, in one run, late backup
    data; day 2 is clean: it must not be decoded."""
    decoded: list[tuple[int, int]] = []
    original = ScanPartition.history

    def spy(self: ScanPartition, dtype: int, ikey: int, t0: int, t1: int) -> dict:
        decoded.append((t0, t1))
        return original(self, dtype, ikey, t0, t1)

    monkeypatch.setattr(ScanPartition, "history", spy)
    dtype, ikey = next(p for p in _points(partition) if p[0] == ANALOG)
    partition.trend(dtype, ikey, 0, SCANS * PERIOD)
    # Each decoded run of days is read with a day of context either side.
    runs = [(a + DAY_MS, b - DAY_MS) for a, b in decoded]
    assert not any(a <= 2 * DAY_MS and b >= 3 * DAY_MS - 1 for a, b in runs), decoded


def test_old_blocks_without_summaries_are_decoded(tmp_path: Path) -> None:
    part = _partition(tmp_path, late=False)
    dtype, ikey = next(p for p in _points(part) if p[0] == ACCUMULATOR or p[0] == STATUS)
    times = grid(0, SCANS * PERIOD, HOUR_MS)
    before = grid_from_buckets(
        part.trend(dtype, ikey, -HOUR_MS, SCANS * PERIOD), times, HOUR_MS, False
    )
    sums = part.store.cf("summaries")
    assert list(sums.keys()), "the partition was sealed with summaries"
    for key in list(sums.keys()):
        sums.delete(key)
    after = grid_from_buckets(
        part.trend(dtype, ikey, -HOUR_MS, SCANS * PERIOD), times, HOUR_MS, False
    )
    for name in before:
        assert np.array_equal(before[name], after[name], equal_nan=True), name
    part.close()


def test_each_run_is_summarised_as_if_alone() -> None:
    rng = np.random.default_rng(11)
    counts = np.array([5, 130, 1, 300, 119, 120, 40, 500])
    n = int(counts.sum())
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    times = np.concatenate([np.sort(rng.integers(0, 9 * HOUR_MS, c)) for c in counts])
    values = np.round(rng.normal(50, 10, n), 1)
    values[rng.random(n) < 0.05] = np.nan
    s = blocks.Samples(
        times.astype(np.int64),
        values,
        np.zeros(n, np.uint8),
        rng.integers(0, 2, n).astype(np.uint8),
    )
    least = rollup.MIN_SUMMARY_SAMPLES
    together = blocks.encode_summarised(s, starts, least)[1]
    for g, c in enumerate(counts.tolist()):
        alone = blocks.encode_summarised(
            s.take(np.arange(starts[g], starts[g] + c)), np.zeros(1, np.int64), least
        )[1]
        assert together[g] == alone[0]
        assert (together[g] is None) == (c < rollup.MIN_SUMMARY_SAMPLES)


def _numpy_summary(s: blocks.Samples) -> tuple[dict[str, int], rollup.Buckets]:
    """A run's summary header and buckets as numpy computes them from its samples."""
    t, role = s.times, s.role
    steps = np.diff(t)
    primary = t[role == PRIMARY]
    head = {
        "first_t": int(t[0]),
        "last_t": int(t[-1]),
        "min_gap": int(steps.min()),
        "max_gap": int(max(steps.max(), 0)),
        "role_min": int(role.min()),
        "role_max": int(role.max()),
        "first_primary": int(primary.min()) if len(primary) else rollup.NO_TIME,
        "last_primary": int(primary.max()) if len(primary) else rollup.NO_TIME,
    }
    return head, rollup.buckets_of(s)


@pytest.mark.parametrize("seed", range(6))
def test_the_coder_summarises_as_numpy_does_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.integers(rollup.MIN_SUMMARY_SAMPLES, 3000, 12)
    runs = []
    for c in counts.tolist():
        # Hours of a few samples to many hundreds, before and after 1970
        # (floor division of negative times), steps of zero included.
        t0 = int(rng.integers(-3, 3)) * 5 * HOUR_MS + int(rng.integers(0, HOUR_MS))
        gaps = rng.choice([0, 1, 5_000, 61_000, HOUR_MS + 7], c, p=[0.05, 0.05, 0.6, 0.25, 0.05])
        t = t0 + np.cumsum(gaps).astype(np.int64)
        v = rng.normal(100, 30, c)
        pick = rng.random(c)
        v[pick < 0.05] = np.nan
        v[(pick > 0.05) & (pick < 0.07)] = np.inf
        v[(pick > 0.07) & (pick < 0.08)] = -0.0
        v[(pick > 0.08) & (pick < 0.1)] = np.round(v[(pick > 0.08) & (pick < 0.1)], 1)
        # All primary, mixed, and no primary at all (NO_TIME in the header).
        role = (rng.random(c) < [0.0, 0.5, 1.0][seed % 3]).astype(np.uint8)
        runs.append(blocks.Samples(t, v, np.zeros(c, np.uint8), role))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    whole = blocks.joined(runs)
    _, summaries = blocks.encode_summarised(whole, starts, rollup.MIN_SUMMARY_SAMPLES)
    for run, blob in zip(runs, summaries, strict=True):
        assert blob is not None
        got = rollup.decode_summary(blob)
        head, want = _numpy_summary(run)
        assert {k: getattr(got, k) for k in head} == head
        for field in ("hour", *rollup.FIELDS):
            a, b = getattr(got.buckets, field), getattr(want, field)
            assert a.tobytes() == b.astype(a.dtype).tobytes() or (
                # fmin and fmax may pick either zero of a bucket's -0.0 and 0.0
                field in ("mn", "mx") and np.array_equal(a, b, equal_nan=True)
            ), field
