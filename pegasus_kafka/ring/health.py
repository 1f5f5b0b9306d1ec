"""Whether a ring, as the registry shows it, holds and serves the whole RDS."""

from __future__ import annotations

from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import RegistryView, ServerEntry

#: a server entry older than this many heartbeats counts as gone...
STALE_BEATS = 4
#: ...and never sooner than this: a busy machine can delay a heartbeat by a
#: second or two, and a ring must not drop out of service for that. A server
#: that really died is found sooner anyway: queries to it fail at once and
#: clients fail over, and Kafka moves its partitions after the session timeout.
MIN_STALE_S = 6.0


def expected_partitions(cfg: Config) -> set[str]:
    return {f"{t}:{p}" for t in cfg.data_topics for p in range(cfg.topics.partitions)}


def live_servers(cfg: Config, registry: RegistryView, ring: str) -> list[ServerEntry]:
    max_age = max(STALE_BEATS * cfg.server.heartbeat_s, MIN_STALE_S)
    return [s for s in registry.servers(ring) if s.fresh(max_age)]


def ring_complete(cfg: Config, registry: RegistryView, ring: str) -> bool:
    """Every partition is owned by a live server and every live server is in sync."""
    servers = live_servers(cfg, registry, ring)
    if not servers or any(s.state != "IN_SYNC" for s in servers):
        return False
    owned = {p for s in servers for p in s.owned}
    return expected_partitions(cfg) <= owned


def ring_serving(cfg: Config, registry: RegistryView, ring: str) -> bool:
    """A ring clients may choose: registered IN_SYNC and complete right now."""
    rec = registry.ring(ring)
    return rec is not None and rec["state"] == "IN_SYNC" and ring_complete(cfg, registry, ring)
