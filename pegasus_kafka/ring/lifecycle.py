"""Adding and retiring rings: the registry side of ``pegasus ring add|remove``.

Neither touches another ring's consumer group, so adding or removing a ring
never rebalances the rings that serve.
"""

from __future__ import annotations

import logging
import time

from pegasus_kafka.config import Config
from pegasus_kafka.errors import KafkaUnavailable, RegistryError
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.registry import (
    RegistryView,
    RegistryWriter,
    now_ms,
    ring_key,
    ring_record,
    server_key,
)
from pegasus_kafka.ring.health import live_servers, ring_serving

log = logging.getLogger(__name__)


def add_ring(cfg: Config, view: RegistryView, name: str, peer: str | None = None) -> bool:
    """Register ``name`` as syncing; False if it is already registered and active."""
    if peer is not None and (peer == name or not ring_serving(cfg, view, peer)):
        raise RegistryError(f"ring '{peer}' is not serving, so it cannot give a snapshot")
    existing = view.ring(name)
    if existing is not None and existing["state"] != "RETIRED":
        return False
    RegistryWriter(cfg).add_ring(name, snapshot_from=peer)
    log.info("ring added ring=%s sync_from=%s", name, peer or "replay")
    return True


def remove_ring(
    cfg: Config, view: RegistryView, name: str, force: bool = False, wait_s: float = 60.0
) -> None:
    """Retire ``name``, wait for its servers to stop, then delete its consumer group.

    Refuses to retire the last serving ring unless ``force``.
    """
    rec = view.ring(name)
    if rec is None or rec["state"] == "RETIRED":
        raise RegistryError(f"no active ring named '{name}'")
    serving = [r for r in view.rings() if ring_serving(cfg, view, r)]
    if serving == [name] and not force:
        raise RegistryError(
            f"ring '{name}' is the last in-sync ring; removing it stops all queries "
            "(use --force to do it anyway)"
        )
    writer = RegistryWriter(cfg)
    retired = ring_record(name, "RETIRED", rec["created_ms"], rec["sync_mode"], now_ms())
    writer.put(ring_key(name), retired)
    writer.flush()
    deadline = time.monotonic() + wait_s
    while live_servers(cfg, view, name) and time.monotonic() < deadline:
        time.sleep(0.2)  # poll
    left = live_servers(cfg, view, name)
    if left:
        raise RegistryError(
            f"ring '{name}' retired, but servers {[s.server for s in left]} are still running"
        )
    # Written again once the servers are gone: a server's last progress update
    # may have raced the first one.
    writer.put(ring_key(name), retired)
    for entry in view.servers(name):
        writer.put(server_key(name, entry.server), None)
    writer.flush()
    delete_group(cfg, cfg.group_id(name))
    log.info("ring removed ring=%s", name)


def delete_group(cfg: Config, group: str) -> None:
    admin = clients.admin(cfg)
    futures = admin.delete_consumer_groups([group], request_timeout=15)
    for fut in futures.values():
        try:
            clients.wait_result(fut, f"delete consumer group {group}")
        except KafkaUnavailable as exc:  # a group that never committed does not exist
            log.info("consumer group not deleted group=%s error=%s", group, exc)
