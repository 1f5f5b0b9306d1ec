"""Consumed messages, grouped the way materialisers apply them."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

#: (offset, key, value) of one record
Record = tuple[int, bytes | None, bytes | None]
TopicPartitionKey = tuple[str, int]


def take(consumer: Any, max_records: int, timeout: float) -> list[Any]:
    """Up to ``max_records`` messages: waits up to ``timeout`` for the first, then
    takes what is already fetched without waiting for more.

    A batch consume waits out its whole timeout unless it fills up, which
    would hold a scan's first frames back until the rest arrived.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=max_records - 1, timeout=0)]


def by_partition(msgs: Iterable[Any]) -> dict[TopicPartitionKey, list[Record]]:
    """Group messages by (topic, partition), keeping offset order; errors are logged."""
    out: dict[TopicPartitionKey, list[Record]] = defaultdict(list)
    for msg in msgs:
        err = msg.error()
        if err is not None:
            log.warning("consume error code=%s name=%s text=%s", err.code(), err.name(), err.str())
            continue
        out[(str(msg.topic()), int(msg.partition()))].append(
            (int(msg.offset()), msg.key(), msg.value())
        )
    return out
