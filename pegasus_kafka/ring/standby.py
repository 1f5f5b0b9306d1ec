"""Standby replicas: warm copies of partitions that other servers of the ring own.

Which copies a server keeps follows from the registry alone: the ring's live
servers sorted by id form a circle, and each server stands by for the
partitions owned by the ``standby_replicas`` servers before it. With two
servers each keeps a copy of everything the other owns.

A standby partition is materialised into the same store directory it would
use as an owner, by a consumer outside the group (plain ``assign``, no
commits). When the group then assigns that partition to this server, the
owner takes the open materialiser over as it is and resumes from its applied
offset: no replay from zero.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pegasus_kafka.config import Config
from pegasus_kafka.errors import PegasusError
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.messages import by_partition, take
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import live_servers

if TYPE_CHECKING:
    from pegasus_kafka.ring.base import Materialiser

log = logging.getLogger(__name__)

TP = tuple[str, int]


def standby_targets(servers: list[str], me: str, replicas: int) -> list[str]:
    """The servers whose partitions ``me`` keeps standby copies of."""
    ring = sorted(set(servers) | {me})
    if len(ring) < 2 or replicas < 1:
        return []
    i = ring.index(me)
    return [ring[(i - k) % len(ring)] for k in range(1, min(replicas, len(ring) - 1) + 1)]


class StandbyKeeper:
    def __init__(
        self,
        cfg: Config,
        ring: str,
        server_id: str,
        registry: RegistryView,
        open_store: Callable[[str, int], Materialiser],
    ) -> None:
        self.cfg = cfg
        self.ring = ring
        self.server_id = server_id
        self.registry = registry
        self._open = open_store
        self.parts: dict[TP, Materialiser] = {}
        self._want: set[TP] = set()
        self._unassign: list[TP] = []
        self._lock = threading.Condition()
        self._opening: set[TP] = set()
        self._adopted: list[TP] = []
        #: What the consumer is assigned; only the standby thread touches it.
        self._assigned: set[TP] = set()
        self._lag: dict[TP, int] = {}
        self._stop = threading.Event()
        self._consumer: Consumer = clients.consumer(
            cfg, f"{cfg.group_id(ring)}.standby.{server_id}.{uuid.uuid4().hex[:6]}"
        )
        self._thread = threading.Thread(target=self._run, name="standby", daemon=True)
        self._thread.start()

    def wanted(self, owned: set[TP]) -> set[TP]:
        """Partitions to keep copies of: those of the servers before this one, and
        any copy already held whose owner has gone and which nobody owns yet (the
        group is about to hand it to someone, quite likely this server)."""
        entries = live_servers(self.cfg, self.registry, self.ring)
        targets = standby_targets(
            [e.server for e in entries], self.server_id, self.cfg.server.standby_replicas
        )
        want: set[TP] = set()
        claimed: set[TP] = set()
        for entry in entries:
            for name in entry.owned:
                topic, _, part = name.rpartition(":")
                claimed.add((topic, int(part)))
                if entry.server in targets:
                    want.add((topic, int(part)))
        with self._lock:
            orphans = {tp for tp in self.parts if tp not in claimed}
        return (want | orphans) - owned

    def refresh(self, owned: set[TP]) -> None:
        """Follow the registry: the standby thread starts and stops copies to match."""
        want = self.wanted(owned)
        with self._lock:
            self._want = want

    def take(self, topic: str, partition: int) -> Materialiser | None:
        """Hand a warm copy over to the owner, or None if there is none."""
        tp = (topic, partition)
        with self._lock:
            self._lock.wait_for(lambda: tp not in self._opening)
            self._want.discard(tp)
            mat = self.parts.pop(tp, None)
            if mat is not None:
                self._unassign.append(tp)
            return mat

    def adopt(self, topic: str, partition: int, mat: Materialiser) -> None:
        """Keep a partition this server was just relieved of as a standby copy.

        Its new owner, most likely a server that just joined, then takes a
        snapshot of it instead of replaying from zero; if this server is not
        one of its standbys the copy is dropped once the new owner claims it.
        """
        tp = (topic, partition)
        with self._lock:
            if tp in self.parts or tp in self._opening:
                mat.close()
                return
            self.parts[tp] = mat
            self._want.add(tp)
            self._adopted.append(tp)

    def copy(self, topic: str, partition: int) -> Materialiser | None:
        """The warm copy of a partition, left in place (to snapshot it)."""
        with self._lock:
            return self.parts.get((topic, partition))

    def standby(self) -> list[str]:
        with self._lock:
            return sorted(f"{t}:{p}" for t, p in self.parts)

    def _sync_assignment(self) -> None:
        """Runs on the standby thread, the only one that touches its consumer."""
        with self._lock:
            drop = [tp for tp in self.parts if tp not in self._want]
            for tp in drop:
                self.parts.pop(tp).close()
            unassign = self._unassign + drop
            self._unassign = []
            adopted = [(tp, self.parts[tp]) for tp in self._adopted if tp in self.parts]
            self._adopted = []
            to_open = sorted(self._want - set(self.parts))
            self._opening.update(to_open)
        assign = [TopicPartition(t, p, m.store.applied_offset) for (t, p), m in adopted]
        for tp in to_open:
            # Opened outside the lock, because it may fetch a snapshot: the
            # consumer thread must not wait on this lock meanwhile. take() waits
            # for this one partition only.
            mat: Materialiser | None = None
            try:
                mat = self._open(*tp)
            except Exception:  # a standby copy that fails must never block take()
                log.exception("standby open failed ring=%s topic=%s partition=%d", self.ring, *tp)
            with self._lock:
                self._opening.discard(tp)
                self._lock.notify_all()
                if mat is None:
                    continue
                if tp not in self._want or tp in self.parts:
                    mat.close()
                    continue
                self.parts[tp] = mat
            assign.append(TopicPartition(tp[0], tp[1], mat.store.applied_offset))
            log.info(
                "standby started ring=%s server=%s topic=%s partition=%d offset=%d",
                self.ring,
                self.server_id,
                tp[0],
                tp[1],
                mat.store.applied_offset,
            )
        # A copy adopted and taken between two passes was never assigned, and
        # librdkafka refuses to unassign what it does not hold: that refusal
        # would also lose this pass's assigns.
        gone = sorted(set(unassign) & self._assigned)
        if gone:
            self._consumer.incremental_unassign([TopicPartition(t, p) for t, p in gone])
            self._assigned.difference_update(gone)
        if assign:
            self._consumer.incremental_assign(assign)
            self._assigned.update((tp.topic, tp.partition) for tp in assign)

    def lags(self) -> dict[str, int]:
        """Records each standby copy is behind its partition's end, as last measured."""
        with self._lock:
            return {
                f"{t}:{p}": lag for (t, p), lag in sorted(self._lag.items()) if (t, p) in self.parts
            }

    def _measure_lag(self) -> None:
        with self._lock:
            applied = {tp: mat.store.applied_offset for tp, mat in self.parts.items()}
        lags = {}
        for (topic, part), offset in applied.items():
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, part), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                lags[(topic, part)] = max(0, int(high) - offset)
        with self._lock:
            self._lag = lags

    def _run(self) -> None:
        next_measure = 0.0
        while not self._stop.is_set():
            try:
                self._sync_assignment()
                if time.monotonic() >= next_measure:
                    self._measure_lag()
                    next_measure = time.monotonic() + 1.0
            except (KafkaException, PegasusError) as exc:
                log.warning("standby assignment failed ring=%s error=%s", self.ring, exc)
            msgs = take(self._consumer, 2000, 0.2)
            if not msgs:
                continue
            with self._lock:
                for tp, records in by_partition(msgs).items():
                    mat = self.parts.get(tp)
                    if mat is None:
                        continue  # handed over or dropped while these were in flight
                    applied = mat.store.applied_offset
                    records = [r for r in records if r[0] >= applied]
                    if records:
                        mat.apply(records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            for mat in self.parts.values():
                mat.close()
            self.parts.clear()
        self._consumer.close()
