"""The collector of one EMS host: scans from a source into the scan topic.

Frames go out through the idempotent, acks=all producer, keyed
``<site>/<host>`` and sent to the partition their points hash to.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, Message

from pegasus_kafka.collector.frames import ScanHeader, cut_frames
from pegasus_kafka.collector.sources import Source
from pegasus_kafka.config import Config
from pegasus_kafka.errors import KafkaUnavailable
from pegasus_kafka.kafka import clients
from pegasus_kafka.keys import partition_of
from pegasus_kafka.schema import codec, encode_frame

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, cfg: Config, source: Source) -> None:
        self.cfg = cfg
        self.source = source
        self.site = source.site
        self.producer = clients.producer(cfg)
        self.sent_frames = 0
        self.sent_points = 0
        self.failed = 0
        self.last_error: str | None = None

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self.last_error = f"{err.name()}: {err.str()}"
            log.error(
                "delivery failed site=%s host=%s error=%s",
                self.site.name,
                self.source.host,
                self.last_error,
            )

    def _produce(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, partition=partition, on_delivery=self._delivered
                )
                return
            except BufferError:
                self.producer.poll(0.05)

    def publish_metadata(self) -> int:
        meta = codec("pegasus.PointMeta")
        records = self.source.metadata()
        for rec in records:
            p = partition_of(rec["ikey"], self.cfg.topics.partitions)
            self._produce(self.cfg.meta_topic, p, str(rec["ikey"]).encode(), meta.encode(rec))
        return len(records)

    def collect(self, seq: int) -> int:
        """Read scan ``seq`` from the source and send it; returns frames sent."""
        result = self.source.read(seq)
        header = ScanHeader(
            site=self.site.name,
            host=self.source.host,
            role=result.role,
            seq=seq,
            scan_time_ms=result.scan_time_ms,
            scan_period_ms=self.site.scan_period_ms,
        )
        key = f"{self.site.name}/{self.source.host}".encode()
        frames = 0
        for scan in result.scans:
            for partition, frame in cut_frames(
                header, scan, self.cfg.topics.partitions, self.cfg.collector.frame_points
            ):
                self._produce(self.cfg.scan_topic, partition, key, encode_frame(frame))
                frames += 1
                self.sent_points += frame.count
        events = codec("pegasus.SystemEvent")
        event_partition = self.site.code % self.cfg.topics.partitions
        for event in result.events:
            self._produce(
                self.cfg.events_topic,
                event_partition,
                self.site.name.encode(),
                events.encode(event),
            )
        self.producer.poll(0)
        self.sent_frames += frames
        return frames

    def run(
        self,
        start: int | None = None,
        count: int | None = None,
        pace: bool = True,
        stop: threading.Event | None = None,
    ) -> int:
        """Collect scans from ``start`` (default: the current scan) on.

        With ``pace`` each scan is read when its time comes; without, as fast
        as the source allows (replay, tests, benchmarks).
        """
        period = self.site.scan_period_ms
        seq = start if start is not None else int(time.time() * 1000) // period
        done = 0
        stop = stop or threading.Event()
        while not stop.is_set() and (count is None or done < count):
            if pace:
                wait = (seq * period) / 1000 - time.time()
                if wait > 0 and stop.wait(wait):
                    break
            self.collect(seq)
            seq += 1
            done += 1
        return done

    def flush(self, timeout: float = 30.0) -> None:
        left = self.producer.flush(timeout)
        if left:
            raise KafkaUnavailable(f"{left} frames not acknowledged within {timeout:.0f}s")
        if self.failed:
            raise KafkaUnavailable(f"{self.failed} frames failed: {self.last_error}")

    def status(self) -> dict[str, Any]:
        return {
            "site": self.site.name,
            "host": self.source.host,
            "frames": self.sent_frames,
            "points": self.sent_points,
            "failed": self.failed,
            "last_error": self.last_error,
        }
