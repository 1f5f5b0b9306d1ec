"""Builds confluent-kafka clients from the one :class:`~pegasus_kafka.config.Config`.

librdkafka passthrough settings (security, SASL, TLS) apply to every client;
the role-specific settings below are what the project relies on and win over
the passthrough.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pegasus_kafka.config import Config
from pegasus_kafka.errors import KafkaUnavailable

log = logging.getLogger(__name__)
#: librdkafka's own log lines go through Python logging, not straight to stderr
rdkafka_log = logging.getLogger("librdkafka")


def _log_error(err: KafkaError) -> None:
    # Transient broker-down errors repeat while a broker restarts; they are not fatal.
    log.warning("kafka client error code=%s name=%s text=%s", err.code(), err.name(), err.str())


def base_conf(cfg: Config) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": cfg.kafka.bootstrap,
        "error_cb": _log_error,
        "logger": rdkafka_log,
    }
    conf.update(cfg.kafka.client)
    return conf


def producer(cfg: Config, **extra: Any) -> Producer:
    """An idempotent, acks=all producer: no loss and no duplicate on retry."""
    conf = base_conf(cfg)
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": cfg.topics.compression,
            "linger.ms": 5,
            "message.max.bytes": 8 * 1024 * 1024,
        }
    )
    conf.update(extra)
    return Producer(conf)


def consumer(cfg: Config, group: str, **extra: Any) -> Consumer:
    """A consumer whose offsets the application controls (no auto-commit)."""
    conf = base_conf(cfg)
    conf.update(
        {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            # Prefetch is per partition: a server owning dozens would otherwise
            # buffer hundreds of megabytes while it replays.
            "queued.max.messages.kbytes": 2048,
            # ... and fetching resumes as soon as the application has taken
            # records, not a second later, so a full queue costs no latency.
            "fetch.queue.backoff.ms": 5,
            # One fetch request per broker is in flight. When it holds only
            # partitions at their end (the others paused, their queues full),
            # the broker parks it until this wait runs out, and the paused
            # partitions wait with it: 500 ms by default, seen as whole
            # idle cores while a server catches up. An idle consumer pays
            # an empty fetch per broker every 100 ms instead.
            "fetch.wait.max.ms": 100,
            "fetch.max.bytes": 16 * 1024 * 1024,
            "max.partition.fetch.bytes": 1024 * 1024,
        }
    )
    conf.update(extra)
    return Consumer(conf)


def admin(cfg: Config) -> AdminClient:
    return AdminClient(base_conf(cfg))


def wait_result(future: Any, context: str, timeout: float = 30.0) -> Any:
    """Resolve an admin future, wrapping Kafka errors with their code."""
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable.wrap(context, exc) from None
    except TimeoutError:
        raise KafkaUnavailable(f"{context}: no answer in {timeout:.0f}s") from None


def check_reachable(cfg: Config, timeout: float = 10.0) -> int:
    """Return the number of brokers, or raise :class:`KafkaUnavailable`."""
    try:
        md = admin(cfg).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable.wrap(f"cannot reach Kafka at {cfg.kafka.bootstrap}", exc) from None
    return len(md.brokers)


def read_range(
    cfg: Config, topic: str, partition: int, first: int, end: int, timeout: float = 60.0
) -> Iterator[tuple[int, bytes | None]]:
    """(offset, value) of a partition's records in ``[first, end)``, in offset
    order, read outside any consumer group; the record at ``end - 1`` must
    exist. Offsets the topic no longer holds are not given: the caller checks
    for those it needs. Raises :class:`KafkaUnavailable` when the range is not
    read in ``timeout``."""
    if first >= end:
        return
    reader = consumer(cfg, f"{cfg.kafka.topic_prefix}.range.{uuid.uuid4().hex[:8]}")
    try:
        reader.assign([TopicPartition(topic, partition, first)])
        deadline = time.monotonic() + timeout
        last = first - 1
        while last < end - 1:
            if time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"{topic}[{partition}]: read up to offset {last} of [{first}, {end}) "
                    f"in {timeout:.0f}s"
                )
            for msg in reader.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    raise KafkaUnavailable.wrap(f"reading {topic}[{partition}]", err)
                last = int(msg.offset() or 0)  # a record without an error has one
                if first <= last < end:
                    yield last, msg.value()
    finally:
        reader.close()
