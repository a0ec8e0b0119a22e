"""The C fast paths (wsloop._speedups) against the Python reference.

``read_frame`` may only ever agree with the Python parser or decline, and
``encode_frame`` must produce the same bytes; these tests feed both the same
input, valid or not, and compare everything observable.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wsloop
import wsloop.protocol as protocol
from wshelpers import chunked, frame, open_pair
from wsloop.protocol import frames

pytestmark = pytest.mark.skipif(not frames.SPEEDUPS, reason="the C accelerator is not built")


def python_encode(*args: object, **kwargs: object) -> bytes:
    with mock.patch.object(frames, "build_frame", frames._build_frame_python):
        return frames.encode_frame(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(
    ("opcode", "fin", "rsv1"), [(1, True, False), (2, False, True), (9, True, False)]
)
def test_encode_frame_matches_python(
    size: int, masked: bool, opcode: int, fin: bool, rsv1: bool
) -> None:
    payload = os.urandom(size)
    key = os.urandom(4) if masked else None
    got = frames.encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask_key=key)
    assert got == python_encode(opcode, payload, fin=fin, rsv1=rsv1, mask_key=key)
    assert frames.encode_frame(opcode, bytearray(payload), mask_key=key) == python_encode(
        opcode, payload, mask_key=key
    )


def test_read_frame_takes_the_common_cases() -> None:
    read = frames.read_frame
    assert read is not None
    key = b"\x01\x02\x03\x04"
    assert read(bytearray(frame(2, b"abc")), 0, 5, True, -1) == (b"abc", 5)
    data = bytearray(b"xx" + frame(1, "é".encode(), mask=True, key=key))
    assert read(data, 2, 10, False, 10) == ("é", 10)
    # Only buf[pos:end] counts: a reused read buffer holds stale bytes after.
    stale = bytearray(frame(2, b"abc") + frame(2, b"old"))
    assert read(stale, 0, 5, True, -1) == (b"abc", 5)
    assert read(stale, 5, 9, True, -1) is None  # the frame at 5 is cut at end
    with pytest.raises(ValueError, match="past the end"):
        read(stale, 0, 11, True, -1)
    big = os.urandom(70000)
    assert read(bytearray(frame(2, big)), 0, 70010, True, -1) == (big, 70010)


@pytest.mark.parametrize(
    ("data", "is_client", "limit"),
    [
        (frame(2, b"abc")[:-1], True, -1),  # incomplete payload
        (frame(2, b"a" * 200)[:3], True, -1),  # incomplete length
        (frame(2, b"abc", fin=False), True, -1),  # a fragment
        (frame(0, b"abc"), True, -1),  # a continuation
        (frame(9, b"abc"), True, -1),  # a control frame
        (frame(2, b"abc", rsv=4), True, -1),  # compressed
        (frame(2, b"abc", rsv=1), True, -1),  # RSV3
        (frame(2, b"abc", mask=True), True, -1),  # masked frame to a client
        (frame(2, b"abc"), False, -1),  # unmasked frame to a server
        (frame(1, b"\xff"), True, -1),  # invalid UTF-8
        (frame(2, b"abc", length_bytes=2), True, -1),  # non-minimal length
        (frame(2, b"abcd"), True, 3),  # over the limit
        (frame(3, b"abc"), True, -1),  # reserved opcode
    ],
)
def test_read_frame_declines_what_it_does_not_own(data: bytes, is_client: bool, limit: int) -> None:
    assert frames.read_frame is not None
    assert frames.read_frame(bytearray(data), 0, len(data), is_client, limit) is None


def raw_frames(as_client: bool) -> st.SearchStrategy[list[bytes]]:
    """Frames near the fast path's edges: mostly well formed for the role,
    with every field sometimes wrong."""
    return st.lists(
        st.builds(
            frame,
            st.sampled_from([1, 1, 2, 2, 0, 3, 8, 9, 10]),
            st.one_of(
                st.binary(max_size=300),
                st.text(max_size=100).map(str.encode),
                st.sampled_from([b"\xff", b"\xc3", b"\x03\xe8ok"]),
            ),
            fin=st.sampled_from([True, True, True, False]),
            rsv=st.sampled_from([0, 0, 0, 0, 0, 1, 2, 4]),
            mask=st.sampled_from([not as_client] * 5 + [as_client]),
            length_bytes=st.sampled_from([None, None, None, None, 0, 2, 8]),
        ),
        min_size=1,
        max_size=6,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The sans-I/O core's Python sources, imported as a package of their
    own (``wsloop_ref.protocol``) that has no accelerator to choose: the
    reference the installed core (compiled, with the C fast paths) must
    agree with. The core imports nothing above it (tests/test_layout.py),
    so its modules alone make a working package."""
    root = tmp_path_factory.mktemp("reference")
    package = root / "wsloop_ref" / "protocol"
    package.mkdir(parents=True)
    (root / "wsloop_ref" / "__init__.py").write_text("")
    # (wsloop's own __init__ is never compiled: its __file__ is where the
    # package is; a compiled module's is not reliable.)
    for source in (Path(wsloop.__file__).parent / "protocol").glob("*.py"):
        shutil.copy(source, package / source.name)
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("wsloop_ref.protocol")
    finally:
        sys.path.remove(str(root))
    assert not module.frames.SPEEDUPS and module.frames.read_frame is None
    return module


