"""``pegasus aas``: advanced application servers and their downstream topics."""

from __future__ import annotations

import signal
import threading

import click
from prometheus_client import start_http_server

from pegasus_kafka.aas.runner import AppRunner
from pegasus_kafka.cli.common import PegasusGroup, emit_json, state
from pegasus_kafka.config import AAS_APPS
from pegasus_kafka.downstream import ExceptionStream


@click.group(cls=PegasusGroup)
def aas() -> None:
    """Advanced application servers: exception mining per ring."""


@aas.command()
@click.option("--ring", "ring_name", required=True, help="Ring the application serves.")
@click.option("--app", type=click.Choice(AAS_APPS), required=True, help="Application to run.")
@click.option(
    "--instance",
    type=int,
    default=0,
    show_default=True,
    help="Instance number: several instances of one application split its partitions.",
)
@click.option("--metrics-port", type=int, default=0, help="Serve Prometheus metrics on this port.")
@click.pass_context
def run(ctx: click.Context, ring_name: str, app: str, instance: int, metrics_port: int) -> None:
    """Mine RING's scans with APP and publish the exceptions until SIGINT/SIGTERM."""
    cfg = state(ctx).cfg
    if metrics_port:
        start_http_server(metrics_port, addr=cfg.server.http_host)
    runner = AppRunner(cfg, ring_name, app, instance)

    def _stop(signum: int, frame: object) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(
        f"aas {app} for ring {ring_name} (instance {instance}) publishing to {cfg.aas_topic(app)}",
        err=True,
    )
    runner.run()


@aas.command()
@click.option("--app", type=click.Choice(AAS_APPS), required=True, help="Application's topic.")
@click.option("--group", default="pegasus-aas-tail", show_default=True, help="Consumer group.")
@click.option("--max", "limit", type=int, default=0, help="Stop after this many (0: never).")
@click.option("--idle", type=float, default=0.0, help="Stop after this many seconds with none.")
@click.pass_context
def tail(ctx: click.Context, app: str, group: str, limit: int, idle: float) -> None:
    """Print APP's exceptions as JSON lines, each id once, merged from every ring."""
    cfg = state(ctx).cfg
    stream = ExceptionStream(cfg, group, app)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    shown = 0
    quiet = 0.0
    try:
        while not stop.is_set() and (not limit or shown < limit):
            records = stream.poll(timeout=0.5)
            quiet = 0.0 if records else quiet + 0.5
            for rec in records[: (limit - shown) if limit else None]:
                emit_json(rec)
                shown += 1
            stream.commit()
            if idle and quiet >= idle:
                break
    finally:
        stream.close()
