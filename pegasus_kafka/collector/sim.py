"""A deterministic simulated EMS site: the field, and the two hosts that scan it.

The field is the same for both hosts; each host scans it at its own moment
(the backup a few tens of milliseconds later) with its own small measurement
noise, so the two streams are nearly but not byte-identical, as in a real EMS
pair. Everything is a function of the seed and the scan number, computed with
numpy for all points at once, so 320,000 points every 5 s is cheap.

* Analogs (MW, MVAR, kV, A) follow a daily load curve with small noise and
  are quantized to the instrument's resolution; a few are out of service and
  read exactly 0.
* Accumulators (MWh) integrate their own load curve, so they only grow.
* Status points (breakers, switches) change ``status_rate`` times a day per
  thousand points, sometimes momentarily (open and reclose between two scans).
* Limits belong to MW and A analogs. They change at the site's
  ``limit_change_scans``: the first change tightens the normal high limit below
  the load curve (every limited analog violates), the next restores it.
* Limit excursions: ``excursion_rate`` times a day per thousand limited
  analogs, a point ramps over four scans to 0.97, 1.1, 1.3 and 1.1 times its
  normal high limit and then returns to its load curve, so the first scan is
  unusual without violating, and the next three violate.
"""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass

import numpy as np

from pegasus_kafka.config import SiteConfig
from pegasus_kafka.keys import make_ikey
from pegasus_kafka.schema import ACCUMULATOR, ANALOG, STATUS

DAY_MS = 86_400_000
UNITS = ("MW", "MVAR", "kV", "A")
RESOLUTION = {"MW": 0.1, "MVAR": 0.1, "kV": 0.01, "A": 1.0}
DEVICES = ("LINE", "XFMR", "GEN", "BUS", "LOAD")


@dataclass(frozen=True)
class PointInfo:
    ikey: int
    ems_id: str
    name: str
    substation: str
    device: str
    data_type: int
    units: str
    resolution: float


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, *salt])


