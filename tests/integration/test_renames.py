"""Renames and moves keep a point's invariant key and are recorded; new points get new keys."""

from __future__ import annotations

import dataclasses

from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.schema import PRIMARY
from tests.integration.harness import produce_site, start_ring, wait_caught_up


def test_a_rename_keeps_the_key_and_records_the_change(cfg: Config) -> None:
    site = dataclasses.replace(
        cfg.sites[0], rename_scans=(9305, 9310), move_scans=(9307,), new_point_scans=(9306,)
    )
    cfg = cfg.with_overrides(sites=(site,))
    produce_site(cfg, range(9300, 9315))
    ring = start_ring(cfg, "renames", servers=2)
    try:
        wait_caught_up(ring, cfg)
        src = SimSource(site, "ems-a", PRIMARY)
        renamed = [m for s in site.rename_scans for m in src.read(s).meta]
        assert len(renamed) == 2
        with PegasusClient(cfg) as client:
            for change in renamed:
                ikey = change["ikey"]
                versions = client.meta(ikey).body["versions"]
                assert [v["ikey"] for v in versions] == [ikey] * len(versions)
                assert versions[0]["change"] == "CREATED"
                assert change in versions, "the rename is in the point's audit trail"
                # The key still answers, and the new name finds it.
                assert client.current([ikey]).body["points"][0]["ikey"] == ikey
                latest = versions[-1]["name"]
                found = client.points(name=latest).body["points"]
                assert [p["ikey"] for p in found] == [ikey]

            # A new point: a new key, created in the audit trail, with values.
            (created,) = src.read(9306).meta
            assert created["ikey"] not in {m["ikey"] for m in src.metadata()}
            assert client.meta(created["ikey"]).body["versions"][0] == created
            assert client.current([created["ikey"]]).body["points"][0]["time_ms"] >= 9306 * 1000
            # A move: same key, new substation, found there.
            (moved,) = src.read(9307).meta
            assert moved in client.meta(moved["ikey"]).body["versions"]
            there = client.points(substation=moved["substation"]).body["points"]
            assert moved["ikey"] in [p["ikey"] for p in there]
    finally:
        ring.stop()
