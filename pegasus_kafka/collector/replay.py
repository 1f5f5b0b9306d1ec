"""Replaying recorded scans from files: for migrating history and for tests.

Two formats, both holding one EMS host's scans:

- **Frame files** (``.frames``): the scan frames themselves, each a 4-byte
  big-endian length and then the frame as ``pegasus.ScanFrame`` Avro bytes
  (``schemas/pegasus.ScanFrame.avsc``). :func:`record_frames` writes them from
  any source.
- **CSV**: a header ``scan,time_ms,ikey,type,value,quality,role`` and a row
  per sample; ``type`` is ANALOG, ACCUMULATOR or STATUS, ``role`` primary or
  backup. Rows of one scan may come in any order; scans are replayed in
  ascending scan number.

A scan whose samples carry several times was polled in groups (its RTUs at
different moments); each time is one poll group, in time order. A replay
source reads the whole file at open (recorded files are bounded) and answers
``read(seq, group)`` for the scans it holds; :attr:`seqs` lists them. A bad
row or frame is a clear error naming the line or offset, before anything is
sent.
"""

from __future__ import annotations

import csv
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pegasus_kafka.collector.frames import Scan, ScanHeader, cut_frames
from pegasus_kafka.collector.sources import ScanResult, Source
from pegasus_kafka.config import SiteConfig
from pegasus_kafka.errors import MalformedRecord, ReplayError
from pegasus_kafka.schema import (
    BACKUP,
    DATA_TYPES,
    LIMIT,
    PRIMARY,
    STATUS,
    decode_frame,
    encode_frame,
)

_LEN = struct.Struct(">I")
CSV_COLUMNS = ("scan", "time_ms", "ikey", "type", "value", "quality", "role")


class ReplaySource:
    """Recorded scans of one host, replayed by scan number and poll group."""

    def __init__(self, site: SiteConfig, host: str, scans: dict[int, list[ScanResult]]) -> None:
        self.site = site
        self.host = host
        self._scans = scans
        self.seqs = sorted(scans)
        self.poll_groups = max((len(polls) for polls in scans.values()), default=1)

    def metadata(self, upto: int | None = None) -> list[dict[str, Any]]:
        return []

    def prepare(self, seq: int) -> None:
        """A recording has nothing to compute ahead."""

    def read(self, seq: int, group: int = 0) -> ScanResult:
        polls = self._scans.get(seq)
        if polls is None:
            raise ReplayError(f"scan {seq} is not in the recording")
        if group < len(polls):
            return polls[group]
        # A scan polled in fewer groups than the recording's most: nothing more.
        return ScanResult(scan_time_ms=polls[-1].scan_time_ms, role=polls[-1].role, scans=[])


def _polls(
    parts: dict[tuple[int, int], dict[int, list[Scan]]], roles: dict[int, int]
) -> dict[int, list[ScanResult]]:
    """Per scan, its poll groups in time order."""
    scans: dict[int, list[ScanResult]] = defaultdict(list)
    for seq, time_ms in sorted(parts):
        scans[seq].append(_result(parts[seq, time_ms], time_ms, roles[seq]))
    return dict(scans)


def _result(parts: dict[int, list[Scan]], time_ms: int, role: int) -> ScanResult:
    scans = []
    for dtype, pieces in sorted(parts.items()):
        scans.append(
            Scan(
                dtype,
                np.concatenate([p.ikeys for p in pieces]),
                np.concatenate([p.values for p in pieces]),
                np.concatenate([p.quality for p in pieces]),
                np.concatenate([p.changes for p in pieces]) if dtype == STATUS else None,
            )
        )
    return ScanResult(scan_time_ms=time_ms, role=role, scans=scans)


