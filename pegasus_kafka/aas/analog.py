"""Analog exceptions: limit violations judged against the limits in force at each
sample's time, their duration and peak, and unusual changes.

Rules, applied to one partition's records in offset order (one sample per
point and scan slot, as in :mod:`pegasus_kafka.aas.status`):

* Limits arrive in LIMIT frames, which a collector sends before the values of
  the same scan. The limits in force for a sample are the newest ones seen
  before it in the partition, so each sample is judged against the limits of
  its own scan, and a limit change is a point in the history like any other.
* A sample violates when it is above the normal high or below the normal low
  limit; its level names the worst limit it is beyond (an emergency limit, if
  it is beyond that too). VIOLATION is published at the first violating
  sample, RETURN at the first sample back in the band, with the violation's
  start, duration, worst level and peak (the value farthest beyond the band).
* UNUSUAL: the change since the point's previous sample, d, is compared with an
  exponentially weighted mean m and variance v of the point's earlier changes
  (weight ``ALPHA`` per sample). After ``WARMUP`` samples a change is unusual
  when ``|d - m| > THRESHOLD * max(sqrt(v), FLOOR * |value|, 1e-6)``. Unusual
  changes do not update m and v, so a ramp away from normal is flagged at
  every step, including the first, before any limit is crossed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pegasus_kafka.aas.meta import MetaIndex
from pegasus_kafka.aas.points import PointTable, exception_id
from pegasus_kafka.schema import ANALOG, EXCEPTION_RECORDS, LIMIT, Q_INVALID, Q_NOT_TOPICAL, Frame

RECORD = EXCEPTION_RECORDS["analog"]
LEVELS = ("NORMAL", "LOW", "HIGH", "EMERGENCY_LOW", "EMERGENCY_HIGH")
NORMAL, LOW, HIGH, EMERGENCY_LOW, EMERGENCY_HIGH = range(5)
#: column of the limits array holding the limit each level names
LIMIT_COLUMN = {LOW: 1, HIGH: 2, EMERGENCY_LOW: 0, EMERGENCY_HIGH: 3}
ALPHA = 0.05
WARMUP = 30
THRESHOLD = 8.0
#: relative floor of the deviation, so a point that has been flat is not flagged
#: for a change the size of its resolution
FLOOR = 1e-3
_META = ("name", "substation", "units")


def levels(values: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Level of each value against its row of limits (NaN limits never bind)."""
    with np.errstate(invalid="ignore"):
        elo, lo, hi, ehi = (limits[:, i] for i in range(4))
        return np.select(
            [values > ehi, values < elo, values > hi, values < lo],
            [EMERGENCY_HIGH, EMERGENCY_LOW, HIGH, LOW],
            NORMAL,
        ).astype(np.int8)


