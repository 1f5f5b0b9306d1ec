"""``pegasus ring``: add, list, inspect and remove rings (sync and verify: ring_check)."""

from __future__ import annotations

import signal
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from pegasus_kafka.cli.common import PegasusGroup, emit_json, registry_view, state
from pegasus_kafka.cli.server import spawn_servers
from pegasus_kafka.config import Config
from pegasus_kafka.errors import RegistryError
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import live_servers, ring_complete, ring_serving
from pegasus_kafka.ring.lifecycle import add_ring, remove_ring


@click.group(cls=PegasusGroup)
def ring() -> None:
    """Server rings: each one a consumer group holding the whole RDS."""


@ring.command()
@click.argument("name")
@click.option(
    "--from",
    "peer",
    default=None,
    help="Sync from a consistent snapshot of this serving ring instead of replaying from zero.",
)
@click.option(
    "--start",
    "start_n",
    type=int,
    default=0,
    help="Also start N local servers of the ring and run until Ctrl-C (dev).",
)
@click.option("--exist-ok", is_flag=True, help="Succeed if the ring is already registered.")
@click.pass_context
def add(ctx: click.Context, name: str, peer: str | None, start_n: int, exist_ok: bool) -> None:
    """Register ring NAME (state syncing). Its servers replay the topics from offset
    zero, or with --from PEER copy PEER's stores and tail from their offsets."""
    st = state(ctx)
    view = registry_view(st.cfg)
    try:
        added = add_ring(st.cfg, view, name, peer)
        existing = view.ring(name) or {}
    finally:
        view.close()
    if not added:
        if not exist_ok:
            raise RegistryError(f"ring '{name}' already exists (state {existing['state']})")
        click.echo(f"ring {name} already registered ({existing['state']})")
    else:
        how = f"from a snapshot of {peer}" if peer else "by replay from offset zero"
        click.echo(
            f"ring {name} added (syncing {how}); start servers: pegasus server run --ring {name}"
        )
    if start_n:
        procs = spawn_servers(st.config_path, name, start_n)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)  # poll
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _ring_rows(cfg: Config, view: RegistryView, detail: bool = False) -> list[dict[str, Any]]:
    from pegasus_kafka.cli.ring_check import digest_agreement, server_lags

    rows = []
    for name, rec in sorted(view.rings().items()):
        servers = live_servers(cfg, view, name)
        lags = {s.server: server_lags(s.endpoint) if detail else ({}, {}) for s in servers}
        rows.append(
            {
                "ring": name,
                "state": rec["state"],
                "serving": ring_serving(cfg, view, name),
                "complete": ring_complete(cfg, view, name),
                "sync_mode": rec["sync_mode"],
                "sync_progress": rec["sync_progress"],
                "sync_eta_s": rec["sync_eta_s"],
                "verified_with": rec["verified_with"],
                "servers": len(servers),
                "lag": sum(s.lag for s in servers),
                "created_ms": rec["created_ms"],
                "retired_ms": rec["retired_ms"],
                "digests": digest_agreement(cfg, view, name) if detail else None,
                "server_detail": [
                    {
                        "server": s.server,
                        "state": s.state,
                        "endpoint": s.endpoint,
                        "owned": list(s.owned),
                        "standby": list(s.standby),
                        "lag": s.lag,
                        "partition_lag": {p: lags[s.server][0].get(p) for p in s.owned},
                        "standby_lag": {p: lags[s.server][1].get(p) for p in s.standby},
                    }
                    for s in servers
                ],
            }
        )
    return rows


def _sync_text(row: dict[str, Any]) -> str:
    if row["state"] != "SYNCING":
        return "-"
    eta = row["sync_eta_s"]
    return f"{row['sync_progress']:.0%}" + (f" eta {eta:.0f}s" if eta is not None else "")


@ring.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_rings(ctx: click.Context, as_json: bool) -> None:
    """Every registered ring with its state, sync progress, servers and lag."""
    cfg = state(ctx).cfg
    view = registry_view(cfg)
    try:
        rows = _ring_rows(cfg, view)
    finally:
        view.close()
    if as_json:
        emit_json(rows)
        return
    table = Table("ring", "state", "serving", "sync", "servers", "lag")
    for r in rows:
        table.add_row(
            r["ring"],
            r["state"],
            "yes" if r["serving"] else "no",
            _sync_text(r),
            str(r["servers"]),
            str(r["lag"]),
        )
    Console().print(table)


@ring.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """A ring (or every ring): state, sync progress and ETA, digest agreement with the
    other rings, and each server's owned and standby partitions with their lag."""
    cfg = state(ctx).cfg
    view = registry_view(cfg)
    try:
        if name is not None and view.ring(name) is None:
            raise RegistryError(f"no ring named '{name}'")
        rows = [r for r in _ring_rows(cfg, view, detail=True) if name in (None, r["ring"])]
    finally:
        view.close()
    if as_json:
        emit_json(rows)
        return
    rings = Table("ring", "state", "sync", "verified with", "digests", "servers", "lag")
    servers = Table("ring", "server", "state", "endpoint", "owned (lag)", "standby (lag)")
    for r in rows:
        rings.add_row(
            r["ring"],
            r["state"],
            _sync_text(r),
            r["verified_with"] or "-",
            r["digests"],
            str(r["servers"]),
            str(r["lag"]),
        )
        for s in r["server_detail"]:
            owned = " ".join(
                f"{p.rsplit('.', 1)[-1]}({'?' if lag is None else lag})"
                for p, lag in sorted(s["partition_lag"].items())
            )
            standby = " ".join(
                f"{p.rsplit('.', 1)[-1]}({'?' if lag is None else lag})"
                for p, lag in sorted(s["standby_lag"].items())
            )
            servers.add_row(r["ring"], s["server"], s["state"], s["endpoint"], owned, standby)
    console = Console()
    console.print(rings)
    console.print(servers)


@ring.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even the last in-sync ring.")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for the ring's servers to leave.",
)
@click.pass_context
def remove(ctx: click.Context, name: str, force: bool, wait_s: float) -> None:
    """Retire ring NAME, wait for its servers to stop, delete its consumer group."""
    cfg = state(ctx).cfg
    view = registry_view(cfg)
    try:
        remove_ring(cfg, view, name, force, wait_s)
    finally:
        view.close()
    click.echo(f"ring {name} removed")


def _register_checks() -> None:
    from pegasus_kafka.cli.ring_check import sync, verify

    ring.add_command(sync)
    ring.add_command(verify)


_register_checks()
