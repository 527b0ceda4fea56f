"""Coverage-guided fuzzing (atheris) of the table reader on both block decoders.

    python scripts/fuzz_codec.py -max_total_time=120      # needs `pip install atheris`

Each input picks one of the test fixtures (tests/data/*.ref) and changes bytes of its block
area (the footer stays valid, so reads get past the open), then runs every read on the
compiled decoder and on the pure-Python reference: only FormatError may come out, and both
must return equal records (same classes, equal repr) and equal errors. atheris guides by the
coverage of the instrumented Python modules of aioreftable (gcc builds of the C module carry
no libFuzzer coverage; build it with clang's -fsanitize=fuzzer-no-link for that).
scripts/sanitize.sh runs this against an AddressSanitizer/UBSan build of the C module.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["aioreftable"]):
    from aioreftable import FormatError
    from aioreftable._format import _accel, _block
    from aioreftable.lowlevel import MergedTable, TableReader, check_table

FIXTURES = sorted((Path(__file__).parent.parent / "tests" / "data").glob("*.ref"))
SEEDS = [data for data in (p.read_bytes() for p in FIXTURES) if len(data) > 200]  # has blocks
PROBES = (b"", b"HEAD", b"refs/heads/main", b"refs/heads/zzzz", b"refs/tags/", b"\xff")


def _shape(value: Any) -> Any:
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return [_shape(v) for v in value]
    return (type(value).__qualname__, repr(value))


def reads(data: bytes) -> list[Any]:
    out: list[Any] = []

    def run(op: Any) -> None:
        try:
            out.append(_shape(op()))
        except FormatError as e:
            out.append((type(e).__qualname__, str(e), e.path, e.offset))

    try:
        reader = TableReader.from_bytes(data, "t.ref")
    except FormatError as e:
        return [("open", str(e))]
    names: list[bytes] = []
    run(lambda: names.extend(r.refname for r in reader.seek_refs()))
    run(lambda: list(reader.seek_logs()))
    for name in [*PROBES, *names[:: max(1, len(names) // 12)]] * 2:  # twice: hot blocks
        run(lambda n=name: reader.ref(n))
        run(lambda n=name: list(reader.iter_refs(n[:7])))
    run(lambda: list(reader.refs_for(b"\x01" * reader.hash_size)))
    run(reader.stats)
    run(lambda: list(MergedTable([reader]).iter_refs()))
    run(lambda: [(f.offset, f.message) for f in check_table(TableReader.from_bytes(data))])
    return out


def one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    seed = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
    head = 24 if seed[4] == 1 else 28
    body_end = len(seed) - (68 if seed[4] == 1 else 72)
    data = bytearray(seed)
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        at = fdp.ConsumeIntInRange(head, body_end - 1)
        data[at] = fdp.ConsumeIntInRange(0, 255)
    saved = _block._speedups
    try:
        _block._speedups = _accel.speedups
        compiled = reads(bytes(data))
        _block._speedups = None
        reference = reads(bytes(data))
    finally:
        _block._speedups = saved
    if compiled != reference:
        for c, r in zip(compiled, reference, strict=True):
            if c != r:
                raise AssertionError(f"compiled {c!r} != reference {r!r}")


def main() -> None:
    if not _accel.ACCELERATED:
        sys.exit("the compiled decoder is not built (or AIOREFTABLE_PURE_PYTHON is set)")
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
