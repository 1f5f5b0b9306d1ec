"""``pegasus query``: ask the RDS through the smart client."""

from __future__ import annotations

import time

import click

from pegasus_kafka.cli.common import PegasusGroup, emit_json, state
from pegasus_kafka.client import PegasusClient


@click.group(cls=PegasusGroup)
def query() -> None:
    """Query the RDS (any in-sync ring answers)."""


def _client(ctx: click.Context) -> PegasusClient:
    return PegasusClient(state(ctx).cfg)


@query.command()
@click.argument("ikeys", nargs=-1, required=True, type=int)
@click.pass_context
def current(ctx: click.Context, ikeys: tuple[int, ...]) -> None:
    """Current value of each IKEY, one JSON line each."""
    with _client(ctx) as client:
        result = client.current(list(ikeys))
    for row in result.body["points"]:
        emit_json(dict(row, ring=result.ring))


@query.command()
@click.argument("ikey", type=int)
@click.option(
    "--from", "t0", type=int, default=None, help="Start, ms since the epoch (default: 1 h ago)."
)
@click.option("--to", "t1", type=int, default=None, help="End, ms since the epoch (default: now).")
@click.option(
    "--host", default=None, help="One host's raw stream ('site/host') instead of resolved."
)
@click.pass_context
def history(
    ctx: click.Context, ikey: int, t0: int | None, t1: int | None, host: str | None
) -> None:
    """Samples of IKEY over a time range, one JSON line each."""
    t1 = t1 if t1 is not None else int(time.time() * 1000)
    t0 = t0 if t0 is not None else t1 - 3_600_000
    with _client(ctx) as client:
        body = client.history(ikey, t0, t1, host).body
    for t, v, q in zip(body["times"], body["values"], body["quality"], strict=True):
        emit_json({"time_ms": t, "value": v, "quality": q})


@query.command()
@click.option("--from", "t0", type=int, required=True, help="Start, ms since the epoch.")
@click.option("--to", "t1", type=int, required=True, help="End, ms since the epoch.")
@click.option("--limit", type=int, default=1000, show_default=True)
@click.pass_context
def events(ctx: click.Context, t0: int, t1: int, limit: int) -> None:
    """System events in a time range, one JSON line each."""
    with _client(ctx) as client:
        for event in client.events(t0, t1, limit).body["events"]:
            emit_json(event)


@query.command()
@click.argument("ikey", type=int)
@click.pass_context
def meta(ctx: click.Context, ikey: int) -> None:
    """Every version of IKEY's metadata, oldest first."""
    with _client(ctx) as client:
        for version in client.meta(ikey).body["versions"]:
            emit_json(version)
