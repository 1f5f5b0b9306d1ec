"""``pegasus bench``: benchmarks against the real broker."""

from __future__ import annotations

import click

from pegasus_kafka.cli.common import PegasusGroup, emit_json, state


@click.group(cls=PegasusGroup)
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Benchmarks (figures are ratios against a baseline measured in the same run)."""
    ctx.call_on_close(_drop_topics)


def _drop_topics() -> None:
    from pegasus_kafka.bench.fleet import drop_bench_topics

    drop_bench_topics()


@bench.command()
@click.option("--quick", is_flag=True, help="Small data set; finishes in a few minutes.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of results.")
@click.pass_context
def ingest(ctx: click.Context, quick: bool, as_json: bool) -> None:
    """Ring-server ingest rate against a bare consumer on the same topic data."""
    from pegasus_kafka.bench.ingest import run_ingest

    _report(run_ingest(state(ctx).cfg, quick), as_json)


@bench.command("ring-add")
@click.option("--quick", is_flag=True, help="Smaller RDS, one server per ring; under 5 minutes.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of results.")
@click.pass_context
def ring_add(ctx: click.Context, quick: bool, as_json: bool) -> None:
    """Add rings by replay and by snapshot, and remove one, while two rings serve."""
    from pegasus_kafka.bench.ring_add import run_ring_add

    _report(run_ring_add(state(ctx).cfg, quick), as_json)


def _report(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        emit_json(result)
    else:
        for key, value in result.items():
            click.echo(f"{key:32} {value}")


@bench.command()
@click.option("--quick", is_flag=True, help="Smaller RDS and shorter windows; under 3 minutes.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of results.")
@click.pass_context
def failover(ctx: click.Context, quick: bool, as_json: bool) -> None:
    """Queries while a server, then a whole ring, stops and the ring restarts."""
    from pegasus_kafka.bench.failover import run_failover

    _report(run_failover(state(ctx).cfg, quick), as_json)


@bench.command("query")
@click.option("--quick", is_flag=True, help="Coarser flatness data; under 3 minutes.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of results.")
@click.pass_context
def query_bench(ctx: click.Context, quick: bool, as_json: bool) -> None:
    """Current values of 10,000 points, a year of one point, flatness, ring throughput."""
    from pegasus_kafka.bench.query import run_query

    _report(run_query(state(ctx).cfg, quick), as_json)


@bench.command("collector")
@click.option("--quick", is_flag=True, help="Fewer scans; under 3 minutes.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of results.")
@click.pass_context
def collector_bench(ctx: click.Context, quick: bool, as_json: bool) -> None:
    """Collector throughput, CPU at 320,000 points per 5 s, outage drain, loss."""
    from pegasus_kafka.bench.collector import run_collector

    _report(run_collector(state(ctx).cfg, quick), as_json)


@bench.command("aas")
@click.option("--quick", is_flag=True, help="Fewer points and scans; under 3 minutes.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of results.")
@click.pass_context
def aas_bench(ctx: click.Context, quick: bool, as_json: bool) -> None:
    """Exception mining rate, latency, and missed/duplicated against the simulator."""
    from pegasus_kafka.bench.aas import run_aas

    _report(run_aas(state(ctx).cfg, quick), as_json)


@bench.command("memory")
@click.option("--quick", is_flag=True, help="250,000 points instead of 1,000,000.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of results.")
@click.pass_context
def memory_bench(ctx: click.Context, quick: bool, as_json: bool) -> None:
    """Peak RSS of one ring server materialising a site of a million points."""
    from pegasus_kafka.bench.memory import run_memory

    _report(run_memory(state(ctx).cfg, quick), as_json)
