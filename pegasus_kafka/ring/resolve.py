"""Two streams, one truth: the resolved series of a point from both EMS hosts.

The rule, applied at read time to the raw per-host streams (which the RDS keeps
whole), so it never depends on the order in which the hosts' frames arrived:

1. Every sample a host sent while it was PRIMARY is taken.
2. If two primary samples fall within half a scan period of each other (both
   hosts claimed primary), the earlier one, then the lower host id, wins.
3. A BACKUP sample fills in only where no primary sample lies within half a
   scan period of it: the primary missed that scan.

The result is a pure function of the two raw streams.
"""

from __future__ import annotations

import numpy as np

from pegasus_kafka.ring.blocks import Samples, concat, select
from pegasus_kafka.schema import BACKUP, PRIMARY


def _thin(s: Samples, tol: int) -> Samples:
    """Drop samples within ``tol`` ms after the preceding one (s is time-ordered)."""
    if len(s) < 2:
        return s
    keep = np.ones(len(s), dtype=bool)
    keep[1:] = np.diff(s.times) >= tol
    return select(s, keep)


def resolve(streams: list[Samples], period_ms: int) -> Samples:
    """Resolve the per-host streams (in host-id order) into one series."""
    tol = max(1, period_ms // 2)
    primary = _thin(concat([select(s, s.role == PRIMARY) for s in streams]), tol)
    backup = _thin(concat([select(s, s.role == BACKUP) for s in streams]), tol)
    if not len(backup) or not len(primary):
        return primary if len(primary) else backup
    pt = primary.times
    idx = np.searchsorted(pt, backup.times)
    before = np.where(idx > 0, backup.times - pt[np.maximum(idx - 1, 0)], tol)
    after = np.where(idx < len(pt), pt[np.minimum(idx, len(pt) - 1)] - backup.times, tol)
    fill = (before >= tol) & (after >= tol)
    return concat([primary, select(backup, fill)])
