"""Advanced applications against the real broker: every exception the simulator
caused reaches a downstream consumer exactly once, from any surviving ring."""

from __future__ import annotations

import collections
import dataclasses
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pegasus_kafka.aas.runner import AppRunner
from pegasus_kafka.aas.truth import analog_truth, status_truth
from pegasus_kafka.cli.common import pegasus_command
from pegasus_kafka.client import PegasusClient
from pegasus_kafka.config import Config
from pegasus_kafka.downstream import ExceptionStream
from pegasus_kafka.errors import QueryError
from tests.helpers import wait_for
from tests.integration.harness import cli_env, produce_site, start_ring, wait_caught_up

FIRST = 7000
PERIOD = 1000


def _config(cfg: Config) -> Config:
    site = dataclasses.replace(
        cfg.sites[0],
        excursion_rate=2_000_000.0,
        limit_change_scans=(FIRST + 20, FIRST + 40),
    )
    return cfg.with_overrides(sites=(site,), aas=dataclasses.replace(cfg.aas, checkpoint_s=0.5))


class Running:
    """An application runner on a thread of its own."""

    def __init__(self, cfg: Config, ring: str, app: str, instance: int = 0) -> None:
        self.runner = AppRunner(cfg, ring, app, instance)
        self.thread = threading.Thread(target=self.runner.run, name=f"{ring}-{app}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@pytest.fixture
def apps() -> Iterator[list[Running]]:
    running: list[Running] = []
    yield running
    for app in running:
        if app.thread.is_alive():
            app.stop()


class Downstream:
    """A downstream consumer, with every record it was handed."""

    def __init__(self, cfg: Config, app: str) -> None:
        self.stream = ExceptionStream(cfg, f"downstream-{uuid.uuid4().hex[:8]}", app)
        self.records: list[dict[str, Any]] = []

    def drain_until(
        self, want: set[tuple[str, int, int]], linked: bool = False, timeout: float = 120.0
    ) -> None:
        """Consume until every exception in ``want`` (and, if ``linked``, a link
        to each) has arrived."""

        def complete() -> bool:
            self.take()
            if not want <= set(self.identities()):
                return False
            ids = {r["id"] for r in self.records if r["kind"] != "LINK"}
            return not linked or ids <= set(self.links())

        wait_for(complete, timeout, f"{len(want)} exceptions downstream", interval=0)

    def take(self) -> int:
        """Consume what has arrived; returns how many records were taken so far."""
        self.records.extend(self.stream.poll(timeout=0.5))
        self.stream.commit()
        return len(self.records)

    def identities(self) -> collections.Counter[tuple[str, int, int]]:
        return collections.Counter(
            (r["kind"], r["ikey"], r["time_ms"] // PERIOD)
            for r in self.records
            if r["kind"] != "LINK"
        )

    def links(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for r in self.records:
            if r["kind"] == "LINK":
                out[r["exception_id"]].append(r)
        return out


def test_every_status_change_arrives_once_with_its_states_and_operator_action(
    cfg: Config, apps: list[Running]
) -> None:
    cfg = _config(cfg)
    last = FIRST + 30
    produce_site(cfg, range(FIRST, last + 1))
    truth = status_truth(cfg.sites[0], FIRST, last)
    assert collections.Counter(k[0] for k in truth)["CHANGE"] > 20
    apps.append(Running(cfg, "r1", "status"))
    down = Downstream(cfg, "status")
    down.drain_until(set(truth), linked=True)
    # Extra records would come from a second copy or a wrong rule.
    assert set(down.identities()) == set(truth)
    assert max(down.identities().values()) == 1
    links = down.links()
    for rec in down.records:
        if rec["kind"] == "LINK":
            continue
        key = (rec["kind"], rec["ikey"], rec["time_ms"] // PERIOD)
        assert (rec["old_state"], rec["new_state"]) == (truth[key]["old"], truth[key]["new"])
        assert rec["name"] and rec["substation"], "point metadata missing"
        events = [link["event"] for link in links[rec["id"]]]
        want = "OPERATOR_ACTION" if rec["kind"] == "CHANGE" else "ALARM"
        assert [e["kind"] for e in events] == [want], rec
        if want == "OPERATOR_ACTION":
            assert events[0]["operator"] and rec["name"] in events[0]["text"]
    down.stream.close()


def test_every_limit_violation_is_judged_against_the_limit_in_force(
    cfg: Config, apps: list[Running]
) -> None:
    cfg = _config(cfg)
    last = FIRST + 50
    produce_site(cfg, range(FIRST, last + 1))
    site = cfg.sites[0]
    truth = analog_truth(site, site.hosts[0].name, FIRST, last)
    # The tightening at FIRST+20 puts points in violation that no excursion did.
    assert sum(1 for k in truth if k[0] == "VIOLATION" and k[2] == FIRST + 20) > 10
    apps.append(Running(cfg, "r1", "analog"))
    down = Downstream(cfg, "analog")
    down.drain_until(set(truth))
    got = {k: n for k, n in down.identities().items() if k[0] != "UNUSUAL"}
    assert set(got) == set(truth) and max(got.values()) == 1
    for rec in down.records:
        key = (rec["kind"], rec["ikey"], rec["time_ms"] // PERIOD)
        if rec["kind"] == "VIOLATION":
            assert rec["limit"] == pytest.approx(truth[key]["limit"]), key
            assert rec["level"] == truth[key]["level"]
        elif rec["kind"] == "RETURN":
            assert rec["start_ms"] // PERIOD == truth[key]["start_slot"]
            assert rec["duration_ms"] > 0 and rec["peak"] is not None
    down.stream.close()


def test_a_ring_stopping_mid_stream_loses_and_repeats_nothing_downstream(
    cfg: Config, apps: list[Running]
) -> None:
    cfg = _config(cfg)
    half, last = FIRST + 15, FIRST + 30
    produce_site(cfg, range(FIRST, half + 1))
    a, b = Running(cfg, "r1", "status"), Running(cfg, "r2", "status")
    apps.extend([a, b])
    down = Downstream(cfg, "status")
    site = cfg.sites[0]
    down.drain_until(set(status_truth(site, FIRST, half)), linked=True)
    wait_for(lambda: down.stream.poll(0.2) == [] and a.runner.published and b.runner.published)
    b.stop()
    produce_site(cfg, range(half + 1, last + 1))
    truth = status_truth(site, FIRST, last)
    down.drain_until(set(truth), linked=True)
    assert set(down.identities()) == set(truth)
    assert max(down.identities().values()) == 1
    # Both rings published the first half: the consumer dropped the second copies.
    assert down.stream.duplicates > 0
    assert all(len(v) == 1 for v in down.links().values())
    down.stream.close()


def test_a_second_instance_takes_partitions_and_the_output_stays_exact(
    cfg: Config, apps: list[Running]
) -> None:
    cfg = _config(cfg)
    half, last = FIRST + 15, FIRST + 30
    produce_site(cfg, range(FIRST, half + 1))
    first = Running(cfg, "r1", "status")
    apps.append(first)
    down = Downstream(cfg, "status")
    site = cfg.sites[0]
    down.drain_until(set(status_truth(site, FIRST, half)), linked=True)
    second = Running(cfg, "r1", "status", instance=1)
    apps.append(second)
    wait_for(
        lambda: first.runner.tasks and second.runner.tasks,
        60,
        "the instances to split the partitions",
    )
    assert not set(first.runner.tasks) & set(second.runner.tasks)
    produce_site(cfg, range(half + 1, last + 1))
    truth = status_truth(site, FIRST, last)
    down.drain_until(set(truth), linked=True)
    assert set(down.identities()) == set(truth)
    assert max(down.identities().values()) == 1
    down.stream.close()


def test_the_rings_api_reports_exceptions_with_links_groups_and_sorting(
    cfg: Config, apps: list[Running]
) -> None:
    cfg = _config(cfg)
    last = FIRST + 45
    produce_site(cfg, range(FIRST, last + 1))
    site = cfg.sites[0]
    apps.extend([Running(cfg, "r1", "status"), Running(cfg, "r1", "analog")])
    Downstream(cfg, "status").drain_until(set(status_truth(site, FIRST, last)), linked=True)
    analog = analog_truth(site, site.hosts[0].name, FIRST, last)
    Downstream(cfg, "analog").drain_until(set(analog))
    ring = start_ring(cfg, "r1", servers=2)
    try:
        wait_caught_up(ring, cfg)
        t0, t1 = FIRST * PERIOD, (last + 1) * PERIOD
        answers = []
        for endpoint in ring.endpoints():
            with PegasusClient(cfg, endpoints={"r1": [endpoint]}) as client:
                answers.append(client.exceptions("status", t0, t1).body)
        # Each server gathers every partition, from its peer where it must.
        assert answers[0] == answers[1]
        truth = status_truth(site, FIRST, last)
        rows = answers[0]["exceptions"]
        assert {(r["kind"], r["ikey"], r["time_ms"] // PERIOD) for r in rows} == set(truth)
        assert all(len(r["events"]) == 1 for r in rows)
        with PegasusClient(cfg, endpoints={"r1": ring.endpoints()}) as client:
            returns = client.exceptions("analog", t0, t1, kind="RETURN", sort="-duration").body
            durations = [r["duration_ms"] for r in returns["exceptions"]]
            assert durations and durations == sorted(durations, reverse=True)
            assert len(durations) == sum(1 for k in analog if k[0] == "RETURN")
            groups = client.exceptions("analog", t0, t1, group_by="substation").body
            assert sum(g["count"] for g in groups["groups"]) == groups["exceptions_matched"]
            one = groups["groups"][0]["key"]
            only = client.exceptions("analog", t0, t1, substation=one).body["exceptions"]
            assert len(only) == groups["groups"][0]["count"]
            ikey = rows[0]["ikey"]
            mine = client.exceptions("status", t0, t1, ikey=ikey).body["exceptions"]
            assert mine == [r for r in rows if r["ikey"] == ikey]
            with pytest.raises(QueryError, match="group_by"):
                client.exceptions("analog", t0, t1, group_by="colour")
    finally:
        ring.stop()


def test_kill_9_mid_stream_then_restart_loses_and_repeats_nothing(
    cfg: Config, tmp_path: Path
) -> None:
    cfg = _config(cfg)
    half, last = FIRST + 20, FIRST + 45
    produce_site(cfg, range(FIRST, half + 1))
    env = cli_env(cfg, tmp_path, "[aas]\ncheckpoint_s = 0.5\n")
    command = pegasus_command(None, "aas", "run", "--ring", "k", "--app", "analog")
    down = Downstream(cfg, "analog")
    proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(down.take, 120, "the first exceptions", interval=0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        produce_site(cfg, range(half + 1, last + 1))
        proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        site = cfg.sites[0]
        truth = analog_truth(site, site.hosts[0].name, FIRST, last)
        down.drain_until(set(truth))
        got = {k: n for k, n in down.identities().items() if k[0] != "UNUSUAL"}
        assert set(got) == set(truth) and max(got.values()) == 1
    finally:
        proc.terminate()
        proc.wait(60)
        down.stream.close()
