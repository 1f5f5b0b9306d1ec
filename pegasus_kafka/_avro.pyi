OP_LONG: int
OP_INT: int
OP_FLOAT: int
OP_DOUBLE: int
OP_BOOLEAN: int
OP_STRING: int
OP_BYTES: int
OP_ENUM: int
OP_NULL: int
OP_FIXED: int
NO_SLOT: int

def scan(program: bytes, nout: int, values: list[bytes | None]) -> tuple[bytes, bytes]: ...
