"""``pegasus bench failover``: queries never fail while servers and rings stop.

Two rings of two servers each (child processes) serve a smart client that
queries continuously while a paced feed ingests. Then:

(a) one server of ring ``a`` is stopped: its partitions move to the other
    server of the ring, from its warm standby copies;
(b) the whole of ring ``a`` is stopped: clients use ring ``b`` alone;
(c) ring ``a`` restarts from its disks and catches up.

Every query counts. ``p99_ms_normal`` is the client's p99 latency while both
rings serve in full, ``p99_ms_degraded`` while anything is stopped or
catching up. ``seconds_until_rebalanced`` is, for each step, how long until
the rings serve in full again: (a) until ring ``a`` serves with one server,
(c) until it serves again after its restart.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pegasus_kafka.bench import procs
from pegasus_kafka.bench.fleet import Load, bench_config, standbys_warm, wait_until
from pegasus_kafka.bench.ingest import produce_history
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.ring.health import live_servers, ring_serving
from pegasus_kafka.ring.lifecycle import add_ring


def _serves_with(cfg: Config, view: RegistryView, ring: str, servers: int) -> bool:
    return ring_serving(cfg, view, ring) and len(live_servers(cfg, view, ring)) == servers


def run_failover(cfg: Config, quick: bool) -> dict[str, Any]:
    points = 20_000 if quick else 50_000
    history_scans = 120 if quick else 360
    window = 10.0 if quick else 30.0
    workdir = Path(tempfile.mkdtemp(prefix="pegasus-bench-failover-"))
    bcfg = bench_config(cfg, points, workdir)
    servers: dict[tuple[str, str], Any] = {}
    others: list[Any] = []
    view = None
    load = None
    try:
        ensure_topics(bcfg)
        now_scan = int(time.time() * 1000) // bcfg.sites[0].scan_period_ms
        samples = produce_history(bcfg, now_scan - history_scans, history_scans)
        view = RegistryView(bcfg)
        view.wait_caught_up()
        for ring in ("a", "b"):
            add_ring(bcfg, view, ring)
            for sid in ("s1", "s2"):
                servers[(ring, sid)] = procs.start_server(bcfg, ring, sid)
        for ring in ("a", "b"):
            wait_until(lambda r=ring: _serves_with(bcfg, view, r, 2), 900, f"ring {ring}")
        wait_until(lambda: standbys_warm(bcfg, view, ["a", "b"]), 900, "warm standby copies")
        others.append(procs.start_feed(bcfg, now_scan))
        load = Load(bcfg)
        load.start()
        time.sleep(2)  # poll: let the load settle before measuring
        normal_from = time.monotonic()
        time.sleep(window)  # poll: the measured window with both rings in full
        normal_to = time.monotonic()

        # (a) one server of ring a stops; its partitions move to s2's standby copies
        procs.stop([servers.pop(("a", "s1"))])
        wait_until(lambda: _serves_with(bcfg, view, "a", 1), 120, "ring a on one server")
        one_server_s = time.monotonic() - normal_to
        time.sleep(window / 2)  # poll: queries while ring a runs on one server

        # (b) the whole ring a stops
        procs.stop([servers.pop(("a", "s2"))])
        time.sleep(window / 2)  # poll: queries while only ring b serves

        # (c) ring a restarts from its disks
        restarted = time.monotonic()
        for sid in ("s1", "s2"):
            servers[("a", sid)] = procs.start_server(bcfg, "a", sid)
        wait_until(lambda: _serves_with(bcfg, view, "a", 2), 600, "ring a back")
        restart_s = time.monotonic() - restarted
        degraded_to = time.monotonic()
        time.sleep(3)  # poll: queries after the recovery
        load.stop()
        return {
            "points": points,
            "samples": samples,
            "queries": len(load.log) + len(load.failed),
            "failed_queries": len(load.failed),
            "failure_samples": [f[:300] for f in dict.fromkeys(load.failed)][:3],
            "p99_ms_normal": load.p99_ms(None, normal_from, normal_to),
            "p99_ms_degraded": load.p99_ms(None, normal_to, degraded_to),
            "seconds_until_rebalanced": {
                "one_server_stopped": round(one_server_s, 2),
                "ring_restarted": round(restart_s, 2),
            },
        }
    finally:
        if load is not None:
            load.stop()
        procs.stop(list(servers.values()) + others)
        if view is not None:
            view.close()
        shutil.rmtree(workdir, ignore_errors=True)
