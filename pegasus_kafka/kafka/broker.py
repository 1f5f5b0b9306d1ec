"""The local development broker: real Apache Kafka in KRaft mode on loopback.

The broker jars are resolved by Maven from ``ops/kafka/pom.xml`` (the pinned
version) into a cache outside git (``$PEGASUS_HOME``, default
``~/.cache/pegasus``). Each broker instance lives in its own state directory
holding its config, data, log, pid and bootstrap address, so the demo and a
test session can each run one without touching the other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pegasus_kafka.errors import BrokerError, MissingTool

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.3.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "ops" / "kafka" / "pom.xml"
HEAP = os.environ.get("PEGASUS_BROKER_HEAP", "512m")


def cache_home() -> Path:
    return Path(os.environ.get("PEGASUS_HOME", Path.home() / ".cache" / "pegasus"))


def libs_dir() -> Path:
    return cache_home() / f"kafka-{KAFKA_VERSION}" / "libs"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise MissingTool(f"'{name}' is not on PATH; the local Kafka broker needs it")
    return path


def fetch(quiet: bool = True) -> Path:
    """Resolve the broker jars with Maven, once; later calls return the cache."""
    libs = libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    require_tool("java")
    mvn = require_tool("mvn")
    libs.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn,
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]
    if quiet:
        cmd.insert(1, "-q")
    log.info("fetching Kafka %s jars into %s", KAFKA_VERSION, libs)
    result = subprocess.run(cmd, capture_output=quiet, text=True)
    if result.returncode != 0:
        tail = (result.stdout or "")[-2000:] + (result.stderr or "")[-2000:]
        raise BrokerError(f"Maven could not resolve Kafka {KAFKA_VERSION}: {tail.strip()}")
    marker.write_text(KAFKA_VERSION)
    return libs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LocalBroker:
    """One single-node KRaft broker (broker and controller in one JVM)."""

    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "broker.pid"

    @property
    def bootstrap_file(self) -> Path:
        return self.state_dir / "bootstrap"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "broker.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def bootstrap(self) -> str | None:
        if self.pid() is None or not self.bootstrap_file.exists():
            return None
        return self.bootstrap_file.read_text().strip()

    def _write_config(self, port: int, controller_port: int) -> Path:
        data = self.state_dir / "data"
        props = self.state_dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "message.max.bytes=8388608",
                    "log.segment.bytes=268435456",
                    "",
                ]
            )
        )
        (self.state_dir / "log4j2.yaml").write_text(
            "Configuration:\n"
            "  Appenders:\n"
            "    File:\n"
            "      name: F\n"
            f"      fileName: {self.log_file}\n"
            '      PatternLayout: {pattern: "[%d] %p %m (%c)%n"}\n'
            "  Loggers:\n"
            "    Root: {level: INFO, AppenderRef: [{ref: F}]}\n"
        )
        return props

    def _ports(self, wanted: int | None) -> tuple[int, int]:
        """Ports chosen at first start and kept: the KRaft voter set records the
        controller's endpoint, so a restarted broker must listen where it did."""
        saved = self.state_dir / "ports"
        if saved.exists():
            port, controller = (int(x) for x in saved.read_text().split())
            if wanted and wanted != port:
                raise BrokerError(f"{self.state_dir} was formatted for port {port}, not {wanted}")
            return port, controller
        port, controller = wanted or free_port(), free_port()
        saved.write_text(f"{port} {controller}")
        return port, controller

    def _java(self, libs: Path, *args: str) -> list[str]:
        return [
            require_tool("java"),
            f"-Xms{HEAP}",
            f"-Xmx{HEAP}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.yaml'}",
            "-cp",
            f"{libs}/*",
            *args,
        ]

    def start(self, port: int | None = None, timeout: float = 90.0) -> str:
        """Start the broker (fetching and formatting first as needed); return its bootstrap."""
        running = self.bootstrap()
        if running:
            return running
        libs = fetch()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        port, controller_port = self._ports(port)
        props = self._write_config(port, controller_port)
        if not (self.state_dir / "data" / "meta.properties").exists():
            fmt = subprocess.run(
                self._java(
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    uuid.uuid4().hex[:22],
                    "-c",
                    str(props),
                    "--standalone",
                ),
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise BrokerError(f"formatting storage failed: {fmt.stderr[-2000:]}")
        with open(self.state_dir / "broker.out", "ab") as out:
            proc = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(props)),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        bootstrap = f"127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"broker exited with code {proc.returncode}; see {self.log_file}")
            if _port_open(port) and self._answers(bootstrap):
                self.bootstrap_file.write_text(bootstrap)
                log.info("local broker up bootstrap=%s pid=%s", bootstrap, proc.pid)
                return bootstrap
            time.sleep(0.3)  # poll
        self.stop()
        raise BrokerError(f"broker did not answer within {timeout:.0f}s; see {self.log_file}")

    @staticmethod
    def _answers(bootstrap: str) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
        except Exception:
            return False
        return bool(md.brokers)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker cleanly (SIGTERM, then SIGKILL); True if one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.2)  # poll
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        self.bootstrap_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """Kill the broker abruptly (failure tests)."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            _reap(pid)


def _reap(pid: int) -> None:
    """Collect a child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def default_broker() -> LocalBroker:
    return LocalBroker(
        Path(os.environ.get("PEGASUS_BROKER_DIR", REPO_ROOT / ".pegasus" / "broker"))
    )
