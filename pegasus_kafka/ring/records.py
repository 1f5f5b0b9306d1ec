"""Materialisers for the record topics: system events and point metadata.

Each keeps its records as the Avro bytes it received, under keys laid out for
its queries; the decoded form is rebuilt on read.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from pegasus_kafka.batchread import int_fields
from pegasus_kafka.errors import MalformedRecord
from pegasus_kafka.kafka.messages import Record
from pegasus_kafka.ring.base import ApplyResult, Materialiser
from pegasus_kafka.ring.store import Batch, PartitionStore, raw_items, u64
from pegasus_kafka.schema import decode_record

_SIGN = 1 << 63
_VERSION = struct.Struct(">I")
K_STATE = b"record_state"


def _ikey_bytes(ikey: int) -> bytes:
    return u64((ikey + _SIGN) & (2**64 - 1))


def _point_column(ikeys: np.ndarray) -> np.ndarray:
    """:func:`_ikey_bytes` for a column of ikeys, as big-endian numbers."""
    return (ikeys.astype(np.uint64) ^ np.uint64(_SIGN)).astype(">u8")


def _join_keys(*columns: np.ndarray) -> list[bytes]:
    """Row i of each big-endian column, joined, for every row."""
    if not len(columns[0]):
        return []
    rows = np.empty(len(columns[0]), [(f"c{i}", c.dtype) for i, c in enumerate(columns)])
    for i, column in enumerate(columns):
        rows[f"c{i}"] = column
    raw, width = rows.tobytes(), rows.dtype.itemsize
    return [raw[at : at + width] for at in range(0, len(raw), width)]


class RecordPartition(Materialiser):
    """Common apply loop: decode, dedup, stage, commit with the offset."""

    COLUMN_FAMILIES: tuple[str, ...] = ()
    RECORD = ""

    def __init__(self, store: PartitionStore) -> None:
        super().__init__(store)
        raw = store.state(K_STATE)
        self.state: dict[str, Any] = json.loads(raw) if raw else {}

    def _stage(self, batch: Batch, offset: int, rec: dict[str, Any], value: bytes) -> bool:
        raise NotImplementedError

    def _apply_batch(self, records: list[Record]) -> ApplyResult:
        result = ApplyResult()
        with self.lock:
            batch = self.store.begin()
            for offset, _key, value in records:
                try:
                    rec = decode_record(self.RECORD, value)
                except MalformedRecord as exc:
                    self._skip(batch, result, offset, str(exc))
                    continue
                if self._stage(batch, offset, rec, value or b""):
                    result.applied += 1
                else:
                    result.duplicates += 1
            batch.put_state(K_STATE, json.dumps(self.state, sort_keys=True).encode())
            self.store.commit(batch, records[-1][0] + 1)
        return result


class EventPartition(RecordPartition):
    """System events, keyed by time then offset, for time-range reads."""

    COLUMN_FAMILIES = ("events", "skips")
    RECORD = "pegasus.SystemEvent"

    def _stage(self, batch: Batch, offset: int, rec: dict[str, Any], value: bytes) -> bool:
        name = f"{rec['site']}/{rec['host']}"
        seqs = self.state.setdefault("seq", {})
        if rec["seq"] <= seqs.get(name, -1):
            return False
        seqs[name] = rec["seq"]
        batch.put("events", u64(max(rec["time_ms"], 0)) + u64(offset), value)
        return True

    def events(self, t0: int, t1: int, limit: int = 10_000) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        it = self.store.cf("events").iter()
        it.seek(u64(max(t0, 0)))
        while it.valid() and len(out) < limit:
            key = it.key()
            if struct.unpack(">Q", key[:8])[0] > t1:
                break
            out.append(decode_record(self.RECORD, it.value()))
            it.next()
        return out


@dataclass(frozen=True)
class PointMatch:
    """A metadata search: name contains ``name``; the others match exactly. Case is
    ignored; an empty field matches anything."""

    name: str = ""
    site: str = ""
    substation: str = ""
    data_type: str = ""

    def accepts(self, rec: dict[str, Any]) -> bool:
        return (
            self.name.lower() in rec["name"].lower()
            and (not self.site or self.site.lower() == rec["site"].lower())
            and (not self.substation or self.substation.lower() == rec["substation"].lower())
            and (not self.data_type or self.data_type.upper() == rec["data_type"])
        )


class MetaPartition(RecordPartition):
    """Point metadata: every version by point, plus an index by time.

    ``latest`` holds each point's newest version (its number, then the
    record), derived from ``versions`` and outside the digest. It answers the
    version check on ingest and searches from disk, so a server's memory does
    not grow with the number of points.
    """

    COLUMN_FAMILIES = ("versions", "by_time", "latest", "skips")
    RECORD = "pegasus.PointMeta"
    FIELDS = ("ikey", "version", "valid_from_ms")
    K_LATEST_BUILT = b"latest_built"

    def __init__(self, store: PartitionStore) -> None:
        super().__init__(store)
        if store.state(self.K_LATEST_BUILT) is None:
            self._build_latest()

    def scan_digest(self) -> tuple[int, int, int]:
        # ``latest`` is derived from ``versions`` and outside the digest.
        return self.store.scan_digest(self.lock, families=("versions", "by_time", "skips"))

    def _build_latest(self) -> None:
        """Fill ``latest`` from ``versions`` (a store written before it existed)."""
        batch = self.store.begin()
        newest: tuple[bytes, bytes] | None = None
        for key, value in raw_items(self.store.cf("versions").items()):
            if newest is not None and newest[0][:8] != key[:8]:
                batch.put_raw("latest", newest[0][:8], newest[0][8:] + newest[1])
            newest = (key, value)
        if newest is not None:
            batch.put_raw("latest", newest[0][:8], newest[0][8:] + newest[1])
        batch.put_state(self.K_LATEST_BUILT, b"1")
        self.store.commit(batch, self.store.applied_offset)

    def _apply_batch(self, records: list[Record]) -> ApplyResult:
        """Keep each point's versions newer than the newest it has, in offset order.

        Both hosts' collectors send every version, so about half the records
        repeat one already kept. Records are checked all at once, reading only
        the fields the layout needs (:func:`~pegasus_kafka.batchread.int_fields`),
        and which to keep is worked out for the whole batch: a record is kept
        when its version is above the point's newest before the batch and
        above every earlier record's of the point in the batch, which is what
        applying them one by one keeps. The bytes kept are the bytes received.
        """
        result = ApplyResult()
        values = [value for _, _, value in records]
        problems, columns = int_fields(self.RECORD, values, self.FIELDS)
        ikeys, versions, valid_from = (np.array(c, np.int64) for c in columns)
        readable = np.array([problem is None for problem in problems], bool)
        in_range = readable & (versions >= 0) & (versions < 2**32)
        with self.lock:
            kept = self._newer(ikeys, versions, in_range)
            batch = self.store.begin()
            for i in np.flatnonzero(~in_range).tolist():
                offset = records[i][0]
                reason = problems[i] or f"{self.RECORD}: version {versions[i]} out of range"
                self._skip(batch, result, offset, reason)
            points = _point_column(ikeys[kept])
            numbers = versions[kept].astype(">u4")
            keys = _join_keys(points, numbers)
            at = _join_keys(np.maximum(valid_from[kept], 0).astype(">u8"), points, numbers)
            point_keys = _join_keys(points)
            held = [values[i] or b"" for i in kept.tolist()]
            batch.put_many("versions", keys, held)
            batch.put_many("by_time", at, [b""] * len(at))
            batch.put_many_raw(
                "latest",
                point_keys,
                [key[8:] + value for key, value in zip(keys, held, strict=True)],
            )
            result.applied = len(held)
            result.duplicates = int(in_range.sum()) - len(held)
            self.store.commit(batch, records[-1][0] + 1)
        return result

    def _newer(self, ikeys: np.ndarray, versions: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Indices, ascending, of the valid records whose version is above both the
        point's newest kept one and every earlier valid record's of the point."""
        candidates = np.flatnonzero(valid)
        # By point, each point's records in offset order (a stable sort).
        order = candidates[np.argsort(ikeys[candidates], kind="stable")]
        points, group = np.unique(ikeys[order], return_inverse=True)
        newest = self._newest_versions(points)
        # Each point's versions lifted above every earlier point's, so one
        # running maximum runs within each point.
        lifted = versions[order] + group.astype(np.int64) * 2**33
        before = np.maximum.accumulate(lifted)
        earlier = np.empty_like(before)
        earlier[1:] = before[:-1]
        first = np.ones(len(order), bool)
        first[1:] = group[1:] != group[:-1]
        earlier[first] = -1
        earlier[~first] -= group[~first].astype(np.int64) * 2**33
        keep = versions[order] > np.maximum(earlier, newest[group])
        return np.sort(order[keep])

    def _newest_versions(self, points: np.ndarray) -> np.ndarray:
        """Each point's newest kept version number, -1 where it has none."""
        keys: list[Any] = _join_keys(_point_column(points))
        found = cast(list[bytes | None], self.store.cf("latest").get(keys))
        return np.array(
            [-1 if raw is None else _VERSION.unpack_from(raw)[0] for raw in found], np.int64
        )

    def search(self, match: PointMatch, limit: int) -> list[dict[str, Any]]:
        """The current description of every point that matches, by invariant key.

        Records whose bytes cannot hold the searched strings are skipped
        without decoding (Avro keeps strings as UTF-8; for ASCII strings,
        folding the bytes' case folds the text's); the rest are decoded and
        matched exactly.
        """
        wanted = (match.name, match.site, match.substation)
        # bytes fold case for ASCII only, so only ASCII strings prefilter
        needles = [n.lower().encode() for n in wanted if n and n.isascii()]
        out: list[dict[str, Any]] = []
        for _, raw in raw_items(self.store.cf("latest").items()):
            if needles:
                folded = raw.lower()
                if not all(n in folded for n in needles):
                    continue
            rec = decode_record(self.RECORD, raw[4:])
            if match.accepts(rec):
                out.append(rec)
                if len(out) >= limit:
                    break
        return out

    def versions(self, ikey: int) -> list[dict[str, Any]]:
        prefix = _ikey_bytes(ikey)
        out: list[dict[str, Any]] = []
        it = self.store.cf("versions").iter()
        it.seek(prefix)
        while it.valid() and it.key().startswith(prefix):
            out.append(decode_record(self.RECORD, it.value()))
            it.next()
        return out


