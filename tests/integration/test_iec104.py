"""IEC 60870-5-104: points of a real 104 outstation arrive in the RDS."""

from __future__ import annotations

import random
from typing import Any

import c104

from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.iec104 import Iec104Source, parse_points, point_ikey
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.ring.scan import ScanPartition
from pegasus_kafka.schema import ACCUMULATOR, ANALOG, PRIMARY, STATUS
from tests.helpers import wait_for
from tests.integration.harness import start_ring, wait_caught_up

CA = 47
SPEC = "11:M_ME_NC_1,12:M_SP_NA_1,13:M_DP_NA_1,14:M_IT_NA_1"
POINTS = (
    (11, c104.Type.M_ME_NC_1),
    (12, c104.Type.M_SP_NA_1),
    (13, c104.Type.M_DP_NA_1),
    (14, c104.Type.M_IT_NA_1),
)


def _outstation() -> tuple[Any, int]:
    """A started 104 server on a port below the ephemeral range: a port probed
    free there could be taken meanwhile by any outgoing connection (Kafka's)."""
    rng = random.Random()
    for _ in range(20):
        port = rng.randrange(20_000, 32_000)
        server = c104.Server(ip="127.0.0.1", port=port)
        station = server.add_station(common_address=CA)
        assert station is not None
        for ioa, kind in POINTS:
            assert station.add_point(io_address=ioa, type=kind, report_ms=0) is not None
        server.start()
        if server.is_running:
            return server, port
        server.stop()
    raise AssertionError("no free port for the 104 outstation")


def _connected(cfg: Config) -> tuple[Any, Iec104Source]:
    """An outstation and a source that has heard its points. On this machine a
    loopback 104 session now and then stays silent from the start, whatever is
    asked; a fresh outstation and client on another port is tried then."""
    for _ in range(3):
        server, port = _outstation()
        source = Iec104Source(
            cfg.sites[0], "ems-a", PRIMARY, "127.0.0.1", port, CA, parse_points(SPEC)
        )
        if source.wait_ready(15):
            return server, source
        source.close()
        server.stop()
    raise AssertionError("three 104 sessions in a row stayed silent")


def test_points_of_a_104_outstation_arrive_in_the_rds(cfg: Config) -> None:
    ensure_topics(cfg)
    server, source = _connected(cfg)
    station = server.get_station(common_address=CA)
    assert station is not None
    analog, single, double, counter = (station.get_point(io_address=ioa) for ioa, _ in POINTS)
    site = cfg.sites[0]
    ring = None
    try:
        col = Collector(cfg, source)
        col.publish_metadata()
        # Three scans; between them the outstation reports changes spontaneously.
        steps = [
            (101.5, True, c104.Double.OFF, 7),
            (99.25, False, c104.Double.ON, 9),
            (-3.0, True, c104.Double.ON, 12),
        ]
        for seq, (a, s, d, n) in enumerate(steps, start=100):
            analog.value, single.value, double.value, counter.value = a, s, d, n
            for point in (analog, single, double, counter):
                point.transmit(cause=c104.Cot.SPONTANEOUS)
            wait_for(
                lambda a=a, n=n: (source.values()[0][[0, 3]] == [a, n]).all(),
                15,
                "the spontaneous reports",
            )
            col.collect(seq)
        col.flush(60)
        col.close()

        ring = start_ring(cfg, "iec104", servers=1)
        wait_caught_up(ring, cfg)
        mats = [m for m in ring.servers[0].server.parts.values() if isinstance(m, ScanPartition)]

        def history(ioa: int, dtype: int) -> list[float]:
            ikey = point_ikey(site.code, CA, ioa)
            mat = next(m for m in mats if m.knows(dtype, ikey))
            return mat.history(dtype, ikey, 0, 2**62)[f"{site.name}/ems-a"].values.tolist()

        assert history(11, ANALOG) == [101.5, 99.25, -3.0]
        assert history(12, STATUS) == [2.0, 1.0, 2.0]
        assert history(13, STATUS) == [1.0, 2.0, 2.0]
        assert history(14, ACCUMULATOR) == [7.0, 9.0, 12.0]
        with PegasusClient(cfg) as client:
            meta = client.meta(point_ikey(site.code, CA, 11)).body["versions"]
        assert meta[0]["ems_id"] == f"CA{CA}/IOA11" and meta[0]["data_type"] == "ANALOG"
    finally:
        source.close()
        server.stop()
        if ring is not None:
            ring.stop()
