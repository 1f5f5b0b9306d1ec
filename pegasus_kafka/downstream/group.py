"""A consumer-group member that commits exactly what it has handed out."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import TopicPartition

from pegasus_kafka.config import Config
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.messages import take

log = logging.getLogger(__name__)


class GroupReader:
    """Subscribes one topic; :meth:`commit` records every record returned by
    :meth:`_consume` so far as processed (at least once)."""

    def __init__(self, cfg: Config, group: str, topic: str, **client: Any) -> None:
        self._topic = topic
        self._positions: dict[int, int] = {}
        self._consumer = clients.consumer(cfg, group, **client)
        self._consumer.subscribe([topic])

    def _consume(self, max_records: int, timeout: float) -> list[Any]:
        """The next records without errors, their positions noted for commit."""
        msgs = take(self._consumer, max_records, timeout)
        good = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                log.warning("consume error topic=%s code=%s", self._topic, err.name())
                continue
            self._positions[int(msg.partition())] = int(msg.offset()) + 1
            good.append(msg)
        return good

    def commit(self) -> None:
        """Record everything returned so far as processed (synchronously)."""
        if self._positions:
            self._consumer.commit(
                offsets=[TopicPartition(self._topic, p, o) for p, o in self._positions.items()],
                asynchronous=False,
            )

    def close(self) -> None:
        self._consumer.close()
