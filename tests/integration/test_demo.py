"""``./ops/demo --smoke`` runs the whole system and every ring answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_smoke_every_ring_answers(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        PEGASUS_KAFKA_BOOTSTRAP=kafka_bootstrap,
        PEGASUS_DEMO_HOME=str(tmp_path / "demo"),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pegasus_kafka.cli.main",
            "--config",
            str(REPO / "ops/pegasus.toml"),
            "dev",
            "demo",
            "--smoke",
            "--timeout",
            "120",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rings"] == ["ring-a", "ring-b"]
    assert result["answered_by"] == ["ring-a", "ring-b"]
    assert result["points"] == 2000 and result["seconds_to_first_answer"] > 0
    # The demo's children are "python -m pegasus_kafka.cli.main ..." processes.
    leftovers = subprocess.run(
        ["pgrep", "-f", "pegasus_kafka.cli.main .*(server|collector) run"],
        capture_output=True,
        text=True,
    )
    assert leftovers.stdout.strip() == "", "the demo left processes behind"
