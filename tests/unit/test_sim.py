from __future__ import annotations

import dataclasses
from typing import cast

import numpy as np

from pegasus_kafka.collector.frames import Scan, ScanHeader, cut_frames
from pegasus_kafka.collector.sim import SiteField
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config, HostConfig, SiteConfig
from pegasus_kafka.keys import partitions_of, site_code_of
from pegasus_kafka.schema import ACCUMULATOR, ANALOG, BACKUP, PRIMARY, STATUS

SITE = SiteConfig(name="n", code=3, scan_period_ms=5000, points=2000, seed=5, status_rate=2000)
#: a site whose primary logs something at every scan, fails over at 30 and renames at 31
EVENTFUL = SiteConfig(
    "s", 3, 1000, (HostConfig("a", "primary"), HostConfig("b", "backup")), points=400,
    status_rate=5e6, failover_scans=(30,), rename_scans=(31,),
)  # fmt: skip


def test_same_seed_same_field_for_any_start() -> None:
    one, two = SiteField(SITE), SiteField(SITE)
    assert np.array_equal(one.values(500, 2_500_000, 1)[0], two.values(500, 2_500_000, 1)[0])
    assert np.array_equal(one.status(10_000)[0], two.status(10_000)[0])


def test_hosts_read_nearly_the_same_field() -> None:
    a, b = SimSource(SITE, "a", PRIMARY), SimSource(SITE, "b", BACKUP)
    ra, rb = a.read(100), b.read(100)
    va, vb = ra.scans[0].values, rb.scans[0].values
    assert not np.array_equal(va, vb), "two hosts are not byte-identical"
    assert np.allclose(va, vb, rtol=0.05, atol=2.0)
    assert rb.scan_time_ms > ra.scan_time_ms


def test_analogs_are_quantized_and_accumulators_grow() -> None:
    f = SiteField(SITE)
    v0, _ = f.values(100, 500_000, 1)
    v1, _ = f.values(200, 1_000_000, 1)
    analog = f.dtype == ANALOG
    steps = v0[analog] / f.resolution[analog]
    assert np.allclose(steps, np.round(steps), atol=1e-6)
    acc = f.dtype == ACCUMULATOR
    assert (v1[acc] >= v0[acc]).all() and (v1[acc] > v0[acc]).any()
    assert (v0[f.out_of_service & analog] == 0).all()


def test_status_changes_are_reported_with_momentaries() -> None:
    f = SiteField(SITE)
    status = f.dtype == STATUS
    before, _ = f.status(999)
    after, changes = f.status(1000)
    flipped = status & (before != after)
    assert (changes[flipped] == 1).all()
    momentary_total = sum(int((f.status(k)[1][status] == 2).sum()) for k in range(60_000, 60_400))
    assert momentary_total > 0


def test_keys_carry_the_site_and_frames_cover_each_point_once() -> None:
    src = SimSource(SITE, "a", PRIMARY)
    res = src.read(7)
    assert {site_code_of(int(k)) for k in src.field.ikeys} == {3}
    header = ScanHeader("n", "a", PRIMARY, 7, res.scan_time_ms, 5000)
    for scan in res.scans:
        frames = cut_frames(header, scan, 4, 100)
        keys = np.concatenate([f.ikeys for _, f in frames])
        assert sorted(keys.tolist()) == sorted(scan.ikeys.tolist())
        for p, frame in frames:
            assert (partitions_of(frame.ikeys, 4) == p).all()
            assert frame.count <= 100


def test_hosts_swap_roles_on_schedule_and_on_command() -> None:
    import dataclasses

    site = SiteConfig(
        "s", 3, 1000, (HostConfig("a", "primary"), HostConfig("b", "backup")), points=20,
        failover_scans=(10, 20),
    )  # fmt: skip
    a, b = SimSource(site, "a", PRIMARY), SimSource(site, "b", BACKUP)
    for seq, role_a in ((9, PRIMARY), (10, BACKUP), (19, BACKUP), (20, PRIMARY)):
        assert a.role_at(seq) == role_a and b.role_at(seq) == 1 - role_a
        assert a.read(seq).role == role_a
    a.fail_over(25)
    b.fail_over(25)
    assert (a.role_at(25), b.role_at(25)) == (BACKUP, PRIMARY)
    assert dataclasses.replace(site, failover_scans=()).failover_scans == ()


