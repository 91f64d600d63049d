"""Helpers shared by the pixel tests (imported as a plain module: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import struct
import zlib


def png_header_only(width: int, height: int, *, grayscale: bool = False) -> bytes:
    """A syntactically valid PNG whose IHDR claims ``width x height`` but whose pixel data is a few bytes:
    a decompression-bomb stand-in that costs nothing to build."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    color_type = 0 if grayscale else 2
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )
