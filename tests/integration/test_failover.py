"""Clients never notice a ring going away; the last in-sync ring cannot be removed."""

from __future__ import annotations

import threading

from click.testing import CliRunner

from pegasus_kafka.cli import common
from pegasus_kafka.cli.main import cli
from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.errors import PegasusError
from pegasus_kafka.schema import PRIMARY
from tests.helpers import wait_for
from tests.integration.harness import produce_site, start_ring, wait_caught_up


def _ring_cli(cfg: Config, *args: str) -> tuple[int, str]:
    state = common.State(None, 0)
    state._cfg = cfg
    result = CliRunner().invoke(cli.commands["ring"], list(args), obj=state)
    return result.exit_code, result.output


def test_stopping_a_whole_ring_under_queries_fails_none(cfg: Config) -> None:
    produce_site(cfg, range(4000, 4010))
    rings = [start_ring(cfg, "fa"), start_ring(cfg, "fb")]
    try:
        for ring in rings:
            wait_caught_up(ring, cfg)
        keys = [int(k) for k in SimSource(cfg.sites[0], "ems-a", PRIMARY).field.ikeys[:50]]
        client = PegasusClient(cfg)
        wait_for(lambda: len(client.rings()) == 2, 30, "both rings serving")
        stop = threading.Event()
        answered: dict[str, int] = {}
        failures: list[str] = []

        def query() -> None:
            while not stop.is_set():
                try:
                    result = client.current(keys)
                    answered[result.ring] = answered.get(result.ring, 0) + 1
                except PegasusError as exc:
                    failures.append(str(exc))

        worker = threading.Thread(target=query)
        worker.start()
        wait_for(
            lambda: answered.get("fa", 0) > 5 and answered.get("fb", 0) > 5,
            30,
            "queries on both rings",
        )
        rings[0].stop()
        before = answered.get("fb", 0)
        wait_for(lambda: answered.get("fb", 0) > before + 50, 60, "queries after the stop")
        stop.set()
        worker.join()
        assert failures == []
        assert client.degraded, "one of two registered rings is gone: degraded mode"
        client.close()
    finally:
        for ring in rings:
            ring.stop()


def test_removing_the_last_in_sync_ring_is_refused(cfg: Config) -> None:
    produce_site(cfg, range(4100, 4105))
    ring = start_ring(cfg, "only", servers=1)
    try:
        wait_caught_up(ring, cfg)
        code, out = _ring_cli(cfg, "remove", "only")
        assert code == 1
        assert "last in-sync ring" in out and "--force" in out
        code, out = _ring_cli(cfg, "list", "--json")
        assert code == 0 and '"state": "IN_SYNC"' in out
    finally:
        ring.stop()
