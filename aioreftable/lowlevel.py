"""The synchronous, sans-I/O codec API: tables in and out as bytes (never imports anyio)."""

from __future__ import annotations

from ._format._accel import ACCELERATED
from ._format._binary import get_varint, put_varint
from ._format._blocksource import BlockSource, BytesSource, MmapSource
from ._format._cache import BlockCache, process_cache
from ._format._compaction import suggest_compaction_segment
from ._format._layout import SHA1, SHA256, HashAlgorithm
from ._format._merged import MergedTable
from ._format._reader import SectionStats, TableReader, TableStats
from ._format._records import (
    IndexRecord,
    LogRecord,
    LogValueType,
    ObjRecord,
    RefRecord,
    RefValueType,
    log_key,
)
from ._format._verify import Finding, check_table
from ._format._writer import TableWriter, WriteOptions, normalize_log_message

__all__ = [
    "ACCELERATED",
    "BlockCache",
    "BlockSource",
    "BytesSource",
    "Finding",
    "HashAlgorithm",
    "IndexRecord",
    "LogRecord",
    "LogValueType",
    "MergedTable",
    "MmapSource",
    "ObjRecord",
    "RefRecord",
    "RefValueType",
    "SHA1",
    "SHA256",
    "SectionStats",
    "TableReader",
    "TableStats",
    "TableWriter",
    "WriteOptions",
    "check_table",
    "get_varint",
    "log_key",
    "normalize_log_message",
    "process_cache",
    "put_varint",
    "suggest_compaction_segment",
]
