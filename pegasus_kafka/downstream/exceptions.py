"""The exceptions every ring's applications publish, each id once."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from confluent_kafka import TopicPartition

from pegasus_kafka.config import AAS_APPS, Config
from pegasus_kafka.errors import ConfigError, MalformedRecord
from pegasus_kafka.kafka import clients
from pegasus_kafka.schema import EXCEPTION_RECORDS, codec, decode_record

log = logging.getLogger(__name__)


class ExceptionStream:
    """A consumer-group member reading one application's exceptions topic."""

    def __init__(
        self,
        cfg: Config,
        group: str,
        app: str,
        remember: int = 1_000_000,
        **client: Any,
    ) -> None:
        if app not in AAS_APPS:
            raise ConfigError("app", f"unknown application '{app}' (one of {', '.join(AAS_APPS)})")
        self.codec = codec(EXCEPTION_RECORDS[app])
        self.remember = remember
        self.duplicates = 0
        self.malformed = 0
        self._seen: dict[int, OrderedDict[str, None]] = {}
        self._positions: dict[int, int] = {}
        self._consumer = clients.consumer(cfg, group, **client)
        self._consumer.subscribe([cfg.aas_topic(app)])
        self._topic = cfg.aas_topic(app)

    def poll(self, timeout: float = 1.0, max_records: int = 1000) -> list[dict[str, Any]]:
        """New exceptions, first copy of each id only, in partition order."""
        out = []
        msgs: list[Any] = self._consumer.consume(num_messages=max_records, timeout=timeout)
        for msg in msgs:
            if msg.error() is not None:
                log.warning("consume error code=%s", msg.error().name())
                continue
            partition = int(msg.partition())
            self._positions[partition] = int(msg.offset()) + 1
            key = (msg.key() or b"").decode(errors="replace")
            seen = self._seen.setdefault(partition, OrderedDict())
            if key in seen:
                self.duplicates += 1
                continue
            try:
                rec = decode_record(self.codec.name, msg.value())
            except MalformedRecord as exc:
                self.malformed += 1
                log.warning(
                    "malformed exception skipped partition=%d offset=%d error=%s",
                    partition,
                    msg.offset(),
                    exc,
                )
                continue
            seen[key] = None
            if len(seen) > self.remember:
                seen.popitem(last=False)
            out.append(rec)
        return out

    def commit(self) -> None:
        """Record everything returned so far as processed (synchronously)."""
        if self._positions:
            self._consumer.commit(
                offsets=[TopicPartition(self._topic, p, o) for p, o in self._positions.items()],
                asynchronous=False,
            )

    def close(self) -> None:
        self._consumer.close()
