"""Screenshots of windows on a virtual X screen, as PNG files a person can open.

``xwd`` (x11-apps) dumps a window; this turns its dump into a PNG with
zlib only, and counts the dark pixels, which is how a test tells a window
with text in it from a blank one.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / ".build" / "screenshots"


def shot_path(name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / name


def xwd_window(window_id: str, display: str) -> bytes:
    """The dump of one X window (an id such as ``0x400007``)."""
    return subprocess.run(
        ["xwd", "-silent", "-display", display, "-id", window_id],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout


def xwd_to_rgb(dump: bytes) -> tuple[int, int, bytes]:
    """Width, height and packed RGB rows of a 24/32-bit TrueColor dump."""
    fields = struct.unpack(">25I", dump[:100])
    header_size, version, fmt = fields[0], fields[1], fields[2]
    width, height, byte_order = fields[4], fields[5], fields[7]
    bpp, bytes_per_line = fields[11], fields[12]
    masks = fields[14:17]
    ncolors = fields[19]
    if version != 7 or fmt != 2 or bpp not in (24, 32):
        raise ValueError(f"unsupported xwd dump (version {version}, format {fmt}, {bpp} bpp)")
    data = dump[header_size + 12 * ncolors :]
    step = bpp // 8
    order = "<" if byte_order == 0 else ">"
    shifts = [(m & -m).bit_length() - 1 for m in masks]
    rgb = bytearray()
    for y in range(height):
        row = data[y * bytes_per_line : y * bytes_per_line + width * step]
        for x in range(0, width * step, step):
            chunk = row[x : x + step]
            pixel = int.from_bytes(chunk, "little" if order == "<" else "big")
            for mask, shift in zip(masks, shifts, strict=True):
                rgb.append((pixel & mask) >> shift)
    return width, height, bytes(rgb)


def write_png(path: Path, width: int, height: int, rgb: bytes) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    stride = width * 3
    raw = b"".join(b"\0" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def dark_pixels(rgb: bytes) -> int:
    """Pixels darker than mid-grey: text on a light window."""
    return sum(1 for i in range(0, len(rgb), 3) if rgb[i] + rgb[i + 1] + rgb[i + 2] < 300)
