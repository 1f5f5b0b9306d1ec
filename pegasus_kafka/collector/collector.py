"""The collector of one EMS host: scans from a source, through the spool, into Kafka.

Every record (frames, events, metadata) is appended to the durable spool
first (:mod:`pegasus_kafka.collector.spool`) and handed to the idempotent,
acks=all producer, which retries without limit while Kafka is unreachable.
A record leaves the spool only when Kafka has acknowledged it. If the
producer's own queue is full, records wait in the spool and are sent, in
order, as soon as there is room; after a restart, everything the spool still
holds is sent again.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message
from prometheus_client import Counter, Gauge

from pegasus_kafka.collector.frames import ScanHeader, cut_frames
from pegasus_kafka.collector.sources import Source
from pegasus_kafka.collector.spool import Spool, SpoolFull, pack, unpack
from pegasus_kafka.config import Config
from pegasus_kafka.errors import KafkaUnavailable
from pegasus_kafka.kafka import clients
from pegasus_kafka.keys import partition_of
from pegasus_kafka.schema import LIMIT, codec, encode_frame

log = logging.getLogger(__name__)

#: records the producer may hold before catch-up from the spool waits
QUEUE_ROOM = 50_000
SPOOL_DEPTH = Gauge("pegasus_collector_spool_records", "Records not yet acknowledged", ["host"])
SKIPPED_SCANS = Counter(
    "pegasus_collector_skipped_scans", "Scans not collected because the spool was full", ["host"]
)
SENT = Counter("pegasus_collector_points", "Points sent", ["host"])


class Collector:
    def __init__(self, cfg: Config, source: Source, spool_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.source = source
        self.site = source.site
        self.name = f"{self.site.name}/{source.host}"
        settings = cfg.collector
        # One spool per system (topic prefix) and host: a spool is only ever
        # replayed into the topics it was written for.
        folder = spool_dir or (
            Path(settings.spool_dir) / cfg.kafka.topic_prefix / self.site.name / source.host
        )
        self.spool = Spool(
            folder, settings.spool_max_bytes, settings.fsync, settings.fsync_interval_ms
        )
        # Infinite delivery timeout: while Kafka is away the producer keeps
        # retrying, and the spool keeps what does not fit in its queue.
        self.producer = clients.producer(cfg, **{"message.timeout.ms": 0})
        self.send_cursor = self.spool.acked
        self.sent_frames = 0
        self.sent_points = 0
        self.skipped_scans = 0
        self._last_skipped: int | None = None
        self.failed = 0
        self.last_error: str | None = None
        #: the newest scan read and spooled (or skipped)
        self.last_scan: int | None = None
        self._resend = False
        # (scan, last spool sequence of that scan), for "oldest unsent scan"
        self._scan_ends: collections.deque[tuple[int, int]] = collections.deque()
        # The next frame number per data type and partition, within the scan
        # being polled
        self._chunks: dict[int, list[int]] = {}
        self._started = time.monotonic()
        self.role = "unknown"

    def _delivered(self, seq: int) -> Any:
        def callback(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                self.spool.ack(seq)
                return
            self.failed += 1
            self.last_error = f"{err.name()}: {err.str()}"
            self._resend = True
            log.error(
                "delivery failed collector=%s seq=%d error=%s", self.name, seq, self.last_error
            )

        return callback

    def _send(self, seq: int, payload: bytes) -> bool:
        topic, partition, key, value = unpack(payload)
        try:
            self.producer.produce(
                topic, value=value, key=key, partition=partition, on_delivery=self._delivered(seq)
            )
        except BufferError:
            return False
        self.send_cursor = seq + 1
        return True

    def _emit(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        payload = pack(topic, partition, key, value)
        seq = self.spool.append(payload)
        if self.send_cursor == seq:
            self._send(seq, payload)

    def pump(self) -> None:
        """Hand spooled records to the producer, in order, while it has room."""
        self.producer.poll(0)
        if self._resend:
            self._resend = False
            self.send_cursor = self.spool.acked
        # Catch up from disk only while the producer's queue has room: during an
        # outage it is full, and re-reading the spool every scan would be wasted I/O.
        if self.send_cursor < self.spool.end and len(self.producer) < QUEUE_ROOM:
            for seq, payload in self.spool.read(self.send_cursor):
                if not self._send(seq, payload):
                    break
        SPOOL_DEPTH.labels(self.name).set(self.spool.depth())

    def publish_metadata(self, upto: int | None = None) -> int:
        """Send every point's metadata versions up to scan ``upto``: at start, so a
        change made while the collector was down is not lost (rings keep each
        version once)."""
        records = self.source.metadata(upto)
        self._send_meta(records)
        return len(records)

    def _send_meta(self, records: list[dict[str, Any]]) -> None:
        meta = codec("pegasus.PointMeta")
        for rec in records:
            p = partition_of(rec["ikey"], self.cfg.topics.partitions)
            self._emit(self.cfg.meta_topic, p, str(rec["ikey"]).encode(), meta.encode(rec))
            self.producer.poll(0)

    def collect(self, seq: int, group: int = 0) -> int:
        """Read poll group ``group`` of scan ``seq`` from the source and spool and
        send it; returns frames sent.

        When the spool is full the scan is skipped, counted and logged: spooled
        data is never dropped to make room.
        """
        self.pump()
        result = self.source.read(seq, group)
        header = ScanHeader(
            site=self.site.name,
            host=self.source.host,
            role=result.role,
            seq=seq,
            scan_time_ms=result.scan_time_ms,
            scan_period_ms=self.site.scan_period_ms,
        )
        key = self.name.encode()
        frames = 0
        if group == 0:
            self._chunks = {}
        try:
            # A scan's limits go first, so whoever reads the partition in order
            # judges each sample against the limits of its own scan.
            for scan in sorted(result.scans, key=lambda s: (s.data_type != LIMIT, s.data_type)):
                chunks = self._chunks.setdefault(scan.data_type, [0] * self.cfg.topics.partitions)
                for partition, frame in cut_frames(
                    header,
                    scan,
                    self.cfg.topics.partitions,
                    self.cfg.collector.frame_points,
                    chunks,
                ):
                    self._emit(self.cfg.scan_topic, partition, key, encode_frame(frame))
                    chunks[partition] = frame.chunk + 1
                    frames += 1
                    self.sent_points += frame.count
            self._send_meta(result.meta)
            events = codec("pegasus.SystemEvent")
            event_partition = self.site.code % self.cfg.topics.partitions
            for event in result.events:
                self._emit(
                    self.cfg.events_topic,
                    event_partition,
                    self.site.name.encode(),
                    events.encode(event),
                )
        except SpoolFull as exc:
            # A scan counts once, however many of its poll groups miss.
            if self._last_skipped != seq:
                self._last_skipped = seq
                self.skipped_scans += 1
                SKIPPED_SCANS.labels(self.name).inc()
            log.error(
                "scan skipped collector=%s seq=%d group=%d reason=%s", self.name, seq, group, exc
            )
        self.producer.poll(0)
        self.sent_frames += frames
        self.role = "primary" if result.role == 0 else "backup"
        self.last_scan = seq
        self._scan_ends.append((seq, self.spool.end - 1))
        self._write_status()
        return frames

    def oldest_unsent_scan(self) -> int | None:
        while self._scan_ends and self._scan_ends[0][1] < self.spool.acked:
            self._scan_ends.popleft()
        return self._scan_ends[0][0] if self._scan_ends else None

    def _write_status(self) -> None:
        """Status for operators (``pegasus collector status``), replaced atomically."""
        path = self.spool.path / "status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status()))
        tmp.replace(path)

    def run(
        self,
        start: int | None = None,
        count: int | None = None,
        pace: bool = True,
        stop: threading.Event | None = None,
        before_scan: Callable[[int], None] | None = None,
    ) -> int:
        """Collect scans from ``start`` (default: the current scan) on.

        With ``pace`` each scan's poll group is read when its time comes;
        without, as fast as the source allows (replay, tests, benchmarks).
        """
        period = self.site.scan_period_ms
        groups = self.source.poll_groups
        seq = start if start is not None else int(time.time() * 1000) // period
        done = 0
        stop = stop or threading.Event()
        while not stop.is_set() and (count is None or done < count):
            for group in range(groups):
                if pace:
                    due = (seq * period + group * period // groups) / 1000
                    if group == 0:
                        # Half a poll interval ahead: after the previous poll has
                        # gone out, so the source's work does not delay it.
                        self._wait_until(due - period / groups / 2000, stop)
                        self.source.prepare(seq)
                    if not self._wait_until(due, stop):
                        return done
                if group == 0 and before_scan is not None:
                    before_scan(seq)
                self.collect(seq, group)
            seq += 1
            done += 1
        return done

    def _wait_until(self, when: float, stop: threading.Event) -> bool:
        """Pump the spool until wall-clock time ``when``; False if stopped first."""
        while (wait := when - time.time()) > 0 and not stop.is_set():
            self.pump()
            stop.wait(min(wait, 0.1))
        return not stop.is_set()

    def flush(self, timeout: float = 30.0) -> None:
        """Send everything spooled and wait for Kafka's acknowledgements."""
        deadline = time.monotonic() + timeout
        while self.spool.depth() and time.monotonic() < deadline:
            self.pump()
            self.producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        self._write_status()
        if self.spool.depth():
            raise KafkaUnavailable(
                f"{self.spool.depth()} records still unacknowledged after {timeout:.0f}s "
                f"(kept in the spool {self.spool.path})"
            )

    def close(self) -> None:
        self.spool.close()

    def status(self) -> dict[str, Any]:
        elapsed = max(1e-9, time.monotonic() - self._started)
        return {
            "site": self.site.name,
            "host": self.source.host,
            "role": self.role,
            "oldest_unsent_scan": self.oldest_unsent_scan(),
            "last_scan": self.last_scan,
            "points_per_s": round(self.sent_points / elapsed, 1),
            "updated_ms": int(time.time() * 1000),
            "frames": self.sent_frames,
            "points": self.sent_points,
            "spool_records": self.spool.depth(),
            "spool_bytes": self.spool.size_bytes(),
            "skipped_scans": self.skipped_scans,
            "failed": self.failed,
            "last_error": self.last_error,
        }
