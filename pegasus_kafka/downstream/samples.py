"""Per-point samples decoded from the scan frames."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TopicPartition

from pegasus_kafka.config import Config
from pegasus_kafka.errors import MalformedRecord
from pegasus_kafka.kafka import clients
from pegasus_kafka.schema import DATA_TYPES, LIMIT, ROLES, Frame, decode_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    site: str
    host: str
    role: str
    scan_time_ms: int
    data_type: str
    ikey: int
    #: the value; for LIMIT the four limits (emergency low, low, high, emergency high)
    value: float | tuple[float, float, float, float]
    quality: int


def samples_of(frame: Frame) -> Iterator[Sample]:
    kind = DATA_TYPES[frame.data_type]
    role = ROLES[frame.role]
    for i in range(frame.count):
        value: Any = (
            tuple(float(x) for x in frame.values[i])
            if frame.data_type == LIMIT
            else float(frame.values[i])
        )
        yield Sample(
            frame.site,
            frame.host,
            role,
            frame.scan_time_ms,
            kind,
            int(frame.ikeys[i]),
            value,
            int(frame.quality[i]),
        )


class SampleStream:
    """A consumer-group member reading the scan topic: both hosts' raw streams.

    :meth:`poll_frames` gives whole frames (numpy columns, the cheap way for
    bulk consumers); :meth:`poll` the same data one sample at a time.
    """

    def __init__(self, cfg: Config, group: str, **client: Any) -> None:
        self.malformed = 0
        self._topic = cfg.scan_topic
        self._positions: dict[int, int] = {}
        self._consumer = clients.consumer(cfg, group, **client)
        self._consumer.subscribe([cfg.scan_topic])

    def poll_frames(self, timeout: float = 1.0, max_records: int = 500) -> list[Frame]:
        out = []
        msgs: list[Any] = self._consumer.consume(num_messages=max_records, timeout=timeout)
        for msg in msgs:
            if msg.error() is not None:
                continue
            self._positions[int(msg.partition())] = int(msg.offset()) + 1
            try:
                out.append(decode_frame(msg.value()))
            except MalformedRecord as exc:
                self.malformed += 1
                log.warning(
                    "malformed frame skipped partition=%d offset=%d error=%s",
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
        return out

    def poll(self, timeout: float = 1.0, max_records: int = 500) -> list[Sample]:
        return [s for frame in self.poll_frames(timeout, max_records) for s in samples_of(frame)]

    def commit(self) -> None:
        if self._positions:
            self._consumer.commit(
                offsets=[TopicPartition(self._topic, p, o) for p, o in self._positions.items()],
                asynchronous=False,
            )

    def close(self) -> None:
        self._consumer.close()
