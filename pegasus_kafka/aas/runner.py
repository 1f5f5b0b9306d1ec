"""The Kafka side of an advanced application: one consumer-group member that
mines the scan partitions assigned to it and publishes what it finds.

Each (ring, application) pair is its own consumer group, so adding an
application, or another instance of one, rebalances nobody else: not the
ring's servers, not the other applications. Instances of one application
split the scan partitions between them; each partition's task keeps its state
in a RocksDB store of its own (see :mod:`pegasus_kafka.aas.task`).

Besides its group's scan partitions an instance reads, without a group, the
meta partitions of the same numbers (point metadata is co-partitioned with
the scans) and, for applications that link events, every events partition.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pegasus_kafka.aas.analog import AnalogMiner
from pegasus_kafka.aas.metrics import EXCEPTIONS, LAG, MALFORMED, RECORDS
from pegasus_kafka.aas.status import StatusMiner
from pegasus_kafka.aas.task import AppTask, Miner
from pegasus_kafka.config import AAS_APPS, Config
from pegasus_kafka.errors import ConfigError, KafkaUnavailable, MalformedRecord
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.messages import take
from pegasus_kafka.keys import partition_of
from pegasus_kafka.schema import SCHEMA_HEADER, codec, decode_record

log = logging.getLogger(__name__)

#: Kafka header carrying the broker timestamp of the scan record an exception came from
SOURCE_TS_HEADER = "pegasus.source_ts"


def make_miner(cfg: Config, app: str) -> Miner:
    if app == "status":
        return StatusMiner(cfg.aas.link_horizon_ms)
    if app == "analog":
        return AnalogMiner()
    raise ConfigError("app", f"unknown application '{app}' (one of {', '.join(AAS_APPS)})")


class AppRunner:
    """Runs one instance of one application for one ring until :meth:`stop`."""

    def __init__(self, cfg: Config, ring: str, app: str, instance: int = 0) -> None:
        self.cfg = cfg
        self.ring = ring
        self.app = app
        self.group = cfg.aas_group(ring, app)
        self.topic = cfg.aas_topic(app)
        self.root = Path(cfg.store.data_dir) / "aas" / ring / app / f"i{instance}"
        self.tasks: dict[int, AppTask] = {}
        self.stop_event = threading.Event()
        self.published = 0
        self._undelivered: KafkaError | None = None
        self._side_dirty = True
        self._producer = clients.producer(cfg)
        probe = make_miner(cfg, app)
        self._codec = codec(probe.record)
        self.uses_events = probe.uses_events

    def stop(self) -> None:
        self.stop_event.set()

    # -- assignment ---------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assigned = []
        for tp in partitions:
            task = AppTask(
                self.root / f"p{tp.partition}",
                tp.partition,
                make_miner(self.cfg, self.app),
                self.cfg.store.sync_writes,
            )
            self._catch_up_meta(task)
            self.tasks[tp.partition] = task
            assigned.append(TopicPartition(tp.topic, tp.partition, task.scan_pos))
            log.info(
                "partition assigned app=%s ring=%s partition=%d offset=%d",
                self.app,
                self.ring,
                tp.partition,
                task.scan_pos,
            )
        consumer.incremental_assign(assigned)
        self._side_dirty = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._undelivered is None:
            self._checkpoint(consumer)
        for tp in partitions:
            task = self.tasks.pop(tp.partition, None)
            if task is not None:
                task.close()
        # The client unassigns the partitions itself once this returns.
        self._side_dirty = True

    def _catch_up_meta(self, task: AppTask) -> None:
        """Read the partition's metadata up to its current end before mining, so a
        point's first exceptions already carry its name."""
        meta = clients.consumer(self.cfg, f"{self.group}.meta")
        try:
            _, high = meta.get_watermark_offsets(
                TopicPartition(self.cfg.meta_topic, task.partition), timeout=10
            )
            if task.meta_pos >= high:
                return
            meta.assign([TopicPartition(self.cfg.meta_topic, task.partition, task.meta_pos)])
            deadline = time.monotonic() + 60
            while task.meta_pos < high and time.monotonic() < deadline:
                msgs: list[Any] = meta.consume(num_messages=5000, timeout=0.5)
                for msg in msgs:
                    if msg.error() is None:
                        task.on_meta(int(msg.offset()), msg.value())
        except KafkaException as exc:
            raise KafkaUnavailable.wrap("cannot read point metadata", exc) from None
        finally:
            meta.close()

    def _assign_side(self, side: Consumer) -> None:
        """Meta partitions of the tasks, and every events partition from the
        lowest position any task still needs."""
        parts = [
            TopicPartition(self.cfg.meta_topic, p, task.meta_pos) for p, task in self.tasks.items()
        ]
        if self.tasks and self.uses_events:
            for e in range(self.cfg.topics.partitions):
                start = min(task.events_pos.get(e, 0) for task in self.tasks.values())
                parts.append(TopicPartition(self.cfg.events_topic, e, start))
        side.assign(parts)
        self._side_dirty = False

    # -- the loop -----------------------------------------------------------------

    def run(self) -> None:
        consumer = clients.consumer(
            self.cfg,
            self.group,
            **{
                "partition.assignment.strategy": "cooperative-sticky",
                "client.id": f"{self.group}/{self.root.name}",
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1_000,
            },
        )
        side = clients.consumer(self.cfg, f"{self.group}.side")
        consumer.subscribe(
            [self.cfg.scan_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        next_checkpoint = time.monotonic() + self.cfg.aas.checkpoint_s
        clean = False
        try:
            while not self.stop_event.is_set():
                if self._side_dirty:
                    self._assign_side(side)
                if self.tasks:
                    self._side(side.consume(num_messages=5000, timeout=0))
                msgs = take(consumer, 2000, 0.1)
                self._scans(msgs)
                self._producer.poll(0)
                if time.monotonic() >= next_checkpoint:
                    self._checkpoint(consumer)
                    next_checkpoint = time.monotonic() + self.cfg.aas.checkpoint_s
            clean = True
        finally:
            # After a failure the state may be ahead of what was published: it is
            # dropped, and the next start replays from the last checkpoint.
            if clean:
                self._checkpoint(consumer)
            for task in self.tasks.values():
                task.close()
            self.tasks.clear()
            consumer.close()
            side.close()

    def _scans(self, msgs: list[Any]) -> None:
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error app=%s code=%s", self.app, err.name())
                continue
            task = self.tasks.get(int(msg.partition()))
            if task is None:
                continue
            RECORDS.labels(self.ring, self.app, "scan").inc()
            malformed = task.malformed
            found = task.on_scan(int(msg.offset()), msg.value())
            if task.malformed > malformed:
                MALFORMED.labels(self.ring, self.app).inc()
            if found:
                self._publish(task.partition, found, msg.timestamp()[1])

    def _side(self, msgs: list[Any]) -> None:
        for msg in msgs:
            if msg.error() is not None:
                continue
            topic, partition, offset = msg.topic(), int(msg.partition()), int(msg.offset())
            if topic == self.cfg.meta_topic:
                task = self.tasks.get(partition)
                if task is not None:
                    task.on_meta(offset, msg.value())
                continue
            RECORDS.labels(self.ring, self.app, "events").inc()
            try:
                event = decode_record("pegasus.SystemEvent", msg.value())
            except MalformedRecord as exc:
                MALFORMED.labels(self.ring, self.app).inc()
                log.warning(
                    "malformed event skipped partition=%d offset=%d error=%s",
                    partition,
                    offset,
                    exc,
                )
                event = None
            for task in self.tasks.values():
                if not task.wants_event(partition, offset) or event is None:
                    continue
                ikey = event.get("ikey")
                if (
                    ikey is None
                    or partition_of(int(ikey), self.cfg.topics.partitions) != task.partition
                ):
                    continue
                found = task.miner.on_event(event, task.meta)
                if found:
                    self._publish(task.partition, found, msg.timestamp()[1])

    def _publish(self, partition: int, records: list[dict[str, Any]], source_ts: int) -> None:
        headers: list[tuple[str, str | bytes | None]] = [
            (SCHEMA_HEADER, self._codec.name.encode()),
            (SOURCE_TS_HEADER, str(source_ts).encode()),
        ]
        for rec in records:
            value = self._codec.encode(rec)
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        value,
                        rec["id"].encode(),
                        partition=partition,
                        headers=headers,
                        on_delivery=self._delivered,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
            EXCEPTIONS.labels(self.ring, self.app, rec["kind"]).inc()
        self.published += len(records)

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._undelivered = err

    def _checkpoint(self, consumer: Consumer) -> None:
        """Flush, then record every task's state and positions (the commit order).

        Nothing is recorded while Kafka has not acknowledged every exception:
        the records since the last checkpoint are then mined again (by this
        instance later, or by the partition's next owner) and republished.
        """
        if not self.tasks:
            return
        if self._undelivered is not None:
            # Those exceptions are gone from the producer, and the state has moved
            # past them: it must never be recorded. Restarting replays them.
            raise KafkaUnavailable.wrap(
                f"exceptions of {self.app} could not be delivered to {self.topic}",
                self._undelivered,
            )
        if self._producer.flush(30) > 0:
            log.warning("checkpoint deferred: Kafka has not acknowledged app=%s", self.app)
            return
        offsets = []
        for p, task in self.tasks.items():
            task.checkpoint()
            offsets.append(TopicPartition(self.cfg.scan_topic, p, task.scan_pos))
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.info("group offset commit deferred app=%s error=%s", self.app, exc)
        for p, task in self.tasks.items():
            tp = TopicPartition(self.cfg.scan_topic, p)
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                LAG.labels(self.ring, self.app, str(p)).set(max(0, high - task.scan_pos))
