"""``pegasus bench ingest``: ring-server materialisation against a bare consumer.

Both read the same pre-produced topic data (both hosts' scan streams and
point metadata of the simulated site) to its end, from the same broker in the
same run, so the ratio holds on a noisy machine even when the absolute rates
do not. A Quix Streams application doing the same per-point materialisation
(``quix_app.py``, in its own virtual environment) reads the same scan topic
too; it is stopped after a time budget and its rate is what it materialised in
that time.

Scan-to-queryable latency (:mod:`pegasus_kafka.bench.latency`) is measured on
a live site of 320,000 points that the EMS polls in five groups, so each host
delivers about 64,000 points every second. The full run measures the same site
polled all at once as well (``whole_scan_*``): 320,000 points per host in one
burst every 5 s.
"""

from __future__ import annotations

import functools
import resource
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from pegasus_kafka.bench.cpu import machine_idle_s, named_thread_cpu, thread_cpu, used_since
from pegasus_kafka.bench.fleet import bench_config, topic_ends
from pegasus_kafka.bench.latency import measure_latency
from pegasus_kafka.bench.quix import quix_rate
from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.registry import RegistryWriter
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.ring.scan import ScanPartition, open_store
from pegasus_kafka.ring.server import RingServer
from pegasus_kafka.schema import BACKUP, PRIMARY


def produce_history(cfg: Config, first_scan: int, scans: int) -> int:
    """Both hosts' scans ``[first_scan, first_scan + scans)`` of the site, unpaced;
    returns the samples sent."""
    site = cfg.sites[0]
    samples = 0
    for host, role in ((site.hosts[0].name, PRIMARY), (site.hosts[1].name, BACKUP)):
        col = Collector(cfg, SimSource(site, host, role))
        col.publish_metadata()
        col.run(start=first_scan, count=scans, pace=False)
        col.flush(120)
        samples += col.sent_points
    return samples


@dataclass(frozen=True)
class Timed:
    """How long a reader took to read the data to its end, and the CPU meanwhile."""

    seconds: float
    #: CPU seconds of this process's threads by kind (from the reader's start)
    cpu: dict[str, float]
    #: seconds the machine's cores stood idle, summed over cores, in ``seconds``
    idle_s: float
    #: CPU seconds of the reader's named Python threads
    threads: dict[str, float] = field(default_factory=dict)


def _raw_consume(cfg: Config, ends: dict[tuple[str, int], int]) -> Timed:
    """Time a bare consumer reading every record."""
    before = thread_cpu()
    consumer = clients.consumer(cfg, f"bench-raw-{uuid.uuid4().hex}")
    consumer.assign([TopicPartition(t, p, 0) for (t, p) in ends])
    want = sum(ends.values())
    got = 0
    idle = machine_idle_s()
    started = time.perf_counter()
    while got < want:
        msgs = consumer.consume(num_messages=2000, timeout=1.0)
        got += sum(1 for m in msgs if not m.error())
    seconds = time.perf_counter() - started
    timed = Timed(seconds, used_since(before), machine_idle_s() - idle)
    consumer.close()
    return timed


