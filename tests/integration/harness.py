"""In-process ring servers with their HTTP APIs, and a simulated site, for tests."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import TopicPartition

from pegasus_kafka.api.app import HttpServer, build_app
from pegasus_kafka.api.queries import Queries
from pegasus_kafka.cli.common import pegasus_command
from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.registry import RegistryWriter
from pegasus_kafka.ring.server import RingServer
from pegasus_kafka.schema import BACKUP, PRIMARY
from tests.helpers import wait_for


def register_ring(cfg: Config, name: str, snapshot_from: str | None = None) -> None:
    RegistryWriter(cfg).add_ring(name, snapshot_from)


def ring_cli(cfg: Config, *args: str) -> tuple[int, str]:
    """Run ``pegasus ring ARGS`` in-process with this test's config."""
    from click.testing import CliRunner

    from pegasus_kafka.cli import common
    from pegasus_kafka.cli.main import cli

    state = common.State(None, 0)
    state._cfg = cfg
    result = CliRunner().invoke(cli.commands["ring"], list(args), obj=state)
    return result.exit_code, result.output


@dataclass
class RunningServer:
    server: RingServer
    http: HttpServer
    queries: Queries
    thread: threading.Thread

    @property
    def endpoint(self) -> str:
        return self.http.endpoint

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(timeout=60)
        self.http.stop()
        self.queries.close()


@dataclass
class Ring:
    cfg: Config
    name: str
    servers: list[RunningServer] = field(default_factory=list)

    def start_server(self, server_id: str) -> RunningServer:
        srv = RingServer(self.cfg, self.name, server_id)
        queries = Queries(srv)
        http = HttpServer(build_app(queries), "127.0.0.1", 0)
        srv.endpoint = http.endpoint
        http.start()
        thread = threading.Thread(target=srv.run, name=f"{self.name}/{server_id}", daemon=True)
        thread.start()
        running = RunningServer(srv, http, queries, thread)
        self.servers.append(running)
        return running

    def endpoints(self) -> list[str]:
        return [s.endpoint for s in self.servers if s.thread.is_alive()]

    def health(self) -> list[dict[str, Any]]:
        return [httpx.get(f"{e}/v1/health", timeout=10).json() for e in self.endpoints()]

    def partitions(self) -> dict[str, dict[str, Any]]:
        """Applied offset and digest of every partition, gathered from the servers."""
        out: dict[str, dict[str, Any]] = {}
        for h in self.health():
            out.update(h["partitions"])
        return out

    def stop(self) -> None:
        for s in self.servers:
            if s.thread.is_alive():
                s.stop()


def start_ring(cfg: Config, name: str, servers: int = 2, snapshot_from: str | None = None) -> Ring:
    register_ring(cfg, name, snapshot_from)
    ring = Ring(cfg, name)
    for i in range(servers):
        ring.start_server(f"s{i + 1}")
    return ring


def produce_site(cfg: Config, scans: range) -> list[Collector]:
    """Both hosts' scans of the configured site, as fast as Kafka takes them."""
    site = cfg.sites[0]
    out = []
    for host, role in ((site.hosts[0].name, PRIMARY), (site.hosts[1].name, BACKUP)):
        col = Collector(cfg, SimSource(site, host, role))
        col.publish_metadata()
        col.run(start=scans.start, count=len(scans), pace=False)
        col.flush(60)
        out.append(col)
    return out


def cli_env(cfg: Config, tmp_path: Path, extra_toml: str = "") -> dict[str, str]:
    """The environment an operator would give a ``pegasus`` process or an example:
    a config file of the test's settings, its broker, topics and data directory."""
    config = tmp_path / "pegasus.toml"
    config.write_text(
        f"[topics]\npartitions = {cfg.topics.partitions}\n"
        f"[server]\nheartbeat_s = {cfg.server.heartbeat_s}\n{extra_toml}"
    )
    return dict(
        os.environ,
        PEGASUS_CONFIG=str(config),
        PEGASUS_KAFKA_BOOTSTRAP=cfg.kafka.bootstrap,
        PEGASUS_TOPIC_PREFIX=cfg.kafka.topic_prefix,
        PEGASUS_DATA_DIR=cfg.store.data_dir,
    )


def end_offsets(cfg: Config) -> dict[str, int]:
    consumer = clients.consumer(cfg, "end-offsets-probe")
    try:
        return {
            f"{t}:{p}": consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            for t in cfg.data_topics
            for p in range(cfg.topics.partitions)
        }
    finally:
        consumer.close()


def wait_caught_up(ring: Ring, cfg: Config, timeout: float = 90.0) -> dict[str, dict[str, Any]]:
    ends = end_offsets(cfg)

    def caught_up() -> dict[str, dict[str, Any]] | None:
        parts = ring.partitions()
        done = all(parts.get(k, {}).get("applied_offset", -1) >= v for k, v in ends.items())
        return parts if done else None

    parts = wait_for(caught_up, timeout, f"ring {ring.name} to apply every record")
    wait_for(
        lambda: all(h["ring_in_sync"] for h in ring.health()),
        timeout,
        f"ring {ring.name} to report in sync",
    )
    return parts


def start_server_process(cfg: Config, ring: str, server_id: str, log_path: Any) -> Any:
    """A ring server as its own OS process (for kill -9), configured through the environment."""
    import os
    import subprocess

    env = dict(os.environ)
    env.update(
        PEGASUS_KAFKA_BOOTSTRAP=cfg.kafka.bootstrap,
        PEGASUS_TOPIC_PREFIX=cfg.kafka.topic_prefix,
        PEGASUS_DATA_DIR=cfg.store.data_dir,
    )
    env.pop("PEGASUS_CONFIG", None)
    return subprocess.Popen(
        pegasus_command(None, "-v", "server", "run", "--ring", ring, "--id", server_id),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "ab"),
    )


class QueryLoad:
    """A client querying current values continuously on its own thread."""

    def __init__(self, cfg: Config, points: int = 50) -> None:
        from pegasus_kafka.client import PegasusClient
        from pegasus_kafka.collector.sources import SimSource

        self.keys = [int(k) for k in SimSource(cfg.sites[0], "ems-a", PRIMARY).field.ikeys[:points]]
        self.client = PegasusClient(cfg)
        self.answered: dict[str, int] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="query-load", daemon=True)

    def _run(self) -> None:
        from pegasus_kafka.errors import PegasusError

        while not self._stop.is_set():
            try:
                result = self.client.current(self.keys)
            except PegasusError as exc:
                self.failures.append(str(exc))
            else:
                self.answered[result.ring] = self.answered.get(result.ring, 0) + 1

    def start(self) -> QueryLoad:
        self._thread.start()
        return self

    def count(self, ring: str) -> int:
        return self.answered.get(ring, 0)

    def wait_answers(self, ring: str, more: int, timeout: float = 60.0) -> None:
        target = self.count(ring) + more
        wait_for(lambda: self.count(ring) >= target, timeout, f"{more} answers from {ring}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.client.close()
