"""Property-based fuzzing of every operation in the published OpenAPI spec.

Parameters are drawn from each parameter's schema and from hostile values
(wrong types, huge and negative numbers, odd text), and any of them may be
left out. Whatever arrives, an in-sync ring never answers with a server
error, and every 4xx carries the JSON error body.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pegasus_kafka.api.openapi import SPEC
from pegasus_kafka.collector.sources import SimSource
from pegasus_kafka.config import Config
from pegasus_kafka.schema import PRIMARY
from tests.integration.harness import produce_site, start_ring, wait_caught_up

HOSTILE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=40),
    st.sampled_from(["", " ", "-1", "0", "1e9", "NaN", "null", "1,2,,3", "9" * 30, "%00"]),
)


def _values(schema: dict[str, Any], known: list[str]) -> st.SearchStrategy[str]:
    if schema.get("type") == "integer":
        lo, hi = schema.get("minimum", -(2**63)), schema.get("maximum", 2**63 - 1)
        numbers = [int(k) for k in known if k.isdigit()]
        typed = st.one_of(st.integers(lo, hi), st.sampled_from(numbers)).map(str)
    elif "enum" in schema:
        typed = st.sampled_from([str(v) for v in schema["enum"]])
    else:
        typed = st.one_of(st.sampled_from(known), st.lists(st.sampled_from(known)).map(",".join))
    return st.one_of(typed, typed, HOSTILE)


Request = tuple[str, dict[str, str | None], dict[str, str]]


def _requests(known: list[str]) -> st.SearchStrategy[Request]:
    options = []
    for path, item in sorted(SPEC["paths"].items()):
        params = item["get"].get("parameters", [])
        query = {
            p["name"]: st.one_of(st.none(), _values(p["schema"], known))
            for p in params
            if p["in"] == "query"
        }
        in_path = {p["name"]: _values(p["schema"], known) for p in params if p["in"] == "path"}
        options.append(
            st.tuples(st.just(path), st.fixed_dictionaries(query), st.fixed_dictionaries(in_path))
        )
    return st.one_of(options)


def test_no_input_gives_a_server_error(cfg: Config) -> None:
    produce_site(cfg, range(7000, 7010))
    ring = start_ring(cfg, "fuzz", servers=2)
    try:
        wait_caught_up(ring, cfg)
        endpoint = ring.endpoints()[0]
        field = SimSource(cfg.sites[0], "ems-a", PRIMARY).field
        known = [str(int(k)) for k in field.ikeys[:5]]
        known += [
            cfg.scan_topic,
            cfg.events_topic,
            "north/ems-a",
            "north/ems-b",
            "60000",
            str(7000 * 1000),
        ]
        http = httpx.Client(base_url=endpoint, timeout=30)
        seen: dict[int, int] = {}

        @settings(
            max_examples=400,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(_requests(known))
        def probe(request: Request) -> None:
            path, query, in_path = request
            for name, value in in_path.items():
                path = path.replace("{" + name + "}", quote(value, safe="") or "x")
            params = {k: v for k, v in query.items() if v is not None}
            resp = http.get(path, params=params)
            seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
            assert resp.status_code < 500, (path, params, resp.text[:300])
            if resp.status_code >= 400:
                assert set(resp.json()) == {"error", "detail"}, resp.text[:300]

        probe()
        http.close()
        assert seen.get(200, 0) > 0 and sum(v for k, v in seen.items() if k >= 400) > 0, seen
    finally:
        ring.stop()