def _ring_ingest(cfg: Config, ends: dict[tuple[str, int], int], timeout: float) -> Timed:
    """Time a ring server from its first partitions until it has applied every
    record and sealed every frozen generation; its consumer and sealer
    threads' CPU is counted from their start."""
    before = thread_cpu()
    ring = f"bench-ring-{uuid.uuid4().hex[:6]}"
    RegistryWriter(cfg).add_ring(ring)
    server = RingServer(cfg, ring, "bench")
    thread = threading.Thread(target=server.run, name="consumer", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    started = None
    idle = 0.0
    try:
        while time.monotonic() < deadline:
            # The server's lock only for the copy: holding it while a
            # partition's lock waits for a batch would stop the consumer
            # thread at its next partition, and slow what is measured.
            with server.lock:
                parts = dict(server.parts)
            applied = {tp: m.store.applied_offset for tp, m in parts.items()}
            # Seals run behind ingest on the sealer thread: they are part of
            # the work, so the clock runs until none is pending.
            sealing = any(m.pending_seals() for m in parts.values())
            if started is None and applied:
                started = time.perf_counter()
                idle = machine_idle_s()
            if not sealing and all(applied.get(tp, -1) >= end for tp, end in ends.items()):
                break
            time.sleep(0.02)  # poll
        else:
            raise TimeoutError("ring server did not catch up in time")
        assert started is not None
        seconds = time.perf_counter() - started
        return Timed(
            seconds,
            used_since(before),
            machine_idle_s() - idle,
            named_thread_cpu(("consumer", "sealer")),
        )
    finally:
        server.stop()
        thread.join(timeout=30)


def _compacted_bytes(cfg: Config) -> int:
    """Bytes of the scan stores' table files after a full compaction: what the RDS
    occupies at rest, without write-ahead logs or not yet compacted deletes.

    Full means every table file rewritten, the bottom level's too
    (:meth:`~pegasus_kafka.ring.store.PartitionStore.compact`): a flush writes
    segments uncompressed (see :func:`~pegasus_kafka.ring.scan.open_store`)."""
    total = 0
    st = cfg.store
    for path in Path(cfg.store.data_dir).glob(f"*/*/{cfg.scan_topic}-*"):
        fetch = functools.partial(
            clients.read_range, cfg, cfg.scan_topic, int(path.name.rsplit("-", 1)[1])
        )
        part = ScanPartition(open_store(path), st.seal_samples, st.seal_span_ms, fetch)
        while part.seal():  # the server stopped before sealing every frozen head
            pass
        store = part.store
        store.db.flush()
        store.compact()
        store.close()
        total += sum(f.stat().st_size for f in path.glob("*.sst"))
    return total


def run_ingest(cfg: Config, quick: bool) -> dict[str, Any]:
    points = 20_000 if quick else 100_000
    scans = 60 if quick else 120
    workdir = Path(tempfile.mkdtemp(prefix="pegasus-bench-"))
    try:
        bcfg = bench_config(cfg, points, workdir, code=99, seed=7)
        ensure_topics(bcfg)
        samples = produce_history(bcfg, 1_000_000, scans)
        # The server reads every data topic: so does the bare consumer, and both
        # are timed to the end of all of them (scans and point metadata).
        ends = {tp: e for tp, e in topic_ends(bcfg, bcfg.data_topics).items() if e > 0}
        raw = _raw_consume(bcfg, ends)
        ring = _ring_ingest(bcfg, ends, timeout=600)
        scan_bytes = _compacted_bytes(bcfg)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        quix_samples, quix_s = quix_rate(bcfg, workdir / "quix", 60 if quick else 180)
        latency = measure_latency(cfg, workdir / "latency", 6 if quick else 24, poll_groups=5)
        if not quick:
            whole = measure_latency(cfg, workdir / "whole", 12, poll_groups=1)
            latency["whole_scan_p50_scan_to_queryable_ms"] = whole["p50_scan_to_queryable_ms"]
            latency["whole_scan_p99_scan_to_queryable_ms"] = whole["p99_scan_to_queryable_ms"]
        rate = samples / ring.seconds
        raw_rate = samples / raw.seconds
        quix = quix_samples / quix_s if quix_s > 0 else 0.0
        return {
            "points": points,
            "samples": samples,
            "samples_per_s": round(rate),
            "raw_consume_samples_per_s": round(raw_rate),
            "ratio_vs_raw": round(rate / raw_rate, 3),
            "quix_samples_per_s": round(quix),
            "ratio_vs_quix": round(rate / quix, 2) if quix else None,
            "quix_samples": quix_samples,
            **latency,
            "bytes_per_sample": round(scan_bytes / samples, 3),
            # Where the rates' time goes. The ring server's Python threads
            # share one GIL: when the consumer's and the sealer's CPU seconds
            # add up to about ring_s while cores stand idle, the GIL is what
            # holds its rate back, not the machine's cores.
            "ring_cpu_s": ring.cpu,
            "ring_thread_cpu_s": ring.threads,
            "ring_idle_cpu_s": round(ring.idle_s, 2),
            "ring_s": round(ring.seconds, 2),
            "raw_cpu_s": raw.cpu,
            "raw_idle_cpu_s": round(raw.idle_s, 2),
            "raw_s": round(raw.seconds, 2),
            "rss_mb": round(rss_mb, 1),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
