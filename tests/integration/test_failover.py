"""Clients never notice a ring going away; the last in-sync ring cannot be removed."""

from __future__ import annotations

from pegasus_kafka.config import Config
from tests.helpers import wait_for
from tests.integration.harness import (
    QueryLoad,
    produce_site,
    ring_cli,
    start_ring,
    wait_caught_up,
)


def test_stopping_a_whole_ring_under_queries_fails_none(cfg: Config) -> None:
    produce_site(cfg, range(4000, 4010))
    rings = [start_ring(cfg, "fa"), start_ring(cfg, "fb")]
    try:
        for ring in rings:
            wait_caught_up(ring, cfg)
        load = QueryLoad(cfg)
        wait_for(lambda: len(load.client.rings()) == 2, 30, "both rings serving")
        load.start()
        load.wait_answers("fa", 5, 30)
        load.wait_answers("fb", 5, 30)
        rings[0].stop()
        load.wait_answers("fb", 50)
        load.stop()
        assert load.failures == []
        assert load.client.degraded, "one of two registered rings is gone: degraded mode"
    finally:
        for ring in rings:
            ring.stop()


def test_removing_the_last_in_sync_ring_is_refused(cfg: Config) -> None:
    produce_site(cfg, range(4100, 4105))
    ring = start_ring(cfg, "only", servers=1)
    try:
        wait_caught_up(ring, cfg)
        code, out = ring_cli(cfg, "remove", "only")
        assert code == 1
        assert "last in-sync ring" in out and "--force" in out
        code, out = ring_cli(cfg, "list", "--json")
        assert code == 0 and '"state": "IN_SYNC"' in out
    finally:
        ring.stop()