def read_frames(site: SiteConfig, host: str, path: Path) -> ReplaySource:
    data = path.read_bytes()
    by_poll: dict[tuple[int, int], dict[int, list[Scan]]] = defaultdict(lambda: defaultdict(list))
    roles: dict[int, int] = {}
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ReplayError(f"{path}: truncated length at byte {pos}")
        (n,) = _LEN.unpack_from(data, pos)
        try:
            frame = decode_frame(data[pos + 4 : pos + 4 + n])
        except MalformedRecord as exc:
            raise ReplayError(f"{path}: bad frame at byte {pos}: {exc}") from None
        if frame.host != host or frame.site != site.name:
            raise ReplayError(f"{path}: frame at byte {pos} is {frame.site}/{frame.host}")
        changes = frame.changes if frame.data_type == STATUS else None
        scan = Scan(frame.data_type, frame.ikeys, frame.values, frame.quality, changes)
        if roles.setdefault(frame.seq, frame.role) != frame.role:
            raise ReplayError(f"{path}: scan {frame.seq} has two roles (frame at byte {pos})")
        by_poll[frame.seq, frame.scan_time_ms][frame.data_type].append(scan)
        pos += 4 + n
    return ReplaySource(site, host, _polls(by_poll, roles))


def record_frames(source: Source, seqs: range, path: Path, partitions: int = 1) -> int:
    """Write ``source``'s scans as a frame file; returns the frames written."""
    written = 0
    site = source.site
    with path.open("wb") as out:
        for seq, group in _scan_polls(source, seqs):
            res = source.read(seq, group)
            header = ScanHeader(
                site.name, source.host, res.role, seq, res.scan_time_ms, site.scan_period_ms
            )
            for scan in res.scans:
                if scan.data_type == LIMIT:
                    continue
                for _, frame in cut_frames(header, scan, partitions, 1 << 20):
                    blob = encode_frame(frame)
                    out.write(_LEN.pack(len(blob)) + blob)
                    written += 1
    return written


def _scan_polls(source: Source, seqs: range) -> list[tuple[int, int]]:
    return [(seq, group) for seq in seqs for group in range(source.poll_groups)]


def read_csv(site: SiteConfig, host: str, path: Path) -> ReplaySource:
    rows: dict[tuple[int, int], dict[int, list[tuple[int, float, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    roles: dict[int, int] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise ReplayError(f"{path}: header must be {','.join(CSV_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            try:
                seq, time_ms, ikey = int(row["scan"]), int(row["time_ms"]), int(row["ikey"])
                dtype = DATA_TYPES.index(row["type"])
                value, quality = float(row["value"]), int(row["quality"])
                role = {"primary": PRIMARY, "backup": BACKUP}[row["role"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise ReplayError(f"{path}:{line}: {type(exc).__name__}: {exc}") from None
            if dtype == LIMIT:
                raise ReplayError(f"{path}:{line}: limits are not replayed from CSV")
            if roles.setdefault(seq, role) != role:
                raise ReplayError(f"{path}:{line}: scan {seq} has two roles")
            rows[seq, time_ms][dtype].append((ikey, value, quality))
    polls = {}
    for poll, by_type in rows.items():
        parts: dict[int, list[Scan]] = {}
        for dtype, samples in by_type.items():
            samples.sort()
            keys = np.array([s[0] for s in samples], np.int64)
            values = np.array([s[1] for s in samples], np.float64)
            qual = np.array([s[2] for s in samples], np.uint8)
            # A status change is a state different from the previous scan's; the
            # file holds states only, so the first scan replayed counts none.
            changes = np.zeros(len(keys), np.uint8) if dtype == STATUS else None
            parts[dtype] = [Scan(dtype, keys, values, qual, changes)]
        polls[poll] = parts
    return ReplaySource(site, host, _polls(polls, roles))


def write_csv(source: Source, seqs: range, path: Path) -> int:
    """Write ``source``'s scans (limits aside) as CSV; returns the rows written."""
    written = 0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(CSV_COLUMNS)
        for seq, group in _scan_polls(source, seqs):
            res = source.read(seq, group)
            role = "primary" if res.role == PRIMARY else "backup"
            for scan in res.scans:
                if scan.data_type == LIMIT:
                    continue
                name = DATA_TYPES[scan.data_type]
                for k, v, q in zip(
                    scan.ikeys.tolist(), scan.values.tolist(), scan.quality.tolist(), strict=True
                ):
                    out.writerow((seq, res.scan_time_ms, k, name, repr(v), q, role))
                    written += 1
    return written
