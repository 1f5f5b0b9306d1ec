"""The walking skeleton, for real: simulated site -> Kafka -> two rings -> smart client."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from confluent_kafka import TopicPartition

from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.errors import UnknownPoint
from pegasus_kafka.kafka import clients
from pegasus_kafka.schema import ANALOG, BACKUP, LIMIT, PRIMARY, decode_record
from tests.helpers import wait_for
from tests.integration.harness import Ring, produce_site, start_ring, wait_caught_up

SCANS = range(1000, 1020)


@pytest.fixture
def two_rings(cfg: Config) -> Iterator[tuple[Ring, Ring]]:
    produce_site(cfg, SCANS)
    rings = (start_ring(cfg, "ring-a"), start_ring(cfg, "ring-b"))
    try:
        yield rings
    finally:
        for ring in rings:
            ring.stop()


def expected_current(cfg: Config) -> dict[int, float]:
    """What the primary host read at the last scan: the current value of each point."""
    src = SimSource(cfg.sites[0], cfg.sites[0].hosts[0].name, PRIMARY)
    out: dict[int, float] = {}
    for scan in src.read(SCANS[-1]).scans:
        if scan.data_type != LIMIT:
            out.update(zip(scan.ikeys.tolist(), scan.values.tolist(), strict=True))
    return out


def test_both_rings_hold_and_serve_the_same_rds(cfg: Config, two_rings: tuple[Ring, Ring]) -> None:
    a, b = two_rings
    parts_a, parts_b = wait_caught_up(a, cfg), wait_caught_up(b, cfg)
    # Equal offsets, equal digests, partition by partition.
    assert (
        parts_a.keys() == parts_b.keys()
        and len(parts_a) == len(cfg.data_topics) * cfg.topics.partitions
    )
    for name in parts_a:
        assert parts_a[name]["applied_offset"] == parts_b[name]["applied_offset"]
        assert parts_a[name]["digest"] == parts_b[name]["digest"], name

    expected = expected_current(cfg)
    keys = sorted(expected)
    for ring in (a, b):
        with PegasusClient(cfg, endpoints={ring.name: ring.endpoints()}) as client:
            rows = client.current(keys).body["points"]
        assert [r["ikey"] for r in rows] == keys
        assert [r["value"] for r in rows] == [expected[k] for k in keys]
        assert {r["host"] for r in rows} == {"north/ems-a"}


def test_the_smart_client_discovers_rings_and_reads_history(
    cfg: Config, two_rings: tuple[Ring, Ring]
) -> None:
    for ring in two_rings:
        wait_caught_up(ring, cfg)
    with PegasusClient(cfg) as client:
        wait_for(lambda: len(client.rings()) == 2, 30, "both rings to be in sync")
        site = cfg.sites[0]
        primary = SimSource(site, "ems-a", PRIMARY)
        backup = SimSource(site, "ems-b", BACKUP)
        ikey = int(primary.field.ikeys[0])
        answered = {client.current([ikey]).ring for _ in range(4)}
        assert answered == {"ring-a", "ring-b"}, "the client balances across rings"

        resolved = client.history(ikey, 0, 2**62).body
        want = [primary.read(s).scans[0].values[0] for s in SCANS]
        assert resolved["values"] == want and len(resolved["times"]) == len(SCANS)
        mirror = client.history(ikey, 0, 2**62, host="north/ems-b").body
        assert mirror["values"] == [backup.read(s).scans[0].values[0] for s in SCANS]

        versions = client.meta(ikey).body["versions"]
        assert versions[0]["ikey"] == ikey and versions[0]["version"] == 1
        with pytest.raises(UnknownPoint):
            client.current([12345])


def test_events_arrive(cfg: Config, two_rings: tuple[Ring, Ring]) -> None:
    for ring in two_rings:
        wait_caught_up(ring, cfg)
    src = SimSource(cfg.sites[0], "ems-a", PRIMARY)
    sent = [e for s in SCANS for e in src.read(s).events]
    assert sent, "the test site must make status changes"
    endpoint = two_rings[0].endpoints()[0]
    body = httpx.get(f"{endpoint}/v1/events", params={"from": 0, "to": 2**62}).json()
    assert sorted(e["seq"] for e in body["events"]) == sorted(e["seq"] for e in sent)


def test_bad_queries_get_4xx_with_a_json_error(cfg: Config, two_rings: tuple[Ring, Ring]) -> None:
    ring = two_rings[0]
    wait_caught_up(ring, cfg)
    wait_for(lambda: all(h["ring_in_sync"] for h in ring.health()), 30, "ring in sync")
    e = ring.endpoints()[0]
    cases = [
        ("/v1/current", {"ikeys": "abc"}, 400),
        ("/v1/current", {"ikeys": ""}, 400),
        ("/v1/current", {"ikeys": "999"}, 404),
        ("/v1/history", {"ikey": "1", "from": "10", "to": "5"}, 400),
        ("/v1/history", {"ikey": "x", "from": "1", "to": "5"}, 400),
        ("/v1/events", {"from": "1"}, 400),
        ("/v1/meta/notanumber", {}, 400),
    ]
    for path, params, status in cases:
        resp = httpx.get(f"{e}{path}", params=params)
        assert resp.status_code == status, (path, params, resp.text)
        assert set(resp.json()) == {"error", "detail"}


def test_a_poison_record_goes_to_the_dead_letter_topic(
    cfg: Config, two_rings: tuple[Ring, Ring]
) -> None:
    a, _ = two_rings
    wait_caught_up(a, cfg)
    producer = clients.producer(cfg)
    producer.produce(cfg.scan_topic, value=b"\x01not an avro frame", key=b"x", partition=0)
    producer.flush(10)
    produce_site(cfg, range(SCANS.stop, SCANS.stop + 2))
    parts = wait_caught_up(a, cfg)
    consumer = clients.consumer(cfg, "dlq-reader")
    consumer.assign([TopicPartition(cfg.deadletter_topic, 0, 0)])

    def letters() -> list[dict]:
        msgs = consumer.consume(10, timeout=1)
        return [decode_record("pegasus.DeadLetter", m.value()) for m in msgs if not m.error()]

    got = wait_for(letters, 30, "a dead letter")
    consumer.close()
    assert got[0]["topic"] == cfg.scan_topic and got[0]["partition"] == 0
    assert got[0]["value"] == b"\x01not an avro frame"
    assert parts[f"{cfg.scan_topic}:0"]["applied_offset"] > got[0]["offset"]
    # Ingest went on: the current values are the ones of the newest scan.
    ikey = int(SimSource(cfg.sites[0], "ems-a", PRIMARY).field.ikeys[0])
    row = httpx.get(f"{a.endpoints()[0]}/v1/current", params={"ikeys": ikey}).json()["points"][0]
    assert row["time_ms"] == (SCANS.stop + 1) * cfg.sites[0].scan_period_ms
    assert np.isfinite(row["value"])


def test_a_site_polled_in_groups_arrives_whole_each_sample_at_its_poll_time(
    cfg: Config,
) -> None:
    groups = 4
    site = dataclasses.replace(cfg.sites[0], poll_groups=groups)
    cfg = cfg.with_overrides(sites=(site,))
    scans = range(2000, 2008)
    produce_site(cfg, scans)
    ring = start_ring(cfg, "ring-g", servers=1)
    try:
        wait_caught_up(ring, cfg)
        hosts = [SimSource(site, "ems-a", PRIMARY), SimSource(site, "ems-b", BACKUP)]
        field = hosts[0].field
        # One analog of each poll group: every scan's sample of it, from each
        # host, at the time of the group's poll.
        probes = [
            int(np.flatnonzero((field.group == g) & (field.dtype == ANALOG))[0])
            for g in range(groups)
        ]
        with PegasusClient(cfg, endpoints={ring.name: ring.endpoints()}) as client:
            for i in probes:
                ikey, g = int(field.ikeys[i]), int(field.group[i])
                for src in hosts:
                    mirror = client.history(ikey, 0, 2**62, host=f"north/{src.host}").body
                    polls = [src.read(s, g) for s in scans]
                    assert mirror["times"] == [p.scan_time_ms for p in polls]
                    assert mirror["values"] == [
                        p.scans[0].values[p.scans[0].ikeys == ikey][0] for p in polls
                    ]
                resolved = client.history(ikey, 0, 2**62).body
                assert resolved["times"] == [
                    s * site.scan_period_ms + g * site.scan_period_ms // groups for s in scans
                ]
        sent = [e for s in scans for g in range(groups) for e in hosts[0].read(s, g).events]
        assert len({e["time_ms"] for e in sent}) > 1, "the log spans several polls"
        body = httpx.get(f"{ring.endpoints()[0]}/v1/events", params={"from": 0, "to": 2**62}).json()
        assert sorted(e["seq"] for e in body["events"]) == sorted(e["seq"] for e in sent)
    finally:
        ring.stop()
