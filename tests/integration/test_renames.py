"""A rename keeps the point's invariant key, and the RDS records the change."""

from __future__ import annotations

import dataclasses

from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.schema import PRIMARY
from tests.integration.harness import produce_site, start_ring, wait_caught_up


def test_a_rename_keeps_the_key_and_records_the_change(cfg: Config) -> None:
    site = dataclasses.replace(cfg.sites[0], rename_scans=(9305, 9310))
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
    finally:
        ring.stop()
