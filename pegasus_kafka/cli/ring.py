"""``pegasus ring``: add, list, inspect and remove rings."""

from __future__ import annotations

import signal
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from pegasus_kafka.cli.common import PegasusGroup, emit_json, state
from pegasus_kafka.cli.server import spawn_servers
from pegasus_kafka.config import Config
from pegasus_kafka.errors import RegistryError
from pegasus_kafka.kafka import clients
from pegasus_kafka.kafka.registry import (
    RegistryView,
    RegistryWriter,
    now_ms,
    ring_key,
    ring_record,
    server_key,
)
from pegasus_kafka.ring.health import live_servers, ring_complete, ring_serving


@click.group(cls=PegasusGroup)
def ring() -> None:
    """Server rings: each one a consumer group holding the whole RDS."""


def _view(cfg: Config) -> RegistryView:
    view = RegistryView(cfg)
    if not view.wait_caught_up():
        view.close()
        raise RegistryError("the registry topic did not answer; run 'pegasus topics ensure'")
    return view


@ring.command()
@click.argument("name")
@click.option(
    "--start",
    "start_n",
    type=int,
    default=0,
    help="Also start N local servers of the ring and run until Ctrl-C (dev).",
)
@click.option("--exist-ok", is_flag=True, help="Succeed if the ring is already registered.")
@click.pass_context
def add(ctx: click.Context, name: str, start_n: int, exist_ok: bool) -> None:
    """Register ring NAME (state syncing); its servers replay the topics from offset zero."""
    st = state(ctx)
    cfg = st.cfg
    view = _view(cfg)
    try:
        existing = view.ring(name)
    finally:
        view.close()
    if existing is not None and existing["state"] != "RETIRED":
        if not exist_ok:
            raise RegistryError(f"ring '{name}' already exists (state {existing['state']})")
        click.echo(f"ring {name} already registered ({existing['state']})")
    else:
        RegistryWriter(cfg).add_ring(name)
        click.echo(f"ring {name} added (syncing); start servers: pegasus server run --ring {name}")
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


def _ring_rows(cfg: Config, view: RegistryView) -> list[dict[str, Any]]:
    rows = []
    for name, rec in sorted(view.rings().items()):
        servers = live_servers(cfg, view, name)
        rows.append(
            {
                "ring": name,
                "state": rec["state"],
                "serving": ring_serving(cfg, view, name),
                "complete": ring_complete(cfg, view, name),
                "servers": len(servers),
                "lag": sum(s.lag for s in servers),
                "created_ms": rec["created_ms"],
                "server_detail": [
                    {
                        "server": s.server,
                        "state": s.state,
                        "endpoint": s.endpoint,
                        "owned": list(s.owned),
                        "standby": list(s.standby),
                        "lag": s.lag,
                    }
                    for s in servers
                ],
            }
        )
    return rows


@ring.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_rings(ctx: click.Context, as_json: bool) -> None:
    """Every registered ring with its state, servers and lag."""
    cfg = state(ctx).cfg
    view = _view(cfg)
    try:
        rows = _ring_rows(cfg, view)
    finally:
        view.close()
    if as_json:
        emit_json(rows)
        return
    table = Table("ring", "state", "serving", "servers", "lag")
    for r in rows:
        table.add_row(
            r["ring"], r["state"], "yes" if r["serving"] else "no", str(r["servers"]), str(r["lag"])
        )
    Console().print(table)


@ring.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Servers of a ring (or of all rings): owned partitions, lag, state."""
    cfg = state(ctx).cfg
    view = _view(cfg)
    try:
        rows = [r for r in _ring_rows(cfg, view) if name is None or r["ring"] == name]
    finally:
        view.close()
    if name is not None and not rows:
        raise RegistryError(f"no ring named '{name}'")
    if as_json:
        emit_json(rows)
        return
    table = Table("ring", "server", "state", "endpoint", "owned", "lag")
    for r in rows:
        for s in r["server_detail"]:
            table.add_row(
                r["ring"],
                s["server"],
                s["state"],
                s["endpoint"],
                str(len(s["owned"])),
                str(s["lag"]),
            )
    Console().print(table)


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
    view = _view(cfg)
    try:
        rec = view.ring(name)
        if rec is None or rec["state"] == "RETIRED":
            raise RegistryError(f"no active ring named '{name}'")
        serving = [r for r in view.rings() if ring_serving(cfg, view, r)]
        if serving == [name] and not force:
            raise RegistryError(
                f"ring '{name}' is the last in-sync ring; removing it stops all queries "
                "(use --force to do it anyway)"
            )
        writer = RegistryWriter(cfg)
        writer.put(
            ring_key(name), ring_record(name, "RETIRED", rec["created_ms"], retired_ms=now_ms())
        )
        writer.flush()
        deadline = time.monotonic() + wait_s
        while live_servers(cfg, view, name) and time.monotonic() < deadline:
            time.sleep(0.5)  # poll
        left = live_servers(cfg, view, name)
        if left:
            raise RegistryError(
                f"ring '{name}' retired, but servers {[s.server for s in left]} are still running"
            )
        for entry in view.servers(name):
            writer.put(server_key(name, entry.server), None)
        writer.flush()
    finally:
        view.close()
    _delete_group(cfg, cfg.group_id(name))
    click.echo(f"ring {name} removed")


def _delete_group(cfg: Config, group: str) -> None:
    admin = clients.admin(cfg)
    futures = admin.delete_consumer_groups([group], request_timeout=15)
    for fut in futures.values():
        try:
            clients.wait_result(fut, f"delete consumer group {group}")
        except Exception as exc:  # a group that never committed does not exist: fine
            click.echo(f"note: consumer group {group}: {exc}", err=True)


@ring.command()
@click.argument("ring_a")
@click.argument("ring_b")
@click.option(
    "--deep",
    is_flag=True,
    help="Also have every server recompute its digests from disk (reads everything).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def verify(ctx: click.Context, ring_a: str, ring_b: str, deep: bool, as_json: bool) -> None:
    """Prove RING_A and RING_B hold the identical RDS, partition by partition.

    Exits 0 when every partition is equal, 1 naming every partition that
    differs (or is corrupt on disk), 3 when some could not be compared yet.
    """
    from pegasus_kafka.ring.verify import compare, corrupt, gather

    cfg = state(ctx).cfg
    view = _view(cfg)
    try:
        for name in (ring_a, ring_b):
            if not live_servers(cfg, view, name):
                raise RegistryError(f"ring '{name}' has no live servers to ask")
        parts = {name: gather(cfg, view, name) for name in (ring_a, ring_b)}
        damaged = []
        if deep:
            for name in (ring_a, ring_b):
                damaged += [
                    (f"{name} {p}", why) for p, why in corrupt(gather(cfg, view, name, True))
                ]
    finally:
        view.close()
    verdict = compare(parts[ring_a], parts[ring_b], (ring_a, ring_b))
    verdict.different.extend(damaged)
    if as_json:
        emit_json(
            {
                "equal": verdict.equal,
                "different": verdict.different,
                "not_comparable": verdict.not_comparable,
            }
        )
    else:
        for part, offset in verdict.equal:
            click.echo(f"equal      {part} at offset {offset}")
        for part, why in verdict.different:
            click.echo(f"DIFFERENT  {part}: {why}")
        for part, why in verdict.not_comparable:
            click.echo(f"unverified {part}: {why}")
    if verdict.different:
        ctx.exit(1)
    if verdict.not_comparable:
        ctx.exit(3)
