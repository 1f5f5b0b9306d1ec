"""What every command shares: the config, logging, and one-line failures."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from pegasus_kafka.config import Config, load_config
from pegasus_kafka.errors import PegasusError, RegistryError
from pegasus_kafka.kafka.registry import RegistryView


class State:
    def __init__(self, config_path: str | None, verbose: int) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._cfg: Config | None = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            self._cfg = load_config(self.config_path)
        return self._cfg


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per HTTP request between servers is noise below debug level.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


class PegasusGroup(click.Group):
    """Turns every PegasusError into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PegasusError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


def state(ctx: click.Context) -> State:
    obj: State = ctx.find_root().obj
    return obj


def pegasus_command(config_path: str | None, *args: str) -> list[str]:
    """The command line that runs ``pegasus ARGS`` with this interpreter (child processes)."""
    cmd = [sys.executable, "-m", "pegasus_kafka.cli.main"]
    if config_path:
        cmd += ["--config", config_path]
    return [*cmd, *args]


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=True, default=str))


def registry_view(cfg: Config) -> RegistryView:
    """A registry view that has read the whole topic, or a clear error."""
    view = RegistryView(cfg)
    if not view.wait_caught_up():
        view.close()
        raise RegistryError("the registry topic did not answer; run 'pegasus topics ensure'")
    return view
