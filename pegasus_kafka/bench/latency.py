"""Scan-to-queryable latency: from a poll's time until the RDS answers with it.

Both hosts of a site of 320,000 points on 200 RTUs scan every 5 s (64,000
points/s per host), in one collector process; one ring server (a process of
its own) ingests. The EMS polls its RTUs in ``poll_groups`` groups spread over
the period: with 5, each host delivers the points of one group, about 64,000,
every second; with 1, all 320,000 at once at the start of the period.

For every poll, a client polls the current values of a point of that group
in each partition every 5 ms until all of them carry the poll's time. The
latency is the wall clock then minus the poll's time: it includes reading
the poll from the simulator, cutting and encoding frames, the spool, Kafka,
materialisation and the query. The ring's own share is measured from the
newest produce time (the record timestamp) of the primary host's frames of
that poll instead.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from pegasus_kafka.bench import procs
from pegasus_kafka.bench.fleet import bench_config, records_to_end, wait_until
from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.errors import PegasusError
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.keys import partitions_of
from pegasus_kafka.ring.health import live_servers, ring_serving
from pegasus_kafka.ring.lifecycle import add_ring
from pegasus_kafka.schema import PRIMARY, decode_frame

PERIOD_MS = 5000


def measure_latency(
    cfg: Config, workdir: Path, scans: int, poll_groups: int, points: int = 320_000
) -> dict[str, Any]:
    lcfg = bench_config(cfg, points, workdir, code=96, seed=9)
    site = dataclasses.replace(lcfg.sites[0], poll_groups=poll_groups, substations=200)
    lcfg = lcfg.with_overrides(sites=(site,))
    ensure_topics(lcfg)
    view = RegistryView(lcfg)
    view.wait_caught_up()
    add_ring(lcfg, view, "lat")
    children = [procs.start_server(lcfg, "lat", "s1")]
    try:
        wait_until(lambda: ring_serving(lcfg, view, "lat"), 120, "the ring")
        first = int(time.time() * 1000) // PERIOD_MS + 2
        children.append(procs.start_feed(lcfg, first))
        field = SimSource(site, "ems-a", PRIMARY).field
        parts = partitions_of(field.ikeys, lcfg.topics.partitions)
        # A point of each poll group in each partition, in key order (the
        # order of the answer), and each one's group.
        picked = sorted(
            np.flatnonzero((parts == p) & (field.group == g))[0]
            for p in range(lcfg.topics.partitions)
            for g in range(poll_groups)
        )
        probe = [int(field.ikeys[i]) for i in picked]
        probe_group = field.group[picked]
        latencies = []
        seen_at: dict[int, float] = {}
        step = PERIOD_MS // poll_groups
        with PegasusClient(lcfg) as client:

            def newest(group: int = 0) -> int:
                try:
                    times = client.current_columns(probe)["time_ms"]
                except PegasusError:  # not there yet: points appear with the first scan
                    return 0
                return int(np.asarray(times)[probe_group == group].min())

            # Warm-up: the collectors publish 320,000 points' metadata first, and
            # the ring works that backlog off before the measured scans.
            wait_until(lambda: newest() >= first * PERIOD_MS, 120, "the first scan")
            wait_until(
                lambda: sum(s.lag for s in live_servers(lcfg, view, "lat")) < 50,
                300,
                "the ring to catch up",
            )
            start = newest() // PERIOD_MS + 1
            for poll in range(start * poll_groups, (start + scans) * poll_groups):
                poll_ms = poll * step
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if newest(poll % poll_groups) >= poll_ms:
                        seen_at[poll_ms] = time.time() * 1000
                        latencies.append(seen_at[poll_ms] - poll_ms)
                        break
                    time.sleep(0.005)  # poll
    finally:
        procs.stop(children)
        view.close()
    sent = _last_sent(lcfg, site.hosts[0].name, set(seen_at), np.array(probe))
    ring_share = [seen_at[t] - sent[t] for t in seen_at if t in sent]
    return {
        "p99_scan_to_queryable_ms": round(float(np.percentile(latencies, 99)), 1),
        "p50_scan_to_queryable_ms": round(float(np.percentile(latencies, 50)), 1),
        "latency_polls": len(latencies),
        "latency_poll_groups": poll_groups,
        "scan_latencies_ms": [round(x) for x in latencies],
        "latency_points_per_s_per_host": points * 1000 // PERIOD_MS,
        "p50_produced_to_queryable_ms": round(float(np.percentile(ring_share, 50)), 1),
        "p99_produced_to_queryable_ms": round(float(np.percentile(ring_share, 99)), 1),
    }


def _last_sent(cfg: Config, host: str, scans: set[int], probe: np.ndarray) -> dict[int, int]:
    """Per scan time in ``scans``, the newest produce time of ``host``'s frames
    that hold a probed point."""
    last: dict[int, int] = {}
    for msg in records_to_end(cfg, cfg.scan_topic):
        frame = decode_frame(msg.value())
        if frame.host == host and frame.scan_time_ms in scans and np.isin(frame.ikeys, probe).any():
            t = frame.scan_time_ms
            last[t] = max(last.get(t, 0), int(msg.timestamp()[1]))
    return last
