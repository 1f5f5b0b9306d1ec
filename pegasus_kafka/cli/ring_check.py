"""``pegasus ring sync`` and ``pegasus ring verify``: following and proving a ring."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
import httpx
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pegasus_kafka.cli.common import emit_json, registry_view, state
from pegasus_kafka.config import Config
from pegasus_kafka.errors import RegistryError
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import expected_partitions, live_servers, ring_serving
from pegasus_kafka.ring.promote import choose_peer, progress_of
from pegasus_kafka.ring.verify import compare, corrupt, gather


def server_lags(endpoint: str) -> tuple[dict[str, int | None], dict[str, int]]:
    """(lag of each owned partition, lag of each standby copy) as the server reports them."""
    try:
        body = httpx.get(f"{endpoint}/v1/health", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return {}, {}
    owned = {p: v.get("lag") for p, v in body.get("partitions", {}).items()}
    return owned, dict(body.get("standby_lag", {}))


def digest_agreement(cfg: Config, view: RegistryView, ring: str) -> str:
    """One phrase: how this ring's digests compare with a serving peer's."""
    peers = [r for r in sorted(view.rings()) if r != ring and ring_serving(cfg, view, r)]
    if not live_servers(cfg, view, ring):
        return "no live servers"
    if not peers:
        return "no peer to compare"
    peer = peers[0]
    try:
        verdict = compare(gather(cfg, view, ring), gather(cfg, view, peer), (ring, peer))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return f"unknown ({type(exc).__name__})"
    if verdict.different:
        return f"DIFFER from {peer}: " + ",".join(p for p, _ in verdict.different)
    total = len(verdict.equal) + len(verdict.not_comparable)
    return f"equal {len(verdict.equal)}/{total} with {peer}"


def _phase(cfg: Config, view: RegistryView, name: str) -> str:
    if not live_servers(cfg, view, name):
        return f"waiting for servers (pegasus server run --ring {name})"
    peer = choose_peer(cfg, view, name)
    return f"replaying, then verifying with {peer}" if peer else "replaying"


@click.command()
@click.argument("name")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=None,
    help="Give up after this many seconds (default: wait as long as it takes).",
)
@click.pass_context
def sync(ctx: click.Context, name: str, timeout_s: float | None) -> None:
    """Follow ring NAME until it is in sync, with a progress bar and ETA.

    Exits 0 once the ring is IN_SYNC (caught up and its digests equal a peer's),
    1 if it is retired, unknown or the timeout passes.
    """
    cfg = state(ctx).cfg
    view = registry_view(cfg)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    expected = len(expected_partitions(cfg))
    tty = sys.stderr.isatty()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    next_line = 0.0
    try:
        with Progress(*columns, disable=not tty, transient=False) as bar:
            task = bar.add_task(name, total=None)
            while True:
                rec = view.ring(name)
                if rec is None or rec["state"] == "RETIRED":
                    raise RegistryError(f"no active ring named '{name}'")
                if rec["state"] == "IN_SYNC":
                    break
                try:
                    progress = progress_of(gather(cfg, view, name), expected)
                except (httpx.HTTPError, ValueError, KeyError):
                    progress = None
                phase = _phase(cfg, view, name)
                if progress is not None and progress.total:
                    bar.update(
                        task,
                        total=progress.total,
                        completed=progress.applied,
                        description=f"{name}: {phase}",
                    )
                if not tty and time.monotonic() >= next_line:
                    done = f"{progress.applied}/{progress.total}" if progress else "?"
                    eta = rec["sync_eta_s"]
                    click.echo(
                        f"{name}: {phase}; {done} records"
                        + (f", eta {eta:.0f}s" if eta is not None else ""),
                        err=True,
                    )
                    next_line = time.monotonic() + 5
                if deadline is not None and time.monotonic() > deadline:
                    raise RegistryError(f"ring '{name}' not in sync after {timeout_s:.0f}s")
                time.sleep(0.5)  # poll
            bar.update(task, completed=bar.tasks[0].total or 0)
    finally:
        view.close()
    peer = rec["verified_with"]
    how = f"digests equal to {peer}'s" if peer else "no peer was serving to compare digests"
    click.echo(f"ring {name} in sync ({how})")


@click.command()
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
    cfg = state(ctx).cfg
    view = registry_view(cfg)
    try:
        for name in (ring_a, ring_b):
            if not live_servers(cfg, view, name):
                raise RegistryError(f"ring '{name}' has no live servers to ask")
        parts = {name: gather(cfg, view, name) for name in (ring_a, ring_b)}
        damaged: list[tuple[str, str]] = []
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
        out: dict[str, Any] = {
            "equal": verdict.equal,
            "different": verdict.different,
            "not_comparable": verdict.not_comparable,
        }
        emit_json(out)
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
