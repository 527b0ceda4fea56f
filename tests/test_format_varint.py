"""git's offset varint: edge values, overflow, truncation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioreftable import FormatError
from aioreftable.lowlevel import get_varint, put_varint

CASES = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8000"),
    (129, "8001"),
    (200, "8048"),
    (255, "807f"),
    (256, "8100"),
    (4096, "9f00"),
    (16383, "fe7f"),
    (16511, "ff7f"),
    (16512, "808000"),
    (2113663, "ffff7f"),
    (2113664, "80808000"),
    (2**63, "fefefefefefefeff00"),
    (2**64 - 1, "80fefefefefefefefe7f"),
]


@pytest.mark.parametrize(("value", "hexbytes"), CASES)
def test_known_encodings(value: int, hexbytes: str) -> None:
    assert put_varint(value).hex() == hexbytes
    data = bytes.fromhex(hexbytes)
    assert get_varint(data, 0, len(data)) == (value, len(data))


def test_decode_stops_at_its_end_and_reads_at_offset() -> None:
    data = b"\xaa" + put_varint(16512) + b"\x05"
    assert get_varint(data, 1, len(data)) == (16512, 4)


@pytest.mark.parametrize(
    "hexbytes",
    [
        "ffffffffffffffffff00",  # git's varint_overflow unit test
        "80fefefefefefefeff00",  # 2**64: one past the maximum
        "ffffffffffffffffffffff7f",
    ],
)
def test_overflow_is_a_format_error(hexbytes: str) -> None:
    data = bytes.fromhex(hexbytes)
    with pytest.raises(FormatError, match="overflow"):
        get_varint(data, 0, len(data))


@pytest.mark.parametrize("hexbytes", ["", "80", "ff80", "808080"])
def test_truncated_varint_is_a_format_error(hexbytes: str) -> None:
    data = bytes.fromhex(hexbytes)
    with pytest.raises(FormatError):
        get_varint(data, 0, len(data))


def test_encoder_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        put_varint(-1)
    with pytest.raises(ValueError):
        put_varint(2**64)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_roundtrip(value: int) -> None:
    enc = put_varint(value)
    assert len(enc) <= 10
    assert get_varint(enc + b"junk", 0, len(enc) + 4) == (value, len(enc))


@given(st.integers(min_value=0, max_value=2**64 - 2))
def test_encoding_preserves_order_of_lengths(value: int) -> None:
    # offset varints are dense: every byte string of a given length decodes to one range
    assert len(put_varint(value)) <= len(put_varint(value + 1))
