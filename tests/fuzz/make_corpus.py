"""Write the seed corpus, tests/fuzz/corpus/TARGET/NAME: a few valid and
almost-valid inputs per target, from which the fuzzer mutates. Rerun after
changing the input format of fuzz_targets.py (it replaces the seeds it
names and leaves inputs the fuzzer added alone):

    python tests/fuzz/make_corpus.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fuzz_targets import REQUEST, TARGETS  # noqa: E402

FIN, RSV1 = 0x80, 0x40
FRAME, HUGE, WRONG_MASK = 0x10, 0x20, 0x30


def frame(h: int, payload: bytes) -> bytes:
    if len(payload) >= 255:
        return bytes([h | FRAME, 255]) + len(payload).to_bytes(2, "big") + payload
    return bytes([h | FRAME, len(payload)]) + payload


def raw(data: bytes) -> bytes:
    return bytes([0, len(data)]) + data


FRAMES = {
    "text": b"\x07" + frame(FIN | 1, b"hello"),
    "binary": b"\xff" + frame(FIN | 2, bytes(range(200))),
    "fragmented": b"\x02"
    + frame(1, b"hel")
    + frame(0, b"lo ")
    + frame(FIN, "\u00e9t\u00e9".encode()),
    "control_between": b"\x10" + frame(2, b"ab") + frame(FIN | 9, b"ping") + frame(FIN, b"cd"),
    "ping_pong": b"\x00" + frame(FIN | 9, b"p") + frame(FIN | 10, b"q"),
    "close": b"\x03" + frame(FIN | 8, b"\x03\xe8bye"),
    "close_bad_code": b"\x03" + frame(FIN | 8, b"\x03\xedx"),
    "compressed": b"\x20" + frame(FIN | RSV1 | 1, b"compress me " * 20),
    "compressed_fragments": b"\x05" + frame(RSV1 | 2, b"a" * 100) + frame(FIN, b"b" * 50),
    "bad_utf8": b"\x01" + frame(1, b"ok\xe2\x82") + frame(FIN, b"\x28"),
    "huge_length": b"\x0f" + bytes([HUGE | FIN | 2]) + (1 << 40).to_bytes(8, "big") + b"\x04abcd",
    "wrong_mask": b"\x04" + frame(WRONG_MASK | FIN | 1, b"x"),
    "garbage": b"\x00" + raw(b"\x8f\x80\x00\x00\x00\x00\xff"),
    "over_the_limit": b"\x7f"
    + frame(2, b"z" * 1000)
    + bytes([HUGE | FIN])
    + (70000).to_bytes(8, "big")
    + b"\x02zz",
    "fragmented_ping": b"\x00" + frame(9, b"p") + frame(FIN, b"q"),
}

SERVER_HANDSHAKE = {
    "plain": b"\xff" + (REQUEST + "\r\n").encode(),
    "deflate": b"\x10"
    + (
        REQUEST + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    ).encode()
    + b"\r\n",
    "subprotocol_origin": b"\x30"
    + (REQUEST + "Sec-WebSocket-Protocol: chat, v2\r\nOrigin: https://a.example\r\n\r\n").encode(),
    "then_frame": b"\xff" + (REQUEST + "\r\n").encode() + b"\x81\x82abcd\x09\x0a",
    "bad_version": b"\xff" + (REQUEST.replace("Version: 13", "Version: 8") + "\r\n").encode(),
    "bad_target": b"\xff" + (REQUEST.replace("/chat", "/a%zz") + "\r\n").encode(),
    "post": b"\xff" + (REQUEST.replace("GET", "POST") + "\r\n").encode(),
}

OK = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: ACCEPTKEY\r\n"
)
CLIENT_HANDSHAKE = {
    "ok": b"\xff" + (OK + "\r\n").encode(),
    "ok_deflate": b"\x20"
    + (OK + "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n").encode()
    + b"\r\n",
    "ok_subprotocol_frames": b"\xff"
    + (OK + "Sec-WebSocket-Protocol: chat\r\n\r\n").encode()
    + b"\x81\x05hello\x89\x00\x88\x02\x03\xe8",
    "redirect": b"\xff"
    + b"HTTP/1.1 302 Found\r\nLocation: ws://other.example/x\r\n"
    + b"Content-Length: 0\r\n\r\n",
    "refused_body": b"\x08" + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!",
    "wrong_accept": b"\xff" + (OK.replace("ACCEPTKEY", "AAAA") + "\r\n").encode(),
}

HTTP_HEAD = {
    "request": b"\xff" + (REQUEST + "\r\n").encode(),
    "response": b"\xff" + (OK + "\r\n").encode(),
    "bytewise": b"\x00" + b"GET / HTTP/1.1\r\nHost: x\r\nX:  spaced  \r\n\r\nrest",
    "bare_lf": b"\xff" + b"GET / HTTP/1.1\nHost: x\n\n",
    "folded": b"\xff" + b"GET / HTTP/1.1\r\nHost: x\r\n continued\r\n\r\n",
    "extensions": b"\xff"
    + b'GET / HTTP/1.1\r\nSec-WebSocket-Extensions: permessage-deflate; a="b, c", x; y=1\r\n\r\n',
}

SEEDS = {
    "server_frames": FRAMES,
    "server_frames_deflate": FRAMES,
    "client_frames": FRAMES,
    "client_frames_deflate": FRAMES,
    "server_handshake": SERVER_HANDSHAKE,
    "client_handshake": CLIENT_HANDSHAKE,
    "http_head": HTTP_HEAD,
}


def main() -> None:
    assert set(SEEDS) == set(TARGETS)
    for target, seeds in SEEDS.items():
        folder = HERE / "corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
