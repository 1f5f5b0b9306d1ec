"""The collector's durable spool: every record is on local disk before Kafka sees it.

Layout: a directory of segment files ``<first seq>.seg``. A record is
``u32 length | u32 crc32 | payload`` and has a sequence number (its position
in the spool, counting from 0 forever). ``acked`` holds the sequence below
which Kafka has acknowledged everything; it is replaced atomically.

* ``append`` writes a record; it is durable according to the fsync policy:
  ``always`` (fsync each record: nothing acknowledged by the source is ever
  lost), ``interval`` (fsync at most every ``fsync_interval_ms``: a power cut
  can lose that window, a process crash loses nothing) or ``never`` (the OS
  decides).
* ``ack`` marks records delivered. Whole segments below the acknowledged
  watermark are deleted.
* After a restart, everything from the watermark on is sent again, in order.
  Some of it may already be in Kafka; rings apply frames once by (site, host,
  seq, data type, chunk), so resending never duplicates data in the RDS.
* The spool is bounded by ``max_bytes``. When full, ``append`` refuses the
  record (:class:`SpoolFull`): the collector then skips new scans, counting
  and logging each one, and never drops what the spool already holds, which
  is the older and irreplaceable data.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pegasus_kafka.errors import PegasusError

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<II")
_ENVELOPE = struct.Struct("<HiI")
SEGMENT_BYTES = 64 * 1024 * 1024


class SpoolFull(PegasusError):
    """The spool reached its size bound; the record was not accepted."""

    hint = "Kafka has been unreachable too long; restore it, or raise collector.spool_max_bytes"


def pack(topic: str, partition: int, key: bytes, value: bytes) -> bytes:
    t = topic.encode()
    return _ENVELOPE.pack(len(t), partition, len(key)) + t + key + value


def unpack(payload: bytes) -> tuple[str, int, bytes, bytes]:
    tlen, partition, klen = _ENVELOPE.unpack_from(payload)
    at = _ENVELOPE.size
    topic = payload[at : at + tlen].decode()
    key = payload[at + tlen : at + tlen + klen]
    return topic, partition, key, payload[at + tlen + klen :]


class Spool:
    def __init__(
        self, path: Path, max_bytes: int, fsync: str = "interval", fsync_interval_ms: int = 200
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.fsync_interval = fsync_interval_ms / 1000
        self._last_sync = 0.0
        acked = self.path / "acked"
        self.acked = int(acked.read_text()) if acked.exists() else 0
        self._acked_set: set[int] = set()
        self.end = self._recover()
        self._file = self._open_tail()
        self._size = sum(p.stat().st_size for _, p in self._segments())

    def _segments(self) -> list[tuple[int, Path]]:
        return sorted((int(p.stem), p) for p in self.path.glob("*.seg"))

    def _recover(self) -> int:
        """Find the end of the spool, cutting off a record torn by a crash."""
        segments = self._segments()
        if not segments:
            return self.acked
        first, last = segments[-1]
        count, good = 0, 0
        with open(last, "rb") as fh:
            data = fh.read()
        while good + _HEAD.size <= len(data):
            length, crc = _HEAD.unpack_from(data, good)
            body = data[good + _HEAD.size : good + _HEAD.size + length]
            if len(body) != length or zlib.crc32(body) != crc:
                break
            good += _HEAD.size + length
            count += 1
        if good != len(data):
            log.warning("spool: cut a torn record at the end of %s", last.name)
            with open(last, "r+b") as fh:
                fh.truncate(good)
        return first + count

    def _open_tail(self) -> BinaryIO:
        segments = self._segments()
        if segments and segments[-1][1].stat().st_size < SEGMENT_BYTES:
            return open(segments[-1][1], "ab")
        return open(self.path / f"{self.end:020d}.seg", "ab")

    def size_bytes(self) -> int:
        return self._size

    def depth(self) -> int:
        """Records not yet acknowledged by Kafka."""
        return self.end - self.acked

    def append(self, payload: bytes) -> int:
        """Store a record durably (per the fsync policy); returns its sequence."""
        if self.size_bytes() + len(payload) + _HEAD.size > self.max_bytes:
            raise SpoolFull(f"spool {self.path} holds {self.depth()} unsent records")
        if self._file.tell() >= SEGMENT_BYTES:
            self._file.close()
            self._file = open(self.path / f"{self.end:020d}.seg", "ab")  # noqa: SIM115
        self._file.write(_HEAD.pack(len(payload), zlib.crc32(payload)) + payload)
        self._size += _HEAD.size + len(payload)
        self._sync(force=self.fsync == "always")
        seq = self.end
        self.end += 1
        return seq

    def _sync(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or (self.fsync == "interval" and now - self._last_sync >= self.fsync_interval):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._last_sync = now
        elif self.fsync != "always":
            self._file.flush()

    def read(self, start: int) -> Iterator[tuple[int, bytes]]:
        """(sequence, payload) of every record from ``start`` on, in order.

        Segments wholly before ``start`` are not opened, and records before it
        are skipped by seeking, so catching up costs only what is still unsent.
        """
        self._file.flush()
        segments = self._segments()
        for i, (first, path) in enumerate(segments):
            if i + 1 < len(segments) and segments[i + 1][0] <= start:
                continue
            seq = first
            with open(path, "rb") as fh:
                while head := fh.read(_HEAD.size):
                    if len(head) < _HEAD.size:
                        break
                    length, _crc = _HEAD.unpack(head)
                    if seq < start:
                        fh.seek(length, os.SEEK_CUR)
                    else:
                        body = fh.read(length)
                        if len(body) < length:
                            break
                        yield seq, body
                    seq += 1

    def ack(self, seq: int) -> None:
        """Kafka acknowledged record ``seq`` (acks may arrive out of order across partitions)."""
        self._acked_set.add(seq)
        moved = False
        while self.acked in self._acked_set:
            self._acked_set.discard(self.acked)
            self.acked += 1
            moved = True
        if moved:
            self._save_acked()

    def _save_acked(self) -> None:
        tmp = self.path / "acked.tmp"
        tmp.write_text(str(self.acked))
        tmp.replace(self.path / "acked")
        segments = self._segments()
        for (first, path), nxt in itertools.pairwise(segments):
            if nxt[0] <= self.acked:
                self._size -= path.stat().st_size
                path.unlink()
                log.debug("spool: dropped delivered segment %s", first)

    def close(self) -> None:
        self._sync(force=True)
        self._file.close()
