"""Bootstrapping a partition's store from a peer ring's consistent snapshot.

A server that opens a partition with no store on disk first asks for a
snapshot of it: from another server of its own ring that owns the partition
or keeps a warm standby copy (so a server added to a ring, or one whose disk
was replaced, starts warm), and, while its ring syncs from a peer (``pegasus
ring add NAME --from PEER``), from the PEER server that owns it. A snapshot
is a RocksDB checkpoint of that partition's store, tarred and streamed over
HTTP. The checkpoint carries the store's applied offset and digest (they
are written in the same batch as the data), so the new store resumes exactly
where the peer's was and the server tails the topic from that offset.

The receiver unpacks into a scratch directory, opens the copy, checks that its
applied offset and digest are the ones the peer announced, and only then
renames it into place. A partial download therefore never becomes a store. If
no peer can give a snapshot the server replays from zero instead: slower, but
the result is the same RDS.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from pegasus_kafka.config import Config
from pegasus_kafka.errors import NotInSync, StoreError
from pegasus_kafka.kafka.registry import RegistryView
from pegasus_kafka.ring.base import Materialiser
from pegasus_kafka.ring.health import live_servers, ring_serving
from pegasus_kafka.ring.store import PartitionStore

log = logging.getLogger(__name__)

H_OFFSET = "x-pegasus-applied-offset"
H_DIGEST = "x-pegasus-digest"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Snapshot:
    """A tarred checkpoint of one partition's store, ready to stream."""

    tar: Path
    applied_offset: int
    digest: int

    def discard(self) -> None:
        shutil.rmtree(self.tar.parent, ignore_errors=True)


def make_snapshot(mat: Materialiser, workdir: Path) -> Snapshot:
    """Checkpoint ``mat``'s store and tar it under ``workdir``.

    The partition's lock is held only while RocksDB links the checkpoint's
    files, which is quick; the tar is written without holding up ingest.
    """
    scratch = workdir / f"snapshot-{uuid.uuid4().hex}"
    copy = scratch / "store"
    with mat.lock:
        if mat.store.closed:
            raise NotInSync("the partition moved away from this server")
        offset, digest = mat.store.checkpoint(copy)
    tar_path = scratch / "store.tar"
    try:
        with tarfile.open(tar_path, "w") as tar:
            tar.add(copy, arcname="store")
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(copy, ignore_errors=True)
    return Snapshot(tar_path, offset, digest)


def snapshot_sources(
    cfg: Config,
    registry: RegistryView,
    ring: str,
    me: str,
    peer: str | None,
    topic: str,
    part: int,
) -> list[str]:
    """Servers that can give a snapshot of the partition, best first: the other
    servers of this server's own ring that own it or keep a warm standby copy,
    then the owners in the peer ring a syncing ring copies from."""
    name = f"{topic}:{part}"
    own = [s for s in live_servers(cfg, registry, ring) if s.server != me and s.endpoint]
    out = [s.endpoint for s in own if name in s.owned]
    out += [s.endpoint for s in own if name in s.standby]
    if peer is not None and ring_serving(cfg, registry, peer):
        out += [
            s.endpoint for s in live_servers(cfg, registry, peer) if name in s.owned and s.endpoint
        ]
    return out


def download(
    http: httpx.Client,
    endpoint: str,
    topic: str,
    partition: int,
    target: Path,
    column_families: tuple[str, ...],
) -> tuple[int, int]:
    """Fetch one partition's snapshot from ``endpoint`` into ``target``.

    Returns the store's (applied offset, digest). ``target`` must not exist;
    it appears only once the copy has been checked.
    """
    if target.exists():
        raise StoreError(f"will not overwrite the existing store {target}")
    scratch = target.parent / f".incoming-{target.name}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    try:
        tar_path = scratch / "store.tar"
        params: dict[str, str | int] = {"topic": topic, "partition": partition}
        with http.stream("GET", f"{endpoint}/v1/snapshot", params=params) as resp:
            if resp.status_code != 200:
                resp.read()
                raise NotInSync(f"{endpoint} gave no snapshot: HTTP {resp.status_code} {resp.text}")
            offset = int(resp.headers[H_OFFSET])
            digest = int(resp.headers[H_DIGEST], 16)
            with tar_path.open("wb") as out:
                for chunk in resp.iter_bytes(CHUNK):
                    out.write(chunk)
        with tarfile.open(tar_path, "r") as tar:
            tar.extractall(scratch, filter="data")
        copy = PartitionStore(scratch / "store", column_families, format_version=None)
        got = (copy.applied_offset, copy.digest)
        copy.close()
        if got != (offset, digest):
            raise StoreError(
                f"snapshot from {endpoint} holds offset {got[0]} digest {got[1]:016x}, "
                f"announced {offset} {digest:016x}"
            )
        (scratch / "store").rename(target)
        return offset, digest
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def bootstrap(
    sources: list[str],
    topic: str,
    partition: int,
    target: Path,
    column_families: tuple[str, ...],
) -> bool:
    """Fill ``target`` from the first source that gives a snapshot; False if none did."""
    if not sources:
        # No client without a source: building one (its TLS context) costs tens
        # of milliseconds, paid per partition a new ring opens.
        return False
    started = time.monotonic()
    with httpx.Client(timeout=httpx.Timeout(30.0, read=300.0)) as http:
        for endpoint in sources:
            try:
                offset, digest = download(http, endpoint, topic, partition, target, column_families)
            except (httpx.HTTPError, NotInSync, StoreError, OSError, KeyError, ValueError) as exc:
                log.warning(
                    "snapshot failed endpoint=%s topic=%s partition=%d error=%s",
                    endpoint,
                    topic,
                    partition,
                    exc,
                )
                continue
            log.info(
                "snapshot bootstrap endpoint=%s topic=%s partition=%d offset=%d digest=%016x "
                "seconds=%.2f",
                endpoint,
                topic,
                partition,
                offset,
                digest,
                time.monotonic() - started,
            )
            return True
    log.warning("no snapshot given, replaying from zero topic=%s partition=%d", topic, partition)
    return False
