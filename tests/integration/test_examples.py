"""The examples run as written against a real broker and ring."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from pegasus_kafka.cli.common import pegasus_command
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.schema import PRIMARY
from tests.integration.harness import cli_env, produce_site, start_ring, wait_caught_up

REPO = Path(__file__).resolve().parents[2]


def test_examples_consume_frames_and_query_current(cfg: Config, tmp_path: Path) -> None:
    produce_site(cfg, range(6000, 6003))
    done = subprocess.run(
        [sys.executable, str(REPO / "examples/consume_frames.py"), "--max", "5"],
        env=cli_env(cfg, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 5
    assert "north/ems-" in done.stdout

    ring = start_ring(cfg, "examples", servers=1)
    try:
        wait_caught_up(ring, cfg)
        ikey = int(SimSource(cfg.sites[0], "ems-a", PRIMARY).field.ikeys[0])
        done = subprocess.run(
            [sys.executable, str(REPO / "examples/query_current.py"), str(ikey)],
            env=cli_env(cfg, tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{ikey} ") and "from examples" in done.stdout

        keys = [str(int(k)) for k in SimSource(cfg.sites[0], "ems-a", PRIMARY).field.ikeys[:2]]
        script = str(REPO / "examples/query_matrix.py")
        done = subprocess.run(
            [sys.executable, script, "6000000", "6003000", "1000", *keys],
            env=cli_env(cfg, tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert (
            done.stdout.startswith("(3,) (2, 3) avg per step:") and "from examples" in done.stdout
        )
    finally:
        ring.stop()


def test_consume_exceptions_from_an_application_started_by_the_cli(
    cfg: Config, tmp_path: Path
) -> None:
    cfg = cfg.with_overrides(sites=(dataclasses.replace(cfg.sites[0], excursion_rate=2_000_000.0),))
    produce_site(cfg, range(6000, 6020))
    env = cli_env(cfg, tmp_path)
    app = subprocess.Popen(
        pegasus_command(None, "aas", "run", "--ring", "ex", "--app", "status"),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "examples/consume_exceptions.py"), "--max", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        assert len(lines) >= 5 and '"kind": "CHANGE"' in done.stdout
    finally:
        app.terminate()
        _, err = app.communicate(timeout=60)
    assert app.returncode == 0, err
