"""Where a collector's scans come from, behind one small interface."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pegasus_kafka.collector.frames import Scan
from pegasus_kafka.collector.sim import SiteField, host_salt
from pegasus_kafka.config import SiteConfig
from pegasus_kafka.schema import ANALOG, DATA_TYPES, LIMIT, PRIMARY, STATUS

#: the backup host scans this long after the primary
BACKUP_SKEW_MS = 37
#: random-stream salts that pick the point a rename or a move hits
RENAME, MOVE = 77, 78


@dataclass
class ScanResult:
    scan_time_ms: int
    role: int
    scans: list[Scan]
    events: list[dict[str, Any]] = field(default_factory=list)
    #: metadata versions (PointMeta) that take effect at this scan
    meta: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Readings:
    """A simulated host's readings at one scan: analogs, accumulators, status."""

    scans: list[Scan]
    #: the poll group of each row of each scan
    groups: list[np.ndarray]
    #: field index of each status point in ``scans[-1]``
    status_index: np.ndarray

    def polled(self, group: int) -> list[Scan]:
        """The scans cut to the points of one poll group."""
        out = []
        for scan, groups in zip(self.scans, self.groups, strict=True):
            rows = np.flatnonzero(groups == group)
            changes = None if scan.changes is None else scan.changes[rows]
            out.append(
                Scan(
                    scan.data_type, scan.ikeys[rows], scan.values[rows], scan.quality[rows], changes
                )
            )
        return out


class Source(Protocol):
    site: SiteConfig
    host: str
    #: a scan is read in this many poll groups, each at its own time
    poll_groups: int

    def metadata(self, upto: int | None = None) -> list[dict[str, Any]]:
        """Every point's metadata versions (PointMeta) that took effect up to scan
        ``upto`` (default: creation only), oldest first."""

    def read(self, seq: int, group: int = 0) -> ScanResult:
        """Poll group ``group`` of the host's scan number ``seq``."""

    def prepare(self, seq: int) -> None:
        """Work a read of scan ``seq`` need not do at the scan's time, done ahead."""


