"""The ring registry: a compacted topic that says which rings and servers exist.

Key ``ring/<name>`` is a ring's own record (written by the CLI); key
``server/<ring>/<id>`` is one server's entry, which that server refreshes every
heartbeat. Readers fold the topic into a dict in a background thread.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from pegasus_kafka.config import Config
from pegasus_kafka.errors import KafkaUnavailable
from pegasus_kafka.kafka import clients
from pegasus_kafka.schema import codec

log = logging.getLogger(__name__)

RECORD = "pegasus.RingRecord"


def now_ms() -> int:
    return int(time.time() * 1000)


def ring_key(ring: str) -> str:
    return f"ring/{ring}"


def server_key(ring: str, server: str) -> str:
    return f"server/{ring}/{server}"


def ring_record(
    ring: str,
    state: str,
    created_ms: int,
    sync_mode: str = "replay",
    retired_ms: int | None = None,
) -> dict[str, Any]:
    """A ring's own registry record."""
    return {
        "kind": "RING",
        "ring": ring,
        "server": None,
        "state": state,
        "endpoint": None,
        "owned": [],
        "standby": [],
        "lag": 0,
        "sync_mode": sync_mode,
        "sync_progress": 1.0 if state == "IN_SYNC" else 0.0,
        "sync_eta_s": None,
        "verified_with": None,
        "created_ms": created_ms,
        "updated_ms": now_ms(),
        "retired_ms": retired_ms,
    }


def snapshot_peer(record: dict[str, Any]) -> str | None:
    """The peer ring a ring bootstraps its stores from, or None when it replays."""
    mode = str(record.get("sync_mode") or "replay")
    return mode.split(":", 1)[1] if mode.startswith("snapshot:") else None


@dataclass(frozen=True)
class ServerEntry:
    ring: str
    server: str
    state: str
    endpoint: str
    owned: tuple[str, ...]
    standby: tuple[str, ...]
    lag: int
    updated_ms: int

    def fresh(self, max_age_s: float) -> bool:
        return self.state != "STOPPED" and now_ms() - self.updated_ms <= max_age_s * 1000


class RegistryWriter:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._producer = clients.producer(cfg, **{"linger.ms": 0})

    def put(self, key: str, record: dict[str, Any] | None) -> None:
        value = None if record is None else codec(RECORD).encode(record)
        self._producer.produce(self.cfg.registry_topic, key=key.encode(), value=value)
        self._producer.poll(0)

    def flush(self, timeout: float = 10.0) -> None:
        if self._producer.flush(timeout) > 0:
            raise KafkaUnavailable(f"registry write not acknowledged within {timeout:.0f}s")

    def add_ring(self, ring: str, snapshot_from: str | None = None) -> None:
        """Register a new ring as syncing, and wait until Kafka has it.

        With ``snapshot_from`` its servers bootstrap each partition from a
        checkpoint of that ring's store and tail from its offset; without, they
        replay the topics from offset zero.
        """
        mode = f"snapshot:{snapshot_from}" if snapshot_from else "replay"
        self.put(ring_key(ring), ring_record(ring, "SYNCING", now_ms(), sync_mode=mode))
        self.flush()


class RegistryView:
    """A live, read-only view of the registry topic."""

    def __init__(self, cfg: Config, on_change: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._on_change = on_change
        self._consumer = clients.consumer(cfg, f"pegasus-registry-reader-{uuid.uuid4().hex}")
        self._consumer.assign([TopicPartition(cfg.registry_topic, 0, OFFSET_BEGINNING)])
        self._thread = threading.Thread(target=self._run, name="registry-view", daemon=True)
        self._thread.start()

    def _high(self) -> int:
        try:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.cfg.registry_topic, 0), timeout=5
            )
        except KafkaException:
            return -1
        return int(high)

    def _run(self) -> None:
        high = self._high()
        position = 0
        if high == 0:
            self._caught_up.set()
        while not self._stop.is_set():
            msgs = self._consumer.consume(num_messages=500, timeout=0.2)
            changed = False
            for msg in msgs:
                if msg.error():
                    continue
                position = (msg.offset() or 0) + 1
                key = (msg.key() or b"").decode()
                with self._lock:
                    if msg.value() is None:
                        self.records.pop(key, None)
                    else:
                        try:
                            self.records[key] = codec(RECORD).decode(msg.value())
                        except Exception as exc:  # a bad registry record must not stop readers
                            log.warning("bad registry record key=%s error=%s", key, exc)
                            continue
                changed = True
            if not self._caught_up.is_set() and (high < 0 or position >= high):
                high = self._high() if high < 0 else high
                if high >= 0 and position >= high:
                    self._caught_up.set()
            if changed and self._on_change:
                self._on_change()
        self._consumer.close()

    def wait_caught_up(self, timeout: float = 15.0) -> bool:
        return self._caught_up.wait(timeout)

    def ring(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.records.get(ring_key(name))

    def rings(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {r["ring"]: r for k, r in self.records.items() if k.startswith("ring/")}

    def servers(self, ring: str | None = None) -> list[ServerEntry]:
        with self._lock:
            recs = [r for k, r in self.records.items() if k.startswith("server/")]
        out = [
            ServerEntry(
                ring=r["ring"],
                server=r["server"] or "",
                state=r["state"],
                endpoint=r["endpoint"] or "",
                owned=tuple(r["owned"]),
                standby=tuple(r["standby"]),
                lag=r["lag"],
                updated_ms=r["updated_ms"],
            )
            for r in recs
            if ring is None or r["ring"] == ring
        ]
        return sorted(out, key=lambda s: (s.ring, s.server))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
