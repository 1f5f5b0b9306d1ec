"""The point metadata an application attaches to what it mines."""

from __future__ import annotations

import json
from typing import Any

#: the metadata fields an exception record carries
FIELDS = ("version", "valid_from_ms", "name", "substation", "device", "units", "resolution")


class MetaIndex:
    """Every known metadata version of the points of one partition."""

    def __init__(self) -> None:
        self._versions: dict[int, list[dict[str, Any]]] = {}

    def add(self, rec: dict[str, Any]) -> bytes | None:
        """Keep a PointMeta version; returns the point's encoded versions to store,
        or None when the version was known already."""
        ikey = int(rec["ikey"])
        versions = self._versions.setdefault(ikey, [])
        if any(v["version"] == rec["version"] for v in versions):
            return None
        versions.append({f: rec[f] for f in FIELDS})
        versions.sort(key=lambda v: v["version"])
        return json.dumps(versions, sort_keys=True).encode()

    def load(self, ikey: int, data: bytes) -> None:
        self._versions[ikey] = json.loads(data)

    def at(self, ikey: int, time_ms: int) -> dict[str, Any] | None:
        """The version in force at ``time_ms`` (the first one if none had started)."""
        versions = self._versions.get(ikey)
        if not versions:
            return None
        best = versions[0]
        for v in versions:
            if v["valid_from_ms"] <= time_ms:
                best = v
        return best

    def fields(self, ikey: int, time_ms: int, names: tuple[str, ...]) -> dict[str, Any]:
        """The record fields ``names`` from the version in force, None where unknown."""
        v = self.at(ikey, time_ms)
        out: dict[str, Any] = {name: (v[name] if v else None) for name in names}
        return out
