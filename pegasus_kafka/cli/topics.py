"""``pegasus topics``."""

from __future__ import annotations

import click

from pegasus_kafka.cli.common import PegasusGroup, state
from pegasus_kafka.kafka.topics import ensure_topics


@click.group(cls=PegasusGroup)
def topics() -> None:
    """Create and validate the Kafka topics."""


@topics.command()
@click.pass_context
def ensure(ctx: click.Context) -> None:
    """Create missing topics; report (never change) existing ones that differ from config."""
    report = ensure_topics(state(ctx).cfg)
    for name in report.created:
        click.echo(f"created  {name}")
    for name in report.valid:
        click.echo(f"ok       {name}")
