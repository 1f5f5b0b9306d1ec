from numpy import ndarray as Buffer

MAGIC: bytes
HEADER_SIZE: int
MODE_FLOAT: int
MODE_DECIMAL: int
F_RAW: int

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
) -> list[bytes]: ...
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
