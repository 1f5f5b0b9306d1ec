"""The HTTP API every ring server serves (Starlette, run by uvicorn).

Bad input is a 4xx with a JSON body ``{"error": ..., "detail": ...}``; a ring
that is not in sync answers 503 ``not_in_sync`` rather than partial data.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from pegasus_kafka import columnar
from pegasus_kafka.api.exceptions import ExceptionQuery, arrange, json_safe
from pegasus_kafka.api.openapi import SPEC
from pegasus_kafka.api.queries import Queries, json_column, parse_ikeys
from pegasus_kafka.errors import NotHeld, NotInSync, PegasusError, QueryError, UnknownPoint
from pegasus_kafka.ring.records import PointMatch
from pegasus_kafka.ring.snapshot import H_DIGEST, H_OFFSET

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


def _int64(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"{name}: expected an integer, got {raw[:40]!r}") from None
    if not -(2**63) <= value < 2**63:
        raise QueryError(f"{name}: out of the 64-bit integer range")
    return value


def _int_param(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise QueryError(f"{name}: required")
        return default
    return _int64(name, raw)


def _guard(fn: Callable[[Request], Any], needs_sync: bool = True) -> Handler:
    """Map errors to statuses; queries on a ring that is not in sync get 503."""

    async def handler(request: Request) -> Response:
        queries: Queries = request.app.state.queries
        try:
            if needs_sync and request.query_params.get("local") != "1":
                queries.require_in_sync()
            # Handlers block (RocksDB reads, forwarding to peers): they run on the
            # threadpool so one slow query, or two servers asking each other,
            # never stalls the event loop.
            if request.method == "POST":
                request.state.body = await request.body()
            body = await run_in_threadpool(fn, request)
        except UnknownPoint as exc:
            return _error(404, "unknown_point", exc.args[0])
        except NotHeld as exc:
            return _error(404, "not_held", exc.args[0])
        except QueryError as exc:
            return _error(400, "bad_query", exc.args[0])
        except NotInSync as exc:
            return _error(503, "not_in_sync", exc.args[0])
        except PegasusError as exc:
            log.warning("query failed path=%s error=%s", request.url.path, exc)
            return _error(503, "unavailable", str(exc))
        return body if isinstance(body, Response) else JSONResponse(body)

    return handler


def _current(request: Request) -> Any:
    """GET with ``ikeys=1,2,3``, or POST ``{"ikeys": [1, 2, 3]}`` for many keys."""
    q: Queries = request.app.state.queries
    if request.method == "POST":
        ikeys = parse_ikeys(_posted_keys(request.state.body))
    else:
        ikeys = parse_ikeys(request.query_params.get("ikeys", ""))
    local = request.query_params.get("local") == "1"
    if _format(request) == "columns":
        return _columns(q.current_columns(ikeys, local_only=local), {})
    return {"points": q.current(ikeys, local_only=local)}


def _posted_keys(raw: bytes) -> str:
    try:
        body = json.loads(raw or b"{}")
        keys = body["ikeys"]
    except (ValueError, KeyError, TypeError):
        raise QueryError('body: expected JSON {"ikeys": [integers]}') from None
    if not isinstance(keys, list) or not all(type(k) is int for k in keys):
        raise QueryError("ikeys: a list of integers")
    return ",".join(map(str, keys))


def _format(request: Request) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "columns"):
        raise QueryError(f"format: '{fmt}' is not one of json, columns")
    return fmt


def _columns(cols: dict[str, Any], meta: dict[str, Any]) -> Response:
    return Response(columnar.encode(cols, meta), media_type=columnar.MEDIA_TYPE)


def _history(request: Request) -> Any:
    q: Queries = request.app.state.queries
    step = request.query_params.get("step")
    args = (
        _int_param(request, "ikey"),
        _int_param(request, "from"),
        _int_param(request, "to"),
        request.query_params.get("host"),
        None if step is None else _int_param(request, "step"),
        request.query_params.get("fill"),
        request.query_params.get("local") == "1",
    )
    if _format(request) == "columns":
        return _columns(*q.series(*args))
    return q.history(*args)


def _matrix(request: Request) -> Any:
    q: Queries = request.app.state.queries
    fmt = _format(request)
    cols, meta = q.matrix(
        parse_ikeys(request.query_params.get("ikeys", "")),
        _int_param(request, "from"),
        _int_param(request, "to"),
        _int_param(request, "step"),
        request.query_params.get("fill"),
    )
    if fmt == "columns":
        return _columns(cols, meta)
    return {**meta, **{name: json_column(col) for name, col in cols.items()}}


def _events(request: Request) -> Any:
    q: Queries = request.app.state.queries
    limit = _int_param(request, "limit", 10_000)
    if not 1 <= limit <= 100_000:
        raise QueryError("limit: between 1 and 100000")
    only = request.query_params.get("partition")
    events = q.events(
        _int_param(request, "from"),
        _int_param(request, "to"),
        limit,
        _int_param(request, "partition") if only is not None else None,
    )
    return {"events": events}


def _exceptions(request: Request) -> Any:
    q: Queries = request.app.state.queries
    params = request.query_params
    ikey = params.get("ikey")
    query = ExceptionQuery(
        app=params.get("app", ""),
        t0=_int_param(request, "from"),
        t1=_int_param(request, "to"),
        ikey=None if ikey is None else _int64("ikey", ikey),
        substation=params.get("substation", ""),
        kind=params.get("kind", ""),
        group_by=params.get("group_by", ""),
        sort=params.get("sort", "time"),
        limit=_int_param(request, "limit", 10_000),
    )
    only = params.get("partition")
    records = q.exceptions(query, None if only is None else _int64("partition", only))
    if params.get("raw") == "1":
        # Between servers of a ring: the partition's records as stored, links included.
        return {"exceptions": json_safe(records)}
    return arrange(records, query)


def _meta(request: Request) -> Any:
    q: Queries = request.app.state.queries
    ikey = _int64("ikey", request.path_params["ikey"])
    return {"versions": q.meta(ikey, local_only=request.query_params.get("local") == "1")}


def _points(request: Request) -> Any:
    q: Queries = request.app.state.queries
    params = request.query_params
    limit = _int_param(request, "limit", 1000)
    if not 1 <= limit <= 100_000:
        raise QueryError("limit: between 1 and 100000")
    match = PointMatch(
        params.get("name", ""),
        params.get("site", ""),
        params.get("substation", ""),
        params.get("type", ""),
    )
    only = params.get("partition")
    return {"points": q.search(match, limit, None if only is None else _int64("partition", only))}


def _health(request: Request) -> Any:
    return request.app.state.queries.health()


def _scan_digests(request: Request) -> Any:
    return request.app.state.queries.scan_digests()


def _snapshot(request: Request) -> Response:
    q: Queries = request.app.state.queries
    topic = request.query_params.get("topic", "")
    snap = q.snapshot(topic, _int_param(request, "partition"))
    return FileResponse(
        snap.tar,
        media_type="application/x-tar",
        headers={H_OFFSET: str(snap.applied_offset), H_DIGEST: f"{snap.digest:016x}"},
        background=BackgroundTask(snap.discard),
    )


def _metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _openapi(request: Request) -> Any:
    return SPEC


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in the same JSON shape as every other error."""
    assert isinstance(exc, HTTPException)
    error = "not_found" if exc.status_code == 404 else "bad_request"
    return _error(exc.status_code, error, f"{request.method} {request.url.path}: {exc.detail}")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("query crashed path=%s", request.url.path, exc_info=exc)
    return _error(500, "internal", f"{type(exc).__name__} (logged on the server)")


def build_app(queries: Queries) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/current", _guard(_current), methods=["GET", "POST"]),
            Route("/v1/history", _guard(_history)),
            Route("/v1/matrix", _guard(_matrix)),
            Route("/v1/events", _guard(_events)),
            Route("/v1/exceptions", _guard(_exceptions)),
            Route("/v1/meta/{ikey}", _guard(_meta)),
            Route("/v1/points", _guard(_points)),
            Route("/v1/health", _guard(_health, needs_sync=False)),
            # The caller picks its source: a serving peer ring, or a server of its
            # own ring, which may still be syncing.
            Route("/v1/snapshot", _guard(_snapshot, needs_sync=False)),
            Route("/v1/scan-digests", _guard(_scan_digests, needs_sync=False)),
            Route("/metrics", _guard(_metrics, needs_sync=False)),
            Route("/openapi.json", _guard(_openapi, needs_sync=False)),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.queries = queries
    return app


class HttpServer:
    """uvicorn on its own thread, bound before start so the port is known."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        # The protocol is named so that asyncio turns Nagle's algorithm off on
        # every accepted connection: with it on, a response's body waits for the
        # client's delayed acknowledgement of its headers, 40 ms on Linux.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="http", daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
