"""Every pegasus command docker-compose.yml names exists and works with its arguments.

No Docker engine is needed: each service's command runs as a local process
against the test broker, in compose's dependency order. Container-only
arguments (bind address, fixed port, advertised name) are mapped to loopback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from pegasus_kafka.config import load_config
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import live_servers
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]


def _local(command: list[str]) -> list[str]:
    out = list(command)
    for flag, value in (("--bind", "127.0.0.1"), ("--port", "0"), ("--advertise", "127.0.0.1")):
        if flag in out:
            out[out.index(flag) + 1] = value
    return out


def test_compose_services_run_as_local_processes(kafka_bootstrap: str, tmp_path: Path) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = {n: s for n, s in compose["services"].items() if "build" in s}
    assert {"topics", "rings", "collector-ems-a", "collector-ems-b"} <= set(services)
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        PEGASUS_CONFIG=str(REPO / "ops" / "pegasus.toml"),
        PEGASUS_KAFKA_BOOTSTRAP=kafka_bootstrap,
        PEGASUS_TOPIC_PREFIX=f"compose{uuid.uuid4().hex[:8]}",
        PEGASUS_DATA_DIR=str(tmp_path / "data"),
    )
    one_shot = [n for n, s in services.items() if s.get("restart") == "no"]
    for name in ["topics", "rings"]:
        assert name in one_shot
        done = subprocess.run(
            services[name]["command"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{name}: {done.stderr}"
    logs = {name: tmp_path / f"{name}.log" for name in services}
    running = {
        name: subprocess.Popen(
            _local(s["command"]), env=env, stdout=subprocess.DEVNULL, stderr=logs[name].open("wb")
        )
        for name, s in services.items()
        if name not in one_shot
    }
    cfg = load_config(env["PEGASUS_CONFIG"], env=env)
    view = RegistryView(cfg)
    try:

        def all_servers_live() -> bool:
            for name, proc in running.items():
                assert proc.poll() is None, f"{name} exited: {logs[name].read_text()[-2000:]}"
            return all(len(live_servers(cfg, view, r)) == 2 for r in ("ring-a", "ring-b"))

        wait_for(all_servers_live, 90, "every compose ring server to join its ring")
    finally:
        view.close()
        for proc in running.values():
            proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(timeout=60) for name, proc in running.items()}
    failed = {n: logs[n].read_text()[-2000:] for n, c in codes.items() if c != 0}
    assert not failed, failed
