"""The RDS engine under failure: crashes, lost servers, hand-over from standby."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import live_servers
from pegasus_kafka.schema import BACKUP, PRIMARY
from tests.helpers import wait_for
from tests.integration.harness import (
    end_offsets,
    produce_site,
    register_ring,
    start_ring,
    start_server_process,
    wait_caught_up,
)


def _process_partitions(cfg: Config, ring: str) -> dict[str, dict[str, Any]]:
    """Partitions of a ring whose servers run as processes, via their health endpoints."""
    view = RegistryView(cfg)
    try:
        view.wait_caught_up()
        out: dict[str, dict[str, Any]] = {}
        for entry in live_servers(cfg, view, ring):
            out.update(httpx.get(f"{entry.endpoint}/v1/health", timeout=10).json()["partitions"])
        return out
    finally:
        view.close()


def test_kill_9_mid_ingest_then_restart_gives_the_uncrashed_digest(
    cfg: Config, tmp_path: Path
) -> None:
    site = cfg.sites[0]
    killed = threading.Event()

    def produce() -> None:
        """Both hosts scan together until the kill, then 100 scans more."""
        cols = [
            Collector(cfg, SimSource(site, h, r))
            for h, r in (("ems-a", PRIMARY), ("ems-b", BACKUP))
        ]
        for col in cols:
            col.publish_metadata()
        seq, after_kill = 5000, 0
        while after_kill < 100:
            for col in cols:
                col.collect(seq)
            seq += 1
            after_kill += killed.is_set()
            killed.wait(0.01)  # pace the feed like a scan clock, so ingest overlaps it
        for col in cols:
            col.flush(60)

    register_ring(cfg, "crashy")
    log = tmp_path / "crashy.log"
    proc = start_server_process(cfg, "crashy", "s1", log)
    feeder = threading.Thread(target=produce)
    feeder.start()
    wait_for(
        lambda: any(p["applied_offset"] > 0 for p in _process_partitions(cfg, "crashy").values()),
        60,
        "the server to start materialising",
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed.set()
    feeder.join()

    proc = start_server_process(cfg, "crashy", "s1", log)
    reference = start_ring(cfg, "steady", servers=1)
    try:
        ends = end_offsets(cfg)
        expected = wait_caught_up(reference, cfg, timeout=120)

        def crashy_caught_up() -> dict[str, dict[str, Any]] | None:
            parts = _process_partitions(cfg, "crashy")
            done = all(parts.get(k, {}).get("applied_offset", -1) >= v for k, v in ends.items())
            return parts if done else None

        crashed = wait_for(crashy_caught_up, 120, "the restarted server to catch up")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reference.stop()
    assert crashed.keys() == expected.keys()
    for name, info in expected.items():
        assert crashed[name]["applied_offset"] == info["applied_offset"], name
        assert crashed[name]["digest"] == info["digest"], name


def test_a_lost_server_hands_over_from_standby_not_from_zero(cfg: Config) -> None:
    produce_site(cfg, range(2000, 2030))
    ring = start_ring(cfg, "warm", servers=2)
    try:
        wait_caught_up(ring, cfg)
        ends = end_offsets(cfg)
        # The lost server must own data: the group may give one server only
        # partitions nothing was written to, which move at offset zero.
        lost, survivor = sorted(
            ring.servers,
            key=lambda s: -sum(ends[f"{t}:{p}"] for t, p in s.server.parts),
        )

        def standby_complete() -> bool:
            keeper = survivor.server.standby
            assert keeper is not None
            owned = {tuple(k) for k in lost.server.parts}
            copies = dict(keeper.parts)
            return bool(owned) and all(
                tp in copies and copies[tp].store.applied_offset >= ends[f"{tp[0]}:{tp[1]}"]
                for tp in owned
            )

        wait_for(standby_complete, 60, "the survivor to hold warm copies of the lost partitions")
        moved = set(lost.server.parts)
        lost.stop()
        wait_for(lambda: moved <= set(survivor.server.parts), 60, "the partitions to move")
        for tp in moved:
            offset, source = survivor.server.assigned_from[tp]
            assert source == "standby", tp
            assert offset == ends[f"{tp[0]}:{tp[1]}"], (tp, offset)
        assert any(survivor.server.assigned_from[tp][0] > 0 for tp in moved), (
            moved,
            ends,
            survivor.server.assigned_from,
        )
        # The survivor keeps ingesting and serves the whole ring alone.
        produce_site(cfg, range(2030, 2035))
        wait_caught_up(ring, cfg)
    finally:
        ring.stop()


def test_a_server_added_to_a_ring_starts_warm_not_from_zero(cfg: Config) -> None:
    produce_site(cfg, range(2100, 2130))
    ring = start_ring(cfg, "grow", servers=1)
    try:
        wait_caught_up(ring, cfg)
        ends = end_offsets(cfg)
        s2 = ring.start_server("s2")
        wait_for(lambda: len(s2.server.parts) >= 4, 60, "partitions to move to the new server")
        wait_caught_up(ring, cfg)
        starts = dict(s2.server.assigned_from)
        for (topic, part), (offset, source) in starts.items():
            if ends[f"{topic}:{part}"] > 0:
                # Warm either way: a snapshot of s1's store, or a standby copy s2
                # already held when the group handed the partition over.
                assert source in ("snapshot", "standby") and offset > 0, (topic, part, source)
    finally:
        ring.stop()
