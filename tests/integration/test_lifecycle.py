"""Ring lifecycle: add by replay or snapshot, replace, remove under load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import ring_serving
from tests.helpers import wait_for
from tests.integration.harness import (
    QueryLoad,
    Ring,
    produce_site,
    ring_cli,
    start_ring,
    wait_caught_up,
)


def _wait_serving(cfg: Config, name: str, timeout: float = 120.0) -> dict:
    view = RegistryView(cfg)
    try:
        wait_for(lambda: ring_serving(cfg, view, name), timeout, f"ring {name} in sync")
        return dict(view.ring(name) or {})
    finally:
        view.close()


def _digests_equal(cfg: Config, a: str, b: str) -> None:
    code, out = ring_cli(cfg, "verify", a, b, "--json")
    body = json.loads(out.strip().splitlines()[-1])
    assert code == 0, body
    assert len(body["equal"]) == len(cfg.data_topics) * cfg.topics.partitions


def test_a_third_ring_syncs_by_replay_and_a_fourth_by_snapshot(cfg: Config) -> None:
    produce_site(cfg, range(5000, 5030))
    rings: list[Ring] = [start_ring(cfg, "la", servers=2), start_ring(cfg, "lb", servers=1)]
    try:
        for ring in rings:
            wait_caught_up(ring, cfg)

        replayed = start_ring(cfg, "lc", servers=1)
        rings.append(replayed)
        rec = _wait_serving(cfg, "lc")
        assert rec["verified_with"] in ("la", "lb") and rec["sync_progress"] == 1.0
        starts = replayed.health()[0]["assigned_from"]
        assert all(offset == 0 for offset, _ in starts.values()), starts
        _digests_equal(cfg, "lc", "la")
        _digests_equal(cfg, "lc", "lb")

        code, out = ring_cli(cfg, "add", "ld", "--from", "la")
        assert code == 0 and "snapshot of la" in out
        copied = Ring(cfg, "ld")
        rings.append(copied)
        copied.start_server("s1")
        code, out = ring_cli(cfg, "sync", "ld", "--timeout", "120")
        assert code == 0, out
        assert "digests equal to la's" in out
        ends = wait_caught_up(rings[0], cfg)
        starts = copied.health()[0]["assigned_from"]
        # Every partition with data started at the peer's offset, not at zero.
        for part, (offset, _) in starts.items():
            assert offset == ends[part]["applied_offset"], (part, starts)
        _digests_equal(cfg, "ld", "la")

        code, out = ring_cli(cfg, "status", "ld", "--json")
        row = json.loads(out)[0]
        assert code == 0 and row["state"] == "IN_SYNC" and row["sync_mode"] == "snapshot:la"
        parts = len(cfg.data_topics) * cfg.topics.partitions
        assert row["digests"].startswith(f"equal {parts}/{parts}"), row["digests"]
    finally:
        for ring in rings:
            ring.stop()


def test_a_ring_is_replaced_with_empty_disks_and_removal_fails_no_query(cfg: Config) -> None:
    produce_site(cfg, range(5100, 5120))
    keep = start_ring(cfg, "ra", servers=1)
    old = start_ring(cfg, "rb", servers=2)
    new: Ring | None = None
    load = QueryLoad(cfg)
    try:
        wait_caught_up(keep, cfg)
        wait_caught_up(old, cfg)
        wait_for(lambda: len(load.client.rings()) == 2, 30, "both rings serving")
        load.start()
        load.wait_answers("rb", 5, 30)

        code, out = ring_cli(cfg, "remove", "rb")
        assert code == 0, out
        wait_for(lambda: not any(s.thread.is_alive() for s in old.servers), 30, "rb to stop")
        old.stop()
        load.wait_answers("ra", 50)
        assert load.failures == []

        # Same name, empty disks: a replacement ring replays and proves itself again.
        shutil.rmtree(Path(cfg.store.data_dir) / "rb")
        new = start_ring(cfg, "rb", servers=2)
        rec = _wait_serving(cfg, "rb")
        assert rec["verified_with"] == "ra"
        _digests_equal(cfg, "rb", "ra")
        load.wait_answers("rb", 20)
        load.stop()
        assert load.failures == []
    finally:
        load.stop()
        keep.stop()
        old.stop()
        if new is not None:
            new.stop()
