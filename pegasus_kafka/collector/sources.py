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


@dataclass
class ScanResult:
    scan_time_ms: int
    role: int
    scans: list[Scan]
    events: list[dict[str, Any]] = field(default_factory=list)
    #: metadata versions (PointMeta) that take effect at this scan
    meta: list[dict[str, Any]] = field(default_factory=list)


class Source(Protocol):
    site: SiteConfig
    host: str

    def metadata(self, upto: int | None = None) -> list[dict[str, Any]]:
        """Every point's metadata versions (PointMeta) that took effect up to scan
        ``upto`` (default: creation only), oldest first."""

    def read(self, seq: int) -> ScanResult:
        """The host's scan number ``seq``."""


class SimSource:
    """One host of the simulated site.

    ``role`` is the host's role at scan 0. The hosts swap roles at every scan
    in the site's ``failover_scans`` (on a schedule) and at every scan passed
    to :meth:`fail_over` (on command), so a host's role at a scan is a pure
    function of those scans: both hosts of a site agree on it without talking.
    """

    def __init__(self, site: SiteConfig, host: str, role: int = PRIMARY) -> None:
        self.site = site
        self.host = host
        self.initial_role = role
        self.role = role
        self.field = SiteField(site)
        self._salt = host_salt(host)
        self._skew = 0 if role == PRIMARY else BACKUP_SKEW_MS
        self._limits = self.field.limits()
        self._limits_sent = False
        self._switches = sorted(site.failover_scans)

    def fail_over(self, seq: int) -> None:
        """Swap this host's role from scan ``seq`` on (a failover on command)."""
        bisect.insort(self._switches, seq)

    def role_at(self, seq: int) -> int:
        flips = bisect.bisect_right(self._switches, seq)
        return self.initial_role ^ (flips % 2)

    def metadata(self, upto: int | None = None) -> list[dict[str, Any]]:
        out = [self._version(i, 1, "CREATED", 0) for i in range(len(self.field.ikeys))]
        if upto is not None:
            for seq in self.site.rename_scans:
                if seq <= upto:
                    out.extend(self._renames(seq))
        return out

    def _renames(self, seq: int) -> list[dict[str, Any]]:
        """The version the rename at scan ``seq`` gives its point."""
        if seq not in self.site.rename_scans:
            return []
        i = self.field.renamed_at(seq)
        earlier = [s for s in self.site.rename_scans if s < seq and self.field.renamed_at(s) == i]
        return [self._version(i, len(earlier) + 2, "RENAMED", seq * self.site.scan_period_ms)]

    def _version(self, i: int, version: int, change: str, valid_from_ms: int) -> dict[str, Any]:
        p = self.field.point(i)
        # The key is the point's, not its name's: it stays through every rename.
        name = p.name if version == 1 else f"{p.name}-R{version - 1}"
        return {
            "ikey": p.ikey,
            "version": version,
            "valid_from_ms": valid_from_ms,
            "change": change,
            "site": self.site.name,
            "ems_id": p.ems_id,
            "name": name,
            "substation": p.substation,
            "device": p.device,
            "data_type": DATA_TYPES[p.data_type],
            "units": p.units,
            "resolution": p.resolution,
        }

    def read(self, seq: int) -> ScanResult:
        f = self.field
        t = seq * self.site.scan_period_ms + self._skew
        self.role = self.role_at(seq)
        values, changes = f.values(seq, t, self._salt)
        quality = np.zeros(len(values), np.uint8)
        scans = []
        for dtype in (ANALOG, 2, STATUS):
            sel = f.dtype == dtype
            scans.append(
                Scan(
                    dtype,
                    f.ikeys[sel],
                    values[sel],
                    quality[sel],
                    changes[sel] if dtype == STATUS else None,
                )
            )
        # Limits travel once an hour (and with the first scan a collector sends).
        if seq % max(1, 3_600_000 // self.site.scan_period_ms) == 0 or not self._limits_sent:
            self._limits_sent = True
            ikeys, lims = self._limits
            scans.append(Scan(LIMIT, ikeys, lims, np.zeros(len(ikeys), np.uint8)))
        events = []
        if self.role == PRIMARY:
            toggled = np.flatnonzero((f.dtype == STATUS) & (changes == 1))
            for j, i in enumerate(toggled):
                action = "closed" if values[i] == 2 else "opened"
                events.append(
                    {
                        "site": self.site.name,
                        "host": self.host,
                        "seq": seq * 10_000 + j,
                        "time_ms": t - 1_000,
                        "kind": "OPERATOR_ACTION",
                        "ikey": int(f.ikeys[i]),
                        "operator": f"op{int(i) % 7 + 1}",
                        "text": f"{f.point(int(i)).name} {action} by operator op{int(i) % 7 + 1}",
                    }
                )
        return ScanResult(
            scan_time_ms=t, role=self.role, scans=scans, events=events, meta=self._renames(seq)
        )