class SiteField:
    """The simulated field of one site: a pure function of (seed, scan number).

    Nothing is carried from scan to scan, so two host processes started at
    different moments read the same field, and a test can compute any scan.
    """

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        # Points that appear later are part of the field from the start, so each
        # keeps the same number (and key) whenever it is read; scans leave out
        # those not there yet (see active()).
        n = site.points + len(site.new_point_scans)
        rng = _rng(site.seed, 1)
        kind = rng.random(n)
        self.dtype = np.where(kind < 0.6, ANALOG, np.where(kind < 0.7, ACCUMULATOR, STATUS))
        self.ikeys = np.array([make_ikey(site.code, i + 1) for i in range(n)], np.int64)
        self.substation = rng.integers(0, max(1, site.substations), n)
        #: the poll group of each point: its RTU's (substation's)
        self.group = self.substation % site.poll_groups
        self.unit_idx = rng.integers(0, len(UNITS), n)
        self.base = np.select(
            [self.unit_idx == 0, self.unit_idx == 1, self.unit_idx == 2],
            [
                rng.uniform(20, 400, n),
                rng.uniform(-80, 80, n),
                rng.choice([115.0, 230.0, 345.0], n),
            ],
            rng.uniform(100, 1200, n),
        )
        self.phase = rng.uniform(0, 2 * np.pi, n)
        self.out_of_service = rng.random(n) < 0.03
        self.resolution = np.array([RESOLUTION[UNITS[u]] for u in self.unit_idx])
        self.has_limits = (self.dtype == ANALOG) & np.isin(self.unit_idx, [0, 3])
        # Status points change at their own pseudo-random intervals (in scans);
        # the state at scan k is the parity of the changes so far, in O(1).
        scans_per_day = DAY_MS / site.scan_period_ms
        mean = scans_per_day * 1000.0 / max(site.status_rate, 1e-9)
        self.interval = np.maximum(2, (mean * rng.uniform(0.5, 1.5, n)).astype(np.int64))
        self.offset = rng.integers(0, self.interval)
        self.momentary_interval = self.interval * 5 + 1
        self.initial_state = np.where(rng.random(n) < 0.8, 2.0, 1.0)  # 2 closed, 1 open
        rate = max(site.excursion_rate, 1e-9)
        every = scans_per_day * 1000.0 / rate
        self.excursion_interval = np.maximum(
            16, (every * rng.uniform(0.5, 1.5, n)).astype(np.int64)
        )
        self.excursion_offset = rng.integers(0, self.excursion_interval)

    def point(self, i: int) -> PointInfo:
        dtype = int(self.dtype[i])
        unit = {STATUS: "", ACCUMULATOR: "MWh"}.get(dtype, UNITS[self.unit_idx[i]])
        prefix = {ANALOG: "AN", ACCUMULATOR: "AC", STATUS: "BRK"}[dtype]
        sub = f"{self.site.name.upper()}-SS{int(self.substation[i]):03d}"
        return PointInfo(
            ikey=int(self.ikeys[i]),
            ems_id=f"{self.site.name}:{i + 1}",
            name=f"{sub}.{prefix}{i + 1:06d}",
            substation=sub,
            device=DEVICES[i % len(DEVICES)],
            data_type=dtype,
            units=unit,
            resolution=float(self.resolution[i]) if dtype == ANALOG else 0.001,
        )

    def active(self, seq: int) -> int:
        """How many points exist at scan ``seq``: the first ``active`` indices."""
        return self.site.points + bisect.bisect_right(self.site.new_point_scans, seq)

    def changed_at(self, seq: int, salt: int) -> int:
        """The index of the point a rename (salt 77) or move (salt 78) at ``seq`` hits."""
        return int(_rng(self.site.seed, salt, seq).integers(0, self.active(seq)))

    def limits(self, scan: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(ikeys, values[n, 4]) of every analog with limits, as in force at scan ``scan``.

        Normal limits bracket the load curve (which stays within 0.5 and 1.0
        times the base load); tightened ones put the normal high limit at 0.4
        and the emergency high at 0.45 times the base load.
        """
        idx = np.flatnonzero(self.has_limits)
        span = np.abs(self.base[idx])
        tight = bisect.bisect_right(self.site.limit_change_scans, scan) % 2 == 1
        high, emergency = (0.4, 0.45) if tight else (1.15, 1.3)
        vals = np.stack(
            [np.full(len(idx), np.nan), -0.1 * span, high * span, emergency * span], axis=1
        )
        return self.ikeys[idx], np.round(vals, 1)

    def limits_change_at(self, scan: int) -> bool:
        return scan in self.site.limit_change_scans

    def excursion(self, scan: int) -> np.ndarray:
        """Each point's excursion factor of its normal high limit at ``scan`` (0: none)."""
        if self.site.excursion_rate <= 0:
            return np.zeros(len(self.ikeys))
        step = (scan - self.excursion_offset) % self.excursion_interval
        started = scan >= self.excursion_offset
        factor = np.select([step == 0, step == 1, step == 2, step == 3], [0.97, 1.1, 1.3, 1.1], 0.0)
        return np.where(self.has_limits & started, factor, 0.0)

    def _shape(self, t_ms: np.ndarray | int) -> np.ndarray:
        day = 2 * np.pi * (np.asarray(t_ms) % DAY_MS) / DAY_MS
        return 0.75 + 0.2 * np.sin(day - self.phase) + 0.05 * np.sin(3 * day + self.phase)

    def _energy_mwh(self, t_ms: int) -> np.ndarray:
        """Closed-form integral of |base| * shape from 0 to t: it only grows."""
        w = 2 * np.pi / DAY_MS
        integral = (
            0.75 * t_ms
            + 0.2 / w * (np.cos(-self.phase) - np.cos(w * t_ms - self.phase))
            + 0.05 / (3 * w) * (np.cos(self.phase) - np.cos(3 * w * t_ms + self.phase))
        )
        return np.abs(self.base) * integral / 3_600_000

    def status(self, scan: int) -> tuple[np.ndarray, np.ndarray]:
        """(state, transitions since the previous scan) of every point at scan ``scan``."""
        since = scan - self.offset
        toggles = np.where(since >= 0, since // self.interval + 1, 0)
        state = np.where(toggles % 2 == 1, 3.0 - self.initial_state, self.initial_state)
        changed = (since >= 0) & (since % self.interval == 0)
        # Momentaries fall half an interval away from real changes.
        phase = scan - self.offset - self.interval // 2
        momentary = ~changed & (phase >= 0) & (phase % self.momentary_interval == 0)
        changes = np.where(changed, 1, np.where(momentary, 2, 0)).astype(np.uint8)
        return state, changes

    def values(self, scan: int, scan_time_ms: int, host_salt: int) -> tuple[np.ndarray, np.ndarray]:
        """(values, status transitions) of every point as one host reads scan ``scan``."""
        rng = _rng(self.site.seed, 3, scan, host_salt)
        analog = self.base * np.where(self.unit_idx == 2, 1.0, self._shape(scan_time_ms))
        analog = analog + rng.normal(0, 0.002, len(analog)) * np.abs(self.base)
        excursion = self.excursion(scan)
        analog = np.where(excursion > 0, 1.15 * np.abs(self.base) * excursion, analog)
        analog = np.where(self.out_of_service, 0.0, analog)
        analog = np.round(np.round(analog / self.resolution) * self.resolution, 2)
        state, changes = self.status(scan)
        energy = np.round(self._energy_mwh(scan_time_ms), 3)
        values = np.where(self.dtype == STATUS, state, analog)
        values = np.where(self.dtype == ACCUMULATOR, energy, values)
        return values, np.where(self.dtype == STATUS, changes, 0).astype(np.uint8)


def host_salt(host: str) -> int:
    return zlib.crc32(host.encode())
