"""``pegasus dev``: the local development broker."""

from __future__ import annotations

import click

from pegasus_kafka.cli.common import PegasusGroup, emit_json
from pegasus_kafka.cli.demo import demo
from pegasus_kafka.kafka import broker as local


@click.group(cls=PegasusGroup)
def dev() -> None:
    """Development helpers (a real local Kafka broker)."""


dev.add_command(demo)


@dev.group(cls=PegasusGroup)
def kafka() -> None:
    """Start, stop and inspect the local KRaft broker (state in $PEGASUS_BROKER_DIR)."""


@kafka.command()
@click.option("--port", type=int, default=None, help="Listener port (default: a free port).")
def start(port: int | None) -> None:
    """Fetch the pinned Kafka jars if needed, format storage and start the broker."""
    b = local.default_broker()
    click.echo(b.start(port=port))


@kafka.command()
def stop() -> None:
    """Stop the broker cleanly, leaving no process behind."""
    b = local.default_broker()
    click.echo("stopped" if b.stop() else "not running")


@kafka.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Whether the broker runs, and its bootstrap address."""
    b = local.default_broker()
    info = {
        "running": b.pid() is not None,
        "bootstrap": b.bootstrap(),
        "pid": b.pid(),
        "state_dir": str(b.state_dir),
        "version": local.KAFKA_VERSION,
    }
    if as_json:
        emit_json(info)
    else:
        click.echo(
            f"running at {info['bootstrap']} (pid {info['pid']})"
            if info["running"]
            else "not running"
        )


@kafka.command()
def fetch() -> None:
    """Only resolve the broker jars with Maven (into $PEGASUS_HOME)."""
    click.echo(local.fetch(quiet=False))
