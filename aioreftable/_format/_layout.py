"""The reftable file layout shared by reader, writer and checker (LevelDB's ``format.h``)."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "BLOCK_TYPES",
    "BLOCK_TYPE_INDEX",
    "BLOCK_TYPE_LOG",
    "BLOCK_TYPE_OBJ",
    "BLOCK_TYPE_REF",
    "FOOTER_FIELDS",
    "FORMAT_ID_SHA1",
    "FORMAT_ID_SHA256",
    "HASH_SIZES",
    "MAGIC",
    "MAX_BLOCK_SIZE",
    "MAX_RESTARTS",
    "MAX_RESTART_INTERVAL",
    "VERSIONS",
    "HashName",
    "footer_size",
    "header_size",
]

MAGIC = b"REFT"
VERSIONS = (1, 2)  # version 1 is SHA-1 only; version 2 adds the hash's format id to the header

HashName = Literal["sha1", "sha256"]
HASH_SIZES: dict[str, int] = {"sha1": 20, "sha256": 32}
FORMAT_ID_SHA1 = 0x73686131  # "sha1"
FORMAT_ID_SHA256 = 0x73323536  # "s256"

MAX_BLOCK_SIZE = (1 << 24) - 1  # the header stores the block size in 3 bytes
MAX_RESTARTS = 65535  # a block's restart count is a 16-bit field
MAX_RESTART_INTERVAL = 0xFFFF

BLOCK_TYPE_REF = 0x72  # 'r'
BLOCK_TYPE_LOG = 0x67  # 'g'
BLOCK_TYPE_OBJ = 0x6F  # 'o'
BLOCK_TYPE_INDEX = 0x69  # 'i'
BLOCK_TYPES = frozenset((BLOCK_TYPE_REF, BLOCK_TYPE_LOG, BLOCK_TYPE_OBJ, BLOCK_TYPE_INDEX))

# The footer repeats the header, then holds these five positions (8 bytes each), then a CRC-32.
FOOTER_FIELDS = ("ref index", "obj section", "obj index", "log section", "log index")


def header_size(version: int) -> int:
    """Bytes of the file header: magic, version, block size, update-index limits[, hash id]."""
    return 24 if version == 1 else 28


def footer_size(version: int) -> int:
    """Bytes of the footer: the header again, five positions and a CRC-32."""
    return header_size(version) + 8 * len(FOOTER_FIELDS) + 4
