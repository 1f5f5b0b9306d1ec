"""Current values of one data type in one partition, as sorted numpy columns.

Update rule, a pure function of the frames in offset order:

* a PRIMARY sample replaces a primary one that is not newer, and a backup
  one from the same scan or earlier (the backup scans a little later, so
  "same scan" means within half a scan period);
* a BACKUP sample replaces a backup one that is not newer, and a primary one
  more than 1.5 scan periods older (the primary has stopped sending).
"""

from __future__ import annotations

import io

import numpy as np

from pegasus_kafka.schema import BACKUP, PRIMARY, Frame

_NEVER = np.iinfo(np.int64).min // 2
#: most (host, chunk) slots whose rows are remembered
_MAX_SLOTS = 4096

#: a frame's rows in a table: their indices, or a slice when consecutive
Rows = np.ndarray | slice


class CurrentTable:
    def __init__(self, width: int = 1) -> None:
        self.width = width
        self.keys = np.zeros(0, np.int64)
        shape: tuple[int, ...] = (0,) if width == 1 else (0, width)
        self.values = np.zeros(shape, np.float64)
        self.quality = np.zeros(0, np.uint8)
        self.time = np.zeros(0, np.int64)
        self.host = np.zeros(0, np.int16)
        self.role = np.zeros(0, np.uint8)
        #: rows of the keys of recent frames by (host, chunk): a host sends the
        #: same points in the same chunk scan after scan, so each chunk's rows
        #: are searched for once, until a new point changes the layout
        self._rows: dict[tuple[int, int], tuple[np.ndarray, Rows]] = {}

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def _insert(self, new_keys: np.ndarray) -> None:
        keys = np.union1d(self.keys, new_keys)
        pos = np.searchsorted(keys, self.keys)
        shape: tuple[int, ...] = (len(keys),) if self.width == 1 else (len(keys), self.width)
        values = np.full(shape, np.nan)
        values[pos] = self.values
        quality = np.zeros(len(keys), np.uint8)
        quality[pos] = self.quality
        time = np.full(len(keys), _NEVER, np.int64)
        time[pos] = self.time
        host = np.full(len(keys), -1, np.int16)
        host[pos] = self.host
        role = np.full(len(keys), BACKUP, np.uint8)
        role[pos] = self.role
        self._rows.clear()
        self.keys, self.values, self.quality, self.time, self.host, self.role = (
            keys,
            values,
            quality,
            time,
            host,
            role,
        )

    def update(self, frame: Frame, host_id: int) -> None:
        if frame.count == 0:
            return
        rows = self._rows_of(frame, host_id)
        t = frame.scan_time_ms
        cur_t = self.time[rows]
        cur_primary = self.role[rows] == PRIMARY
        if frame.role == PRIMARY:
            take = np.where(cur_primary, t >= cur_t, t >= cur_t - frame.scan_period_ms // 2)
        else:
            take = np.where(cur_primary, t > cur_t + (3 * frame.scan_period_ms) // 2, t >= cur_t)
        values, quality = frame.values, frame.quality
        if not take.all():
            idx = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
            rows = idx[take]
            values, quality = values[take], quality[take]
        self.values[rows] = values
        self.quality[rows] = quality
        self.time[rows] = t
        self.host[rows] = host_id
        self.role[rows] = frame.role

    def _rows_of(self, frame: Frame, host_id: int) -> Rows:
        """The rows of the frame's points, inserting new points: a slice when
        they are consecutive rows in the frame's order, as a collector's
        chunks of sorted keys are, which numpy copies faster than it
        scatters."""
        slot = (host_id, frame.chunk)
        known = self._rows.get(slot)
        if known is not None and np.array_equal(known[0], frame.ikeys):
            return known[1]
        idx = np.searchsorted(self.keys, frame.ikeys)
        inside = idx < len(self.keys)
        found = np.zeros(frame.count, dtype=bool)
        found[inside] = self.keys[idx[inside]] == frame.ikeys[inside]
        if not found.all():
            self._insert(np.unique(frame.ikeys[~found]))
            idx = np.searchsorted(self.keys, frame.ikeys)
        rows: Rows = idx
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and (np.diff(idx) == 1).all():
            rows = slice(int(idx[0]), int(idx[-1]) + 1)
        if len(self._rows) >= _MAX_SLOTS:
            self._rows.clear()
        self._rows[slot] = (frame.ikeys.copy(), rows)
        return rows

    def lookup(self, ikeys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, row index) for the requested keys."""
        if not len(self.keys):
            return np.zeros(len(ikeys), bool), np.zeros(len(ikeys), np.int64)
        idx = np.minimum(np.searchsorted(self.keys, ikeys), len(self.keys) - 1)
        return self.keys[idx] == ikeys, idx

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            keys=self.keys,
            values=self.values,
            quality=self.quality,
            time=self.time,
            host=self.host,
            role=self.role,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, width: int) -> CurrentTable:
        table = cls(width)
        with np.load(io.BytesIO(data)) as z:
            table.keys, table.values, table.quality = z["keys"], z["values"], z["quality"]
            table.time, table.host, table.role = z["time"], z["host"], z["role"]
        return table
