"""Ring servers and a paced site feed as child processes, for benchmarks.

Each runs in its own interpreter (``spawn``), as in production, so the
benchmark's own client and the system under test do not share a GIL.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from typing import Any

from pegasus_kafka.config import Config

_CTX = multiprocessing.get_context("spawn")


def _serve(cfg: Config, ring: str, server_id: str, nice: int, log_level: int) -> None:
    from pegasus_kafka.api.app import HttpServer, build_app
    from pegasus_kafka.api.queries import Queries
    from pegasus_kafka.cli.common import setup_logging
    from pegasus_kafka.ring.server import RingServer

    setup_logging(log_level)
    if nice:
        os.nice(nice)
    srv = RingServer(cfg, ring, server_id)
    queries = Queries(srv)
    http = HttpServer(build_app(queries), "127.0.0.1", 0)
    srv.endpoint = http.endpoint
    http.start()
    signal.signal(signal.SIGTERM, lambda *_: srv.stop())
    try:
        srv.run()
    finally:
        http.stop()
        queries.close()


def start_server(cfg: Config, ring: str, server_id: str, nice: int = 0) -> Any:
    verbose = 0 if logging.getLogger().level >= logging.WARNING else 1
    proc = _CTX.Process(target=_serve, args=(cfg, ring, server_id, nice, verbose), daemon=True)
    proc.start()
    return proc


def _feed(cfg: Config, first_scan: int) -> None:
    from pegasus_kafka.collector.collector import Collector
    from pegasus_kafka.collector.sources import SimSource
    from pegasus_kafka.schema import BACKUP, PRIMARY

    site = cfg.sites[0]
    threads = []
    for host, role in ((site.hosts[0].name, PRIMARY), (site.hosts[1].name, BACKUP)):
        col = Collector(cfg, SimSource(site, host, role))
        thread = threading.Thread(
            target=col.run, kwargs={"start": first_scan, "count": 10**9, "pace": True}
        )
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()


def start_feed(cfg: Config, first_scan: int) -> Any:
    """Both hosts' scans from ``first_scan`` on, at the site's scan period."""
    proc = _CTX.Process(target=_feed, args=(cfg, first_scan), daemon=True)
    proc.start()
    return proc


def stop(procs: list[Any], timeout: float = 30.0) -> None:
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
