def apply_mask(data: bytes | bytearray | memoryview, key: bytes, offset: int = 0, /) -> bytes: ...
def encode_frame(
    first_byte: int, payload: bytes | bytearray | memoryview, mask_key: bytes | None, /
) -> bytes: ...
def read_frame(
    buf: bytes | bytearray | memoryview, pos: int, is_client: bool, limit: int, /
) -> tuple[str | bytes, int] | None: ...
def new_payload(n: int, /) -> bytes: ...
def fill_payload(
    dest: bytes,
    offset: int,
    src: bytes | bytearray | memoryview,
    start: int,
    n: int,
    key: bytes | None,
    key_offset: int,
    /,
) -> None: ...
