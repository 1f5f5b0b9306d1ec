"""An EMS host's scans read over IEC 60870-5-104 (the ``c104`` package).

The source is a 104 client (controlling station) of one outstation. It keeps
the latest value of each configured point, filled by the general
interrogation at connect and by the outstation's spontaneous and periodic
reports; each scan is a snapshot of those values at the scan's time.

Points are given as ``IOA:TYPE`` pairs. A point's invariant key comes from the
site's code, the station's common address and the IOA, so it is the same for
both EMS hosts, stable for as long as the point keeps its address, and never
collides with another site's. Supported monitoring types: ``M_ME_NA_1``,
``M_ME_NB_1``, ``M_ME_NC_1`` (analogs), ``M_SP_NA_1``, ``M_DP_NA_1`` (status:
1 open/off, 2 closed/on) and ``M_IT_NA_1`` (accumulators). While the
connection is down every value of a scan is marked not topical.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pegasus_kafka.collector.frames import Scan
from pegasus_kafka.collector.sources import ScanResult
from pegasus_kafka.config import SiteConfig
from pegasus_kafka.errors import ConfigError
from pegasus_kafka.keys import make_ikey
from pegasus_kafka.schema import ACCUMULATOR, ANALOG, DATA_TYPES, Q_INVALID, Q_NOT_TOPICAL, STATUS

KINDS = {
    "M_ME_NA_1": ANALOG,
    "M_ME_NB_1": ANALOG,
    "M_ME_NC_1": ANALOG,
    "M_SP_NA_1": STATUS,
    "M_DP_NA_1": STATUS,
    "M_IT_NA_1": ACCUMULATOR,
}


@dataclass(frozen=True)
class PointSpec:
    ioa: int
    kind: str

    @property
    def data_type(self) -> int:
        return KINDS[self.kind]


def parse_points(spec: str) -> list[PointSpec]:
    """``"11:M_ME_NC_1,12:M_SP_NA_1"`` to point specs; a bad entry is named."""
    out = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        ioa, _, kind = item.partition(":")
        if not ioa.isdigit() or kind not in KINDS:
            raise ConfigError(
                "--points", f"'{item}': expected IOA:TYPE with TYPE one of {', '.join(KINDS)}"
            )
        out.append(PointSpec(int(ioa), kind))
    if not out:
        raise ConfigError("--points", "give at least one IOA:TYPE")
    return out


def point_ikey(site_code: int, common_address: int, ioa: int) -> int:
    return make_ikey(site_code, (common_address << 24) | ioa)


class Iec104Source:
    """One EMS host's view of one 104 outstation, scanned on the site's clock."""

    def __init__(
        self,
        site: SiteConfig,
        host: str,
        role: int,
        ip: str,
        port: int,
        common_address: int,
        points: list[PointSpec],
    ) -> None:
        import c104

        self.site = site
        self.host = host
        #: the outstation's readings are read as one whole scan
        self.poll_groups = 1
        self.role = role
        self.common_address = common_address
        self.specs = points
        self._client = c104.Client(tick_rate_ms=100, command_timeout_ms=2000)
        conn = self._client.add_connection(ip=ip, port=port, init=c104.Init.INTERROGATION)
        station = conn.add_station(common_address=common_address) if conn else None
        if conn is None or station is None:
            raise ConfigError("--endpoint", f"cannot add a 104 connection to {ip}:{port}")
        self._conn = conn
        self._points = []
        self._heard: set[int] = set()
        for p in points:
            point = station.add_point(io_address=p.ioa, type=getattr(c104.Type, p.kind))
            if point is None:
                raise ConfigError("--points", f"IOA {p.ioa} is given twice")
            point.on_receive(callable=self._receiver(c104))
            self._points.append(point)
        self.ikeys = np.array(
            [point_ikey(site.code, common_address, p.ioa) for p in points], np.int64
        )
        self._client.start()

    @property
    def connected(self) -> bool:
        return bool(self._conn.is_connected)

    def _receiver(self, c104: Any) -> Any:
        """A receive callback marking its point as heard from. c104 checks the
        callback's parameter names and types, so they are set exactly."""

        def on_receive(point: Any, previous_info: Any, message: Any) -> Any:
            self._heard.add(int(point.io_address))
            return c104.ResponseState.SUCCESS

        on_receive.__annotations__ = {
            "point": c104.Point,
            "previous_info": c104.Information,
            "message": c104.IncomingMessage,
            "return": c104.ResponseState,
        }
        return on_receive

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until every measurand and status point has been heard from, so the
        first scan holds the outstation's values rather than defaults. The
        general interrogation at connect covers them; counters are asked for
        with a counter interrogation as soon as the connection is up. Anything
        still missing after a few seconds is asked for again. A point never
        heard from is reported invalid, not as a good zero."""
        deadline = time.monotonic() + timeout
        ask_at = time.monotonic()
        counters = any(p.kind == "M_IT_NA_1" for p in self.specs)
        needed = {p.ioa for p in self.specs if p.kind != "M_IT_NA_1"}
        asks = 0
        while time.monotonic() < deadline:
            if needed <= self._heard:
                return True
            if self.connected and time.monotonic() >= ask_at:
                asks += 1
                if asks > 1:
                    self._conn.interrogation(
                        common_address=self.common_address, wait_for_response=False
                    )
                if counters:
                    self._conn.counter_interrogation(
                        common_address=self.common_address, wait_for_response=False
                    )
                ask_at = time.monotonic() + 2.0
            time.sleep(0.05)  # poll
        return False

    def metadata(self, upto: int | None = None) -> list[dict[str, Any]]:
        return [
            {
                "ikey": int(k),
                "version": 1,
                "valid_from_ms": 0,
                "change": "CREATED",
                "site": self.site.name,
                "ems_id": f"CA{self.common_address}/IOA{p.ioa}",
                "name": f"{self.site.name.upper()}.CA{self.common_address}.IOA{p.ioa}",
                "substation": f"CA{self.common_address}",
                "device": p.kind,
                "data_type": DATA_TYPES[p.data_type],
                "units": "",
                "resolution": 0.0,
            }
            for k, p in zip(self.ikeys.tolist(), self.specs, strict=True)
        ]

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, quality) of every point now, in spec order."""
        values = np.zeros(len(self._points))
        quality = np.zeros(len(self._points), np.uint8)
        stale = 0 if self.connected else Q_NOT_TOPICAL
        for i, (spec, point) in enumerate(zip(self.specs, self._points, strict=True)):
            values[i], quality[i] = _reading(spec, point)
            quality[i] |= stale
            if spec.ioa not in self._heard:
                quality[i] |= Q_INVALID | Q_NOT_TOPICAL
        return values, quality

    def prepare(self, seq: int) -> None:
        """Readings arrive from the outstation; there is nothing to compute ahead."""

    def read(self, seq: int, group: int = 0) -> ScanResult:
        values, quality = self.values()
        kinds = np.array([p.data_type for p in self.specs])
        scans = []
        for dtype in (ANALOG, ACCUMULATOR, STATUS):
            sel = kinds == dtype
            if sel.any():
                changes = np.zeros(int(sel.sum()), np.uint8) if dtype == STATUS else None
                scans.append(Scan(dtype, self.ikeys[sel], values[sel], quality[sel], changes))
        return ScanResult(seq * self.site.scan_period_ms, self.role, scans)

    def close(self) -> None:
        self._client.stop()


def _reading(spec: PointSpec, point: Any) -> tuple[float, int]:
    value = point.value
    if spec.kind == "M_SP_NA_1":
        number = 2.0 if value else 1.0
    elif spec.kind == "M_DP_NA_1":
        number = float(int(value.value))
    else:
        number = float(value)
    quality = point.quality
    if spec.kind == "M_IT_NA_1":
        bits = Q_INVALID if not quality.is_good else 0
    else:
        # c104's quality flags are the IEC 104 QDS bits, as the RDS keeps them.
        bits = int(quality.value) & 0xFF
    return number, bits