class SimSource:
    """One host of the simulated site.

    ``role`` is the host's role at scan 0. The hosts swap roles at every scan
    in the site's ``failover_scans`` (on a schedule) and at every scan passed
    to :meth:`fail_over` (on command), so a host's role at a scan is a pure
    function of those scans: both hosts of a site agree on it without talking.

    The EMS polls its RTUs in the site's ``poll_groups`` groups, group ``g``
    at ``g / poll_groups`` of the scan period into the scan. A scan's readings
    are the field's at the scan; each group's samples carry its poll time.
    """

    def __init__(self, site: SiteConfig, host: str, role: int = PRIMARY) -> None:
        self.site = site
        self.host = host
        self.poll_groups = site.poll_groups
        self.initial_role = role
        self.role = role
        self.field = SiteField(site)
        self._salt = host_salt(host)
        self._skew = 0 if role == PRIMARY else BACKUP_SKEW_MS
        #: poll groups whose limits have been sent
        self._limits_sent: set[int] = set()
        self._switches = sorted(site.failover_scans)
        self._ready: tuple[int, _Readings] | None = None

    def fail_over(self, seq: int) -> None:
        """Swap this host's role from scan ``seq`` on (a failover on command)."""
        bisect.insort(self._switches, seq)

    def role_at(self, seq: int) -> int:
        flips = bisect.bisect_right(self._switches, seq)
        return self.initial_role ^ (flips % 2)

    def metadata(self, upto: int | None = None) -> list[dict[str, Any]]:
        """Every version up to scan ``upto``, oldest first; without it the creation
        of the site's initial points."""
        out = [self._version(i, 0) for i in range(self.site.points)]
        if upto is not None:
            for seq in self._change_scans():
                if seq <= upto:
                    out.extend(self._changes(seq))
        return out

    def _change_scans(self) -> list[int]:
        site = self.site
        return sorted({*site.rename_scans, *site.move_scans, *site.new_point_scans})

    def _changes(self, seq: int) -> list[dict[str, Any]]:
        """The metadata versions that take effect at scan ``seq``."""
        site, f = self.site, self.field
        out = []
        if seq in site.new_point_scans:
            out.append(self._version(f.active(seq) - 1, seq))
        if seq in site.rename_scans:
            out.append(self._version(f.changed_at(seq, RENAME), seq))
        if seq in site.move_scans:
            out.append(self._version(f.changed_at(seq, MOVE), seq))
        return out

    def _version(self, i: int, seq: int) -> dict[str, Any]:
        """Point ``i``'s description as of scan ``seq``: its creation, then every
        rename and move up to ``seq`` in scan order. The key is the point's, never
        its name's or substation's, so it stays through every change."""
        site, f = self.site, self.field
        p = f.point(i)
        born = 0
        if i >= site.points:
            born = site.new_point_scans[i - site.points]
        renames = [s for s in site.rename_scans if born < s <= seq and f.changed_at(s, RENAME) == i]
        moves = [s for s in site.move_scans if born < s <= seq and f.changed_at(s, MOVE) == i]
        changes = sorted([(s, "RENAMED") for s in renames] + [(s, "MOVED") for s in moves])
        change, at = ("CREATED", born) if not changes else (changes[-1][1], changes[-1][0])
        substation = p.substation
        if moves:
            number = (int(f.substation[i]) + len(moves)) % max(1, site.substations)
            substation = f"{site.name.upper()}-SS{number:03d}"
        return {
            "ikey": p.ikey,
            "version": 1 + len(changes),
            "valid_from_ms": at * site.scan_period_ms,
            "change": change,
            "site": site.name,
            "ems_id": p.ems_id,
            "name": p.name if not renames else f"{p.name}-R{len(renames)}",
            "substation": substation,
            "device": p.device,
            "data_type": DATA_TYPES[p.data_type],
            "units": p.units,
            "resolution": p.resolution,
        }

    def prepare(self, seq: int) -> None:
        """Compute scan ``seq``'s readings before its time, as an EMS's real-time
        database holds them at the scan: a read then costs the collector's work
        only, not the simulation of the field."""
        if self._ready is None or self._ready[0] != seq:
            self._ready = (seq, self._readings(seq))

    def _readings(self, seq: int) -> _Readings:
        """Every existing point's reading at scan ``seq``, one Scan per data type."""
        f = self.field
        t = seq * self.site.scan_period_ms + self._skew
        values, changes = f.values(seq, t, self._salt)
        quality = np.zeros(len(values), np.uint8)
        exists = np.arange(len(values)) < f.active(seq)
        scans, groups = [], []
        for dtype in (ANALOG, 2, STATUS):
            sel = (f.dtype == dtype) & exists
            scans.append(
                Scan(
                    dtype,
                    f.ikeys[sel],
                    values[sel],
                    quality[sel],
                    changes[sel] if dtype == STATUS else None,
                )
            )
            groups.append(f.group[sel])
        return _Readings(scans, groups, np.flatnonzero((f.dtype == STATUS) & exists))

    def read(self, seq: int, group: int = 0) -> ScanResult:
        f = self.field
        period, groups = self.site.scan_period_ms, self.poll_groups
        t = seq * period + self._skew
        self.role = self.role_at(seq)
        self.prepare(seq)
        assert self._ready is not None
        readings = self._ready[1]
        scans = list(readings.scans) if groups == 1 else readings.polled(group)
        # Limits travel once an hour, when they change, and with the first scan a
        # collector sends.
        hourly = seq % max(1, 3_600_000 // period) == 0
        if hourly or f.limits_change_at(seq) or group not in self._limits_sent:
            self._limits_sent.add(group)
            ikeys, lims = f.limits(seq)
            there = ikeys < f.ikeys[f.active(seq) - 1] + 1
            if groups > 1:
                there &= f.group[np.searchsorted(f.ikeys, ikeys)] == group
            ikeys, lims = ikeys[there], lims[there]
            scans.append(Scan(LIMIT, ikeys, lims, np.zeros(len(ikeys), np.uint8)))
        changes = self._changes(seq)
        events = self._events(seq, t, readings, changes, group) if self.role == PRIMARY else []
        return ScanResult(
            scan_time_ms=t + group * period // groups,
            role=self.role,
            scans=scans,
            events=events,
            meta=changes if group == 0 else [],
        )

    def _events(
        self, seq: int, t: int, readings: _Readings, meta: list[dict[str, Any]], group: int
    ) -> list[dict[str, Any]]:
        """The primary host's log for one poll group of a scan: operator actions
        behind status changes, alarms for momentary operations (a trip and
        reclose within the scan), and, with the first group, its taking over as
        primary and database changes. Entries are numbered across the whole
        scan, group by group, so their numbers grow in the order they are sent."""
        f = self.field
        period = self.site.scan_period_ms
        out: list[tuple[int, str, int | None, str | None, str]] = []
        status = readings.scans[-1]
        status_groups = readings.groups[-1]
        assert status.data_type == STATUS and status.changes is not None
        for j in np.flatnonzero(status.changes == 1).tolist():
            i = int(readings.status_index[j])
            action = "closed" if status.values[j] == 2 else "opened"
            operator = f"op{i % 7 + 1}"
            name = f.point(i).name
            text = f"{name} {action} by operator {operator}"
            out.append((int(status_groups[j]), "OPERATOR_ACTION", int(f.ikeys[i]), operator, text))
        for j in np.flatnonzero(status.changes >= 2).tolist():
            i = int(readings.status_index[j])
            text = f"{f.point(i).name} tripped and reclosed"
            out.append((int(status_groups[j]), "ALARM", int(f.ikeys[i]), None, text))
        if seq > 0 and self.role_at(seq - 1) != PRIMARY:
            out.append((0, "FAILOVER", None, None, f"{self.host} took over as primary"))
        for m in meta:
            text = f"{m['change'].lower()} {m['name']}"
            out.append((0, "DATABASE_CHANGE", int(m["ikey"]), None, text))
        out.sort(key=lambda e: e[0])  # stable: within a group, the order above
        polled = t + group * period // self.poll_groups
        return [
            {
                "site": self.site.name,
                "host": self.host,
                "seq": seq * 10_000 + j,
                # Logged a fifth of a period before the poll that reports its effect.
                "time_ms": polled - period // 5,
                "kind": kind,
                "ikey": ikey,
                "operator": operator,
                "text": text,
            }
            for j, (g, kind, ikey, operator, text) in enumerate(out)
            if g == group
        ]