class AnalogMiner:
    app = "analog"
    record = RECORD
    uses_events = False

    def __init__(self) -> None:
        #: analog samples looked at by this process (not part of the state)
        self.mined = 0
        self.table = PointTable(
            {
                "slot": (np.int64, -1, ()),
                "value": (np.float64, np.nan, ()),
                "limits": (np.float64, np.nan, (4,)),
                "limits_from": (np.int64, -1, ()),
                "limit_slot": (np.int64, -1, ()),
                "open": (np.bool_, False, ()),
                "start": (np.int64, 0, ()),
                "worst": (np.int8, NORMAL, ()),
                "peak": (np.float64, np.nan, ()),
                "peak_excess": (np.float64, 0.0, ()),
                "peak_limit": (np.float64, np.nan, ()),
                "n": (np.int64, 0, ()),
                "mean": (np.float64, 0.0, ()),
                "var": (np.float64, 0.0, ()),
            }
        )

    def on_frame(self, frame: Frame, meta: MetaIndex) -> list[dict[str, Any]]:
        if not frame.count:
            return []
        if frame.data_type == LIMIT:
            self._limits(frame)
            return []
        if frame.data_type != ANALOG:
            return []
        return self._values(frame, meta)

    def _limits(self, frame: Frame) -> None:
        t = self.table
        slot = frame.scan_time_ms // frame.scan_period_ms
        rows = t.index(frame.ikeys)
        newer = t["limit_slot"][rows] < slot
        rows, vals = rows[newer], frame.values[newer]
        t["limit_slot"][rows] = slot
        old = t["limits"][rows]
        same = ((old == vals) | (np.isnan(old) & np.isnan(vals))).all(axis=1)
        changed = rows[~same]
        t["limits"][changed] = vals[~same]
        t["limits_from"][changed] = frame.scan_time_ms

    def _values(self, frame: Frame, meta: MetaIndex) -> list[dict[str, Any]]:
        self.mined += frame.count
        t = self.table
        slot = frame.scan_time_ms // frame.scan_period_ms
        rows = t.index(frame.ikeys)
        fresh = t["slot"][rows] < slot
        t["slot"][rows[fresh]] = slot
        good = fresh & ((frame.quality & (Q_INVALID | Q_NOT_TOPICAL)) == 0)
        sel = np.flatnonzero(good)
        r = rows[sel]
        v = frame.values[sel]
        lims = t["limits"][r]
        level = levels(v, lims)
        with np.errstate(invalid="ignore"):
            excess = np.fmax(np.nan_to_num(v - lims[:, 2], nan=0.0), lims[:, 1] - v)
        excess = np.nan_to_num(excess, nan=0.0)
        violating = level != NORMAL
        was_open = t["open"][r]
        starts = violating & ~was_open
        returns = ~violating & was_open
        going = violating & was_open
        # Start a violation, or carry its peak on.
        t["start"][r[starts]] = frame.scan_time_ms
        bigger = (going & (excess > t["peak_excess"][r])) | starts
        t["peak"][r[bigger]] = v[bigger]
        t["peak_excess"][r[bigger]] = excess[bigger]
        lim_col = np.array([LIMIT_COLUMN.get(int(x), 2) for x in level[bigger]], np.int64)
        t["peak_limit"][r[bigger]] = lims[np.flatnonzero(bigger), lim_col]
        t["worst"][r[starts]] = level[starts]
        worse = going & (_rank(level) > _rank(t["worst"][r]))
        t["worst"][r[worse]] = level[worse]
        unusual, change, score = self._statistics(r, v)
        out: list[dict[str, Any]] = []
        for i in np.flatnonzero(starts | returns | unusual).tolist():
            row = int(r[i])
            base = self._record(frame, slot, int(sel[i]), float(v[i]), lims[i], row, meta)
            if starts[i]:
                out.append(self._violation(base, int(level[i]), lims[i]))
            if returns[i]:
                out.append(self._return(base, row))
            if unusual[i]:
                out.append(self._unusual(base, int(level[i]), lims[i], change[i], score[i]))
        t["open"][r] = violating
        return out

    def _statistics(
        self, r: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = self.table
        prev = t["value"][r]
        has_prev = ~np.isnan(prev)
        change = np.where(has_prev, v - prev, 0.0)
        mean, var, n = t["mean"][r], t["var"][r], t["n"][r]
        scale = np.maximum(np.maximum(np.sqrt(var), FLOOR * np.abs(v)), 1e-6)
        score = np.abs(change - mean) / scale
        unusual = has_prev & (n >= WARMUP) & (score > THRESHOLD)
        learn = has_prev & ~unusual
        delta = change - mean
        t["mean"][r[learn]] = (mean + ALPHA * delta)[learn]
        t["var"][r[learn]] = ((1 - ALPHA) * (var + ALPHA * delta * delta))[learn]
        t["n"][r[learn]] = n[learn] + 1
        t["value"][r] = v
        return unusual, change, score

    def _record(
        self,
        frame: Frame,
        slot: int,
        i: int,
        value: float,
        lims: np.ndarray,
        row: int,
        meta: MetaIndex,
    ) -> dict[str, Any]:
        ikey = int(frame.ikeys[i])
        info = meta.fields(ikey, frame.scan_time_ms, _META)
        limits_from = int(self.table["limits_from"][row])
        return {
            "ikey": ikey,
            "slot": slot,
            "site": frame.site,
            "host": frame.host,
            "time_ms": frame.scan_time_ms,
            "value": value,
            "level": "NORMAL",
            "limit": None,
            "limits": [float(x) for x in lims],
            "limits_from_ms": limits_from if limits_from >= 0 else None,
            "start_ms": None,
            "duration_ms": None,
            "peak": None,
            "change": None,
            "score": None,
            **info,
        }

    def _violation(self, base: dict[str, Any], level: int, lims: np.ndarray) -> dict[str, Any]:
        rec = _finish(base, "VIOLATION")
        rec.update(
            level=LEVELS[level],
            limit=float(lims[LIMIT_COLUMN[level]]),
            start_ms=base["time_ms"],
        )
        return rec

    def _return(self, base: dict[str, Any], row: int) -> dict[str, Any]:
        t = self.table
        rec = _finish(base, "RETURN")
        start = int(t["start"][row])
        rec.update(
            level=LEVELS[int(t["worst"][row])],
            limit=float(t["peak_limit"][row]),
            start_ms=start,
            duration_ms=base["time_ms"] - start,
            peak=float(t["peak"][row]),
        )
        t["peak_excess"][row] = 0.0
        return rec

    def _unusual(
        self, base: dict[str, Any], level: int, lims: np.ndarray, change: float, score: float
    ) -> dict[str, Any]:
        rec = _finish(base, "UNUSUAL")
        rec.update(
            level=LEVELS[level],
            limit=float(lims[LIMIT_COLUMN[level]]) if level != NORMAL else None,
            change=float(change),
            score=round(float(score), 3),
        )
        return rec

    def on_event(self, event: dict[str, Any], meta: MetaIndex) -> list[dict[str, Any]]:
        del event, meta
        return []

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        del state


def _rank(level: np.ndarray) -> np.ndarray:
    """Severity: normal < low/high < emergency."""
    return np.where(level >= EMERGENCY_LOW, 2, np.where(level > NORMAL, 1, 0))


def _finish(base: dict[str, Any], kind: str) -> dict[str, Any]:
    rec = {k: v for k, v in base.items() if k != "slot"}
    rec["kind"] = kind
    rec["id"] = exception_id(kind, base["ikey"], base["slot"])
    return rec
