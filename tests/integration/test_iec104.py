"""IEC 60870-5-104: points of a real 104 outstation arrive in the RDS."""

from __future__ import annotations

import socket

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_points_of_a_104_outstation_arrive_in_the_rds(cfg: Config) -> None:
    ensure_topics(cfg)
    port = _free_port()
    server = c104.Server(ip="127.0.0.1", port=port)
    station = server.add_station(common_address=CA)
    assert station is not None
    analog = station.add_point(io_address=11, type=c104.Type.M_ME_NC_1, report_ms=0)
    single = station.add_point(io_address=12, type=c104.Type.M_SP_NA_1, report_ms=0)
    double = station.add_point(io_address=13, type=c104.Type.M_DP_NA_1, report_ms=0)
    counter = station.add_point(io_address=14, type=c104.Type.M_IT_NA_1, report_ms=0)
    assert None not in (analog, single, double, counter)
    analog.value, single.value, double.value = 101.5, True, c104.Double.OFF
    server.start()
    site = cfg.sites[0]
    source = Iec104Source(site, "ems-a", PRIMARY, "127.0.0.1", port, CA, parse_points(SPEC))
    ring = None
    try:
        assert source.wait_connected(15)
        wait_for(lambda: source.values()[0][0] == 101.5, 15, "the interrogation's values")
        col = Collector(cfg, source)
        col.publish_metadata()
        # Three scans; between them the outstation reports changes spontaneously.
        steps = [
            (101.5, True, c104.Double.OFF),
            (99.25, False, c104.Double.ON),
            (-3.0, True, c104.Double.ON),
        ]
        for seq, (a, s, d) in enumerate(steps, start=100):
            analog.value, single.value, double.value = a, s, d
            for point in (analog, single, double):
                point.transmit(cause=c104.Cot.SPONTANEOUS)
            wait_for(lambda a=a: source.values()[0][0] == a, 15, "the spontaneous report")
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
        assert history(14, ACCUMULATOR) == [0.0, 0.0, 0.0]
        with PegasusClient(cfg) as client:
            meta = client.meta(point_ikey(site.code, CA, 11)).body["versions"]
        assert meta[0]["ems_id"] == f"CA{CA}/IOA11" and meta[0]["data_type"] == "ANALOG"
    finally:
        source.close()
        server.stop()
        if ring is not None:
            ring.stop()
