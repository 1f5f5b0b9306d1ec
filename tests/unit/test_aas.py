"""Exception mining as a pure function of a partition's records: no broker."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pegasus_kafka.aas.analog import WARMUP, AnalogMiner
from pegasus_kafka.aas.meta import MetaIndex
from pegasus_kafka.aas.points import PointTable
from pegasus_kafka.aas.status import StatusMiner
from pegasus_kafka.aas.task import AppTask
from pegasus_kafka.aas.truth import analog_truth, status_truth
from pegasus_kafka.api.exceptions import ExceptionQuery, arrange
from pegasus_kafka.collector.frames import ScanHeader, cut_frames
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import SiteConfig
from pegasus_kafka.errors import QueryError
from pegasus_kafka.ring.records import ExceptionPartition
from pegasus_kafka.ring.store import PartitionStore
from pegasus_kafka.schema import (
    BACKUP,
    EXCEPTION_RECORDS,
    LIMIT,
    PRIMARY,
    Frame,
    codec,
    encode_frame,
)

SITE = SiteConfig(
    name="north",
    code=3,
    points=600,
    seed=7,
    status_rate=300_000.0,
    excursion_rate=60_000.0,
    limit_change_scans=(20, 35),
)
PARTITIONS = 2
SCANS = 50


def host_frames(host: str, role: int, seq: int) -> tuple[list[Frame], list[dict[str, Any]]]:
    """One host's scan as the collector cuts it: partition 0's frames, limits first."""
    source = SimSource(SITE, host, role)
    result = source.read(seq)
    header = ScanHeader(SITE.name, host, result.role, seq, result.scan_time_ms, 5000)
    frames = []
    for scan in sorted(result.scans, key=lambda s: (s.data_type != LIMIT, s.data_type)):
        frames.extend(f for p, f in cut_frames(header, scan, PARTITIONS, 100) if p == 0)
    return frames, result.events


def partition_keys() -> set[int]:
    frames, _ = host_frames("a", PRIMARY, 0)
    return {int(k) for f in frames for k in f.ikeys}


ORDERS = {
    "primary first": lambda a, b: a + b,
    "backup first": lambda a, b: b + a,
    "interleaved": lambda a, b: [x for pair in itertools.zip_longest(a, b) for x in pair if x],
}


def stream(order: str) -> list[tuple[str, Any]]:
    """Both hosts' scans 0..SCANS as partition 0 receives them, with the primary's
    events of each scan arriving one scan later (another topic lags)."""
    out: list[tuple[str, Any]] = []
    late: list[dict[str, Any]] = []
    for seq in range(SCANS + 1):
        a, events = host_frames("a", PRIMARY, seq)
        b, _ = host_frames("b", BACKUP, seq)
        out.extend(("frame", f) for f in ORDERS[order](a, b))
        out.extend(("event", e) for e in late)
        late = events
    out.extend(("event", e) for e in late)
    return out


def mine(miner: Any, items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    meta = MetaIndex()
    out: list[dict[str, Any]] = []
    for kind, item in items:
        out.extend(miner.on_frame(item, meta) if kind == "frame" else miner.on_event(item, meta))
    return out


def identities(records: list[dict[str, Any]]) -> dict[tuple[str, int, int], dict[str, Any]]:
    return {(r["kind"], r["ikey"], r["time_ms"] // 5000): r for r in records if r["kind"] != "LINK"}


@pytest.fixture(scope="module")
def streams() -> dict[str, list[tuple[str, Any]]]:
    return {order: stream(order) for order in ORDERS}


def test_status_exceptions_equal_the_simulators_changes_under_every_host_order(
    streams: dict[str, list[tuple[str, Any]]],
) -> None:
    keys = partition_keys()
    truth = {k: v for k, v in status_truth(SITE, 0, SCANS).items() if k[1] in keys}
    assert any(k[0] == "MOMENTARY" for k in truth) and any(k[0] == "CHANGE" for k in truth)
    results = []
    for order, items in streams.items():
        found = mine(StatusMiner(), items)
        got = identities(found)
        assert set(got) == set(truth), order
        for key, rec in got.items():
            assert (rec["old_state"], rec["new_state"]) == (truth[key]["old"], truth[key]["new"])
        links = [r for r in found if r["kind"] == "LINK"]
        by_exception = {r["exception_id"]: r for r in links}
        assert len(by_exception) == len(links) == len(got), order
        for rec in got.values():
            expected = "OPERATOR_ACTION" if rec["kind"] == "CHANGE" else "ALARM"
            assert by_exception[rec["id"]]["event"]["kind"] == expected
        results.append(sorted(r["id"] for r in found))
    assert all(r == results[0] for r in results)


def test_links_are_found_whichever_side_arrives_first() -> None:
    items = stream("primary first")
    events = [x for x in items if x[0] == "event"]
    frames = [x for x in items if x[0] == "frame"]
    early = mine(StatusMiner(), events + frames)
    late = mine(StatusMiner(), frames + events)
    assert sorted(r["id"] for r in early) == sorted(r["id"] for r in late)


def test_limit_violations_use_the_limits_in_force_under_every_host_order(
    streams: dict[str, list[tuple[str, Any]]],
) -> None:
    keys = partition_keys()
    truth = {k: v for k, v in analog_truth(SITE, "a", 0, SCANS).items() if k[1] in keys}
    tightened = [k for k in truth if k[0] == "VIOLATION" and k[2] == 20]
    restored = [k for k in truth if k[0] == "RETURN" and k[2] == 35]
    assert tightened and restored
    for order, items in streams.items():
        got = {
            k: r
            for k, r in identities(mine(AnalogMiner(), items)).items()
            if k[0] in ("VIOLATION", "RETURN")
        }
        assert set(got) == set(truth), order
        for key, rec in got.items():
            if key[0] == "VIOLATION":
                assert rec["limit"] == pytest.approx(truth[key]["limit"])
                assert rec["level"] == truth[key]["level"]
                assert rec["limits_from_ms"] // 5000 <= key[2]
            else:
                assert rec["start_ms"] // 5000 == truth[key]["start_slot"]
                assert rec["duration_ms"] == pytest.approx(
                    (key[2] - truth[key]["start_slot"]) * 5000, abs=100
                )
                assert rec["peak"] is not None


def test_a_ramp_is_unusual_before_it_violates(streams: dict[str, list[tuple[str, Any]]]) -> None:
    found = identities(mine(AnalogMiner(), streams["primary first"]))
    # Excursions after the statistics have warmed up (and away from limit changes).
    starts = [k for k in found if k[0] == "VIOLATION" and k[2] > WARMUP + 1]
    early = [k for k in starts if ("UNUSUAL", k[1], k[2] - 1) in found]
    assert starts and len(early) == len(starts)
    # No false alarms: every unusual change is a step into, along or out of an excursion.
    field = SimSource(SITE, "a").field
    row = {int(k): i for i, k in enumerate(field.ikeys)}
    for kind, ikey, slot in found:
        if kind == "UNUSUAL":
            i = row[ikey]
            assert field.excursion(slot)[i] > 0 or field.excursion(slot - 1)[i] > 0, (ikey, slot)


def test_point_table_keeps_rows_in_key_order_and_round_trips() -> None:
    table = PointTable({"x": (np.float64, np.nan, ()), "lim": (np.float64, 0.0, (4,))})
    rows = table.index(np.array([30, 10], np.int64))
    table["x"][rows] = [3.0, 1.0]
    rows = table.index(np.array([20, 30], np.int64))
    assert list(table.keys) == [10, 20, 30]
    assert table["x"][rows[1]] == 3.0 and np.isnan(table["x"][rows[0]])
    copy = PointTable(table.defaults)
    copy.load(table.pack())
    assert list(copy.keys) == [10, 20, 30] and copy["lim"].shape == (3, 4)


def test_a_task_resumes_from_its_checkpoint_with_the_same_output(tmp_path: Path) -> None:
    frames = [f for kind, f in stream("interleaved") if kind == "frame"]
    values = [encode_frame(f) for f in frames]
    whole = AppTask(tmp_path / "whole", 0, AnalogMiner())
    expected = [r for off, v in enumerate(values) for r in whole.on_scan(off, v)]
    whole.close()
    cut = len(values) // 2
    first = AppTask(tmp_path / "cut", 0, AnalogMiner())
    got = [r for off, v in enumerate(values[:cut]) for r in first.on_scan(off, v)]
    first.checkpoint()
    # Records after the checkpoint are mined, then lost in a crash.
    for off, v in enumerate(values[cut : cut + 10], start=cut):
        first.on_scan(off, v)
    first.close()
    second = AppTask(tmp_path / "cut", 0, AnalogMiner())
    assert second.scan_pos == cut
    got += [r for off, v in enumerate(values) for r in second.on_scan(off, v)]
    second.close()
    assert repr(got) == repr(expected)  # repr: NaN limits compare equal


def test_a_malformed_record_is_skipped_and_counted(tmp_path: Path) -> None:
    task = AppTask(tmp_path / "t", 0, StatusMiner())
    assert task.on_scan(0, b"\x00garbage") == []
    assert task.malformed == 1 and task.scan_pos == 1
    task.close()


def _status_records() -> list[dict[str, Any]]:
    return mine(StatusMiner(), stream("interleaved"))


def test_the_ring_keeps_the_first_copy_of_each_exception(tmp_path: Path) -> None:
    records = _status_records()
    values = [codec(EXCEPTION_RECORDS["status"]).encode(r) for r in records]
    # Two rings' copies interleaved, and a replayed stretch.
    doubled = [v for pair in zip(values, values, strict=True) for v in pair] + values[:10]
    stores = []
    for name, data in (("once", values), ("doubled", doubled)):
        part = ExceptionPartition(
            PartitionStore(tmp_path / name, ExceptionPartition.COLUMN_FAMILIES),
            EXCEPTION_RECORDS["status"],
        )
        part.apply([(i, None, v) for i, v in enumerate(data)])
        stores.append(part)
    once, doubled_part = (p.exceptions(0, 2**40) for p in stores)
    assert [r["id"] for r in once] == [r["id"] for r in doubled_part]
    assert sorted(r["id"] for r in once) == sorted(r["id"] for r in records)
    ikey = records[0]["ikey"]
    assert {r["ikey"] for r in stores[0].exceptions(0, 2**40, ikey)} == {ikey}
    for part in stores:
        part.store.close()


def test_reports_fold_links_group_and_sort() -> None:
    records = _status_records()
    query = ExceptionQuery(app="status", t0=0, t1=2**40)
    body = arrange(records, query)
    rows = body["exceptions"]
    assert all(r["kind"] != "LINK" and len(r["events"]) == 1 for r in rows)
    assert [r["time_ms"] for r in rows] == sorted(r["time_ms"] for r in rows)
    newest = arrange(records, dataclasses.replace(query, sort="-time"))["exceptions"]
    assert [r["time_ms"] for r in newest] == sorted((r["time_ms"] for r in rows), reverse=True)
    groups = arrange(records, dataclasses.replace(query, group_by="kind"))["groups"]
    assert {g["key"] for g in groups} == {"CHANGE", "MOMENTARY"}
    assert sum(g["count"] for g in groups) == len(rows)
    only = arrange(records, dataclasses.replace(query, kind="momentary"))["exceptions"]
    assert only and all(r["kind"] == "MOMENTARY" for r in only)
    for bad in ({"group_by": "colour"}, {"sort": "weight"}, {"t1": -1}, {"app": "x"}):
        with pytest.raises(QueryError):
            dataclasses.replace(query, **bad)
