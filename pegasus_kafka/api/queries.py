"""Query logic of a ring server, independent of HTTP.

Any server of a ring answers any query: keys whose partitions this server
does not own are forwarded to the server of the same ring that does, found in
the registry, and the answers are gathered.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
import numpy as np

from pegasus_kafka import columnar
from pegasus_kafka.api import current
from pegasus_kafka.api.exceptions import MAX_LIMIT, ExceptionQuery
from pegasus_kafka.api.matrix import LINEAR, LOOKBACK_MS, PREVIOUS, fill_rule, grid, regular
from pegasus_kafka.errors import NotHeld, NotInSync, QueryError, UnknownPoint
from pegasus_kafka.keys import partition_of, partitions_of
from pegasus_kafka.ring.health import live_servers, ring_serving
from pegasus_kafka.ring.records import (
    EventPartition,
    ExceptionPartition,
    MetaPartition,
    PointMatch,
)
from pegasus_kafka.ring.resolve import resolve
from pegasus_kafka.ring.rollup import HOUR_MS, grid_from_buckets
from pegasus_kafka.ring.scan import ScanPartition
from pegasus_kafka.ring.server import RingServer
from pegasus_kafka.ring.snapshot import Snapshot, make_snapshot
from pegasus_kafka.schema import ACCUMULATOR, ANALOG, DATA_TYPES, STATUS

MAX_KEYS = 100_000
VALUE_TYPES = (ANALOG, ACCUMULATOR, STATUS)


def parse_ikeys(raw: str) -> np.ndarray:
    parts = [p for p in raw.replace(" ", "").split(",") if p]
    if not parts:
        raise QueryError("ikeys: give at least one invariant key")
    if len(parts) > MAX_KEYS:
        raise QueryError(f"ikeys: at most {MAX_KEYS} keys per request, got {len(parts)}")
    try:
        keys = np.array([int(p) for p in parts], np.int64)
    except (ValueError, OverflowError):
        raise QueryError("ikeys: keys are integers separated by commas") from None
    if (keys < 0).any():
        raise QueryError("ikeys: keys are positive")
    return keys


class Queries:
    def __init__(self, server: RingServer) -> None:
        self.server = server
        self.cfg = server.cfg
        self._http = httpx.Client(timeout=10.0)

    def require_in_sync(self) -> None:
        # Serving needs the ring IN_SYNC in the registry (caught up and its digests
        # proven equal to a peer's), and every partition owned by a live server.
        if not ring_serving(self.cfg, self.server.registry, self.server.ring):
            raise NotInSync(f"ring '{self.server.ring}' is not in sync")

    def _owner(self, topic: str, partition: int, local_only: bool = False) -> str:
        """The endpoint of the server of this ring that owns a partition this server
        does not hold. A forwarded query (``local_only``) is never forwarded again."""
        if local_only:
            raise NotHeld(f"partition {partition} moved away from this server")
        name = f"{topic}:{partition}"
        for entry in live_servers(self.cfg, self.server.registry, self.server.ring):
            if name in entry.owned and entry.endpoint:
                return entry.endpoint
        raise NotInSync(f"no server of ring '{self.server.ring}' owns {name}")

    def _local_scan(self, partition: int) -> ScanPartition | None:
        mat = self.server.materialiser(self.cfg.scan_topic, partition)
        return mat if isinstance(mat, ScanPartition) else None

    def current(self, ikeys: np.ndarray, local_only: bool = False) -> list[dict[str, Any]]:
        return current.rows(self.current_columns(ikeys, local_only))

    def current_columns(self, ikeys: np.ndarray, local_only: bool = False) -> dict[str, np.ndarray]:
        """Current values of the keys, in request order (see :mod:`pegasus_kafka.api.current`);
        keys of partitions this server does not own come from the server that does."""
        parts = partitions_of(ikeys, self.cfg.topics.partitions)
        out = current.empty(len(ikeys))
        remote: dict[str, list[np.ndarray]] = defaultdict(list)
        for p in np.unique(parts):
            positions = np.flatnonzero(parts == p)
            mat = self._local_scan(int(p))
            if mat is not None:
                current.place(out, positions, current.local(mat, ikeys[positions]))
                continue
            owner = self._owner(self.cfg.scan_topic, int(p), local_only)
            remote[owner].append(positions)
        for endpoint, chunks in remote.items():
            positions = np.concatenate(chunks)
            keys = {"ikeys": ikeys[positions].tolist()}
            resp = self._peer_response(endpoint, "/v1/current", {"format": "columns"}, keys)
            current.place(out, positions, columnar.decode(resp.content)[0])
        return out

    def series(
        self,
        ikey: int,
        t0: int,
        t1: int,
        host: str | None = None,
        step: int | None = None,
        fill: str | None = None,
        local_only: bool = False,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """One point's samples as columns: raw (times, values, quality), or on a
        regular grid of ``step`` ms (times, values, min, max, avg, count; see
        :mod:`pegasus_kafka.api.matrix`). Resolved, or one host's mirror stream."""
        if t1 < t0:
            raise QueryError("time range: 'to' is before 'from'")
        times = None if step is None else grid(t0, t1, step)
        p = int(partitions_of(np.array([ikey], np.int64), self.cfg.topics.partitions)[0])
        mat = self._local_scan(p)
        if mat is None:
            owner = self._owner(self.cfg.scan_topic, p, local_only)
            params: dict[str, Any] = {"ikey": ikey, "from": t0, "to": t1, "format": "columns"}
            for name, value in (("host", host), ("step", step), ("fill", fill)):
                if value is not None:
                    params[name] = value
            return columnar.decode(self._peer_response(owner, "/v1/history", params).content)
        dtype = next((t for t in VALUE_TYPES if mat.knows(t, ikey)), None)
        if dtype is None:
            raise UnknownPoint(f"unknown point {ikey}")
        rule = None if step is None else fill_rule(dtype, fill)
        start = t0 if step is None else t0 - LOOKBACK_MS
        meta = {"ikey": ikey, "type": DATA_TYPES[dtype], "stream": host or "resolved"}
        hourly = step is not None and step % HOUR_MS == 0 and t0 % HOUR_MS == 0
        if host is None and times is not None and step is not None and rule is not None and hourly:
            # Hour-aligned trends come from the blocks' hourly summaries.
            buckets = mat.trend(dtype, ikey, start, t1)
            cells = grid_from_buckets(buckets, times, step, rule == LINEAR)
            cols = {"times": times, "values": cells.pop("value"), **cells}
            return cols, {**meta, "step": step, "fill": rule}
        streams = mat.history(dtype, ikey, start, t1)
        if host is not None:
            if host not in streams and host not in mat.hosts:
                raise QueryError(f"unknown host '{host}'; known: {', '.join(mat.hosts)}")
            chosen = streams.get(host)
            samples = chosen if chosen is not None else resolve([], mat.period_ms())
        else:
            samples = resolve([streams[h] for h in mat.hosts if h in streams], mat.period_ms())
        if times is None or rule is None or step is None:
            cols = {"times": samples.times, "values": samples.values, "quality": samples.quality}
            return cols, meta
        cells = regular(samples, times, step, rule)
        cols = {"times": times, "values": cells.pop("value"), **cells}
        return cols, {**meta, "step": step, "fill": rule}

    def history(
        self,
        ikey: int,
        t0: int,
        t1: int,
        host: str | None = None,
        step: int | None = None,
        fill: str | None = None,
        local_only: bool = False,
    ) -> dict[str, Any]:
        """:meth:`series` as light JSON (NaN becomes null)."""
        cols, meta = self.series(ikey, t0, t1, host, step, fill, local_only)
        return {**meta, **{name: json_column(col) for name, col in cols.items()}}

    def matrix(
        self, ikeys: np.ndarray, t0: int, t1: int, step: int, fill: str | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Several points on one grid: 2-D columns, one row per point, in key order."""
        times = grid(t0, t1, step, len(ikeys))
        rows = [self.series(int(k), t0, t1, None, step, fill)[0] for k in ikeys]
        cols: dict[str, np.ndarray] = {"times": times, "ikeys": ikeys.astype(np.int64)}
        for name in ("values", "min", "max", "avg", "count"):
            cols[name] = np.stack([r[name] for r in rows])
        return cols, {"step": step, "fill": fill or PREVIOUS}

    def events(self, t0: int, t1: int, limit: int, only: int | None = None) -> list[dict[str, Any]]:
        if t1 < t0:
            raise QueryError("time range: 'to' is before 'from'")
        if only is not None and not 0 <= only < self.cfg.topics.partitions:
            raise QueryError(f"partition: between 0 and {self.cfg.topics.partitions - 1}")
        out: list[dict[str, Any]] = []
        for p in range(self.cfg.topics.partitions) if only is None else [only]:
            mat = self.server.materialiser(self.cfg.events_topic, p)
            if isinstance(mat, EventPartition):
                out.extend(mat.events(t0, t1, limit))
            elif only is not None:
                raise NotHeld(f"partition {p} moved away from this server")
            else:
                out.extend(self._peer_records("events", p, {"from": t0, "to": t1, "limit": limit}))
        out.sort(key=lambda e: (e["time_ms"], e["site"], e["host"], e["seq"]))
        return out[:limit]

    def meta(self, ikey: int, local_only: bool = False) -> list[dict[str, Any]]:
        p = int(partitions_of(np.array([ikey], np.int64), self.cfg.topics.partitions)[0])
        mat = self.server.materialiser(self.cfg.meta_topic, p)
        if isinstance(mat, MetaPartition):
            versions = mat.versions(ikey)
        elif local_only:
            raise NotHeld(f"partition {p} moved away from this server")
        else:
            versions = self._peer_records(f"meta/{ikey}", p, {})
        if not versions:
            raise UnknownPoint(f"unknown point {ikey}")
        return versions

    def search(
        self, match: PointMatch, limit: int, only: int | None = None
    ) -> list[dict[str, Any]]:
        """Points whose current metadata matches, from every meta partition of the ring."""
        if match.data_type and match.data_type.upper() not in DATA_TYPES:
            raise QueryError(f"type: one of {', '.join(DATA_TYPES)}")
        if only is not None and not 0 <= only < self.cfg.topics.partitions:
            raise QueryError(f"partition: between 0 and {self.cfg.topics.partitions - 1}")
        out: list[dict[str, Any]] = []
        for p in range(self.cfg.topics.partitions) if only is None else [only]:
            mat = self.server.materialiser(self.cfg.meta_topic, p)
            if isinstance(mat, MetaPartition):
                out.extend(mat.search(match, limit))
            elif only is not None:
                raise NotHeld(f"partition {p} moved away from this server")
            else:
                params = {
                    "name": match.name,
                    "site": match.site,
                    "substation": match.substation,
                    "type": match.data_type,
                    "limit": limit,
                }
                out.extend(self._peer_records("points", p, params))
        out.sort(key=lambda rec: rec["ikey"])
        return out[:limit]

    def exceptions(self, q: ExceptionQuery, only: int | None = None) -> list[dict[str, Any]]:
        """The raw records (LINKs included) of ``q``'s time range and point, from every
        partition of the application's topic (or one), in time order."""
        n = self.cfg.topics.partitions
        if only is not None:
            if not 0 <= only < n:
                raise QueryError(f"partition: between 0 and {n - 1}")
            parts = [only]
        elif q.ikey is not None:
            parts = [partition_of(q.ikey, n)]
        else:
            parts = list(range(n))
        topic = self.cfg.aas_topic(q.app)
        out: list[dict[str, Any]] = []
        for p in parts:
            mat = self.server.materialiser(topic, p)
            if isinstance(mat, ExceptionPartition):
                out.extend(mat.exceptions(q.t0, q.t1, q.ikey, MAX_LIMIT))
            elif only is not None:
                raise NotHeld(f"partition {p} moved away from this server")
            else:
                params: dict[str, Any] = {"app": q.app, "from": q.t0, "to": q.t1, "raw": 1}
                if q.ikey is not None:
                    params["ikey"] = q.ikey
                out.extend(self._peer_records("exceptions", p, params, topic))
        out.sort(key=lambda r: (r["time_ms"], r["id"]))
        return out

    def _peer_records(
        self, path: str, partition: int, params: dict[str, Any], topic: str = ""
    ) -> list[Any]:
        topic = topic or (self.cfg.events_topic if path == "events" else self.cfg.meta_topic)
        owner = self._owner(topic, partition)
        body = self._peer(owner, f"/v1/{path}", {**params, "partition": partition})
        for field in ("events", "versions", "points", "exceptions"):
            if field in body:
                return list(body[field])
        return []

    def _peer(
        self, endpoint: str, path: str, params: dict[str, Any], post: Any = None
    ) -> dict[str, Any]:
        return dict(self._peer_response(endpoint, path, params, post).json())

    def _peer_response(
        self, endpoint: str, path: str, params: dict[str, Any], post: Any = None
    ) -> httpx.Response:
        """Ask a server of the same ring about its own partitions only.

        A peer's verdict on the query itself (unknown point, bad range) is
        passed on as it is; anything else means the ring cannot answer now.
        """
        try:
            url, query = f"{endpoint}{path}", {**params, "local": "1"}
            if post is None:
                resp = self._http.get(url, params=query)
            else:
                resp = self._http.post(url, params=query, json=post)
        except httpx.HTTPError as exc:
            raise NotInSync(f"peer {endpoint} unreachable: {type(exc).__name__}") from None
        if resp.status_code == 200:
            return resp
        try:
            body = resp.json()
        except ValueError:
            body = {}
        detail = body.get("detail", f"HTTP {resp.status_code}")
        if resp.status_code == 404 and body.get("error") == "unknown_point":
            raise UnknownPoint(detail)
        if resp.status_code == 400:
            raise QueryError(detail)
        raise NotInSync(f"peer {endpoint} answered {resp.status_code}: {detail}")

    def health(self) -> dict[str, Any]:
        srv = self.server
        with srv.lock:
            partitions = {
                f"{t}:{p}": {
                    "applied_offset": m.store.applied_offset,
                    "lag": srv.lag.get((t, p)),
                    "digest": f"{m.store.digest:016x}",
                    "checkpoints": {str(o): f"{d:016x}" for o, d in m.store.digests(5)},
                    "pending_seals": m.pending_seals(),
                }
                for (t, p), m in sorted(srv.parts.items())
            }
        return {
            "ring": srv.ring,
            "server": srv.server_id,
            "state": "in-sync" if srv.in_sync() else "syncing",
            "ring_in_sync": ring_serving(self.cfg, srv.registry, srv.ring),
            "lag": srv.total_lag(),
            "owned": sorted(partitions),
            "standby": srv.standby.standby() if srv.standby else [],
            "standby_lag": srv.standby.lags() if srv.standby else {},
            "assigned_from": {f"{t}:{p}": list(v) for (t, p), v in srv.assigned_from.items()},
            "partitions": partitions,
        }

    def snapshot(self, topic: str, partition: int) -> Snapshot:
        """A consistent snapshot of a partition this server owns or stands by for."""
        if topic not in self.cfg.data_topics:
            raise QueryError(f"topic: one of {', '.join(self.cfg.data_topics)}")
        if not 0 <= partition < self.cfg.topics.partitions:
            raise QueryError(f"partition: between 0 and {self.cfg.topics.partitions - 1}")
        mat = self.server.materialiser(topic, partition)
        if mat is None and self.server.standby is not None:
            mat = self.server.standby.copy(topic, partition)
        if mat is None:
            raise NotHeld(f"this server holds no copy of {topic}:{partition}")
        return make_snapshot(mat, self.server.data_dir / ".snapshots")

    def scan_digests(self) -> dict[str, Any]:
        """Recompute every owned partition's digest from disk (slow: reads everything)."""
        srv = self.server
        with srv.lock:
            owned = sorted(srv.parts.items())
        out = {}
        for (t, p), mat in owned:
            offset, recorded, scanned = mat.scan_digest()
            out[f"{t}:{p}"] = {
                "applied_offset": offset,
                "digest": f"{recorded:016x}",
                "scanned": f"{scanned:016x}",
                "checkpoints": {},
            }
        return {"partitions": out}

    def close(self) -> None:
        self._http.close()


def finite(x: Any) -> float | None:
    """JSON has no NaN: a missing value is null."""
    f = float(x)
    return None if f != f else f


def json_column(col: np.ndarray) -> list[Any]:
    """A column as JSON: floats with NaN as null, everything else as it is."""
    if col.dtype.kind == "f":
        return finite_list(col)
    return list(col.tolist())


def finite_list(values: np.ndarray) -> list[Any]:
    if not np.isnan(values).any():
        return list(values.tolist())
    as_obj = values.astype(object)
    as_obj[np.isnan(values)] = None
    return list(as_obj.tolist())
