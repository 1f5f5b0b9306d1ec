from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pegasus_kafka.cli.main import cli

GROUPS = {"dev", "topics", "collector", "ring", "server", "query", "bench"}


def test_help_lists_every_group() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    assert {line.split()[0] for line in out.splitlines() if line.startswith("  ")} >= GROUPS


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, (*prefix, name)))
    return out


@pytest.mark.parametrize("path", _commands(cli))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    assert cmd.help, f"{' '.join(path)} has no help text"


def test_ring_add_requires_and_remove_commands_exist() -> None:
    ring = cli.commands["ring"]
    assert isinstance(ring, click.Group)
    assert {"add", "remove", "list"} <= set(ring.commands)


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[topics]\npartitions = "many"\n')
    result = CliRunner().invoke(cli, ["--config", str(bad), "topics", "ensure"])
    assert result.exit_code == 1
    assert "topics.partitions" in result.output
    assert "Traceback" not in result.output