class ExceptionPartition(RecordPartition):
    """One partition of an application's exceptions topic, each id once.

    Every ring's applications publish each exception under the same id; the
    first copy in offset order is kept, so the content is a function of the
    topic's offsets like every other partition's. Keys: by time, by point, and
    the id itself.
    """

    COLUMN_FAMILIES = ("by_time", "by_point", "ids", "skips")

    def __init__(self, store: PartitionStore, record: str) -> None:
        super().__init__(store)
        self.RECORD = record
        self._staged: set[bytes] = set()

    def _apply_batch(self, records: list[Record]) -> ApplyResult:
        self._staged.clear()
        return super()._apply_batch(records)

    def _stage(self, batch: Batch, offset: int, rec: dict[str, Any], value: bytes) -> bool:
        ident = rec["id"].encode()
        if ident in self._staged or self.store.cf("ids").get(ident) is not None:
            return False
        self._staged.add(ident)
        at = u64(max(rec["time_ms"], 0))
        batch.put("ids", ident, at)
        batch.put("by_time", at + ident, value)
        batch.put("by_point", _ikey_bytes(rec["ikey"]) + at + ident, b"")
        return True

    def exceptions(
        self, t0: int, t1: int, ikey: int | None = None, limit: int = 100_000
    ) -> list[dict[str, Any]]:
        """Records with ``t0 <= time_ms <= t1`` (of one point, if given), by time."""
        out: list[dict[str, Any]] = []
        by_time = self.store.cf("by_time")
        if ikey is None:
            it = by_time.iter()
            it.seek(u64(max(t0, 0)))
            while it.valid() and len(out) < limit:
                if struct.unpack(">Q", it.key()[:8])[0] > t1:
                    break
                out.append(decode_record(self.RECORD, it.value()))
                it.next()
            return out
        prefix = _ikey_bytes(ikey)
        it = self.store.cf("by_point").iter()
        it.seek(prefix + u64(max(t0, 0)))
        while it.valid() and len(out) < limit and it.key().startswith(prefix):
            key = it.key()[len(prefix) :]
            if struct.unpack(">Q", key[:8])[0] > t1:
                break
            out.append(decode_record(self.RECORD, by_time[key]))
            it.next()
        return out
