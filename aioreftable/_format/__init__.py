"""Sans-I/O reftable codec: varints, records, blocks, table writer and reader, merging."""
