"""``pegasus bench query``: query latency and throughput through the smart client.

Current values of 10,000 points are read as columns (the compact encoding
for bulk reads). A site of 10,000 points is ingested through Kafka as usual, so every point
has a current value. Long histories of single analog points are bulk-loaded
into the ring servers' stores before they start (:meth:`ScanPartition.
load_history`): a year at a 5 s scan (6.3 M samples), and for the flatness
figure one point with one year and one with ten years. Every query then
takes the production path: smart client, HTTP, the ring server, RocksDB,
the compact columnar encoding, numpy.

Two rings of one server each serve; the throughput figure compares
concurrent clients against one ring with the same clients against both.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from pegasus_kafka.bench import procs
from pegasus_kafka.bench.fleet import bench_config, wait_until
from pegasus_kafka.bench.ingest import produce_history
from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.keys import partitions_of
from pegasus_kafka.ring.health import live_servers, ring_serving
from pegasus_kafka.ring.lifecycle import add_ring
from pegasus_kafka.ring.scan import ScanPartition, open_store
from pegasus_kafka.schema import ANALOG, PRIMARY, Frame

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
HOUR_MS = 3_600_000


def _series(t0: int, t1: int, period: int) -> tuple[np.ndarray, np.ndarray]:
    """A plausible analog: a daily load curve with slow drift, quantized to 0.1 MW."""
    times = np.arange(t0, t1, period, dtype=np.int64)
    day = (times % DAY_MS) / DAY_MS
    drift = np.sin(times / (40 * DAY_MS))
    values = 300 + 80 * np.sin(2 * np.pi * (day - 0.3)) + 15 * drift
    return times, np.round(values, 1)


def _load(store_dir: Path, cfg: Config, ikey: int, t0: int, t1: int, period: int) -> int:
    """Bulk-load ikey's primary-host history in year-sized pieces; returns samples."""
    st = cfg.store
    part = ScanPartition(open_store(store_dir), st.seal_samples, st.seal_span_ms)
    host = cfg.sites[0].hosts[0].name
    loaded = 0
    try:
        for a in range(t0, t1, YEAR_MS):
            times, values = _series(a, min(a + YEAR_MS, t1), period)
            last = Frame(
                cfg.sites[0].name, host, PRIMARY, 0, int(times[-1]), period, ANALOG, 0,
                np.array([ikey], np.int64), values[-1:], np.zeros(1, np.uint8),
                np.zeros(0, np.uint8),
            )  # fmt: skip
            part.load_history(ANALOG, last, times, values, np.zeros(len(times), np.uint8))
            loaded += len(times)
    finally:
        part.close()
    return loaded


def _timed(fn: Any, runs: int) -> tuple[float, Any]:
    """Median milliseconds of ``runs`` calls, and the last result."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def _qps(client: PegasusClient, keys: list[int], threads: int, seconds: float) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        while time.monotonic() < stop:
            client.current(keys)
            done[i] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / seconds


def run_query(cfg: Config, quick: bool) -> dict[str, Any]:
    points = 10_000
    flat_period = 60_000 if quick else 5_000
    workdir = Path(tempfile.mkdtemp(prefix="pegasus-bench-query-"))
    bcfg = bench_config(cfg, points, workdir)
    children: list[Any] = []
    view = None
    try:
        ensure_topics(bcfg)
        period = bcfg.sites[0].scan_period_ms
        now_scan = int(time.time() * 1000) // period
        produce_history(bcfg, now_scan - 3, 3)
        field = SimSource(bcfg.sites[0], bcfg.sites[0].hosts[0].name, PRIMARY).field
        analogs = [int(k) for k in field.ikeys[field.dtype == ANALOG][:3]]
        year_key, one_key, ten_key = analogs
        end = (now_scan - 3) * period // DAY_MS * DAY_MS
        parts = partitions_of(np.array(analogs, np.int64), bcfg.topics.partitions).tolist()
        base = Path(bcfg.store.data_dir) / "a" / "s1"
        loads = (
            (year_key, end - YEAR_MS, period),
            (one_key, end - YEAR_MS, flat_period),
            (ten_key, end - 10 * YEAR_MS, flat_period),
        )
        loaded = {}
        for (key, t0, step), part in zip(loads, parts, strict=True):
            loaded[key] = _load(base / f"{bcfg.scan_topic}-{part}", bcfg, key, t0, end, step)
        shutil.copytree(base, Path(bcfg.store.data_dir) / "b" / "s1")

        view = RegistryView(bcfg)
        view.wait_caught_up()
        for ring in ("a", "b"):
            add_ring(bcfg, view, ring)
            children.append(procs.start_server(bcfg, ring, "s1"))
        for ring in ("a", "b"):
            wait_until(lambda r=ring: ring_serving(bcfg, view, r), 600, f"ring {ring}")

        keys = [int(k) for k in field.ikeys]
        with PegasusClient(bcfg) as client:
            runs = 20 if quick else 100
            lat = []
            for _ in range(runs):
                started = time.perf_counter()
                client.current_columns(keys)
                lat.append((time.perf_counter() - started) * 1000)
            raw_ms, raw = _timed(lambda: client.series(year_key, end - YEAR_MS, end - 1), 3)
            hour_ms, hourly = _timed(
                lambda: client.series(year_key, end - YEAR_MS, end, step=HOUR_MS), 5
            )
            # Interleaved, so the machine's drift weighs on both alike: each
            # takes a few milliseconds, most of it the round trip.
            one_runs, ten_runs = [], []
            for _ in range(60):
                one_runs.append(_timed(lambda: client.series(one_key, end - DAY_MS, end - 1), 1)[0])
                ten_runs.append(_timed(lambda: client.series(ten_key, end - DAY_MS, end - 1), 1)[0])
            one_ms, ten_ms = statistics.median(one_runs), statistics.median(ten_runs)

        endpoints = {r: [s.endpoint for s in live_servers(bcfg, view, r)] for r in ("a", "b")}
        small = keys[:100]
        seconds = 5.0 if quick else 15.0
        with PegasusClient(bcfg, endpoints={"a": endpoints["a"]}) as one:
            qps_one = _qps(one, small, 4, seconds)
        with PegasusClient(bcfg, endpoints=endpoints) as both:
            qps_two = _qps(both, small, 4, seconds)
        return {
            "points": points,
            "current_10k_p50_ms": round(float(np.percentile(lat, 50)), 1),
            "current_10k_p99_ms": round(float(np.percentile(lat, 99)), 1),
            "history_1pt_1y_raw_ms": round(raw_ms, 1),
            "history_1pt_1y_raw_samples": len(raw["times"]),
            "history_1pt_1y_1h_ms": round(hour_ms, 1),
            "history_1pt_1y_1h_steps": len(hourly["times"]),
            "years_flatness_ratio": round(ten_ms / one_ms, 3),
            "one_day_ms_1y_vs_10y": [round(one_ms, 2), round(ten_ms, 2)],
            "flatness_scan_period_ms": flat_period,
            "samples_bulk_loaded": sum(loaded.values()),
            "qps_1ring": round(qps_one, 1),
            "qps_2rings": round(qps_two, 1),
            "qps_2rings_over_1ring": round(qps_two / qps_one, 3),
        }
    finally:
        procs.stop(children)
        if view is not None:
            view.close()
        shutil.rmtree(workdir, ignore_errors=True)
