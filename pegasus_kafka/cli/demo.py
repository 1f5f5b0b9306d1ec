"""``pegasus dev demo``: the whole system on one machine.

A local broker (unless ``PEGASUS_KAFKA_BOOTSTRAP`` names one), the topics, a
simulated site with its primary and backup collectors, and the configured
rings with their servers, each a separate process as in production. The demo
starts clean every time: its state lives in ``.pegasus/demo`` (or
``$PEGASUS_DEMO_HOME``) and is wiped first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import click
import httpx

from pegasus_kafka.cli.common import pegasus_command, state
from pegasus_kafka.config import AAS_APPS, Config, RingConfig
from pegasus_kafka.errors import PegasusError
from pegasus_kafka.kafka.broker import REPO_ROOT, LocalBroker
from pegasus_kafka.kafka.registry import RegistryView, RegistryWriter
from pegasus_kafka.kafka.topics import ensure_topics
from pegasus_kafka.ring.health import live_servers, ring_serving


def _say(msg: str) -> None:
    click.echo(f"[demo] {msg}", err=True)


class Demo:
    def __init__(self, cfg: Config, config_path: str | None, home: Path) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.home = home
        self.procs: list[subprocess.Popen[bytes]] = []
        self.broker: LocalBroker | None = None

    def _spawn(self, name: str, *args: str) -> None:
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            self.procs.append(
                subprocess.Popen(
                    pegasus_command(self.config_path, "-v", *args),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self._env(),
                )
            )

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PEGASUS_KAFKA_BOOTSTRAP"] = self.cfg.kafka.bootstrap
        env["PEGASUS_TOPIC_PREFIX"] = self.cfg.kafka.topic_prefix
        env["PEGASUS_DATA_DIR"] = self.cfg.store.data_dir
        return env

    def rings(self) -> tuple[RingConfig, ...]:
        return self.cfg.rings or (RingConfig("ring-a"), RingConfig("ring-b"))

    def start(self) -> None:
        if not os.environ.get("PEGASUS_KAFKA_BOOTSTRAP"):
            self.broker = LocalBroker(self.home / "broker")
            _say("starting the local Kafka broker (first run fetches its jars with Maven)")
            bootstrap = self.broker.start()
            self.cfg = self.cfg.with_overrides(
                kafka=dataclasses.replace(self.cfg.kafka, bootstrap=bootstrap)
            )
        _say(f"kafka at {self.cfg.kafka.bootstrap}; ensuring topics")
        ensure_topics(self.cfg)
        writer = RegistryWriter(self.cfg)
        for ring in self.rings():
            writer.add_ring(ring.name)
        for ring in self.rings():
            for i in range(ring.servers):
                self._spawn(
                    f"{ring.name}-s{i + 1}",
                    "server",
                    "run",
                    "--ring",
                    ring.name,
                    "--id",
                    f"s{i + 1}",
                )
            _say(f"ring {ring.name}: {ring.servers} servers starting")
            for app in AAS_APPS:
                self._spawn(
                    f"{ring.name}-aas-{app}", "aas", "run", "--ring", ring.name, "--app", app
                )
            _say(f"ring {ring.name}: applications {', '.join(AAS_APPS)} starting")
        for site in self.cfg.sites:
            for host in site.hosts:
                self._spawn(
                    f"collector-{site.name}-{host.name}",
                    "collector",
                    "run",
                    "--site",
                    site.name,
                    "--host",
                    host.name,
                )
                _say(f"collector {site.name}/{host.name} ({host.role}) starting")

    def check_children(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise PegasusError(
                    f"a demo process exited with code {p.returncode}: {p.args!r}"
                    f"; see {self.home / 'logs'}"
                )

    def answers(self, registry: RegistryView, ikey: int) -> dict[str, Any]:
        """Each serving ring's answer to a current-value query, asked of that ring alone."""
        out = {}
        with httpx.Client(timeout=5) as http:
            for ring in self.rings():
                if not ring_serving(self.cfg, registry, ring.name):
                    continue
                for server in live_servers(self.cfg, registry, ring.name):
                    resp = http.get(f"{server.endpoint}/v1/current", params={"ikeys": str(ikey)})
                    if resp.status_code == 200:
                        out[ring.name] = resp.json()["points"][0]
                        break
        return out

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.broker is not None:
            self.broker.stop()


@click.command()
@click.option(
    "--smoke",
    is_flag=True,
    help="Wait until every ring answers, print one JSON line, stop everything.",
)
@click.option(
    "--timeout",
    type=float,
    default=180.0,
    show_default=True,
    help="Seconds --smoke waits for the rings.",
)
@click.pass_context
def demo(ctx: click.Context, smoke: bool, timeout: float) -> None:
    """Run a broker, a simulated site (primary and backup host) and the configured rings."""
    st = state(ctx)
    cfg = st.cfg
    home = Path(os.environ.get("PEGASUS_DEMO_HOME", REPO_ROOT / ".pegasus" / "demo"))
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    prefix = cfg.kafka.topic_prefix
    if smoke:
        # A smoke run may share a broker with other work: its topics are its own.
        prefix = f"{prefix}-smoke-{uuid.uuid4().hex[:6]}"
    cfg = cfg.with_overrides(
        kafka=dataclasses.replace(cfg.kafka, topic_prefix=prefix),
        store=dataclasses.replace(cfg.store, data_dir=str(home / "data")),
    )
    if not cfg.sites:
        raise PegasusError("the config names no [[sites]]; use ops/pegasus.toml")
    d = Demo(cfg, st.config_path, home)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        d.start()
        registry = RegistryView(d.cfg)
        ikey = (cfg.sites[0].code << 40) | 1
        answers: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while len(answers) < len(d.rings()):
            d.check_children()
            if time.monotonic() > deadline:
                raise PegasusError(
                    f"rings did not all answer within {timeout:.0f}s "
                    f"(answered: {sorted(answers)}); see {home / 'logs'}"
                )
            time.sleep(0.5)  # poll
            answers = d.answers(registry, ikey)
        waited = round(time.monotonic() - started, 1)
        registry.close()
        if smoke:
            click.echo(
                json.dumps(
                    {
                        "rings": [r.name for r in d.rings()],
                        "points": sum(s.points for s in cfg.sites),
                        "answered_by": sorted(answers),
                        "seconds_to_first_answer": waited,
                    }
                )
            )
            return
        _print_guide(d, ikey, waited)
        while True:
            d.check_children()
            time.sleep(1)  # poll
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        d.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _print_guide(d: Demo, ikey: int, waited: float) -> None:
    env = (
        f"PEGASUS_KAFKA_BOOTSTRAP={d.cfg.kafka.bootstrap} "
        f"PEGASUS_TOPIC_PREFIX={d.cfg.kafka.topic_prefix}"
    )
    cfg_opt = f" --config {d.config_path}" if d.config_path else ""
    click.echo(f"""
Every ring answers ({waited}s). Try, in another terminal:

  source .venv/bin/activate
  export {env}
  pegasus{cfg_opt} ring list
  pegasus{cfg_opt} ring status
  pegasus{cfg_opt} query current {ikey} {ikey + 1} {ikey + 2}
  pegasus{cfg_opt} query history {ikey} --host north/ems-b
  pegasus{cfg_opt} query meta {ikey}
  pegasus{cfg_opt} aas tail --app status --max 10
  pegasus{cfg_opt} query exceptions --app analog --from 0 --to 9999999999999 --group-by substation

Each server's HTTP API (OpenAPI at /openapi.json) is listed by 'ring status'.
Logs: {d.home / "logs"}. Ctrl-C stops everything.
""")
