"""Exception reports: filter, fold links into their exceptions, group and sort.

A ring's servers hold the applications' exceptions topics partitioned like the
points (see :class:`~pegasus_kafka.ring.records.ExceptionPartition`). A query
collects the matching records of every partition (or of one point's), folds
each LINK into the exception it names as an ``events`` list, then groups or
sorts the whole set.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pegasus_kafka.config import AAS_APPS
from pegasus_kafka.errors import QueryError

GROUPS = ("kind", "substation", "ikey", "name", "level", "site")
SORTS = ("time", "duration", "peak", "score", "value", "ikey", "substation")
MAX_LIMIT = 100_000


@dataclass(frozen=True)
class ExceptionQuery:
    app: str
    t0: int
    t1: int
    ikey: int | None = None
    substation: str = ""
    kind: str = ""
    group_by: str = ""
    #: a field of SORTS, with a leading '-' for descending
    sort: str = "time"
    limit: int = 10_000

    def __post_init__(self) -> None:
        if self.app not in AAS_APPS:
            raise QueryError(f"app: one of {', '.join(AAS_APPS)}")
        if self.t1 < self.t0:
            raise QueryError("time range: 'to' is before 'from'")
        if self.group_by and self.group_by not in GROUPS:
            raise QueryError(f"group_by: one of {', '.join(GROUPS)}")
        if self.sort.lstrip("-") not in SORTS:
            raise QueryError(f"sort: one of {', '.join(SORTS)}, '-' first for descending")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"limit: between 1 and {MAX_LIMIT}")

    def accepts(self, rec: dict[str, Any]) -> bool:
        """Filters that apply to one record, before links are folded in."""
        if rec["kind"] == "LINK":
            return True
        return (not self.kind or rec["kind"] == self.kind.upper()) and (
            not self.substation or (rec.get("substation") or "").lower() == self.substation.lower()
        )


def fold_links(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exceptions with their LINK records' events attached, LINKs themselves dropped.

    A link whose exception is outside the result (another time range or filter)
    is dropped with it.
    """
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        if rec["kind"] == "LINK" and rec.get("event"):
            events[rec["exception_id"]].append(rec["event"])
    out = []
    for rec in records:
        if rec["kind"] == "LINK":
            continue
        if "old_state" in rec:
            rec = {**rec, "events": sorted(events.get(rec["id"], []), key=_event_order)}
        out.append(rec)
    return out


def _event_order(e: dict[str, Any]) -> tuple[int, str, int]:
    return (e["time_ms"], e["host"], e["seq"])


def arrange(records: list[dict[str, Any]], q: ExceptionQuery) -> dict[str, Any]:
    """The response body: the sorted exceptions, or their groups."""
    found = [r for r in fold_links(records) if q.accepts(r)]
    if q.group_by:
        return {"groups": _groups(found, q)[: q.limit], "exceptions_matched": len(found)}
    field = q.sort.lstrip("-")
    key = "time_ms" if field == "time" else "duration_ms" if field == "duration" else field
    present = [r for r in found if r.get(key) is not None]
    absent = [r for r in found if r.get(key) is None]
    present.sort(key=lambda r: (r[key], r["time_ms"], r["id"]), reverse=q.sort.startswith("-"))
    ordered = present + sorted(absent, key=lambda r: (r["time_ms"], r["id"]))
    return {"exceptions": [json_safe(r) for r in ordered[: q.limit]], "matched": len(found)}


def _groups(found: list[dict[str, Any]], q: ExceptionQuery) -> list[dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = {}
    for rec in found:
        value = rec.get(q.group_by)
        g = groups.setdefault(
            value,
            {
                "key": value,
                "count": 0,
                "first_ms": rec["time_ms"],
                "last_ms": rec["time_ms"],
                "kinds": defaultdict(int),
            },
        )
        g["count"] += 1
        g["first_ms"] = min(g["first_ms"], rec["time_ms"])
        g["last_ms"] = max(g["last_ms"], rec["time_ms"])
        g["kinds"][rec["kind"]] += 1
    out = [{**g, "kinds": dict(sorted(g["kinds"].items()))} for g in groups.values()]
    descending = q.sort.startswith("-") or q.sort == "time"
    out.sort(key=lambda g: (-g["count"] if descending else g["count"], str(g["key"])))
    return out


def json_safe(value: Any) -> Any:
    """JSON has no NaN: a missing limit is null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
