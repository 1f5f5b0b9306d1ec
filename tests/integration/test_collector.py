"""The 4-way buffer: a collector loses nothing while Kafka is away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pegasus_kafka.cli import common
from pegasus_kafka.cli.common import pegasus_command
from pegasus_kafka.cli.main import cli
from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.broker import LocalBroker
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.ring.resolve import resolve
from pegasus_kafka.ring.scan import ScanPartition
from pegasus_kafka.schema import ANALOG, BACKUP, PRIMARY
from tests.conftest import make_config
from tests.helpers import wait_for
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


def _collector_config(cfg: Config, path: Path) -> Path:
    """The test's site as a config file, for a collector in its own process."""
    site = cfg.sites[0]
    hosts = ", ".join(f'{{ name = "{h.name}", role = "{h.role}" }}' for h in site.hosts)
    path.write_text(
        f"[topics]\npartitions = {cfg.topics.partitions}\n"
        f'[collector]\nspool_dir = "{cfg.collector.spool_dir}"\nfsync = "always"\n'
        f'[[sites]]\nname = "{site.name}"\ncode = {site.code}\n'
        f"scan_period_ms = {site.scan_period_ms}\npoints = {site.points}\n"
        f"substations = {site.substations}\nseed = {site.seed}\n"
        f"status_rate = {site.status_rate}\nhosts = [{hosts}]\n"
    )
    return path


def test_a_collector_killed_with_sigkill_resumes_with_no_loss_and_no_duplicate(
    cfg: Config, tmp_path: Path
) -> None:
    ensure_topics(cfg)
    config = _collector_config(cfg, tmp_path / "collector.toml")
    env = dict(
        os.environ,
        PEGASUS_KAFKA_BOOTSTRAP=cfg.kafka.bootstrap,
        PEGASUS_TOPIC_PREFIX=cfg.kafka.topic_prefix,
    )
    site = cfg.sites[0]
    first = int(time.time() * 1000) // site.scan_period_ms + 1
    last = first + 9
    status = Path(cfg.collector.spool_dir) / cfg.kafka.topic_prefix / site.name / "ems-a"

    def collector(start: int) -> subprocess.Popen[bytes]:
        args = ["collector", "run", "--site", site.name, "--host", "ems-a"]
        args += ["--from-scan", str(start), "--scans", str(last - start + 1)]
        return subprocess.Popen(
            pegasus_command(str(config), *args),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "collector.log", "ab"),
        )

    def last_scan() -> int:
        return int(json.loads((status / "status.json").read_text())["last_scan"] or 0)

    proc = collector(first)
    wait_for(lambda: last_scan() >= first + 4, 60, "the collector to spool five scans")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    resume = last_scan() + 1
    # The scan after the last one reported may already be spooled, and sent again
    # from the spool: the ring must apply it once.
    proc = collector(resume)
    assert proc.wait(120) == 0, (tmp_path / "collector.log").read_text()[-2000:]

    ring = start_ring(cfg, "after-kill", servers=1)
    try:
        wait_caught_up(ring, cfg, timeout=120)
        src = SimSource(site, "ems-a", PRIMARY)
        ikey = int(src.field.ikeys[src.field.dtype == ANALOG][0])
        mat = next(
            m
            for m in ring.servers[0].server.parts.values()
            if isinstance(m, ScanPartition) and m.knows(ANALOG, ikey)
        )
        got = mat.history(ANALOG, ikey, 0, 2**62)[f"{site.name}/ems-a"]
        want = [src.read(s).scan_time_ms for s in range(first, last + 1)]
        assert got.times.tolist() == want, "gap or duplicate across the kill"
    finally:
        ring.stop()
