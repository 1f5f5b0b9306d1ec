"""Ring-server memory at a utility's size: the peak RSS of one ring server.

Both hosts' scans of a site of 1,000,000 points (250,000 with ``--quick``)
are produced to fresh topics, with the points' metadata. One ring server, a
process of its own as in production, materialises all of it: metadata,
current values, the unsealed heads, seals and merges. Its peak resident
set (``VmHWM``) is read from ``/proc`` once it has caught up and every
pending seal is done, and its resident set then (``VmRSS``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pegasus_kafka.bench import procs
from pegasus_kafka.bench.fleet import bench_config, wait_until
from pegasus_kafka.bench.ingest import produce_history
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.ring.health import live_servers
from pegasus_kafka.ring.lifecycle import add_ring


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _settled(cfg: Config, view: RegistryView, ring: str) -> bool:
    """Caught up, and no partition still has a frozen head to seal."""
    servers = live_servers(cfg, view, ring)
    if not servers or any(s.lag for s in servers):
        return False
    for server in servers:
        body = httpx.get(f"{server.endpoint}/v1/health", timeout=10).json()
        if len(body["owned"]) < len(cfg.data_topics) * cfg.topics.partitions:
            return False
        if any(p["pending_seals"] or p["lag"] for p in body["partitions"].values()):
            return False
    return True


def run_memory(cfg: Config, quick: bool) -> dict[str, Any]:
    points = 250_000 if quick else 1_000_000
    scans = 12
    workdir = Path(tempfile.mkdtemp(prefix="pegasus-bench-"))
    try:
        bcfg = bench_config(cfg, points, workdir, code=95, seed=11)
        ensure_topics(bcfg)
        samples = produce_history(bcfg, 1_000_000, scans)
        view = RegistryView(bcfg)
        view.wait_caught_up()
        add_ring(bcfg, view, "mem")
        started = time.perf_counter()
        child = procs.start_server(bcfg, "mem", "s1")
        try:
            wait_until(lambda: _settled(bcfg, view, "mem"), 1800, "the ring to catch up")
            seconds = time.perf_counter() - started
            peak_kb = _status_kb(child.pid, "VmHWM")
            now_kb = _status_kb(child.pid, "VmRSS")
        finally:
            procs.stop([child])
            view.close()
        return {
            "points": points,
            "scans": scans,
            "samples": samples,
            "server_peak_rss_mb": round(peak_kb / 1024, 1),
            "server_rss_mb_after": round(now_kb / 1024, 1),
            "seconds_to_settle": round(seconds, 1),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
