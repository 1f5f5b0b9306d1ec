"""A ring server: one member of its ring's consumer group.

The group id derives from the ring's name (``<topic prefix>.ring.<name>``),
so every ring reads the full topics independently. For each partition the
group assigns, the server takes its warm standby copy, or opens its store on
disk, or fills a missing store from a snapshot (see
:mod:`pegasus_kafka.ring.snapshot`), or starts empty and replays; then it
seeks to the store's own applied offset and materialises from there. On
revocation the store becomes a standby copy, which the standby keeper closes
once nobody needs it; on shutdown every store is closed. Commit order is
documented in :mod:`pegasus_kafka.ring.store`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pegasus_kafka.config import Config
from pegasus_kafka.errors import RegistryError
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.messages import by_partition, take
from pegasus_kafka.kafka.registry import (
    RegistryView,
    RegistryWriter,
    now_ms,
    server_key,
    snapshot_peer,
)
from pegasus_kafka.ring import metrics
from pegasus_kafka.ring.base import ApplyResult, Materialiser
from pegasus_kafka.ring.malloc import tune_malloc
from pegasus_kafka.ring.promote import Promoter
from pegasus_kafka.ring.records import (
    EventPartition,
    ExceptionPartition,
    MetaPartition,
)
from pegasus_kafka.ring.scan import COLUMN_FAMILIES as SCAN_FAMILIES
from pegasus_kafka.ring.scan import ScanPartition
from pegasus_kafka.ring.scan import open_store as open_scan_store
from pegasus_kafka.ring.sealer import Sealer
from pegasus_kafka.ring.snapshot import bootstrap, snapshot_sources
from pegasus_kafka.ring.standby import StandbyKeeper
from pegasus_kafka.ring.store import PartitionStore, share_memory
from pegasus_kafka.schema import EXCEPTION_RECORDS, codec

log = logging.getLogger(__name__)

#: most records taken from the consumer for one batch
TAKE_MAX = 2000


class RingServer:
    def __init__(self, cfg: Config, ring: str, server_id: str, endpoint: str = "") -> None:
        self.cfg = cfg
        self.ring = ring
        self.server_id = server_id
        self.endpoint = endpoint
        self.data_dir = Path(cfg.store.data_dir) / ring / server_id
        tune_malloc()
        share_memory(cfg.store.memtable_mb << 20, cfg.store.block_cache_mb << 20)
        self.parts: dict[tuple[str, int], Materialiser] = {}
        self.lag: dict[tuple[str, int], int] = {}
        self.started_ms = now_ms()
        self.assigned_once = False
        self.sealer: Sealer | None = None
        self._in_sync = False
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.registry = RegistryView(cfg)
        self._writer = RegistryWriter(cfg)
        self._dlq = clients.producer(cfg)
        self._consumer: Consumer | None = None
        self.standby: StandbyKeeper | None = None
        #: where each owned partition started: (offset, source), the source being
        #: "standby" (a warm copy), "snapshot" (copied from another server), "disk"
        #: (this server's own store) or "replay" (empty: from offset zero)
        self.assigned_from: dict[tuple[str, int], tuple[int, str]] = {}

    # -- partitions -------------------------------------------------------------

    def _families(self, topic: str) -> tuple[str, ...]:
        if topic == self.cfg.scan_topic:
            return SCAN_FAMILIES
        if topic == self.cfg.meta_topic:
            return MetaPartition.COLUMN_FAMILIES
        if topic == self.cfg.events_topic:
            return EventPartition.COLUMN_FAMILIES
        return ExceptionPartition.COLUMN_FAMILIES

    def _path(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def _open(self, topic: str, partition: int) -> Materialiser:
        """Open a partition's store; a missing store is first filled from a snapshot
        where one can be had (see :mod:`pegasus_kafka.ring.snapshot`)."""
        path = self._path(topic, partition)
        st = self.cfg.store
        families = self._families(topic)
        if not path.exists():
            rec = self.registry.ring(self.ring)
            peer = snapshot_peer(rec) if rec is not None and rec["state"] == "SYNCING" else None
            sources = snapshot_sources(
                self.cfg, self.registry, self.ring, self.server_id, peer, topic, partition
            )
            bootstrap(sources, topic, partition, path, families)
        if topic == self.cfg.scan_topic:
            scan_store = open_scan_store(path, st.sync_writes, st.checkpoint_every)
            fetch = functools.partial(clients.read_range, self.cfg, topic, partition)
            return ScanPartition(scan_store, st.seal_samples, st.seal_span_ms, fetch)
        store = PartitionStore(path, families, st.sync_writes, st.checkpoint_every)
        if topic == self.cfg.meta_topic:
            return MetaPartition(store)
        if topic == self.cfg.events_topic:
            return EventPartition(store)
        return ExceptionPartition(store, EXCEPTION_RECORDS[topic.rsplit(".", 1)[1]])

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Topic by topic, the scans first: a topic's partitions start fetching
        # as soon as their stores are open, while the next topic's open (each
        # store's creation waits for the disk).
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp)
        order = {topic: i for i, topic in enumerate(self.cfg.data_topics)}
        for topic in sorted(by_topic, key=lambda t: (order.get(t, len(order)), t)):
            consumer.incremental_assign([self._take_over(consumer, tp) for tp in by_topic[topic]])
        self.assigned_once = True
        self._heartbeat()

    def _take_over(self, consumer: Consumer, tp: TopicPartition) -> TopicPartition:
        """Open an assigned partition's store, or take its standby copy; where
        its records resume."""
        warm = self.standby.take(tp.topic, tp.partition) if self.standby else None
        fresh = not self._path(tp.topic, tp.partition).exists()
        mat = warm or self._open(tp.topic, tp.partition)
        offset = mat.store.applied_offset
        if warm:
            source = "standby"
        elif fresh:
            source = "snapshot" if offset else "replay"
        else:
            source = "disk"
        lag = self._initial_lag(consumer, tp, offset)
        with self.lock:
            self.parts[(tp.topic, tp.partition)] = mat
            self.assigned_from[(tp.topic, tp.partition)] = (offset, source)
            if lag is not None:
                self.lag[(tp.topic, tp.partition)] = lag
        log.info(
            "partition assigned ring=%s server=%s topic=%s partition=%d offset=%d from=%s",
            self.ring,
            self.server_id,
            tp.topic,
            tp.partition,
            offset,
            source,
        )
        if self.sealer is not None and mat.pending_seals():
            self.sealer.offer(mat)
        return TopicPartition(tp.topic, tp.partition, offset)

    @staticmethod
    def _initial_lag(consumer: Consumer, tp: TopicPartition, offset: int) -> int | None:
        """A newly assigned partition's lag, so a warm hand-over does not leave the
        server's state unknown (out of sync) until the next heartbeat."""
        try:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=2
            )
        except KafkaException:
            return None
        return max(0, int(high) - offset) if high >= 0 else None

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            with self.lock:
                mat = self.parts.pop((tp.topic, tp.partition), None)
                self.lag.pop((tp.topic, tp.partition), None)
            if mat is not None:
                if self.standby is not None and not self.stop_event.is_set():
                    self.standby.adopt(tp.topic, tp.partition, mat)
                else:
                    mat.close()
                log.info(
                    "partition revoked ring=%s server=%s topic=%s partition=%d offset=%d",
                    self.ring,
                    self.server_id,
                    tp.topic,
                    tp.partition,
                    mat.store.applied_offset,
                )
        self._heartbeat()

    def materialiser(self, topic: str, partition: int) -> Materialiser | None:
        with self.lock:
            return self.parts.get((topic, partition))

    # -- ingest -----------------------------------------------------------------

    def _check_ring(self) -> None:
        self.registry.wait_caught_up()
        rec = self.registry.ring(self.ring)
        if rec is None:
            raise RegistryError(
                f"ring '{self.ring}' is not registered: run 'pegasus ring add {self.ring}'"
            )
        if rec["state"] == "RETIRED":
            raise RegistryError(f"ring '{self.ring}' is retired; add it again to reuse the name")

    def run(self) -> None:
        """Consume and materialise until :meth:`stop`; closes every store on the way out."""
        self._check_ring()
        self._consumer = clients.consumer(
            self.cfg,
            self.cfg.group_id(self.ring),
            **{
                "partition.assignment.strategy": "cooperative-sticky",
                "client.id": f"{self.ring}/{self.server_id}",
                "session.timeout.ms": 10_000,
                # Opening a partition may mean fetching its snapshot from a peer
                # ring inside the assignment callback.
                "max.poll.interval.ms": 900_000,
                "heartbeat.interval.ms": 1_000,
            },
        )
        consumer = self._consumer
        self.sealer = Sealer(self.ring)
        self.standby = StandbyKeeper(self.cfg, self.ring, self.server_id, self.registry, self._open)
        promoter = Promoter(self.cfg, self.ring, self.server_id, self.registry)
        beat = threading.Thread(target=self._beat, args=(promoter,), name="beat", daemon=True)
        beat.start()
        consumer.subscribe(
            list(self.cfg.data_topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        next_beat = 0.0
        caught_up = behind = helped = False
        try:
            while not self.stop_event.is_set():
                # After helping the sealer, look for records without waiting.
                msgs = take(consumer, TAKE_MAX, 0 if helped else 0.1)
                # A batch that fills means a backlog: from one on, and until
                # no seal waits, an idle consumer thread helps the sealer.
                behind = behind or len(msgs) == TAKE_MAX
                helped = behind and not msgs and self.sealer.help()
                behind = behind and (bool(msgs) or helped)
                if msgs:
                    # Live data: every partition was within in_sync_lag at the
                    # last lag check, and the batch did not fill (it holds the
                    # log's end).
                    live = caught_up and len(msgs) < TAKE_MAX
                    with self.sealer.applying(live):
                        self._apply(consumer, msgs)
                if time.monotonic() >= next_beat:
                    self._update_lag(consumer)
                    caught_up = (
                        self.assigned_once and self.worst_lag() <= self.cfg.server.in_sync_lag
                    )
                    with self.lock:
                        owned = set(self.parts)
                    self.standby.refresh(owned)
                    next_beat = time.monotonic() + self.cfg.server.heartbeat_s
        finally:
            self.stop_event.set()
            beat.join(timeout=30)
            promoter.close()
            self._shutdown(consumer)

    def _beat(self, promoter: Promoter) -> None:
        """Heartbeats and the sync check on a thread of their own, so a long batch
        (a seal, a snapshot) never makes the server look dead to its ring."""
        while not self.stop_event.wait(self.cfg.server.heartbeat_s):
            self._heartbeat()
            promoter.tick()

    def _apply(self, consumer: Consumer, msgs: list[Any]) -> None:
        """Apply a consumed batch; seals that fall due go to the sealer."""
        touched: dict[tuple[str, int], Materialiser] = {}
        for (topic, partition), records in by_partition(msgs).items():
            mat = self.materialiser(topic, partition)
            if mat is None:
                continue
            applied = mat.store.applied_offset
            records = [r for r in records if r[0] >= applied]
            if not records:
                continue
            if records[0][0] != applied:
                log.error(
                    "offset gap ring=%s topic=%s partition=%d expected=%d got=%d",
                    self.ring,
                    topic,
                    partition,
                    applied,
                    records[0][0],
                )
            started = time.perf_counter()
            result = mat.ingest(records)
            seconds = time.perf_counter() - started
            metrics.observe_batch(self.ring, topic, partition, result, seconds)
            self._dead_letters(topic, partition, records, result)
            if mat.pending_seals():
                assert self.sealer is not None
                self.sealer.offer(mat)
            touched[(topic, partition)] = mat
        self._commit(consumer, touched)

    def _commit(self, consumer: Consumer, touched: dict[tuple[str, int], Materialiser]) -> None:
        """Commit group offsets (advisory: the store's own offset rules)."""
        commits = [TopicPartition(t, p, m.store.applied_offset) for (t, p), m in touched.items()]
        if commits:
            try:
                consumer.commit(offsets=commits, asynchronous=True)
            except KafkaException as exc:
                log.warning("group offset commit failed ring=%s error=%s", self.ring, exc)

    def _dead_letters(
        self, topic: str, partition: int, records: list[Any], result: ApplyResult
    ) -> None:
        if not result.dead:
            return
        by_offset = {r[0]: r for r in records}
        for offset, reason in result.dead:
            _, key, value = by_offset[offset]
            log.warning(
                "record skipped ring=%s topic=%s partition=%d offset=%d reason=%s",
                self.ring,
                topic,
                partition,
                offset,
                reason,
            )
            letter = {
                "ring": self.ring,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "reason": reason,
                "key": key,
                "value": value,
            }
            self._dlq.produce(
                self.cfg.deadletter_topic,
                key=f"{topic}:{partition}:{offset}".encode(),
                value=codec("pegasus.DeadLetter").encode(letter),
            )
        self._dlq.poll(0)

    def _update_lag(self, consumer: Consumer) -> None:
        """Lag and store size of every owned partition (runs once a heartbeat)."""
        with self.lock:
            owned = {tp: mat.store.applied_offset for tp, mat in self.parts.items()}
            for (topic, partition), mat in self.parts.items():
                metrics.STORE_BYTES.labels(self.ring, topic, str(partition)).set(
                    mat.store.size_bytes()
                )
        for (topic, partition), applied in owned.items():
            tp = TopicPartition(topic, partition)
            try:
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    # No fetch has reported this partition's end yet (it was just
                    # assigned). Asking the broker takes a round trip per
                    # partition on the consumer thread, so it is done only for a
                    # partition whose lag is not known at all; the others keep
                    # their last lag until a fetch reports the end.
                    with self.lock:
                        known = (topic, partition) in self.lag
                    if known:
                        continue
                    _low, high = consumer.get_watermark_offsets(tp, timeout=2)
            except KafkaException:
                continue
            lag = max(0, high - applied)
            with self.lock:
                if (topic, partition) in self.parts:
                    self.lag[(topic, partition)] = lag
            metrics.LAG.labels(self.ring, topic, str(partition)).set(lag)

    # -- state ------------------------------------------------------------------

    def in_sync(self) -> bool:
        """Every owned partition within the lag threshold: ``in_sync_lag`` to get in
        sync, the larger ``out_of_sync_lag`` to stay there (hysteresis)."""
        settings = self.cfg.server
        worst = self.worst_lag()
        with self.lock:
            limit = (
                max(settings.in_sync_lag, settings.out_of_sync_lag)
                if self._in_sync
                else (settings.in_sync_lag)
            )
            self._in_sync = self.assigned_once and worst <= limit
            return self._in_sync

    def worst_lag(self) -> int:
        """The largest lag of an owned partition; one whose lag is not known yet
        counts as far behind."""
        with self.lock:
            return max((self.lag.get(tp, 1 << 62) for tp in self.parts), default=0)

    def owned(self) -> list[str]:
        with self.lock:
            return sorted(f"{t}:{p}" for t, p in self.parts)

    def total_lag(self) -> int:
        with self.lock:
            return sum(self.lag.values())

    def _heartbeat(self, state: str | None = None) -> None:
        record = {
            "kind": "SERVER",
            "ring": self.ring,
            "server": self.server_id,
            "state": state or ("IN_SYNC" if self.in_sync() else "SYNCING"),
            "endpoint": self.endpoint or None,
            "owned": self.owned(),
            "standby": self.standby.standby() if self.standby else [],
            "lag": self.total_lag(),
            "sync_mode": self.sync_mode(),
            "sync_progress": 0.0,
            "sync_eta_s": None,
            "verified_with": None,
            "created_ms": self.started_ms,
            "updated_ms": now_ms(),
            "retired_ms": None,
        }
        try:
            self._writer.put(server_key(self.ring, self.server_id), record)
        except (BufferError, KafkaException) as exc:
            log.warning(
                "registry heartbeat failed ring=%s server=%s error=%s",
                self.ring,
                self.server_id,
                exc,
            )
        self._stop_if_retired()

    def sync_mode(self) -> str:
        rec = self.registry.ring(self.ring)
        return str(rec["sync_mode"]) if rec is not None else "replay"

    def _stop_if_retired(self) -> None:
        rec = self.registry.ring(self.ring)
        if rec is not None and rec["state"] == "RETIRED" and not self.stop_event.is_set():
            log.info("ring retired, stopping ring=%s server=%s", self.ring, self.server_id)
            self.stop()

    def stop(self) -> None:
        self.stop_event.set()

    def _shutdown(self, consumer: Consumer) -> None:
        try:
            self._heartbeat(state="STOPPED")
            self._writer.flush(5)
        except Exception as exc:
            log.warning("final heartbeat failed ring=%s error=%s", self.ring, exc)
        consumer.close()
        if self.sealer is not None:
            self.sealer.stop()
        if self.standby is not None:
            self.standby.close()
        with self.lock:
            parts, self.parts = self.parts, {}
        for mat in parts.values():
            mat.close()
        self._dlq.flush(5)
        self.registry.close()
        log.info("server stopped ring=%s server=%s", self.ring, self.server_id)
