"""The HTTP server's sockets."""

from __future__ import annotations

import socket
import time

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from pegasus_kafka.api.app import HttpServer


async def _ok(_request: object) -> JSONResponse:
    return JSONResponse({"ok": True})


def test_connections_are_tcp_so_nagle_is_turned_off() -> None:
    # asyncio turns Nagle's algorithm off only on sockets whose protocol is
    # TCP; with it on, every answer waits out the client's delayed ACK.
    server = HttpServer(Starlette(routes=[Route("/", _ok)]), "127.0.0.1", 0)
    assert server.sock.proto == socket.IPPROTO_TCP
    server.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert httpx.get(server.endpoint, timeout=1).json() == {"ok": True}
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.05)  # poll until uvicorn listens
    finally:
        server.stop()
