"""Per-point samples decoded from the scan frames."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pegasus_kafka.config import Config
from pegasus_kafka.downstream.group import GroupReader
from pegasus_kafka.errors import MalformedRecord
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


class SampleStream(GroupReader):
    """A consumer-group member reading the scan topic: both hosts' raw streams.

    :meth:`poll_frames` gives whole frames (numpy columns, the cheap way for
    bulk consumers); :meth:`poll` the same data one sample at a time.
    """

    def __init__(self, cfg: Config, group: str, **client: Any) -> None:
        super().__init__(cfg, group, cfg.scan_topic, **client)
        self.malformed = 0

    def poll_frames(self, timeout: float = 1.0, max_records: int = 500) -> list[Frame]:
        out = []
        for msg in self._consume(max_records, timeout):
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
