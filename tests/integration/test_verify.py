"""``pegasus ring verify``: equal rings pass; a corrupted sample is named."""

from __future__ import annotations

import json

from pegasus_kafka.config import Config
from pegasus_kafka.ring.scan import ScanPartition
from tests.integration.harness import produce_site, ring_cli, start_ring, wait_caught_up


def _verify(cfg: Config, *args: str) -> tuple[int, dict]:
    code, out = ring_cli(cfg, "verify", *args, "--json")
    return code, json.loads(out.strip().splitlines()[-1])


def test_verify_passes_equal_rings_and_names_a_corrupted_partition(cfg: Config) -> None:
    produce_site(cfg, range(3000, 3020))
    a, b = start_ring(cfg, "va", servers=1), start_ring(cfg, "vb", servers=1)
    try:
        wait_caught_up(a, cfg)
        wait_caught_up(b, cfg)
        code, body = _verify(cfg, "va", "vb", "--deep")
        assert code == 0, body
        assert len(body["equal"]) == len(cfg.data_topics) * cfg.topics.partitions

        # Damage one entry of ring vb's store behind its back, like a bad disk:
        # a listed frame of the head (whose bytes Kafka holds) now reads as junk.
        server = b.servers[0].server
        victim = server.materialiser(cfg.scan_topic, 1)
        assert isinstance(victim, ScanPartition)
        frames = victim.store.cf("frames")
        key, value = next(iter(frames.items()))
        frames.put(key, value + b"\xff")

        code, body = _verify(cfg, "va", "vb", "--deep")
        assert code == 1
        named = [part for part, _ in body["different"]]
        assert named == [f"vb {cfg.scan_topic}:1"], body
    finally:
        a.stop()
        b.stop()
