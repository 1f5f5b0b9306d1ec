"""What the cluster benchmarks share: their config, a query load, a lag watch."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from confluent_kafka import KafkaException, TopicPartition

from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config, HostConfig, ServerSettings, SiteConfig
from pegasus_kafka.errors import PegasusError
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import live_servers
from pegasus_kafka.schema import PRIMARY

log = logging.getLogger(__name__)

#: prefix that marks a bench's topics
BENCH_PREFIX = "bench-"
#: the bench configs made in this process, whose topics :func:`drop_bench_topics` deletes
_made: list[Config] = []


def bench_config(cfg: Config, points: int, workdir: Path, code: int = 98, seed: int = 5) -> Config:
    """The user's Kafka settings with fresh topics, a 5 s scan site of ``points``
    points (site ``code`` and simulator ``seed`` pick the data), store and spool
    under ``workdir``, and fast heartbeats so state changes show within a second.
    The topics are the bench's own until :func:`drop_bench_topics`."""
    site = SiteConfig(
        name="bench",
        code=code,
        scan_period_ms=5000,
        points=points,
        seed=seed,
        hosts=(HostConfig("ems-a", "primary"), HostConfig("ems-b", "backup")),
    )
    made = cfg.with_overrides(
        kafka=dataclasses.replace(cfg.kafka, topic_prefix=f"{BENCH_PREFIX}{uuid.uuid4().hex[:8]}"),
        store=dataclasses.replace(cfg.store, data_dir=str(workdir / "data")),
        collector=dataclasses.replace(cfg.collector, spool_dir=str(workdir / "spool")),
        server=ServerSettings(
            http_host="127.0.0.1", standby_replicas=1, in_sync_lag=200, heartbeat_s=0.5
        ),
        sites=(site,),
    )
    _made.append(made)
    return made


def drop_bench_topics(timeout: float = 60.0) -> list[str]:
    """Delete the topics of every bench config made in this process; returns
    their names. A long-lived dev broker thus keeps only the partitions it had
    before: each bench creates dozens, and a broker's every partition costs it
    memory and work on every run after."""
    dropped: list[str] = []
    while _made:
        cfg = _made.pop()
        prefix = cfg.kafka.topic_prefix + "."
        assert cfg.kafka.topic_prefix.startswith(BENCH_PREFIX)
        client = clients.admin(cfg)
        try:
            names = [t for t in client.list_topics(timeout=timeout).topics if t.startswith(prefix)]
            futures = client.delete_topics(names, operation_timeout=timeout) if names else {}
            for name, fut in futures.items():
                clients.wait_result(fut, f"delete topic {name}", timeout)
                dropped.append(name)
        except (KafkaException, PegasusError) as exc:
            # The figures stand; only the broker keeps some extra topics.
            log.warning("bench topics not deleted prefix=%s error=%s", prefix, exc)
    return dropped


class Load:
    """A client querying 100 points' current values, ``rate`` times a second."""

    def __init__(self, cfg: Config, rate: float = 20.0) -> None:
        field = SimSource(cfg.sites[0], cfg.sites[0].hosts[0].name, PRIMARY).field
        self.keys = [int(k) for k in field.ikeys[:100]]
        self.period = 1.0 / rate
        self.client = PegasusClient(cfg, cooldown_s=2.0)
        self.log: list[tuple[float, str, float]] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-load", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                result = self.client.current(self.keys)
            except PegasusError as exc:
                self.failed.append(str(exc))
            else:
                self.log.append((time.monotonic(), result.ring, time.perf_counter() - started))
            self._stop.wait(max(0.0, self.period - (time.perf_counter() - started)))

    def start(self) -> None:
        self._thread.start()

    def p99_ms(self, rings: set[str] | None, t0: float, t1: float) -> float | None:
        """p99 latency of the answers from ``rings`` (None: any) between t0 and t1."""
        lat = [s for t, r, s in self.log if (rings is None or r in rings) and t0 <= t <= t1]
        return round(float(np.percentile(lat, 99)) * 1000, 1) if lat else None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.client.close()


class LagWatch:
    """The largest lag any server of the given rings reported, while running."""

    def __init__(self, cfg: Config, view: RegistryView, rings: set[str]) -> None:
        self.cfg, self.view, self.rings = cfg, view, rings
        self.max_lag = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-lag", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            for ring in list(self.rings):
                for s in live_servers(self.cfg, self.view, ring):
                    self.max_lag = max(self.max_lag, s.lag)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.max_lag


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise PegasusError(f"bench: timed out waiting for {what}")
        time.sleep(0.02)  # poll


def standbys_warm(cfg: Config, view: RegistryView, rings: list[str]) -> bool:
    """Every server's standby copies have caught up (they replay after the ring is
    in sync, and would otherwise load the 'before' window)."""
    for ring in rings:
        for server in live_servers(cfg, view, ring):
            body = httpx.get(f"{server.endpoint}/v1/health", timeout=10).json()
            lags = body.get("standby_lag", {})
            if len(lags) < len(body.get("standby", [])):
                return False
            if any(lag > cfg.server.in_sync_lag for lag in lags.values()):
                return False
    return True


def topic_ends(cfg: Config, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """Each (topic, partition)'s end offset now, for every topic in ``topics``."""
    consumer = clients.consumer(cfg, f"bench-ends-{uuid.uuid4().hex[:8]}")
    try:
        return {
            (t, p): int(consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1])
            for t in topics
            for p in range(cfg.topics.partitions)
        }
    finally:
        consumer.close()


def end_offsets(cfg: Config, topic: str) -> dict[int, int]:
    """Each partition's end offset of ``topic`` now."""
    return {p: end for (_, p), end in topic_ends(cfg, [topic]).items()}


def records_to_end(cfg: Config, topic: str, timeout: float = 300.0) -> Iterator[Any]:
    """Every record of ``topic`` from offset zero to its end as of the call, in
    partition order (partitions interleaved)."""
    ends = end_offsets(cfg, topic)
    consumer = clients.consumer(cfg, f"bench-read-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    got = dict.fromkeys(ends, 0)
    deadline = time.monotonic() + timeout
    try:
        while any(got[p] < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise PegasusError(f"bench: {topic} not read to its end in {timeout:.0f}s")
            msgs: list[Any] = consumer.consume(5000, timeout=1.0)
            for msg in msgs:
                if msg.error() is None:
                    got[int(msg.partition())] = int(msg.offset()) + 1
                    yield msg
    finally:
        consumer.close()