def run(
    protocol: Any,
    data: bytes,
    cuts: list[int],
    as_client: bool,
    limit: int | None,
    deflate: bool,
) -> list[str]:
    """Everything observable of a connection fed ``data``, as reprs (an
    exception equals only itself)."""
    options = protocol.DeflateOptions() if deflate else None
    client, server = open_pair(
        client_deflate=options, server_deflate=options, max_message_size=limit, protocol=protocol
    )
    conn = client if as_client else server
    trace: list[Any] = []
    for piece in chunked(data, cuts):
        conn.receive_data(piece)
        trace.extend(conn.events())
        trace.append(conn.data_to_send())
    conn.receive_eof()
    trace.extend(conn.events())
    trace.append(conn.closed)
    return [repr(item) for item in trace]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.booleans().flatmap(lambda c: st.tuples(st.just(c), raw_frames(c))),
    st.lists(st.integers(min_value=0), max_size=8),
    st.sampled_from([None, 1, 3, 100]),
    st.booleans(),
)
def test_the_fast_path_never_changes_what_a_connection_does(
    reference: Any,
    role_frames: tuple[bool, list[bytes]],
    cuts: list[int],
    limit: int | None,
    deflate: bool,
) -> None:
    as_client, frames_ = role_frames
    data = b"".join(frames_)
    # This end's own frames (pongs, close echoes) carry random mask keys:
    # fix them so both runs can be compared byte for byte.
    with mock.patch.object(os, "urandom", lambda n: b"\x07" * n):
        fast = run(protocol, data, cuts, as_client, limit, deflate)
        slow = run(reference, data, cuts, as_client, limit, deflate)
    assert fast == slow


@st.composite
def fragmented(draw: st.DrawFn, as_client: bool) -> list[bytes]:
    """One message in many fragments (past the assembler's MAX_PIECES, so
    both of its ways of holding pieces run), with payloads across the C
    mask's 32-byte steps, sometimes a ping between fragments and sometimes
    invalid UTF-8 in a text message."""
    opcode = draw(st.sampled_from([1, 2]))
    sizes = draw(st.lists(st.integers(0, 70), min_size=1, max_size=150))
    text = "aé€😀" * 3000
    if opcode == 1:
        payload = text.encode()[: sum(sizes)]
        if draw(st.integers(0, 9)) == 0:
            payload = payload[:-1] + b"\xff"
    else:
        payload = draw(st.binary(min_size=sum(sizes), max_size=sum(sizes)))
    mask = not as_client
    out = []
    at = 0
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        out.append(frame(opcode if i == 0 else 0, payload[at : at + n], fin=last, mask=mask))
        at += n
        if not last and draw(st.integers(0, 30)) == 0:
            out.append(frame(9, b"ping", mask=mask))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.booleans().flatmap(lambda c: st.tuples(st.just(c), fragmented(c))),
    st.lists(st.integers(min_value=0), max_size=8),
    st.sampled_from([None, 100, 5000]),
)
def test_fragmented_messages_are_the_same_with_and_without_the_accelerator(
    reference: Any,
    role_frames: tuple[bool, list[bytes]],
    cuts: list[int],
    limit: int | None,
) -> None:
    as_client, frames_ = role_frames
    data = b"".join(frames_)
    with mock.patch.object(os, "urandom", lambda n: b"\x07" * n):
        fast = run(protocol, data, cuts, as_client, limit, False)
        slow = run(reference, data, cuts, as_client, limit, False)
    assert fast == slow
