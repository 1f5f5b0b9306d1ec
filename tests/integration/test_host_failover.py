"""Host failovers: the resolved series follows the primary with no gap, even while
every ring is down; each host's mirror stream keeps exactly what it sent."""

from __future__ import annotations

import dataclasses

import numpy as np

from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.ring.resolve import resolve
from pegasus_kafka.ring.scan import ScanPartition
from pegasus_kafka.schema import ANALOG, BACKUP, PRIMARY
from tests.integration.harness import Ring, start_ring, wait_caught_up


def _with_failovers(cfg: Config, *scans: int) -> Config:
    site = dataclasses.replace(cfg.sites[0], failover_scans=tuple(scans))
    return cfg.with_overrides(sites=(site,))


def _collect(cfg: Config, host: str, role: int, scans: range) -> None:
    col = Collector(cfg, SimSource(cfg.sites[0], host, role))
    col.publish_metadata()
    col.run(start=scans.start, count=len(scans), pace=False)
    col.flush(60)
    col.close()


def _streams(ring: Ring, ikey: int) -> tuple[ScanPartition, dict]:
    for server in ring.servers:
        for mat in server.server.parts.values():
            if isinstance(mat, ScanPartition) and mat.knows(ANALOG, ikey):
                return mat, mat.history(ANALOG, ikey, 0, 2**62)
    raise AssertionError(f"no server holds {ikey}")


def _expected(src: SimSource, ikey: int, scans: range) -> tuple[list[int], list[float]]:
    idx = int(np.flatnonzero(src.field.ikeys == ikey)[0])
    times, values = [], []
    for seq in scans:
        t = src.read(seq).scan_time_ms
        times.append(t)
        values.append(float(src.field.values(seq, t, src._salt)[0][idx]))
    return times, values


def _check(cfg: Config, ring: Ring, scans: range) -> None:
    site = cfg.sites[0]
    a, b = SimSource(site, "ems-a", PRIMARY), SimSource(site, "ems-b", BACKUP)
    ikey = int(a.field.ikeys[a.field.dtype == ANALOG][0])
    mat, streams = _streams(ring, ikey)
    for src in (a, b):
        got = streams[f"{site.name}/{src.host}"]
        want_t, want_v = _expected(src, ikey, scans)
        assert got.times.tolist() == want_t, f"{src.host}: mirror stream not exact"
        assert got.values.tolist() == want_v, f"{src.host}: mirror stream not exact"
    resolved = resolve([streams[h] for h in mat.hosts], site.scan_period_ms)
    assert len(resolved) == len(scans), "gap or duplicate in the resolved series"
    for i, seq in enumerate(scans):
        primary = a if a.role_at(seq) == PRIMARY else b
        t, v = _expected(primary, ikey, range(seq, seq + 1))
        assert (int(resolved.times[i]), float(resolved.values[i])) == (t[0], v[0]), seq


def test_the_primary_dies_and_the_resolved_series_continues_from_the_backup(cfg: Config) -> None:
    scans = range(9000, 9030)
    cfg = _with_failovers(cfg, 9012)
    _collect(cfg, "ems-a", PRIMARY, range(9000, 9012))  # dies at the failover
    _collect(cfg, "ems-b", BACKUP, scans)
    ring = start_ring(cfg, "hf", servers=1)
    try:
        wait_caught_up(ring, cfg)
        site = cfg.sites[0]
        a, b = SimSource(site, "ems-a", PRIMARY), SimSource(site, "ems-b", BACKUP)
        ikey = int(a.field.ikeys[a.field.dtype == ANALOG][0])
        mat, streams = _streams(ring, ikey)
        assert len(streams[f"{site.name}/ems-a"]) == 12
        resolved = resolve([streams[h] for h in mat.hosts], site.scan_period_ms)
        want_a = _expected(a, ikey, range(9000, 9012))
        want_b = _expected(b, ikey, range(9012, 9030))
        assert resolved.times.tolist() == want_a[0] + want_b[0]
        assert resolved.values.tolist() == want_a[1] + want_b[1]
    finally:
        ring.stop()


def test_roles_switch_several_times_while_every_ring_is_down(cfg: Config) -> None:
    scans = range(9100, 9140)
    cfg = _with_failovers(cfg, 9112, 9118, 9121, 9130)
    for host, role in (("ems-a", PRIMARY), ("ems-b", BACKUP)):
        _collect(cfg, host, role, range(9100, 9108))
    ring = start_ring(cfg, "hs", servers=2)
    wait_caught_up(ring, cfg)
    ring.stop()
    # Every ring is down while the hosts fail over four times.
    for host, role in (("ems-a", PRIMARY), ("ems-b", BACKUP)):
        _collect(cfg, host, role, range(9108, 9140))
    again = Ring(cfg, "hs")
    for sid in ("s1", "s2"):
        again.start_server(sid)
    try:
        wait_caught_up(again, cfg)
        _check(cfg, again, scans)
    finally:
        again.stop()
