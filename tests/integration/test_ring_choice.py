"""Which ring answers: either gives the same answer; an unproven ring answers none."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from pegasus_kafka.client import PegasusClient
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.health import ring_complete
from pegasus_kafka.ring.scan import open_store
from pegasus_kafka.schema import PRIMARY
from tests.helpers import wait_for
from tests.integration.harness import Ring, produce_site, ring_cli, start_ring, wait_caught_up


def _keys(cfg: Config, n: int) -> list[int]:
    return [int(k) for k in SimSource(cfg.sites[0], "ems-a", PRIMARY).field.ikeys[:n]]


def test_the_same_query_gives_identical_answers_from_either_ring(cfg: Config) -> None:
    produce_site(cfg, range(6000, 6020))
    rings = [start_ring(cfg, "qa", servers=2), start_ring(cfg, "qb", servers=2)]
    try:
        for ring in rings:
            wait_caught_up(ring, cfg)
        keys = _keys(cfg, 60)
        t0, t1 = 6000 * 1000, 6020 * 1000
        answers = []
        for ring in rings:
            # Ask each server of each ring, so routing inside the ring is covered too.
            for endpoint in ring.endpoints():
                client = PegasusClient(cfg, endpoints={ring.name: [endpoint]})
                answers.append(
                    json.dumps(
                        {
                            "current": client.current(keys).body,
                            "history": [client.history(k, t0, t1).body for k in keys[:10]],
                            "mirror": client.history(keys[0], t0, t1, host="north/ems-b").body,
                            "events": client.events(t0, t1).body,
                            "meta": [client.meta(k).body for k in keys[:10]],
                            "matrix": {
                                name: col.tolist()
                                for name, col in client.matrix(
                                    keys[:8], t0, t1, 3000
                                ).columns.items()
                            },
                            "raw": client.series(keys[3], t0, t1).columns["values"].tolist(),
                            "points": client.points(substation="NORTH-SS002").body,
                            "current_columns": {
                                name: col.tolist()
                                for name, col in client.current_columns(keys).columns.items()
                            },
                        },
                        sort_keys=True,
                    )
                )
                client.close()
        assert len(answers) == 4
        assert all(a == answers[0] for a in answers)
        assert '"values": [' in answers[0]
        # The columns hold the same values as the light JSON rows.
        body = json.loads(answers[0])
        rows, cols = body["current"]["points"], body["current_columns"]
        assert [r["ikey"] for r in rows] == cols["ikeys"] == keys
        assert [r["value"] for r in rows] == cols["values"]
        assert [r["host"] for r in rows] == cols["host"]

        # Policies: a fixed order always asks its first ring while that one serves.
        fixed = {"qb": rings[1].endpoints(), "qa": rings[0].endpoints()}
        for client, first in (
            (PegasusClient(cfg, policy="ordered"), "qa"),
            (PegasusClient(cfg, endpoints=fixed, policy="ordered"), "qb"),
        ):
            assert {client.current(keys[:3]).ring for _ in range(10)} == {first}
            client.close()
        with PegasusClient(cfg, policy="fastest") as client:
            assert {client.current(keys[:3]).ring for _ in range(30)} <= {"qa", "qb"}

        # Metadata search gathers every partition's points, matching the simulator's.
        sent = SimSource(cfg.sites[0], "ems-a", PRIMARY).metadata()
        with PegasusClient(cfg) as client:
            for kwargs in ({"substation": "north-ss002"}, {"name": "ss003", "data_type": "STATUS"}):
                got = client.points(**kwargs).body["points"]
                want = [
                    m["ikey"]
                    for m in sent
                    if kwargs.get("substation", m["substation"]).upper() == m["substation"]
                    and kwargs.get("name", "").upper() in m["name"]
                    and kwargs.get("data_type", m["data_type"]) == m["data_type"]
                ]
                assert [p["ikey"] for p in got] == sorted(want) and want, kwargs
    finally:
        for ring in rings:
            ring.stop()


def test_a_ring_whose_digests_differ_stays_syncing_and_is_never_chosen(cfg: Config) -> None:
    produce_site(cfg, range(6100, 6120))
    good = start_ring(cfg, "good", servers=1)
    bad: Ring | None = None
    client = PegasusClient(cfg)
    view = RegistryView(cfg)
    try:
        wait_caught_up(good, cfg)
        # One stray entry in ring 'bad's store before it starts: it replays
        # everything else exactly, so only the digest comparison can tell.
        path = Path(cfg.store.data_dir) / "bad" / "s1" / f"{cfg.scan_topic}-0"
        store = open_store(path)
        batch = store.begin()
        batch.put("skips", b"stray", b"x")
        store.commit(batch, 0)
        store.close()
        bad = start_ring(cfg, "bad", servers=1)
        wait_for(lambda: ring_complete(cfg, view, "bad"), 60, "ring bad to catch up")

        keys = _keys(cfg, 20)
        for _ in range(100):
            assert client.current(keys).ring == "good"
        rec = view.ring("bad")
        assert rec is not None and rec["state"] == "SYNCING"
        endpoint = bad.endpoints()[0]
        resp = httpx.get(f"{endpoint}/v1/current", params={"ikeys": str(keys[0])}, timeout=10)
        assert resp.status_code == 503 and resp.json()["error"] == "not_in_sync"
        health = httpx.get(f"{endpoint}/v1/health", timeout=10).json()
        assert health["state"] == "in-sync" and health["ring_in_sync"] is False

        code, out = ring_cli(cfg, "status", "bad", "--json")
        assert code == 0 and json.loads(out)[0]["digests"].startswith("DIFFER from good")
        code, out = ring_cli(cfg, "verify", "good", "bad")
        assert code == 1 and f"DIFFERENT  {cfg.scan_topic}:0" in out
    finally:
        client.close()
        view.close()
        good.stop()
        if bad is not None:
            bad.stop()
