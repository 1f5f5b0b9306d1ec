"""Smart client: picks an in-sync ring for each query and fails over to others.

Rings and their servers come from the ring registry (or a fixed list of
endpoints). Each query goes to the next serving ring in round-robin order; a
connection error, timeout or 503 makes the client try the next ring, and a
ring that failed is skipped for ``cooldown_s`` (a simple circuit breaker).
When fewer rings serve than are registered, results say ``degraded``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from pegasus_kafka.config import Config
from pegasus_kafka.errors import NoRingAvailable, QueryError, UnknownPoint
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import live_servers, ring_serving

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryResult:
    body: dict[str, Any]
    ring: str
    endpoint: str
    degraded: bool


class PegasusClient:
    def __init__(
        self,
        cfg: Config,
        endpoints: dict[str, list[str]] | None = None,
        timeout_s: float = 10.0,
        cooldown_s: float = 5.0,
    ) -> None:
        """``endpoints`` maps ring name to server URLs; without it the registry is read."""
        self.cfg = cfg
        self._fixed = endpoints
        self._registry = None if endpoints else RegistryView(cfg)
        if self._registry is not None:
            self._registry.wait_caught_up()
        self._http = httpx.Client(timeout=timeout_s)
        self._cooldown_s = cooldown_s
        self._open_until: dict[str, float] = {}
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.degraded = False

    def rings(self) -> dict[str, list[str]]:
        """Serving rings and their server endpoints."""
        if self._fixed is not None:
            return self._fixed
        assert self._registry is not None
        out = {}
        for name in sorted(self._registry.rings()):
            if ring_serving(self.cfg, self._registry, name):
                servers = live_servers(self.cfg, self._registry, name)
                out[name] = [s.endpoint for s in servers if s.endpoint]
        return out

    def _registered(self) -> int:
        if self._fixed is not None:
            return len(self._fixed)
        assert self._registry is not None
        return sum(1 for r in self._registry.rings().values() if r["state"] != "RETIRED")

    def get(self, path: str, params: dict[str, Any]) -> QueryResult:
        rings = self.rings()
        now = time.monotonic()
        names = sorted(rings)
        start = next(self._counter)
        order = [names[(start + i) % len(names)] for i in range(len(names))] if names else []
        closed = [r for r in order if self._open_until.get(r, 0) <= now]
        order = closed + [r for r in order if r not in closed]
        degraded = len(rings) < self._registered() or len(closed) < len(order)
        if degraded != self.degraded:
            self.degraded = degraded
            log.warning(
                "smart client %s mode rings=%s", "degraded" if degraded else "normal", names
            )
        errors = []
        for ring in order:
            servers = rings[ring]
            for endpoint in servers[start % len(servers) :] + servers[: start % len(servers)]:
                try:
                    resp = self._http.get(f"{endpoint}{path}", params=params)
                except httpx.HTTPError as exc:
                    errors.append(f"{ring}@{endpoint}: {type(exc).__name__}")
                    continue
                if resp.status_code == 200:
                    return QueryResult(resp.json(), ring, endpoint, degraded)
                body = _json(resp)
                if resp.status_code == 404:
                    raise UnknownPoint(body.get("detail", "unknown point"))
                if 400 <= resp.status_code < 500:
                    raise QueryError(body.get("detail", f"HTTP {resp.status_code}"))
                errors.append(
                    f"{ring}@{endpoint}: {resp.status_code} {body.get('error', '')} "
                    f"{body.get('detail', '')}".rstrip()
                )
                break
            with self._lock:
                self._open_until[ring] = time.monotonic() + self._cooldown_s
        raise NoRingAvailable("no ring answered: " + ("; ".join(errors) or "no ring is in sync"))

    def current(self, ikeys: list[int]) -> QueryResult:
        return self.get("/v1/current", {"ikeys": ",".join(map(str, ikeys))})

    def history(self, ikey: int, t0: int, t1: int, host: str | None = None) -> QueryResult:
        params: dict[str, Any] = {"ikey": ikey, "from": t0, "to": t1}
        if host:
            params["host"] = host
        return self.get("/v1/history", params)

    def events(self, t0: int, t1: int, limit: int = 10_000) -> QueryResult:
        return self.get("/v1/events", {"from": t0, "to": t1, "limit": limit})

    def meta(self, ikey: int) -> QueryResult:
        return self.get(f"/v1/meta/{ikey}", {})

    def close(self) -> None:
        self._http.close()
        if self._registry is not None:
            self._registry.close()

    def __enter__(self) -> PegasusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
