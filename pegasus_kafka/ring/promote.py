"""When a syncing ring may serve: caught up, and proven identical to a peer.

One server of each syncing ring (the live one with the lowest id) follows the
ring's progress and writes it into the ring's registry record: the fraction of
the topics' records applied and an ETA from the recent apply rate. Once every
partition is owned by a server that is within the lag threshold, it compares
the ring's digests with a serving peer ring, partition by partition, at equal
applied offsets (see :mod:`pegasus_kafka.ring.verify`); rings that start
together, none serving yet, compare with each other. Only when every
partition agrees does the ring become IN_SYNC, and smart clients start to use
it. A difference keeps the ring SYNCING and is logged as an error naming the
partitions. With no other ring caught up (the first ring, or every other ring
down) lag alone decides, and the record says no peer verified it.

It runs on the server's heartbeat thread: it talks HTTP to other servers,
which must never hold up ingest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import (
    RegistryView,
    RegistryWriter,
    now_ms,
    ring_key,
    snapshot_peer,
)
from pegasus_kafka.ring.health import expected_partitions, live_servers, ring_complete, ring_serving
from pegasus_kafka.ring.verify import Verdict, compare, gather

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Applied records against the topics' end offsets, over the partitions seen."""

    applied: int
    total: int
    partitions: int

    @property
    def fraction(self) -> float:
        if not self.partitions:
            return 0.0
        return 1.0 if self.total <= 0 else min(1.0, self.applied / self.total)


def progress_of(parts: dict[str, Any], expected: int) -> Progress:
    applied = total = 0
    for p in parts.values():
        applied += int(p["applied_offset"])
        total += int(p["applied_offset"]) + int(p.get("lag") or 0)
    # Partitions nobody reports yet count as not started, of unknown size.
    seen = len(parts)
    if seen < expected and seen:
        total = int(total * expected / seen)
    return Progress(applied, total, seen)


class RateEstimate:
    """Records applied per second, smoothed, for an ETA."""

    def __init__(self, weight: float = 0.3) -> None:
        self.weight = weight
        self.rate: float | None = None
        self._last: tuple[float, int] | None = None

    def update(self, at: float, applied: int) -> float | None:
        if self._last is not None and at > self._last[0]:
            sample = max(0.0, (applied - self._last[1]) / (at - self._last[0]))
            self.rate = (
                sample
                if self.rate is None
                else (self.weight * sample + (1 - self.weight) * self.rate)
            )
        self._last = (at, applied)
        return self.rate

    def eta(self, remaining: int) -> float | None:
        if remaining <= 0:
            return 0.0
        if not self.rate:
            return None
        return remaining / self.rate


def choose_peer(cfg: Config, view: RegistryView, ring: str) -> str | None:
    """The ring to compare with: the snapshot source if it serves, else the first
    serving ring by name, else (rings starting together) the first other ring
    that has caught up too."""
    rec = view.ring(ring) or {}
    preferred = snapshot_peer(rec)
    others = sorted(r for r, rec in view.rings().items() if r != ring and rec["state"] != "RETIRED")
    serving = [r for r in others if ring_serving(cfg, view, r)]
    if preferred in serving:
        return preferred
    if serving:
        return serving[0]
    caught_up = [r for r in others if ring_complete(cfg, view, r)]
    return caught_up[0] if caught_up else None


def agreement(
    cfg: Config, view: RegistryView, ring: str, peer: str, http: httpx.Client | None = None
) -> Verdict:
    return compare(
        gather(cfg, view, ring, http=http), gather(cfg, view, peer, http=http), (ring, peer)
    )


class Promoter:
    """Run :meth:`tick` once a heartbeat, off the ingest thread."""

    def __init__(self, cfg: Config, ring: str, server_id: str, view: RegistryView) -> None:
        self.cfg = cfg
        self.ring = ring
        self.server_id = server_id
        self.view = view
        self._writer = RegistryWriter(cfg)
        self._rate = RateEstimate()
        self._http = httpx.Client(timeout=10)

    def tick(self) -> None:
        try:
            self.step()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.info("sync check incomplete ring=%s error=%s", self.ring, exc)
        except Exception:  # the next heartbeat tries again; the server keeps running
            log.exception("sync check failed ring=%s", self.ring)

    def close(self) -> None:
        self._http.close()

    def _leader(self) -> bool:
        live = sorted(s.server for s in live_servers(self.cfg, self.view, self.ring))
        return bool(live) and live[0] == self.server_id

    def step(self) -> None:
        rec = self.view.ring(self.ring)
        if rec is None or rec["state"] != "SYNCING" or not self._leader():
            return
        parts = gather(self.cfg, self.view, self.ring, http=self._http)
        progress = progress_of(parts, len(expected_partitions(self.cfg)))
        self._rate.update(time.monotonic(), progress.applied)
        eta = self._rate.eta(progress.total - progress.applied)
        update: dict[str, Any] = {"sync_progress": progress.fraction, "sync_eta_s": eta}
        if ring_complete(self.cfg, self.view, self.ring):
            peer = choose_peer(self.cfg, self.view, self.ring)
            if peer is None:
                log.info("ring in sync on lag alone, no other ring caught up ring=%s", self.ring)
                update.update(state="IN_SYNC", sync_progress=1.0, sync_eta_s=0.0)
            else:
                verdict = agreement(self.cfg, self.view, self.ring, peer, self._http)
                if verdict.different:
                    log.error(
                        "ring digests differ from peer, staying syncing ring=%s peer=%s "
                        "partitions=%s",
                        self.ring,
                        peer,
                        ",".join(p for p, _ in verdict.different),
                    )
                elif not verdict.not_comparable:
                    log.info(
                        "ring in sync ring=%s verified_with=%s partitions=%d",
                        self.ring,
                        peer,
                        len(verdict.equal),
                    )
                    update.update(
                        state="IN_SYNC", sync_progress=1.0, sync_eta_s=0.0, verified_with=peer
                    )
        self._write(update)

    def _write(self, update: dict[str, Any]) -> None:
        # Re-read right before writing: the ring may have been retired meanwhile,
        # and a retirement must never be overwritten.
        rec = self.view.ring(self.ring)
        if rec is None or rec["state"] != "SYNCING":
            return
        self._writer.put(ring_key(self.ring), dict(rec, **update, updated_ms=now_ms()))
        self._writer.flush()
