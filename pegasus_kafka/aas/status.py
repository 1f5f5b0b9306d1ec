"""Status exceptions: every change of every status point, momentary operations,
and the system events behind them.

Rules, applied to one partition's records in offset order:

* A scan slot is ``scan_time // scan_period``. For each point the first sample
  of a slot in partition order is used and the other host's sample of the
  same slot is ignored, so two hosts give one stream, and every ring (reading
  the same offsets) picks the same sample. Samples flagged invalid or not
  topical are skipped.
* CHANGE: the state differs from the point's previous used sample.
* MOMENTARY: the state is unchanged but the RTU reported two or more
  transitions since the previous scan (a trip and reclose within one scan).
* LINK: an OPERATOR_ACTION or ALARM event about the same point, logged in
  the scan period before the exception's scan, or up to half a period after
  it (for clock skew between the EMS log and the scan). The window is one and
  a half periods wide, so an event can link to at most one exception of a point. Events and
  scans arrive on different topics, so the two halves of the join wait for
  each other: whichever arrives second emits the LINK. The set of links is
  therefore the same whatever the arrival order, as long as the two streams
  are less than ``horizon_ms`` apart; each side's pending entries are dropped
  once the other stream has passed them by that much.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from pegasus_kafka.aas.meta import MetaIndex
from pegasus_kafka.aas.points import PointTable, exception_id
from pegasus_kafka.schema import EXCEPTION_RECORDS, Q_INVALID, Q_NOT_TOPICAL, STATUS, Frame

RECORD = EXCEPTION_RECORDS["status"]
LINKED_KINDS = ("OPERATOR_ACTION", "ALARM")
_META = ("name", "substation", "device", "version")
T = TypeVar("T")


class StatusMiner:
    app = "status"
    record = RECORD
    uses_events = True

    def __init__(self, horizon_ms: int = 3_600_000) -> None:
        self.horizon_ms = horizon_ms
        self.table = PointTable({"slot": (np.int64, -1, ()), "state": (np.float64, np.nan, ())})
        #: exceptions waiting for events: ikey -> [[lo_ms, hi_ms, id], ...]
        self.open_changes: dict[int, list[list[Any]]] = {}
        #: events waiting for exceptions: ikey -> [event, ...]
        self.open_events: dict[int, list[dict[str, Any]]] = {}
        self.scan_clock = 0
        self.event_clock = 0
        self.pruned_at = 0
        #: status samples looked at by this process (not part of the state)
        self.mined = 0

    # -- scans ------------------------------------------------------------------

    def on_frame(self, frame: Frame, meta: MetaIndex) -> list[dict[str, Any]]:
        if frame.data_type != STATUS or not frame.count:
            return []
        self.mined += frame.count
        slot = frame.scan_time_ms // frame.scan_period_ms
        rows = self.table.index(frame.ikeys)
        fresh = self.table["slot"][rows] < slot
        good = fresh & ((frame.quality & (Q_INVALID | Q_NOT_TOPICAL)) == 0)
        self.table["slot"][rows[fresh]] = slot
        sel = np.flatnonzero(good)
        prev = self.table["state"][rows[sel]]
        new = frame.values[sel]
        trans = frame.changes[sel] if len(frame.changes) else np.zeros(len(sel), np.uint8)
        known = ~np.isnan(prev)
        changed = known & (prev != new)
        momentary = known & (prev == new) & (trans >= 2)
        self.table["state"][rows[sel]] = new
        self.scan_clock = max(self.scan_clock, frame.scan_time_ms)
        out: list[dict[str, Any]] = []
        for i in np.flatnonzero(changed | momentary).tolist():
            kind = "CHANGE" if changed[i] else "MOMENTARY"
            out.extend(self._exception(frame, kind, int(sel[i]), prev[i], new[i], trans[i], meta))
        self._prune()
        return out

    def _exception(
        self,
        frame: Frame,
        kind: str,
        row: int,
        old: float,
        new: float,
        transitions: int,
        meta: MetaIndex,
    ) -> list[dict[str, Any]]:
        ikey = int(frame.ikeys[row])
        slot = frame.scan_time_ms // frame.scan_period_ms
        t = frame.scan_time_ms
        info = meta.fields(ikey, t, _META)
        rec = {
            "id": exception_id(kind, ikey, slot),
            "kind": kind,
            "ikey": ikey,
            "site": frame.site,
            "host": frame.host,
            "time_ms": t,
            "old_state": int(old),
            "new_state": int(new),
            "transitions": int(transitions),
            "name": info["name"],
            "substation": info["substation"],
            "device": info["device"],
            "meta_version": int(info["version"] or 0),
            "exception_id": None,
            "event": None,
        }
        window = [t - frame.scan_period_ms + 1, t + frame.scan_period_ms // 2, rec["id"]]
        self.open_changes.setdefault(ikey, []).append(window)
        out = [rec]
        for event in self.open_events.get(ikey, []):
            if window[0] <= event["time_ms"] <= window[1]:
                out.append(link(rec, event))
        return out

    # -- events -----------------------------------------------------------------

    def on_event(self, event: dict[str, Any], meta: MetaIndex) -> list[dict[str, Any]]:
        """A system event about a point of this partition; returns the LINKs it makes."""
        if event["kind"] not in LINKED_KINDS or event.get("ikey") is None:
            return []
        ikey = int(event["ikey"])
        self.event_clock = max(self.event_clock, int(event["time_ms"]))
        self.open_events.setdefault(ikey, []).append(event)
        out = []
        for lo, hi, change_id in self.open_changes.get(ikey, []):
            if lo <= event["time_ms"] <= hi:
                out.append(link_by_id(change_id, ikey, event))
        self._prune()
        return out

    def _prune(self) -> None:
        """Drop pending halves the other stream has passed by more than the horizon.

        Pruning walks every pending point, so it runs once per eighth of the
        horizon of progress on either clock, not per record.
        """
        clock = max(self.scan_clock, self.event_clock)
        if clock < self.pruned_at + self.horizon_ms // 8:
            return
        self.pruned_at = clock
        _prune(self.open_changes, self.event_clock - self.horizon_ms, lambda w: int(w[1]))
        _prune(self.open_events, self.scan_clock - self.horizon_ms, lambda e: int(e["time_ms"]))

    # -- state ------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "open_changes": {str(k): v for k, v in sorted(self.open_changes.items())},
            "open_events": {str(k): v for k, v in sorted(self.open_events.items())},
            "scan_clock": self.scan_clock,
            "event_clock": self.event_clock,
            "pruned_at": self.pruned_at,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.open_changes = {int(k): v for k, v in state["open_changes"].items()}
        self.open_events = {int(k): v for k, v in state["open_events"].items()}
        self.scan_clock = int(state["scan_clock"])
        self.event_clock = int(state["event_clock"])
        self.pruned_at = int(state.get("pruned_at", 0))


def _prune(pending: dict[int, list[T]], limit: int, end: Callable[[T], int]) -> None:
    """Drop the items of ``pending`` that end before ``limit``."""
    for ikey in [k for k, items in pending.items() if min(end(i) for i in items) < limit]:
        kept = [item for item in pending[ikey] if end(item) >= limit]
        if kept:
            pending[ikey] = kept
        else:
            del pending[ikey]


def link(exception: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return link_by_id(exception["id"], exception["ikey"], event)


def link_by_id(change_id: str, ikey: int, event: dict[str, Any]) -> dict[str, Any]:
    """The LINK record tying ``event`` to the exception ``change_id``."""
    return {
        "id": exception_id("LINK", change_id, event["site"], event["host"], event["seq"]),
        "kind": "LINK",
        "ikey": ikey,
        "site": event["site"],
        "host": event["host"],
        "time_ms": int(event["time_ms"]),
        "old_state": 0,
        "new_state": 0,
        "transitions": 0,
        "name": None,
        "substation": None,
        "device": None,
        "meta_version": 0,
        "exception_id": change_id,
        "event": {
            "host": event["host"],
            "seq": int(event["seq"]),
            "time_ms": int(event["time_ms"]),
            "kind": event["kind"],
            "operator": event.get("operator"),
            "text": event["text"],
        },
    }
