"""Runs the Quix Streams baseline of ``pegasus bench ingest`` in its own
virtual environment, created on first use.

Quix Streams pins an older confluent-kafka than the project's, so it cannot
share ``.venv``; ``.venv-quix`` at the repository root (or
``$PEGASUS_QUIX_VENV``) holds the pinned versions below.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

from pegasus_kafka.config import Config
from pegasus_kafka.errors import MissingTool
from pegasus_kafka.schema import schema_dir

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PINS = ("quixstreams==3.28.1", "fastavro==1.13.1", "numpy==2.4.6")
APP = Path(__file__).with_name("quix_app.py")


def quix_python() -> Path:
    """The Python of the Quix Streams environment, built if missing."""
    venv = Path(os.environ.get("PEGASUS_QUIX_VENV", REPO / ".venv-quix"))
    python = venv / "bin" / "python"
    stamp = venv / "pins.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(PINS):
        return python
    print(f"bench: installing {', '.join(PINS)} into {venv} (once)", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS],
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise MissingTool(f"cannot build the Quix Streams environment in {venv}: {exc}") from None
    stamp.write_text("\n".join(PINS))
    return python


def quix_rate(cfg: Config, state_dir: Path, budget_s: float) -> tuple[int, float]:
    """(samples materialised, seconds) of the Quix Streams application on the scan
    topic from offset zero, stopped after ``budget_s`` or when the topic runs dry."""
    python = quix_python()
    done = subprocess.run(
        [
            str(python),
            str(APP),
            "--bootstrap",
            cfg.kafka.bootstrap,
            "--topic",
            cfg.scan_topic,
            "--schemas",
            str(schema_dir()),
            "--state-dir",
            str(state_dir),
            "--group",
            f"bench-quix-{uuid.uuid4().hex[:8]}",
            "--seconds",
            str(budget_s),
        ],
        capture_output=True,
        text=True,
        timeout=budget_s + 300,
    )
    if done.returncode != 0:
        raise MissingTool(f"the Quix Streams baseline failed: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return int(result["samples"]), float(result["seconds"])