def test_a_commanded_failover_reaches_both_collectors_of_the_site(unit_config: Config) -> None:
    from pegasus_kafka.collector.commands import FailoverCommands, request_failover

    site = unit_config.sites[0]
    a, b = SimSource(site, "ems-a", PRIMARY), SimSource(site, "ems-b", BACKUP)
    commands = [FailoverCommands(unit_config, a), FailoverCommands(unit_config, b)]
    assert request_failover(unit_config, site, at=50) == 50
    for apply in commands:
        apply(40)
        apply(41)  # read again: the same command applies once
    assert (a.role_at(49), a.role_at(50), b.role_at(50)) == (PRIMARY, BACKUP, PRIMARY)
    assert a.role_at(10**6) == BACKUP


def test_renames_keep_the_key_and_number_the_versions() -> None:
    import dataclasses

    site = SiteConfig(
        "s", 3, 1000, (HostConfig("a", "primary"), HostConfig("b", "backup")), points=1,
        rename_scans=(10, 20),
    )  # fmt: skip
    src = SimSource(site, "a", PRIMARY)
    assert src.read(9).meta == []
    first, second = src.read(10).meta, src.read(20).meta
    assert [m["version"] for m in first + second] == [2, 3]
    assert {m["ikey"] for m in first + second} == {src.metadata()[0]["ikey"]}
    assert first[0]["name"] != second[0]["name"] and second[0]["change"] == "RENAMED"
    assert second[0]["valid_from_ms"] == 20_000
    # A collector starting later publishes the versions it missed.
    assert [m["version"] for m in src.metadata(upto=15)] == [1, 2]
    assert [m["version"] for m in src.metadata()] == [1]
    assert dataclasses.replace(site, rename_scans=()).rename_scans == ()


def test_iec104_points_parse_and_bad_ones_are_named() -> None:
    import pytest

    from pegasus_kafka.collector.iec104 import parse_points, point_ikey
    from pegasus_kafka.errors import ConfigError
    from pegasus_kafka.keys import site_code_of

    points = parse_points("11:M_ME_NC_1, 12:M_SP_NA_1")
    assert [(p.ioa, p.data_type) for p in points] == [(11, ANALOG), (12, STATUS)]
    for bad in ("", "x:M_ME_NC_1", "11:M_XX_NA_1", "11"):
        with pytest.raises(ConfigError, match="--points"):
            parse_points(bad)
    # Keys differ by site, station and address, and carry the site's code.
    keys = {point_ikey(site, ca, ioa) for site in (1, 2) for ca in (1, 47) for ioa in (11, 12)}
    assert len(keys) == 8 and {site_code_of(k) for k in keys} == {1, 2}


def test_new_points_get_new_keys_and_moves_are_versions() -> None:
    site = SiteConfig(
        "s", 3, 1000, (HostConfig("a", "primary"), HostConfig("b", "backup")), points=4,
        substations=3, new_point_scans=(10,), move_scans=(12,), rename_scans=(14,),
    )  # fmt: skip
    src = SimSource(site, "a", PRIMARY)
    before = {int(k) for s in src.read(9).scans for k in s.ikeys}
    after = {int(k) for s in src.read(10).scans for k in s.ikeys}
    assert len(before) == 4 and len(after - before) == 1
    (created,) = src.read(10).meta
    assert created["change"] == "CREATED" and created["ikey"] in after - before
    assert created["valid_from_ms"] == 10_000
    (moved,) = src.read(12).meta
    assert moved["change"] == "MOVED" and moved["version"] >= 2
    history = [m for m in src.metadata(upto=100) if m["ikey"] == moved["ikey"]]
    assert [m["version"] for m in history] == list(range(1, len(history) + 1))
    assert len({m["ikey"] for m in src.metadata(upto=100)}) == 5
    assert len({m["ikey"] for m in src.metadata()}) == 4


def test_the_primary_logs_actions_alarms_failovers_and_database_changes() -> None:
    site = EVENTFUL
    a, b = SimSource(site, "a", PRIMARY), SimSource(site, "b", BACKUP)
    kinds = {e["kind"] for s in range(0, 30) for e in a.read(s).events}
    assert {"OPERATOR_ACTION", "ALARM"} <= kinds
    assert all(not b.read(s).events for s in range(0, 30)), "only the primary logs"
    assert [e["kind"] for e in b.read(30).events].count("FAILOVER") == 1
    assert not a.read(30).events
    changed = [e for e in b.read(31).events if e["kind"] == "DATABASE_CHANGE"]
    assert [e["ikey"] for e in changed] == [m["ikey"] for m in b.read(31).meta]
    seqs = [e["seq"] for s in range(25, 35) for e in b.read(s).events]
    assert len(seqs) == len(set(seqs))


