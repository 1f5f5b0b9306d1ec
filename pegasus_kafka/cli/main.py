"""Entry point of the ``pegasus`` command."""

from __future__ import annotations

import click

from pegasus_kafka import __version__
from pegasus_kafka.cli.aas import aas
from pegasus_kafka.cli.bench import bench
from pegasus_kafka.cli.collector import collector
from pegasus_kafka.cli.common import PegasusGroup, State, setup_logging
from pegasus_kafka.cli.dev import dev
from pegasus_kafka.cli.query import query
from pegasus_kafka.cli.ring import ring
from pegasus_kafka.cli.server import server
from pegasus_kafka.cli.topics import topics


@click.group(cls=PegasusGroup)
@click.option(
    "--config",
    "config_path",
    envvar="PEGASUS_CONFIG",
    metavar="PATH",
    help="TOML config file (default: $PEGASUS_CONFIG, else built-in defaults).",
)
@click.option("-v", "--verbose", count=True, help="-v for info logs, -vv for debug.")
@click.version_option(__version__, prog_name="pegasus")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """pegasus: the redundant real-time data store for EMS/SCADA data."""
    setup_logging(verbose)
    ctx.obj = State(config_path, verbose)


for group in (dev, topics, collector, ring, server, query, bench, aas):
    cli.add_command(group)


def main() -> None:
    cli(prog_name="pegasus")


if __name__ == "__main__":
    main()
