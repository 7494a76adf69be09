"""Little-endian primitives with room to grow: LEB128 varints, zigzag for signed values, and a
reader that checks every length against the bytes it actually has."""

from __future__ import annotations

import struct

from ddcodec.errors import DDCodecError

MAX_VARINT_BYTES = 10


class FormatError(DDCodecError):
    """A .ddz file that is truncated, corrupt or not a .ddz file at all."""


class Writer:
    def __init__(self):
        self.parts: list[bytes] = []

    def u8(self, v: int) -> None:
        self.parts.append(struct.pack("<B", v))

    def u16(self, v: int) -> None:
        self.parts.append(struct.pack("<H", v))

    def u32(self, v: int) -> None:
        self.parts.append(struct.pack("<I", v))

    def f32(self, v: float) -> None:
        self.parts.append(struct.pack("<f", v))

    def varint(self, v: int) -> None:
        if v < 0:
            raise ValueError("varint must be non-negative")
        out = bytearray()
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
        self.parts.append(bytes(out))

    def svarint(self, v: int) -> None:
        self.varint((v << 1) if v >= 0 else ((-v << 1) - 1))

    def text(self, s: str) -> None:
        data = s.encode("utf-8")
        self.varint(len(data))
        self.parts.append(data)

    def raw(self, data: bytes) -> None:
        self.parts.append(bytes(data))

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class Reader:
    def __init__(self, data: bytes, what: str = "file"):
        self.data, self.pos, self.what = memoryview(data), 0, what

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            raise FormatError(f"truncated or corrupt {self.what}: needs {n} more bytes at offset "
                              f"{self.pos}, has {self.remaining}")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def f32(self) -> float:
        return struct.unpack("<f", self.take(4))[0]

    def varint(self, limit: int = 2 ** 63) -> int:
        value, shift = 0, 0
        for _ in range(MAX_VARINT_BYTES):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if value > limit:
                    raise FormatError(f"corrupt {self.what}: value {value} exceeds {limit} at "
                                      f"offset {self.pos}")
                return value
            shift += 7
        raise FormatError(f"corrupt {self.what}: overlong varint at offset {self.pos}")

    def svarint(self, limit: int = 2 ** 62) -> int:
        z = self.varint(2 * limit + 1)
        return (z >> 1) if not z & 1 else -((z + 1) >> 1)

    def text(self, limit: int = 4096) -> str:
        data = self.take(self.varint(limit))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"corrupt {self.what}: text is not UTF-8") from exc
