"""``pegasus bench ring-add``: add, sync and remove rings while others serve.

Two rings of ring servers (child processes) serve a client that queries
current values continuously while a paced feed ingests both hosts' scans.
A third ring is added and synced by replay from offset zero, proven equal and
removed; a fourth is added from a snapshot of the first ring, proven equal;
then one of the original rings is removed. Every query made meanwhile counts,
and the existing rings' latency and lag are compared with before the add.

The syncing ring's processes run at a lower CPU priority (nice 10): on this
one machine every ring shares the same two cores, where in production each
ring has servers of its own.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pegasus_kafka.bench import procs
from pegasus_kafka.bench.fleet import LagWatch, Load, bench_config, standbys_warm, wait_until
from pegasus_kafka.bench.ingest import produce_history
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.ring.health import ring_serving
from pegasus_kafka.ring.lifecycle import add_ring, remove_ring
from pegasus_kafka.ring.promote import agreement

NICE = 10


def _sync(cfg: Config, view: RegistryView, name: str, peer: str | None, servers: int) -> Any:
    """Add ring ``name`` and time it to serving; returns (seconds, its processes)."""
    started = time.monotonic()
    add_ring(cfg, view, name, peer)
    children = [procs.start_server(cfg, name, f"s{i + 1}", NICE) for i in range(servers)]
    wait_until(lambda: ring_serving(cfg, view, name), 900, f"ring {name} in sync")
    return time.monotonic() - started, children


def _equal(cfg: Config, view: RegistryView, ring: str, peer: str) -> bool:
    """Digests agree on every partition (retried while ingest moves the offsets)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        verdict = agreement(cfg, view, ring, peer)
        if verdict.different:
            return False
        if not verdict.not_comparable:
            return True
        time.sleep(0.2)  # poll
    return False


def run_ring_add(cfg: Config, quick: bool) -> dict[str, Any]:
    points = 20_000 if quick else 50_000
    # Scans every 5 s, as SCADA does: the live feed is points/5 s per host.
    history_scans = 150 if quick else 600
    servers = 1 if quick else 2
    workdir = Path(tempfile.mkdtemp(prefix="pegasus-bench-ring-"))
    children: list[Any] = []
    bcfg = bench_config(cfg, points, workdir)
    view = None
    load = None
    try:
        ensure_topics(bcfg)
        now_scan = int(time.time() * 1000) // bcfg.sites[0].scan_period_ms
        samples = produce_history(bcfg, now_scan - history_scans, history_scans)
        view = RegistryView(bcfg)
        view.wait_caught_up()
        for name in ("a", "b"):
            add_ring(bcfg, view, name)
            children += [procs.start_server(bcfg, name, f"s{i + 1}") for i in range(servers)]
        for name in ("a", "b"):
            wait_until(lambda n=name: ring_serving(bcfg, view, n), 900, f"ring {name} in sync")
        wait_until(lambda: standbys_warm(bcfg, view, ["a", "b"]), 900, "warm standby copies")
        children.append(procs.start_feed(bcfg, now_scan))
        load = Load(bcfg)
        load.start()
        window = 10 if quick else 30
        time.sleep(2)  # poll: let the load settle before measuring
        t_before = time.monotonic()
        time.sleep(window)  # poll: the measured window before any ring is added
        t_add = time.monotonic()
        lag = LagWatch(bcfg, view, {"a", "b"})

        replay_s, c_procs = _sync(bcfg, view, "c", None, servers)
        replay_equal = _equal(bcfg, view, "c", "a")
        remove_ring(bcfg, view, "c", wait_s=60)
        procs.stop(c_procs)

        snapshot_s, d_procs = _sync(bcfg, view, "d", "a", servers)
        children += d_procs
        snapshot_equal = _equal(bcfg, view, "d", "a")
        t_synced = time.monotonic()
        max_lag = lag.stop()

        remove_ring(bcfg, view, "b", wait_s=60)
        time.sleep(3)  # poll: queries keep running after the removal
        load.stop()
        existing = {"a", "b"}
        return {
            "points": points,
            "servers_per_ring": servers,
            "samples_in_rds": samples,
            "replay_sync_s": round(replay_s, 2),
            "snapshot_sync_s": round(snapshot_s, 2),
            "snapshot_speedup": round(replay_s / snapshot_s, 2),
            "digest_equal": replay_equal and snapshot_equal,
            "queries": len(load.log) + len(load.failed),
            "failed_queries": len(load.failed),
            "failure_samples": [f[:300] for f in dict.fromkeys(load.failed)][:3],
            "existing_rings_p99_ms_before": load.p99_ms(existing, t_before, t_add),
            "existing_rings_p99_ms_during": load.p99_ms(existing, t_add, t_synced),
            "existing_rings_max_lag_during": max_lag,
        }
    finally:
        if load is not None:
            load.stop()
        procs.stop(children)
        if view is not None:
            view.close()
        shutil.rmtree(workdir, ignore_errors=True)
