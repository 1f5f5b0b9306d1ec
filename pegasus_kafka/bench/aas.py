"""``pegasus bench aas``: exception mining against the real broker.

- ``status_points_per_s`` and ``analog_points_per_s``: one application process
  mines both hosts' pre-produced scans from offset zero; the rate is samples of
  its data type looked at per second of wall time, from the moment the group
  has assigned it every partition until it has caught up with the scan topic,
  publishing included.
- ``missed`` and ``duplicated``: after a second ring's applications have mined
  the same scans, a downstream consumer (:mod:`pegasus_kafka.downstream`) reads
  each topic. Its records are compared with what the simulator did (see
  :mod:`pegasus_kafka.aas.truth`): a status change, momentary, limit violation
  or return it never got is missed; one it got twice is duplicated. Both must
  be 0. ``unexpected`` counts records the simulator does not explain.
- ``exception_latency_p99_ms``: both collectors scan a 1 s site in real time
  while both applications run; for every exception (links aside) the time
  from its scan time to the moment it was produced to its topic.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pegasus_kafka.aas.runner import AppRunner
from pegasus_kafka.aas.truth import analog_truth, status_truth
from pegasus_kafka.bench.fleet import bench_config, end_offsets, records_to_end, wait_until
from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import AAS_APPS, Config
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.schema import BACKUP, EXCEPTION_RECORDS, PRIMARY, decode_record


def _site(cfg: Config, period_ms: int) -> Config:
    """Every status point changes, and every limited analog makes an excursion,
    about once per 100 scans."""
    rate = 864_000_000 / period_ms
    site = dataclasses.replace(
        cfg.sites[0], scan_period_ms=period_ms, status_rate=rate, excursion_rate=rate
    )
    return cfg.with_overrides(sites=(site,))


def _produce(cfg: Config, scans: range) -> None:
    for host, role in (("ems-a", PRIMARY), ("ems-b", BACKUP)):
        col = Collector(cfg, SimSource(cfg.sites[0], host, role))
        col.publish_metadata()
        col.run(start=scans.start, count=len(scans), pace=False)
        col.flush(600)
        col.close()


class Running:
    def __init__(self, cfg: Config, ring: str, app: str) -> None:
        self.runner = AppRunner(cfg, ring, app)
        self.thread = threading.Thread(target=self.runner.run, daemon=True)
        self.thread.start()

    def caught_up(self, ends: dict[int, int], events: dict[int, int]) -> bool:
        """Every scan mined and, for an application that links events, every event read."""
        tasks = dict(self.runner.tasks)
        if len(tasks) != len(ends) or any(tasks[p].scan_pos < end for p, end in ends.items()):
            return False
        if not self.runner.uses_events:
            return True
        return all(
            task.events_pos.get(p, 0) >= end for task in tasks.values() for p, end in events.items()
        )

    def mined(self) -> int:
        return sum(task.miner.mined for task in list(self.runner.tasks.values()))

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(120)


def _read_all(cfg: Config, app: str) -> list[tuple[dict[str, Any], int]]:
    """Every record of an application's topic with its produce time, first copy of
    each id (what pegasus_kafka.downstream hands an application)."""
    seen: set[bytes] = set()
    out = []
    for msg in records_to_end(cfg, cfg.aas_topic(app)):
        if msg.key() in seen:
            continue
        seen.add(msg.key())
        out.append((decode_record(EXCEPTION_RECORDS[app], msg.value()), msg.timestamp()[1]))
    return out


def _compare(records: list[dict[str, Any]], truth: dict[Any, Any], period: int) -> dict[str, int]:
    """Missed, duplicated and unexpected records against the simulator; every status
    change and momentary must also carry exactly one link (the simulator logs one
    operator action or alarm for each)."""
    kinds = {"CHANGE", "MOMENTARY", "VIOLATION", "RETURN"}
    mined = [r for r in records if r["kind"] in kinds]
    got = Counter((r["kind"], r["ikey"], r["time_ms"] // period) for r in mined)
    links = Counter(r["exception_id"] for r in records if r["kind"] == "LINK")
    linkable = [r for r in mined if r["kind"] in ("CHANGE", "MOMENTARY")]
    return {
        "missed": sum(1 for k in truth if k not in got)
        + sum(1 for r in linkable if not links[r["id"]]),
        "duplicated": sum(n - 1 for n in got.values() if n > 1)
        + sum(links[r["id"]] - 1 for r in linkable if links[r["id"]] > 1),
        "unexpected": sum(1 for k in got if k not in truth),
    }


def _throughput(cfg: Config, scans: int) -> dict[str, Any]:
    cfg = _site(cfg, 5000)
    site = dataclasses.replace(cfg.sites[0], limit_change_scans=(scans // 3, 2 * scans // 3))
    cfg = cfg.with_overrides(sites=(site,))
    ensure_topics(cfg)
    _produce(cfg, range(scans))
    ends = end_offsets(cfg, cfg.scan_topic)
    events = end_offsets(cfg, cfg.events_topic)
    out: dict[str, Any] = {}
    for app in AAS_APPS:
        run = Running(cfg, "r1", app)
        # The clock starts once the group has assigned every partition (joining
        # takes a few seconds that say nothing about mining).
        wait_until(lambda run=run: len(run.runner.tasks) == len(ends), 120, f"{app} assigned")
        started = time.monotonic()
        wait_until(lambda run=run: run.caught_up(ends, events), 1800, f"{app} to mine all")
        elapsed = time.monotonic() - started
        out[f"{app}_points_per_s"] = round(run.mined() / elapsed)
        out[f"{app}_seconds"] = round(elapsed, 2)
        run.stop()
    # A second ring mines the same scans: its copies must not reach a consumer twice.
    second = [Running(cfg, "r2", app) for app in AAS_APPS]
    for run in second:
        wait_until(lambda run=run: run.caught_up(ends, events), 1800, "the second ring")
        run.stop()
    status = [r for r, _ in _read_all(cfg, "status")]
    analog = [r for r, _ in _read_all(cfg, "analog")]
    checks = [
        _compare(status, status_truth(site, 0, scans - 1), site.scan_period_ms),
        _compare(analog, analog_truth(site, "ems-a", 0, scans - 1), site.scan_period_ms),
    ]
    for key in ("missed", "duplicated", "unexpected"):
        out[key] = sum(c[key] for c in checks)
    out["exceptions"] = sum(1 for r in status + analog if r["kind"] != "LINK")
    out["links"] = sum(1 for r in status if r["kind"] == "LINK")
    return out


def _latency(cfg: Config, points: int, seconds: int) -> dict[str, Any]:
    cfg = _site(cfg, 1000)
    cfg = cfg.with_overrides(sites=(dataclasses.replace(cfg.sites[0], points=points),))
    ensure_topics(cfg)
    apps = [Running(cfg, "live", app) for app in AAS_APPS]
    wait_until(lambda: all(a.runner.tasks for a in apps), 60, "applications to be assigned")
    stop = threading.Event()
    collectors = []
    for host, role in (("ems-a", PRIMARY), ("ems-b", BACKUP)):
        col = Collector(cfg, SimSource(cfg.sites[0], host, role))
        col.publish_metadata()
        collectors.append(col)
    threads = [
        threading.Thread(target=col.run, kwargs={"count": seconds, "stop": stop}, daemon=True)
        for col in collectors
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    for col in collectors:
        col.flush(60)
        col.close()
    time.sleep(2.0)  # poll: the last scan's exceptions are published within this
    for a in apps:
        a.stop()
    latencies = [
        produced - rec["time_ms"]
        for app in AAS_APPS
        for rec, produced in _read_all(cfg, app)
        if rec["kind"] != "LINK"
    ]
    if not latencies:
        return {"exception_latency_p99_ms": None, "latency_exceptions": 0}
    return {
        "exception_latency_p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "exception_latency_p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "latency_exceptions": len(latencies),
    }


def run_aas(cfg: Config, quick: bool) -> dict[str, Any]:
    points, scans = (20_000, 40) if quick else (100_000, 120)
    live_points, live_s = (10_000, 15) if quick else (50_000, 60)
    with tempfile.TemporaryDirectory(prefix="pegasus-bench-aas-") as tmp:
        result: dict[str, Any] = {"points": points, "scans": scans}
        result.update(_throughput(bench_config(cfg, points, Path(tmp) / "rate", code=95), scans))
        live = bench_config(cfg, live_points, Path(tmp) / "live", code=94)
        result.update(_latency(live, live_points, live_s))
        result["live_points"] = live_points
        return result
