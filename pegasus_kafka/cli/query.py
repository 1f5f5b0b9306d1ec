"""``pegasus query``: ask the RDS through the smart client."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from pegasus_kafka.api.exceptions import GROUPS
from pegasus_kafka.cli.common import PegasusGroup, emit_json, state
from pegasus_kafka.client import PegasusClient
from pegasus_kafka.config import AAS_APPS


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


@query.command("export")
@click.argument("ikeys", nargs=-1, required=True, type=int)
@click.option("--from", "t0", type=int, required=True, help="Start, ms since the epoch.")
@click.option("--to", "t1", type=int, required=True, help="End (exclusive), ms since the epoch.")
@click.option("--step", type=int, default=None, help="Regular grid step in ms (default: raw).")
@click.option("--fill", type=click.Choice(["previous", "linear"]), default=None)
@click.option("--host", default=None, help="One host's raw stream instead of resolved.")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="File to write; .parquet writes Parquet, anything else CSV.",
)
@click.pass_context
def export_history(
    ctx: click.Context,
    ikeys: tuple[int, ...],
    t0: int,
    t1: int,
    step: int | None,
    fill: str | None,
    host: str | None,
    out_path: str,
) -> None:
    """History of IKEYS to CSV or Parquet, a day at a time, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from pegasus_kafka.client.export import chunks, export

    path = Path(out_path)
    fmt = "parquet" if path.suffix == ".parquet" else "csv"
    total = len(ikeys) * len(chunks(t0, t1, step)) if t1 > t0 else 0
    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with _client(ctx) as client, Progress(*columns, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("export", total=total)
        rows = export(
            client,
            list(ikeys),
            t0,
            t1,
            path,
            fmt,
            step,
            fill,
            host,
            advance=lambda n: bar.advance(task),
        )
    click.echo(f"{rows} rows of {len(ikeys)} point(s) written to {path} ({fmt})", err=True)


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
@click.option("--app", type=click.Choice(AAS_APPS), required=True, help="Application.")
@click.option("--from", "t0", type=int, required=True, help="Start, ms since the epoch.")
@click.option("--to", "t1", type=int, required=True, help="End, ms since the epoch.")
@click.option("--ikey", type=int, default=None, help="One point only.")
@click.option("--substation", default="", help="One substation only.")
@click.option("--kind", default="", help="One kind only (CHANGE, VIOLATION, ...).")
@click.option("--group-by", type=click.Choice(["", *GROUPS]), default="", help="Count by.")
@click.option("--sort", default="time", show_default=True, help="Field, '-' for descending.")
@click.option("--limit", type=int, default=1000, show_default=True)
@click.pass_context
def exceptions(
    ctx: click.Context,
    app: str,
    t0: int,
    t1: int,
    ikey: int | None,
    substation: str,
    kind: str,
    group_by: str,
    sort: str,
    limit: int,
) -> None:
    """Exceptions mined by APP: one JSON line per exception, or per group."""
    with _client(ctx) as client:
        body = client.exceptions(
            app,
            t0,
            t1,
            ikey=ikey,
            substation=substation,
            kind=kind,
            group_by=group_by,
            sort=sort,
            limit=limit,
        ).body
        for row in body.get("groups", body.get("exceptions", [])):
            emit_json(row)


@query.command()
@click.option("--name", default="", help="Part of the point name.")
@click.option("--site", default="", help="Site name.")
@click.option("--substation", default="", help="Substation name.")
@click.option(
    "--type",
    "data_type",
    default="",
    type=click.Choice(["", "ANALOG", "LIMIT", "ACCUMULATOR", "STATUS"], case_sensitive=False),
)
@click.option("--limit", type=int, default=1000, show_default=True)
@click.pass_context
def points(
    ctx: click.Context, name: str, site: str, substation: str, data_type: str, limit: int
) -> None:
    """Points whose current metadata matches, one JSON line each."""
    with _client(ctx) as client:
        for point in client.points(name, site, substation, data_type, limit).body["points"]:
            emit_json(point)


@query.command()
@click.argument("ikey", type=int)
@click.pass_context
def meta(ctx: click.Context, ikey: int) -> None:
    """Every version of IKEY's metadata, oldest first."""
    with _client(ctx) as client:
        for version in client.meta(ikey).body["versions"]:
            emit_json(version)
