from collections.abc import Sequence

from numpy import ndarray as Buffer

MAGIC: bytes
HEADER_SIZE: int
MODE_FLOAT: int
MODE_DECIMAL: int
F_RAW: int
SUMMARY_HEADER_SIZE: int
SUMMARY_ROW_SIZE: int
HOUR_MS: int
ROLE_PRIMARY: int
NO_TIME: int
SEGMENT_MAGIC: bytes
SEGMENT_VERSION: int
SEGMENT_HEADER_SIZE: int

def encode_runs(
    times: Buffer,
    values: Buffer,
    tails: Buffer,
    starts: Buffer,
    width: int,
    ntails: int,
    raw_below: int,
    version: int,
    level: int,
    min_summary: int,
) -> tuple[list[bytes], list[bytes | None]]: ...
def merge_segments(
    sources: Sequence[tuple[Buffer, ...]],
    piece: Buffer,
    width: int,
    ntails: int,
    raw_below: int,
    version: int,
    level: int,
    min_summary: int,
) -> tuple[list[bytes], list[bytes | None]]: ...
def seal_segments(
    frames: Sequence[tuple[Buffer, Buffer, Buffer, Buffer, int, int]],
    width: int,
    ntails: int,
    runs_per_segment: int,
) -> list[tuple[int, bytes]]: ...
def sum_of_hashes(
    seed: int,
    ikeys: Buffer,
    times: Buffer,
    words: Buffer,
    width: int,
    quality: Buffer,
    role: Buffer,
    changes: Buffer,
) -> int: ...
