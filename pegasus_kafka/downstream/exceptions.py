"""The exceptions every ring's applications publish, each id once."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from pegasus_kafka.config import AAS_APPS, Config
from pegasus_kafka.downstream.group import GroupReader
from pegasus_kafka.errors import ConfigError, MalformedRecord
from pegasus_kafka.schema import EXCEPTION_RECORDS, codec, decode_record

log = logging.getLogger(__name__)


class ExceptionStream(GroupReader):
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
        super().__init__(cfg, group, cfg.aas_topic(app), **client)
        self.codec = codec(EXCEPTION_RECORDS[app])
        self.remember = remember
        self.duplicates = 0
        self.malformed = 0
        self._seen: dict[int, OrderedDict[str, None]] = {}

    def poll(self, timeout: float = 1.0, max_records: int = 1000) -> list[dict[str, Any]]:
        """New exceptions, first copy of each id only, in partition order."""
        out = []
        for msg in self._consume(max_records, timeout):
            partition = int(msg.partition())
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
