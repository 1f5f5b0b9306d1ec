"""``pegasus collector``: one collector per EMS host."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from pegasus_kafka.cli.common import PegasusGroup, emit_json, state
from pegasus_kafka.collector import iec104, replay
from pegasus_kafka.collector.collector import Collector
from pegasus_kafka.collector.commands import FailoverCommands, request_failover
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config, SiteConfig
from pegasus_kafka.errors import ConfigError
from pegasus_kafka.schema import BACKUP, PRIMARY


@click.group(cls=PegasusGroup)
def collector() -> None:
    """Collectors: EMS host scans into Kafka."""


@collector.command()
@click.option("--site", "site_name", required=True, help="Site name from the config.")
@click.option("--host", "host_name", required=True, help="EMS host of that site.")
@click.option(
    "--source",
    type=click.Choice(["sim", "iec104", "frames", "csv"]),
    default="sim",
    show_default=True,
    help="Where scans come from: the simulator, an IEC 104 outstation, or a recording.",
)
@click.option("--endpoint", default=None, help="IEC 104 outstation as HOST:PORT (--source iec104).")
@click.option(
    "--station",
    "common_address",
    type=int,
    default=1,
    show_default=True,
    help="IEC 104 common address of the station.",
)
@click.option("--points", "points_spec", default="", help="IEC 104 points: IOA:TYPE,...")
@click.option(
    "--file",
    "file_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The recording to replay (--source frames|csv).",
)
@click.option("--from-scan", type=int, default=None, help="First scan number (default: now).")
@click.option("--scans", type=int, default=None, help="Stop after this many scans.")
@click.option("--no-pace", is_flag=True, help="Send scans as fast as possible (replay, tests).")
@click.pass_context
def run(
    ctx: click.Context,
    site_name: str,
    host_name: str,
    source: str,
    file_path: str | None,
    endpoint: str | None,
    common_address: int,
    points_spec: str,
    from_scan: int | None,
    scans: int | None,
    no_pace: bool,
) -> None:
    """Collect HOST's scans of SITE into the scan topic until SIGINT/SIGTERM, or
    replay a recording of them (sent as fast as Kafka takes them, then exit)."""
    cfg = state(ctx).cfg
    site = cfg.site(site_name)
    host = next((h for h in site.hosts if h.name == host_name), None)
    if host is None:
        raise ConfigError(f"sites.{site_name}.hosts", f"no host named '{host_name}'")
    role = PRIMARY if host.role == "primary" else BACKUP
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if source == "iec104":
        if endpoint is None or ":" not in endpoint:
            raise ConfigError("--endpoint", "--source iec104 needs --endpoint HOST:PORT")
        ip, _, port = endpoint.rpartition(":")
        points = iec104.parse_points(points_spec)
        src = iec104.Iec104Source(site, host_name, role, ip, int(port), common_address, points)
        if not src.wait_ready(10):
            click.echo(
                f"warning: {endpoint} did not answer an interrogation yet; "
                "scans are marked not topical until it does",
                err=True,
            )
        try:
            _collect(cfg, Collector(cfg, src), from_scan, scans, stop)
        finally:
            src.close()
        return
    if source != "sim":
        if file_path is None:
            raise ConfigError("--file", f"--source {source} replays a file: give --file")
        _replay(cfg, site, host_name, source, Path(file_path))
        return
    sim = SimSource(site, host_name, role)
    _collect(
        cfg, Collector(cfg, sim), from_scan, scans, stop, not no_pace, FailoverCommands(cfg, sim)
    )


def _collect(
    cfg: Config,
    col: Collector,
    from_scan: int | None,
    scans: int | None,
    stop: threading.Event,
    pace: bool = True,
    before_scan: Any = None,
) -> None:
    site = col.site
    start = from_scan if from_scan is not None else int(time.time() * 1000) // site.scan_period_ms
    points = col.publish_metadata(upto=start)
    click.echo(f"collector {col.name}: {points} point versions published", err=True)
    try:
        col.run(start=start, count=scans, pace=pace, stop=stop, before_scan=before_scan)
        col.flush()
    finally:
        col.close()
        emit_json(col.status())


def _replay(cfg: Config, site: SiteConfig, host: str, kind: str, path: Path) -> None:
    reader = replay.read_frames if kind == "frames" else replay.read_csv
    src = reader(site, host, path)
    col = Collector(cfg, src)
    try:
        for seq in src.seqs:
            for group in range(src.poll_groups):
                col.collect(seq, group)
        col.flush(300)
    finally:
        col.close()
    click.echo(f"replayed {len(src.seqs)} scans of {site.name}/{host} from {path}", err=True)
    emit_json(col.status())


@collector.command()
@click.option("--site", "site_name", required=True, help="Site name from the config.")
@click.option("--host", "host_name", required=True, help="EMS host of that site.")
@click.option("--from-scan", type=int, required=True, help="First scan number.")
@click.option("--scans", type=int, required=True, help="How many scans.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True)
@click.pass_context
def record(
    ctx: click.Context, site_name: str, host_name: str, from_scan: int, scans: int, out_path: str
) -> None:
    """Record the simulated HOST's scans to a file (.csv: CSV, else frames) for replay."""
    cfg = state(ctx).cfg
    site = cfg.site(site_name)
    host = next((h for h in site.hosts if h.name == host_name), None)
    if host is None:
        raise ConfigError(f"sites.{site_name}.hosts", f"no host named '{host_name}'")
    sim = SimSource(site, host_name, PRIMARY if host.role == "primary" else BACKUP)
    path, seqs = Path(out_path), range(from_scan, from_scan + scans)
    if path.suffix == ".csv":
        n = replay.write_csv(sim, seqs, path)
    else:
        n = replay.record_frames(sim, seqs, path)
    click.echo(f"{n} {'rows' if path.suffix == '.csv' else 'frames'} written to {path}")


@collector.command()
@click.option("--site", "site_name", required=True, help="Site whose hosts swap roles.")
@click.option("--at", "at_scan", type=int, default=None, help="Scan number (default: in 2 scans).")
@click.pass_context
def failover(ctx: click.Context, site_name: str, at_scan: int | None) -> None:
    """Make SITE's EMS hosts swap primary and backup roles (simulated site)."""
    cfg = state(ctx).cfg
    at = request_failover(cfg, cfg.site(site_name), at_scan)
    click.echo(f"site {site_name}: hosts swap roles at scan {at}")


@collector.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each local collector's role, spool depth, oldest unsent scan, rate and last error."""
    cfg = state(ctx).cfg
    root = Path(cfg.collector.spool_dir) / cfg.kafka.topic_prefix
    rows = [json.loads(p.read_text()) for p in sorted(root.glob("*/*/status.json"))]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"no collector has written status under {root}")
        return
    table = Table(
        "site",
        "host",
        "role",
        "spool records",
        "oldest unsent scan",
        "points/s",
        "skipped scans",
        "last error",
        "age s",
    )
    now = time.time() * 1000
    for r in rows:
        table.add_row(
            r["site"],
            r["host"],
            r["role"],
            str(r["spool_records"]),
            str(r["oldest_unsent_scan"] or "-"),
            str(r["points_per_s"]),
            str(r["skipped_scans"]),
            r["last_error"] or "-",
            f"{(now - r['updated_ms']) / 1000:.0f}",
        )
    Console().print(table)
