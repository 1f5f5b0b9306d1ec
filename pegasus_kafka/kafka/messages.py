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
