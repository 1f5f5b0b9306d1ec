"""Smart client: picks an in-sync ring for each query and fails over to others.

Rings and their servers come from the ring registry (or a fixed list of
endpoints). Each query goes first to the serving ring its policy picks (round
robin by default, or the fastest, or a fixed order); a
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
import numpy as np

from pegasus_kafka import columnar
from pegasus_kafka.config import Config
from pegasus_kafka.errors import NoRingAvailable, QueryError, UnknownPoint
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import live_servers, ring_serving

log = logging.getLogger(__name__)


POLICIES = ("round_robin", "fastest", "ordered")


@dataclass(frozen=True)
class QueryResult:
    body: dict[str, Any]
    ring: str
    endpoint: str
    degraded: bool


@dataclass(frozen=True)
class Columns:
    """A binary-encoded answer: numpy columns by name, plus what the query adds."""

    columns: dict[str, np.ndarray]
    meta: dict[str, Any]
    ring: str
    endpoint: str
    degraded: bool

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


class PegasusClient:
    def __init__(
        self,
        cfg: Config,
        endpoints: dict[str, list[str]] | None = None,
        timeout_s: float = 10.0,
        cooldown_s: float = 5.0,
        policy: str = "round_robin",
    ) -> None:
        """``endpoints`` maps ring name to server URLs; without it the registry is read.

        ``policy`` picks the ring tried first: ``round_robin`` spreads queries over
        every in-sync ring; ``fastest`` prefers the ring with the lowest recent
        latency (a moving average); ``ordered`` prefers rings in name order (or in
        the order ``endpoints`` lists them), the others being the fail-over.
        """
        if policy not in POLICIES:
            raise QueryError(f"policy: '{policy}' is not one of {', '.join(POLICIES)}")
        self.policy = policy
        self._latency: dict[str, float] = {}
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

    def get(self, path: str, params: dict[str, Any], post: Any = None) -> QueryResult:
        """A JSON query, answered by the first in-sync ring that can (``post``: a JSON
        body, for requests too large for a URL)."""
        resp, ring, endpoint, degraded = self._request(path, params, post)
        return QueryResult(resp.json(), ring, endpoint, degraded)

    def columns(self, path: str, params: dict[str, Any], post: Any = None) -> Columns:
        """A query in the compact binary encoding, decoded to numpy columns."""
        query = {**params, "format": "columns"}
        resp, ring, endpoint, degraded = self._request(path, query, post)
        cols, meta = columnar.decode(resp.content)
        return Columns(cols, meta, ring, endpoint, degraded)

    def _request(
        self, path: str, params: dict[str, Any], post: Any = None
    ) -> tuple[httpx.Response, str, str, bool]:
        rings = self.rings()
        now = time.monotonic()
        names = list(rings) if self._fixed is not None else sorted(rings)
        start = next(self._counter)
        if self.policy == "round_robin":
            order = [names[(start + i) % len(names)] for i in range(len(names))]
        elif self.policy == "fastest":
            order = sorted(names, key=lambda r: self._latency.get(r, 0.0))
        else:
            order = names
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
                    started = time.monotonic()
                    url = f"{endpoint}{path}"
                    if post is None:
                        resp = self._http.get(url, params=params)
                    else:
                        resp = self._http.post(url, params=params, json=post)
                    self._observe(ring, time.monotonic() - started)
                except httpx.HTTPError as exc:
                    errors.append(f"{ring}@{endpoint}: {type(exc).__name__}")
                    continue
                if resp.status_code == 200:
                    return resp, ring, endpoint, degraded
                body = _json(resp)
                if resp.status_code == 404 and body.get("error") == "unknown_point":
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

    def _observe(self, ring: str, seconds: float) -> None:
        with self._lock:
            last = self._latency.get(ring)
            self._latency[ring] = seconds if last is None else 0.8 * last + 0.2 * seconds

    def current(self, ikeys: list[int]) -> QueryResult:
        return self.get("/v1/current", {}, post={"ikeys": [int(k) for k in ikeys]})

    def history(self, ikey: int, t0: int, t1: int, host: str | None = None) -> QueryResult:
        params: dict[str, Any] = {"ikey": ikey, "from": t0, "to": t1}
        if host:
            params["host"] = host
        return self.get("/v1/history", params)

    def current_columns(self, ikeys: list[int]) -> Columns:
        """Current values of many points as numpy columns (``ikeys``, ``type``,
        ``values``, ``quality``, ``time_ms``, ``host``, ``limits``), in key order."""
        return self.columns("/v1/current", {}, post={"ikeys": [int(k) for k in ikeys]})

    def series(
        self,
        ikey: int,
        t0: int,
        t1: int,
        step: int | None = None,
        fill: str | None = None,
        host: str | None = None,
    ) -> Columns:
        """One point as numpy columns: raw samples, or on a regular grid of ``step`` ms
        with min/max/avg per step (fill ``previous`` or, for analogs, ``linear``)."""
        params: dict[str, Any] = {"ikey": ikey, "from": t0, "to": t1}
        for name, value in (("step", step), ("fill", fill), ("host", host)):
            if value is not None:
                params[name] = value
        return self.columns("/v1/history", params)

    def matrix(
        self, ikeys: list[int], t0: int, t1: int, step: int, fill: str | None = None
    ) -> Columns:
        """Several points on one grid: ``values``, ``min``, ``max``, ``avg``,
        ``count`` are (points, steps) arrays; ``times`` the grid."""
        params: dict[str, Any] = {
            "ikeys": ",".join(map(str, ikeys)),
            "from": t0,
            "to": t1,
            "step": step,
        }
        if fill is not None:
            params["fill"] = fill
        return self.columns("/v1/matrix", params)

    def events(self, t0: int, t1: int, limit: int = 10_000) -> QueryResult:
        return self.get("/v1/events", {"from": t0, "to": t1, "limit": limit})

    def exceptions(self, app: str, t0: int, t1: int, **report: Any) -> QueryResult:
        """An application's exceptions in a time range, as a report.

        ``report`` takes the API's filters and layout: ``ikey``, ``substation``,
        ``kind``, ``group_by``, ``sort`` (``-`` first for descending) and ``limit``.
        """
        params = {k: v for k, v in report.items() if v not in (None, "")}
        return self.get("/v1/exceptions", {"app": app, "from": t0, "to": t1, **params})

    def points(
        self,
        name: str = "",
        site: str = "",
        substation: str = "",
        data_type: str = "",
        limit: int = 1000,
    ) -> QueryResult:
        """Points whose current metadata matches (name: substring; others exact)."""
        params = {"name": name, "site": site, "substation": substation, "type": data_type}
        return self.get("/v1/points", {**params, "limit": limit})

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
