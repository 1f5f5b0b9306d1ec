"""``pegasus bench collector``: the path from an EMS host into Kafka.

- ``points_per_s``: one collector sending scans of a 320,000-point site as
  fast as it can, through the spool and the producer, until Kafka has
  acknowledged everything.
- ``cpu_percent_at_320k_5s``: CPU time of a collector process (its own
  threads and librdkafka's) while it collects the same site at a 5 s scan,
  as a percentage of one core, measured over the paced scans only.
- ``outage_recovery_s``: a collector collects 60 s of scans while Kafka is
  unreachable (a bootstrap nobody answers), everything lands in its spool;
  a collector started on the same spool with the real broker drains it.
  The figure is the time until Kafka has acknowledged the whole backlog.
- ``lost`` and ``duplicated``: the scan topic of the outage run read back
  and compared, frame by frame (host, scan, data type, chunk), with what the
  simulator produced.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pegasus_kafka.bench.fleet import bench_config, records_to_end
from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.frames import ScanHeader, cut_frames
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.schema import PRIMARY, decode_frame

_CTX = multiprocessing.get_context("spawn")
PERIOD_MS = 5000


def _paced(cfg: Config, scans: int, out: Any) -> None:
    """Child process: metadata first, then ``scans`` paced scans; reports CPU seconds
    and wall seconds of the paced part."""
    col = Collector(cfg, SimSource(cfg.sites[0], "ems-a", PRIMARY))
    col.publish_metadata()
    col.flush(300)
    start = int(time.time() * 1000) // PERIOD_MS + 1
    col.run(start=start, count=1, pace=True)  # wait for a scan boundary
    cpu0, wall0 = time.process_time(), time.monotonic()
    col.run(start=start + 1, count=scans, pace=True)
    col.flush(120)
    out.put((time.process_time() - cpu0, time.monotonic() - wall0))
    col.close()


def _expected_frames(cfg: Config, scans: range) -> Counter[tuple[str, int, int, int]]:
    site = cfg.sites[0]
    src = SimSource(site, "ems-a", PRIMARY)
    want: Counter[tuple[str, int, int, int]] = Counter()
    for seq in scans:
        res = src.read(seq)
        header = ScanHeader(site.name, "ems-a", res.role, seq, res.scan_time_ms, PERIOD_MS)
        for scan in res.scans:
            for _, frame in cut_frames(
                header, scan, cfg.topics.partitions, cfg.collector.frame_points
            ):
                want[("ems-a", seq, frame.data_type, frame.chunk)] += 1
    return want


def _read_frames(cfg: Config) -> Counter[tuple[str, int, int, int]]:
    got: Counter[tuple[str, int, int, int]] = Counter()
    for msg in records_to_end(cfg, cfg.scan_topic):
        f = decode_frame(msg.value())
        got[(f.host, f.seq, f.data_type, f.chunk)] += 1
    return got


def run_collector(cfg: Config, quick: bool) -> dict[str, Any]:
    points = 320_000
    workdir = Path(tempfile.mkdtemp(prefix="pegasus-bench-collector-"))
    try:
        # Throughput, unpaced.
        fast = bench_config(cfg, points, workdir / "fast", code=97, seed=3)
        ensure_topics(fast)
        col = Collector(fast, SimSource(fast.sites[0], "ems-a", PRIMARY))
        scans = 10 if quick else 40
        started = time.monotonic()
        col.run(start=1_000_000, count=scans, pace=False)
        col.flush(300)
        points_per_s = col.sent_points / (time.monotonic() - started)
        col.close()

        # CPU at a 5 s scan, in a process of its own.
        paced = bench_config(cfg, points, workdir / "paced", code=97, seed=3)
        ensure_topics(paced)
        out = _CTX.Queue()
        child = _CTX.Process(target=_paced, args=(paced, 3 if quick else 12, out))
        child.start()
        cpu_s, wall_s = out.get(timeout=600)
        child.join(60)

        # A 60 s outage, then the drain.
        outage = bench_config(cfg, points, workdir / "outage", code=97, seed=3)
        ensure_topics(outage)
        away = outage.with_overrides(
            kafka=dataclasses.replace(outage.kafka, bootstrap="127.0.0.1:9")
        )
        backlog = range(2_000_000, 2_000_000 + 60_000 // PERIOD_MS)
        cut_off = Collector(away, SimSource(outage.sites[0], "ems-a", PRIMARY))
        cut_off.run(start=backlog.start, count=len(backlog), pace=False)
        depth = cut_off.spool.depth()
        cut_off.close()
        back = Collector(outage, SimSource(outage.sites[0], "ems-a", PRIMARY))
        started = time.monotonic()
        back.flush(600)
        recovery_s = time.monotonic() - started
        back.close()
        want = _expected_frames(outage, backlog)
        got = _read_frames(outage)
        return {
            "points": points,
            "points_per_s": round(points_per_s),
            "cpu_percent_at_320k_5s": round(100 * cpu_s / wall_s, 1),
            "outage_scans": len(backlog),
            "outage_spooled_records": depth,
            "outage_recovery_s": round(recovery_s, 2),
            "lost": sum((want - got).values()),
            "duplicated": sum((got - want).values()),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
