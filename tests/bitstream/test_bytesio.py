"""The byte reader and writer: round trips, limits, truncation."""

import pytest

from ddcodec.coding.bytesio import FormatError, Reader, Writer


def test_varints_round_trip_including_edges():
    w = Writer()
    values = [0, 1, 127, 128, 300, 2 ** 32, 2 ** 63 - 1]
    signed = [0, -1, 1, -64, 64, -(2 ** 40)]
    for v in values:
        w.varint(v)
    for v in signed:
        w.svarint(v)
    w.text("naïve")
    w.f32(1.5)
    r = Reader(w.getvalue())
    assert [r.varint() for _ in values] == values
    assert [r.svarint() for _ in signed] == signed
    assert r.text() == "naïve" and r.f32() == 1.5 and r.remaining == 0


def test_reader_refuses_truncation_overlong_varints_limits_and_bad_text():
    with pytest.raises(FormatError, match="needs 4 more bytes"):
        Reader(b"\x01\x02").u32()
    with pytest.raises(FormatError, match="overlong varint"):
        Reader(b"\xff" * 11).varint()
    w = Writer()
    w.varint(1000)
    with pytest.raises(FormatError, match="exceeds 999"):
        Reader(w.getvalue()).varint(999)
    with pytest.raises(FormatError, match="not UTF-8"):
        Reader(b"\x02\xff\xfe").text()
    with pytest.raises(FormatError, match="needs 100 more"):
        Reader(b"\x64abc").text()
    with pytest.raises(ValueError):
        Writer().varint(-1)
