"""The 4-way buffer: a collector loses nothing while Kafka is away."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pegasus_kafka.cli import common
from pegasus_kafka.cli.main import cli
from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.kafka.broker import LocalBroker
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.ring.resolve import resolve
from pegasus_kafka.ring.scan import ScanPartition
from pegasus_kafka.schema import ANALOG, BACKUP, PRIMARY
from tests.conftest import make_config
from tests.integration.harness import start_ring, wait_caught_up

SCANS = range(7000, 7060)


def test_a_broker_outage_mid_stream_leaves_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "own-broker")  # this test stops its broker
    cfg = make_config(tmp_path, bootstrap=broker.start())
    ring = None
    try:
        ensure_topics(cfg)
        site = cfg.sites[0]
        sources = [SimSource(site, "ems-a", PRIMARY), SimSource(site, "ems-b", BACKUP)]
        cols = [Collector(cfg, src) for src in sources]
        for col in cols:
            col.publish_metadata()
        pace = threading.Event()
        for seq in SCANS:
            if seq == SCANS.start + 20:
                broker.stop()
            if seq == SCANS.start + 40:
                assert all(c.spool.depth() > 0 for c in cols), "the outage must be spooled"
                backlog = [c.status()["oldest_unsent_scan"] for c in cols]
                assert all(b is not None and b <= SCANS.start + 20 for b in backlog), backlog
                broker.start()
            for col in cols:
                col.collect(seq)
            pace.wait(0.02)  # a scan clock, so the outage spans real time
        for col in cols:
            col.flush(120)
            assert col.skipped_scans == 0
            col.close()
        state = common.State(None, 0)
        state._cfg = cfg
        out = CliRunner().invoke(cli.commands["collector"], ["status", "--json"], obj=state)
        rows = json.loads(out.output.strip().splitlines()[-1])
        assert {(r["host"], r["role"]) for r in rows} == {("ems-a", "primary"), ("ems-b", "backup")}
        assert all(r["spool_records"] == 0 and r["oldest_unsent_scan"] is None for r in rows)

        ring = start_ring(cfg, "after-outage", servers=1)
        wait_caught_up(ring, cfg, timeout=120)
        ikey = int(sources[0].field.ikeys[sources[0].field.dtype == ANALOG][0])
        mat = next(
            m
            for m in ring.servers[0].server.parts.values()
            if isinstance(m, ScanPartition) and m.knows(ANALOG, ikey)
        )
        streams = mat.history(ANALOG, ikey, 0, 2**62)
        for src in sources:
            got = streams[f"{site.name}/{src.host}"]
            idx = int(np.flatnonzero(src.field.ikeys == ikey)[0])
            want = [src.field.values(s, src.read(s).scan_time_ms, src._salt)[0][idx] for s in SCANS]
            assert got.values.tolist() == want, f"{src.host}: gap or duplicate"
        resolved = resolve([streams[h] for h in mat.hosts], site.scan_period_ms)
        assert len(resolved) == len(SCANS)
    finally:
        if ring is not None:
            ring.stop()
        broker.stop()
