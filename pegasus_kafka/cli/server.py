"""``pegasus server``: run one ring server (ingest plus query API)."""

from __future__ import annotations

import os
import signal
import subprocess

import click

from pegasus_kafka.api.app import HttpServer, build_app
from pegasus_kafka.api.queries import Queries
from pegasus_kafka.cli.common import PegasusGroup, pegasus_command, state
from pegasus_kafka.ring.server import RingServer


@click.group(cls=PegasusGroup)
def server() -> None:
    """Ring servers."""


@server.command()
@click.option("--ring", "ring_name", required=True, help="Ring (consumer group) to join.")
@click.option(
    "--id", "server_id", default=None, help="Server id within the ring (default: host-pid)."
)
@click.option(
    "--port", type=int, default=0, show_default=True, help="HTTP port (0: any free port)."
)
@click.option(
    "--bind", "bind_host", default=None, help="Address to bind (default: server.http_host)."
)
@click.option(
    "--advertise",
    default=None,
    help="Host name peers and clients reach this server by (default: the bind address).",
)
@click.pass_context
def run(
    ctx: click.Context,
    ring_name: str,
    server_id: str | None,
    port: int,
    bind_host: str | None,
    advertise: str | None,
) -> None:
    """Join RING, materialise its partitions and serve queries until SIGINT/SIGTERM."""
    cfg = state(ctx).cfg
    server_id = server_id or f"{os.uname().nodename}-{os.getpid()}"
    srv = RingServer(cfg, ring_name, server_id)
    queries = Queries(srv)
    http = HttpServer(build_app(queries), bind_host or cfg.server.http_host, port)
    srv.endpoint = f"http://{advertise}:{http.port}" if advertise else http.endpoint
    http.start()
    click.echo(f"server {ring_name}/{server_id} serving {srv.endpoint}", err=True)

    def _stop(signum: int, frame: object) -> None:
        srv.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        srv.run()
    finally:
        http.stop()
        queries.close()


def spawn_servers(config_path: str | None, ring: str, count: int) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` local ``pegasus server run`` processes for a ring (dev)."""
    return [
        subprocess.Popen(
            pegasus_command(config_path, "-v", "server", "run", "--ring", ring, "--id", f"s{i + 1}")
        )
        for i in range(count)
    ]
