"""What the simulator really did, for checking the applications (tests, ``bench aas``).

The simulated field is a pure function of the seed and the scan number, so the
status changes, momentary operations and limit violations of any range of
scans can be listed without running anything. Identities are (kind, ikey,
scan slot), the same as the ids the applications derive.
"""

from __future__ import annotations

import numpy as np

from pegasus_kafka.aas.analog import LEVELS, LIMIT_COLUMN, NORMAL, levels
from pegasus_kafka.collector.sim import SiteField, host_salt
from pegasus_kafka.config import SiteConfig
from pegasus_kafka.schema import ANALOG, STATUS

#: (kind, ikey, slot) -> details
Truth = dict[tuple[str, int, int], dict[str, object]]


def status_truth(site: SiteConfig, first: int, last: int) -> Truth:
    """Changes and momentaries of scans ``first+1 .. last`` (the first scan has no
    previous one to differ from)."""
    f = SiteField(site)
    out: Truth = {}
    prev, _ = f.status(first)
    for scan in range(first + 1, last + 1):
        state, changes = f.status(scan)
        points = (f.dtype == STATUS) & (np.arange(len(f.ikeys)) < f.active(scan - 1))
        for i in np.flatnonzero(points & (state != prev)).tolist():
            out[("CHANGE", int(f.ikeys[i]), scan)] = {"old": int(prev[i]), "new": int(state[i])}
        for i in np.flatnonzero(points & (state == prev) & (changes >= 2)).tolist():
            out[("MOMENTARY", int(f.ikeys[i]), scan)] = {"old": int(prev[i]), "new": int(state[i])}
        prev = state
    return out


def analog_truth(site: SiteConfig, host: str, first: int, last: int) -> Truth:
    """Violations starting, and returns, in scans ``first .. last`` as ``host`` reads
    them; a violation under way at ``first`` starts there."""
    f = SiteField(site)
    salt = host_salt(host)
    out: Truth = {}
    was = np.zeros(len(f.ikeys), bool)
    start = np.zeros(len(f.ikeys), np.int64)
    for scan in range(first, last + 1):
        values, _ = f.values(scan, scan * site.scan_period_ms, salt)
        ikeys, lims = f.limits(scan)
        rows = np.searchsorted(f.ikeys, ikeys)
        level = np.full(len(f.ikeys), NORMAL, np.int8)
        level[rows] = levels(values[rows], lims)
        active = (f.dtype == ANALOG) & (np.arange(len(f.ikeys)) < f.active(scan))
        now = active & (level != NORMAL)
        for i in np.flatnonzero(now & ~was).tolist():
            row = int(np.searchsorted(ikeys, f.ikeys[i]))
            lv = int(level[i])
            limit = float(lims[row, LIMIT_COLUMN[lv]])
            out[("VIOLATION", int(f.ikeys[i]), scan)] = {"level": LEVELS[lv], "limit": limit}
            start[i] = scan
        for i in np.flatnonzero(was & ~now).tolist():
            out[("RETURN", int(f.ikeys[i]), scan)] = {"start_slot": int(start[i])}
        was = now
    return out
