"""The reftable file layout shared by reader, writer and checker (LevelDB's ``format.h``)."""

from __future__ import annotations

from dataclasses import dataclass
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
    "HASH_ALGORITHMS",
    "HASH_SIZES",
    "SHA1",
    "SHA256",
    "MAGIC",
    "MAX_BLOCK_SIZE",
    "MAX_RESTARTS",
    "MAX_RESTART_INTERVAL",
    "VERSIONS",
    "HashAlgorithm",
    "HashName",
    "footer_size",
    "header_size",
]

MAGIC = b"REFT"
VERSIONS = (1, 2)  # version 1 is SHA-1 only; version 2 adds the hash's format id to the header

HashName = Literal["sha1", "sha256"]
FORMAT_ID_SHA1 = 0x73686131  # "sha1"
FORMAT_ID_SHA256 = 0x73323536  # "s256"


@dataclass(frozen=True, slots=True)
class HashAlgorithm:
    """An object-id hash as the format sees it: every size, the null id and the header's ids."""

    name: HashName
    size: int  # bytes of a raw object id
    format_id: int  # the 4-byte hash id of a version 2 header
    table_version: int  # the version git writes for this hash (1 cannot name a hash: SHA-1 only)

    @property
    def hex_size(self) -> int:
        """Characters of a hex object id."""
        return 2 * self.size

    @property
    def null_id(self) -> bytes:
        """The raw all-zero id (a missing ref's value in reflogs and expected-old checks)."""
        return bytes(self.size)

    @property
    def null_hex(self) -> str:
        """The all-zero id in hex, as git prints it."""
        return "0" * self.hex_size

    @classmethod
    def by_name(cls, name: str) -> HashAlgorithm:
        """``SHA1`` or ``SHA256`` by git's name; ValueError for any other name."""
        try:
            return HASH_ALGORITHMS[name]
        except KeyError:
            raise ValueError(f"unknown hash algorithm {name!r} (sha1 or sha256)") from None

    @classmethod
    def by_format_id(cls, format_id: int) -> HashAlgorithm | None:
        """The hash a version 2 header names, or None for an unknown id."""
        for algo in HASH_ALGORITHMS.values():
            if algo.format_id == format_id:
                return algo
        return None


SHA1 = HashAlgorithm("sha1", 20, FORMAT_ID_SHA1, 1)
SHA256 = HashAlgorithm("sha256", 32, FORMAT_ID_SHA256, 2)
HASH_ALGORITHMS: dict[str, HashAlgorithm] = {SHA1.name: SHA1, SHA256.name: SHA256}
# Deprecated (kept for old imports): a hash's sizes and ids are HashAlgorithm's fields.
HASH_SIZES: dict[str, int] = {a.name: a.size for a in HASH_ALGORITHMS.values()}

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