def test_a_scan_prepared_ahead_reads_the_same_as_one_read_at_its_time() -> None:
    site = EVENTFUL
    ahead, now = SimSource(site, "a", PRIMARY), SimSource(site, "a", PRIMARY)
    logged = 0
    for seq in range(25, 35):
        ahead.prepare(seq)
        if seq == 28:
            ahead.prepare(seq + 1)  # a stale preparation is not used for another scan
        got, want = ahead.read(seq), now.read(seq)
        assert (got.scan_time_ms, got.role, got.meta) == (want.scan_time_ms, want.role, want.meta)
        assert got.events == want.events
        logged += len(got.events)
        assert [s.data_type for s in got.scans] == [s.data_type for s in want.scans]
        for g, w in zip(got.scans, want.scans, strict=True):
            assert np.array_equal(g.ikeys, w.ikeys)
            assert np.array_equal(g.values, w.values, equal_nan=True)
            assert np.array_equal(g.quality, w.quality)
            assert (g.changes is None) == (w.changes is None)
            if g.changes is not None:
                assert np.array_equal(g.changes, w.changes)
    assert logged, "the scans compared carry events"


def _samples(scans: list[Scan], time_ms: int) -> dict[tuple[int, int], tuple[object, ...]]:
    """(data type, key) -> (time, value or limits, quality, change) of every row;
    values as text, so that a missing limit (NaN) equals itself."""
    out = {}
    for s in scans:
        for r in range(len(s.ikeys)):
            value = tuple(repr(v) for v in np.atleast_1d(s.values[r]).tolist())
            change = int(s.changes[r]) if s.changes is not None else -1
            out[s.data_type, int(s.ikeys[r])] = (time_ms, *value, int(s.quality[r]), change)
    return out


def test_a_scan_polled_in_groups_holds_the_whole_scan_each_group_at_its_time() -> None:
    groups = 4
    polled = dataclasses.replace(EVENTFUL, poll_groups=groups, substations=7)
    whole = dataclasses.replace(EVENTFUL, substations=7)
    for role, host in ((PRIMARY, "a"), (BACKUP, "b")):
        g_src, w_src = SimSource(polled, host, role), SimSource(whole, host, role)
        field = g_src.field
        last_seq, logged = -1, 0
        for seq in range(28, 33):
            want = w_src.read(seq)
            got = [g_src.read(seq, g) for g in range(groups)]
            period = EVENTFUL.scan_period_ms
            assert [r.scan_time_ms for r in got] == [
                want.scan_time_ms + g * period // groups for g in range(groups)
            ]
            assert [r.role for r in got] == [want.role] * groups
            assert got[0].meta == want.meta and not any(r.meta for r in got[1:])
            # Every sample once, in its own point's group, at that group's time.
            union: dict[tuple[int, int], tuple[object, ...]] = {}
            for g, r in enumerate(got):
                rows = _samples(r.scans, r.scan_time_ms)
                index = np.searchsorted(field.ikeys, [k for _, k in rows])
                assert (field.group[index] == g).all()
                assert not union.keys() & rows.keys()
                union.update(rows)
            expected = _samples(want.scans, want.scan_time_ms)
            assert union.keys() == expected.keys()
            for key, (t, *rest) in union.items():
                offset = int(field.group[np.searchsorted(field.ikeys, key[1])]) * period // groups
                assert t == cast(int, expected[key][0]) + offset
                assert tuple(rest) == expected[key][1:]
            # The same log, numbered so that the numbers grow as the groups go out.
            events = [e for r in got for e in r.events]
            numbers = [e["seq"] for e in events]
            if numbers:
                assert numbers == sorted(numbers) and numbers[0] > last_seq
                last_seq = numbers[-1]
                logged += 1
            strip = [(e["kind"], e["ikey"], e["text"]) for e in events]
            assert sorted(strip, key=str) == sorted(
                [(e["kind"], e["ikey"], e["text"]) for e in want.events], key=str
            )
        assert logged >= 2, "the scans compared carry events"
    assert {g for g in range(groups)} == set(SiteField(polled).group.tolist())
