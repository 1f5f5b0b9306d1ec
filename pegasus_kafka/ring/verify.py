"""Proving two rings hold the identical RDS, partition by partition.

Rings ingest continuously, so their applied offsets rarely match. Each
partition is compared at the newest offset both rings have a digest for:
the live digest when the applied offsets are equal, else the newest common
digest checkpoint. A deep check also has every server recompute its digests
from what is on disk, which finds at-rest corruption a recorded digest hides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import live_servers


@dataclass
class Verdict:
    equal: list[tuple[str, int]] = field(default_factory=list)
    different: list[tuple[str, str]] = field(default_factory=list)
    not_comparable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.different and not self.not_comparable


def gather(
    cfg: Config,
    registry: RegistryView,
    ring: str,
    deep: bool = False,
    http: httpx.Client | None = None,
) -> dict[str, Any]:
    """Every partition's offset and digests, from the ring's live servers.

    A caller that gathers often (once a heartbeat) passes its own ``http``
    client: building one costs tens of milliseconds of CPU.
    """
    if http is None:
        with httpx.Client(timeout=600 if deep else 10) as own:
            return gather(cfg, registry, ring, deep, own)
    out: dict[str, Any] = {}
    for server in live_servers(cfg, registry, ring):
        path = "/v1/scan-digests" if deep else "/v1/health"
        body = http.get(f"{server.endpoint}{path}").json()
        out.update(body["partitions"])
    return out


def compare(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str]) -> Verdict:
    verdict = Verdict()
    for part in sorted(set(a) | set(b)):
        if part not in a or part not in b:
            missing = names[0] if part not in a else names[1]
            verdict.not_comparable.append((part, f"no server of {missing} owns it"))
            continue
        pa, pb = a[part], b[part]
        if pa["applied_offset"] == pb["applied_offset"]:
            offset, da, db = pa["applied_offset"], pa["digest"], pb["digest"]
        else:
            common = set(pa["checkpoints"]) & set(pb["checkpoints"])
            if not common:
                verdict.not_comparable.append(
                    (
                        part,
                        f"no common offset yet ({pa['applied_offset']} vs {pb['applied_offset']})",
                    )
                )
                continue
            key = max(common, key=int)
            offset, da, db = int(key), pa["checkpoints"][key], pb["checkpoints"][key]
        if da == db:
            verdict.equal.append((part, offset))
        else:
            verdict.different.append((part, f"digest {da} vs {db} at offset {offset}"))
    return verdict


def corrupt(parts: dict[str, Any]) -> list[tuple[str, str]]:
    """Partitions whose recomputed digest differs from the one they recorded."""
    return [
        (name, f"on disk {p['scanned']} but recorded {p['digest']} at offset {p['applied_offset']}")
        for name, p in sorted(parts.items())
        if p["scanned"] != p["digest"]
    ]
