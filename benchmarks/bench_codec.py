"""Codec benchmark: our reftable reader/writer against git and dulwich on one big repository.

    python benchmarks/bench_codec.py                 # 1,000,000 refs (several minutes)
    python benchmarks/bench_codec.py --refs 100000   # smaller
    python benchmarks/bench_codec.py --profile       # also cProfile our full scan

Steps (all in a scratch directory, removed unless --keep):

1. git builds a bare SHA-1 reftable repository: real commits (``git fast-import``), then N
   refs named like a hosting server's (``refs/pull/N/head``, ``refs/heads/...``,
   ``refs/remotes/...``, ``refs/tags/...``) in ONE ``git update-ref --stdin``, then
   ``git pack-refs --all``. Timed: that is git's write.
2. Our writer writes the same refs (same limits, HEAD symref included) from an in-memory
   list of (name, id); the result must be byte-identical to git's packed table.
3. Full scan printing "oid refname" (whole processes, output to a file, median of
   --repeat): ours, ``git for-each-ref``, dulwich over a files-backend copy made with
   ``git refs migrate --ref-format=files`` (packed-refs). Outputs are compared.
4. Lookups of random existing refs: ours warm in-process (median of --lookups timings),
   one ``git show-ref --verify`` process per lookup (a sample of --git-lookups), dulwich
   with a fresh ``Repo`` per lookup (a sample) and warm.
5. Cold open + one lookup in a fresh process (open and lookup time, process wall time,
   RSS after opening) for ours and dulwich.
6. Tombstones (--tombstones N): git's p1401 case, a stack whose newer table deletes every
   ref of an older one: scans, lookups and prefix checks at N and 10 N tombstones, and N
   creates of other names after the mass delete (``git update-ref --stdin`` against our
   ref store's transaction).

Our rows come twice: the compiled block decoder and the pure-Python reference
(``AIOREFTABLE_PURE_PYTHON=1`` for whole processes; in process, the same switch the
differential tests use).

Needs git >= 2.47 (``git refs migrate``); set AIOREFTABLE_TEST_GIT or have it on PATH.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aioreftable._format import _accel, _block  # noqa: E402
from aioreftable.lowlevel import (  # noqa: E402
    ACCELERATED,
    MergedTable,
    RefRecord,
    TableReader,
    TableWriter,
    WriteOptions,
    process_cache,
)

ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "A U Thor",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "C O Mitter",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_COMMITTER_DATE": "1112354055 +0200",
    "GIT_AUTHOR_DATE": "1112354055 +0200",
    "LC_ALL": "C",
}
PURE_ENV = {**ENV, "AIOREFTABLE_PURE_PYTHON": "1"}
PATHS = ("compiled", "pure")


def use_path(which: str) -> None:
    """Switch this process's block decoder (as tests/test_accel_differential.py does)."""
    _block._speedups = _accel.speedups if which == "compiled" else None
    process_cache().clear()


# -- helpers -----------------------------------------------------------------------------


def find_git() -> str:
    for cand in (os.environ.get("AIOREFTABLE_TEST_GIT"), shutil.which("git")):
        if not cand:
            continue
        out = subprocess.run([cand, "--version"], capture_output=True, text=True).stdout
        major, minor = (int(x) for x in out.split()[2].split(".")[:2])
        if (major, minor) >= (2, 47):
            return cand
    sys.exit("need git >= 2.47: set AIOREFTABLE_TEST_GIT")


def say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def run(
    cmd: list[str], *, cwd: Path | None = None, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(cmd, env=ENV, capture_output=True, cwd=cwd, input=input)
    if proc.returncode:
        sys.exit(f"{cmd[:3]} failed: {proc.stderr.decode(errors='replace')}")
    return proc


def timed(
    cmd: list[str],
    out: Path | None = None,
    *,
    cwd: Path | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> float:
    """Wall seconds of one process; stdout to ``out`` (or /dev/null)."""
    with open(out or os.devnull, "wb") as f:
        t = time.perf_counter()
        proc = subprocess.run(
            cmd, env=env or ENV, stdout=f, stderr=subprocess.PIPE, cwd=cwd, input=input
        )
        elapsed = time.perf_counter() - t
    if proc.returncode:
        sys.exit(f"{cmd[:3]} failed: {proc.stderr.decode(errors='replace')}")
    return elapsed


def median_time(
    cmd: list[str], repeat: int, out: Path | None = None, env: dict[str, str] | None = None
) -> float:
    return statistics.median(timed(cmd, out, env=env) for _ in range(repeat))


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        distro = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        distro = ""
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": mem,
        "os": f"{platform.system()} {platform.release()} ({distro})",
        "python": platform.python_version(),
    }


def ref_names(n: int) -> list[str]:
    """N distinct names shaped like a hosting server's refs (deterministic)."""
    names = []
    pulls = n * 45 // 100
    for i in range(pulls):
        names.append(f"refs/pull/{i + 1}/head")
    for i in range(n * 5 // 100):
        names.append(f"refs/pull/{i + 1}/merge")
    users = ["alice", "bob", "carol", "dependabot", "renovate", "mallory", "trent"]
    for i in range(n * 20 // 100):
        names.append(f"refs/heads/{users[i % len(users)]}/feature-{i:07d}-improve-things")
    for i in range(n * 15 // 100):
        names.append(f"refs/remotes/origin/{users[i % len(users)]}/topic-{i:07d}")
    i = 0
    while len(names) < n:
        names.append(f"refs/tags/v{i // 10000}.{i // 100 % 100}.{i % 100}")
        i += 1
    return names


# -- the scripts run as separate processes -----------------------------------------------

OUR_SCAN = """
import sys, os
sys.path.insert(0, {root!r})
from aioreftable.lowlevel import MergedTable, TableReader
d = os.path.join(sys.argv[1], "reftable")
names = [n for n in open(os.path.join(d, "tables.list")).read().split("\\n") if n]
merged = MergedTable([TableReader.from_path(os.path.join(d, n)) for n in names])
out = sys.stdout.buffer
buf = []
for rec in merged.iter_refs(b"refs/"):
    buf.append(b"%s %s\\n" % (rec.value.hex().encode(), rec.refname))
    if len(buf) >= 4096:
        out.write(b"".join(buf))
        buf.clear()
out.write(b"".join(buf))
"""

# the public path: one reader, f-strings, a text stream
OUR_PUBLIC_SCAN = """
import sys, os
sys.path.insert(0, {root!r})
from aioreftable.lowlevel import TableReader
d = os.path.join(sys.argv[1], "reftable")
names = [n for n in open(os.path.join(d, "tables.list")).read().split("\\n") if n]
assert len(names) == 1, names
out = sys.stdout
for rec in TableReader.from_path(os.path.join(d, names[0])).iter_refs(b"refs/"):
    out.write(f"{{rec.value.hex()}} {{rec.refname.decode()}}\\n")
"""

# git's p1401 "create new refs after deleting differently-named refs", through our ref store
OUR_CREATE = """
import sys
sys.path.insert(0, {root!r})
import anyio
import aioreftable
async def main():
    oid, *names = sys.stdin.read().split()
    async with aioreftable.open_ref_store(sys.argv[1]) as store:
        async with store.transaction(message="create") as tx:
            for name in names:
                tx.create(name, oid)
anyio.run(main)
"""

DULWICH_SCAN = """
import sys
from dulwich.repo import Repo
out = sys.stdout.buffer
refs = Repo(sys.argv[1]).refs.as_dict()
out.write(b"".join(b"%s %s\\n" % (v, k) for k, v in refs.items() if k.startswith(b"refs/")))
"""

OUR_COLD = """
import sys, os, time, json
sys.path.insert(0, {root!r})
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
base = rss()
t = time.perf_counter()
from aioreftable.lowlevel import MergedTable, TableReader
t_import = time.perf_counter() - t
base_imported = rss()
t = time.perf_counter()
d = os.path.join(sys.argv[1], "reftable")
names = [n for n in open(os.path.join(d, "tables.list")).read().split("\\n") if n]
merged = MergedTable([TableReader.from_path(os.path.join(d, n)) for n in names])
t_open = time.perf_counter() - t
rss_open = rss()
t = time.perf_counter()
rec = merged.ref(sys.argv[2].encode())
t_lookup = time.perf_counter() - t
assert rec is not None
print(json.dumps(dict(import_ms=t_import * 1e3, open_ms=t_open * 1e3,
                      lookup_ms=t_lookup * 1e3, rss_start=base, rss_imported=base_imported,
                      rss_open=rss_open, rss_end=rss())))
"""

DULWICH_PACKED_SCAN = """
import sys
from dulwich.repo import Repo
out = sys.stdout.buffer
refs = Repo(sys.argv[1]).refs.get_packed_refs()
out.write(b"".join(b"%s %s\\n" % (v, k) for k, v in refs.items()))
"""

DULWICH_COLD = """
import sys, time, json
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
from dulwich.repo import Repo
base = rss()
t = time.perf_counter()
repo = Repo(sys.argv[1])
t_open = time.perf_counter() - t
t = time.perf_counter()
repo.refs[sys.argv[2].encode()]
t_lookup = time.perf_counter() - t
print(json.dumps(dict(open_ms=t_open * 1e3, lookup_ms=t_lookup * 1e3, rss_imported=base,
                      rss_end=rss())))
"""


# -- tombstones (git's t/perf/p1401) -----------------------------------------------------


def tombstone_repo(git: str, path: Path, n: int) -> str:
    """A bare reftable repository whose stack is git's first table, a table of ``n`` refs
    ``refs/tags/old-<i>`` and a newer table deleting every one of them; returns the blob
    id the refs named."""
    run([git, "init", "-q", "--bare", "--ref-format=reftable", "-b", "main", str(path)])
    oid = run([git, "hash-object", "-w", "--stdin"], cwd=path, input=b"foo\n").stdout.strip()
    d = path / "reftable"
    listed = (d / "tables.list").read_text().split()
    top = max(TableReader.from_path(d / name).max_update_index for name in listed)
    names = sorted(b"refs/tags/old-%d" % i for i in range(1, n + 1))
    raw = bytes.fromhex(oid.decode())
    for ui in (top + 1, top + 2):
        w = TableWriter(WriteOptions())
        w.set_limits(ui, ui)
        if ui == top + 1:
            w.add_refs([RefRecord.val1(name, ui, raw) for name in names])
        else:
            w.add_refs([RefRecord.deletion(name, ui) for name in names])
        table = f"0x{ui:012x}-0x{ui:012x}-{random.Random(ui).getrandbits(32):08x}.ref"
        (d / table).write_bytes(w.finish())
        listed.append(table)
    (d / "tables.list").write_text("".join(f"{name}\n" for name in listed))
    return oid.decode()


def tombstone_probes(merged: MergedTable) -> list[tuple[str, Callable[[bytes], object]]]:
    """A lookup of a deleted name, a prefix check under it (git's D/F check), and a seek
    past every tombstone."""
    return [
        ("lookup_deleted_us", merged.ref),
        ("prefix_check_us", lambda name: next(merged.iter_refs(name + b"/"), None)),
        ("seek_past_us", lambda name: next(merged.iter_refs(b"refs/tags/p"), None)),
    ]


def tombstone_case(git: str, work: Path, n: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "sizes": {}}
    for size in (n, 10 * n):
        repo = work / f"tomb-{size}.git"
        oid = tombstone_repo(git, repo, size)
        row: dict[str, Any] = {
            "git_for_each_ref_s": median_time(
                [git, "-C", str(repo), "for-each-ref", "--format=%(objectname) %(refname)"],
                repeat,
            )
        }
        d = repo / "reftable"
        tables = [d / name for name in (d / "tables.list").read_text().split()]
        probes = [
            b"refs/tags/old-%d" % i
            for i in random.Random(size).sample(range(1, size + 1), min(2000, size))
        ]
        perf = time.perf_counter_ns
        for which in PATHS:
            env = ENV if which == "compiled" else PURE_ENV
            cmd = [sys.executable, "-c", OUR_SCAN.format(root=str(ROOT)), str(repo)]
            row[f"scan_process_s_{which}"] = median_time(cmd, repeat, env=env)
            use_path(which)
            merged = MergedTable([TableReader.from_path(t) for t in tables])
            t = time.perf_counter()
            live = sum(1 for _ in merged.iter_refs(b"refs/"))
            row[f"scan_in_process_s_{which}"] = time.perf_counter() - t
            assert live == 0, live
            for what, op in tombstone_probes(merged):
                for name in probes[:200]:  # warm
                    op(name)
                times = []
                for name in probes:
                    t0 = perf()
                    assert op(name) is None
                    times.append(perf() - t0)
                row[f"{what}_{which}"] = statistics.median(times) / 1e3
            for reader in merged.readers:
                reader.close()
        use_path("compiled")
        if size == n:  # p1401: create n other names after the mass delete
            names = [f"refs/tags/new-{i}" for i in range(1, n + 1)]
            stdin = "".join(f"create {name} {oid}\n" for name in names).encode()
            for who in ("git", "ours"):
                copy = work / f"tomb-{size}-{who}.git"
                shutil.copytree(repo, copy)
                if who == "git":
                    row["create_s_git"] = timed(
                        [git, "update-ref", "--stdin"], cwd=copy, input=stdin
                    )
                else:
                    feed = " ".join([oid, *names]).encode()
                    cmd = [sys.executable, "-c", OUR_CREATE.format(root=str(ROOT)), str(copy)]
                    row["create_s_ours"] = timed(cmd, input=feed)
                listed = run([git, "-C", str(copy), "for-each-ref", "refs/tags/"]).stdout
                assert listed.count(b"\n") == n, (who, listed.count(b"\n"))
                shutil.rmtree(copy)
        shutil.rmtree(repo)
        out["sizes"][size] = row
        say(f"  tombstones {size}: {row}")
    return out


# -- the benchmark -------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--refs", type=int, default=1_000_000, help="number of refs (default 1M)")
    ap.add_argument(
        "--commits", type=int, default=0, help="distinct commits (default refs/10, <= 100k)"
    )
    ap.add_argument("--lookups", type=int, default=20_000, help="random lookups, in process")
    ap.add_argument(
        "--tombstones", type=int, default=8000, help="the tombstone case's N (0: skip it)"
    )
    ap.add_argument("--git-lookups", type=int, default=200, help="git processes (a sample)")
    ap.add_argument("--dulwich-cold", type=int, default=5, help="fresh dulwich Repos (a sample)")
    ap.add_argument("--dulwich-repeat", type=int, default=1, help="dulwich full scans (median)")
    ap.add_argument("--repeat", type=int, default=3, help="full scans per tool (median)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--profile", action="store_true", help="cProfile our in-process full scan")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    git = find_git()
    n = args.refs
    commits_n = args.commits or max(1, min(n // 10, 100_000))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-codec-"))
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "repo.git"
    results: dict[str, Any] = {"refs": n, "commits": commits_n, "machine": machine()}
    results["git"] = run([git, "--version"]).stdout.decode().strip()
    rng = random.Random(289)

    try:
        # 1. git builds and writes ------------------------------------------------------
        if repo.exists():
            shutil.rmtree(repo)
        run([git, "init", "-q", "--bare", "--ref-format=reftable", "-b", "main", str(repo)])
        say(f"fast-import {commits_n} commits")
        stream = io.BytesIO()
        for i in range(commits_n):
            msg = b"commit %d\n" % i
            stream.write(
                b"commit refs/heads/main\nmark :%d\ncommitter C O Mitter <c@example.com> %d +0200\n"
                b"data %d\n%s\n" % (i + 1, 1112354055 + i, len(msg), msg)
            )
        marks = work / "marks"
        run(
            [git, "fast-import", "--quiet", f"--export-marks={marks}"],
            cwd=repo,
            input=stream.getvalue(),
        )
        oids = [line.split()[1] for line in marks.read_text().splitlines()]
        names = ref_names(n)
        pairs = sorted(
            (name.encode(), oids[(i * 7919) % len(oids)]) for i, name in enumerate(names)
        )
        stdin = b"".join(b"create %s %s\n" % (name, oid.encode()) for name, oid in pairs)
        say(f"git update-ref --stdin with {n} creates")
        t_update = timed([git, "update-ref", "--stdin"], cwd=repo, input=stdin)
        t_pack = timed([git, "pack-refs", "--all"], cwd=repo)
        results["git_write_s"] = {
            "update_ref": t_update,
            "pack_refs": t_pack,
            "total": t_update + t_pack,
        }
        names_list = (repo / "reftable" / "tables.list").read_text().split()
        assert len(names_list) == 1, names_list
        git_table = repo / "reftable" / names_list[0]
        with TableReader.from_path(git_table) as r:
            lo, hi = r.min_update_index, r.max_update_index
            head = r.ref(b"HEAD")
            main_ref = r.ref(b"refs/heads/main")  # written by fast-import
            results["table"] = {"bytes": r.file_size, "min": lo, "max": hi}
        assert head is not None and main_ref is not None

        # 2. our writer -------------------------------------------------------------------
        say("our writer")
        bin_pairs = [(name, bytes.fromhex(oid)) for name, oid in pairs]
        ours_path = work / "ours.ref"
        t = time.perf_counter()
        w = TableWriter(WriteOptions())
        w.set_limits(lo, hi)
        w.add_refs([head, main_ref] + [RefRecord.val1(name, hi, oid) for name, oid in bin_pairs])
        ours_path.write_bytes(w.finish())
        t_ours_write = time.perf_counter() - t
        identical = ours_path.read_bytes() == git_table.read_bytes()
        results["our_write_s"] = t_ours_write
        results["write_byte_identical"] = identical
        say(f"  ours {t_ours_write:.2f}s, git {t_update + t_pack:.2f}s, identical={identical}")
        del bin_pairs, stdin

        # 3. full scans ---------------------------------------------------------------------
        files_repo = work / "files.git"
        if files_repo.exists():
            shutil.rmtree(files_repo)
        shutil.copytree(repo, files_repo)
        run([git, "refs", "migrate", "--ref-format=files"], cwd=files_repo)
        run([git, "pack-refs", "--all"], cwd=files_repo)  # migrate writes loose refs
        assert (files_repo / "packed-refs").is_file()
        say("full scans")
        out_git = work / "scan-git.txt"
        scan: dict[str, float] = {
            "git": median_time(
                [git, "-C", str(repo), "for-each-ref", "--format=%(objectname) %(refname)"],
                args.repeat,
                out_git,
            )
        }
        equal: dict[str, bool] = {}
        for label, script in (("public", OUR_PUBLIC_SCAN), ("merged", OUR_SCAN)):
            for which in PATHS:
                out = work / f"scan-{label}-{which}.txt"
                cmd = [sys.executable, "-c", script.format(root=str(ROOT)), str(repo)]
                env = ENV if which == "compiled" else PURE_ENV
                scan[f"{label}_{which}"] = median_time(cmd, args.repeat, out, env)
                equal[f"{label}_{which}"] = out.read_bytes() == out_git.read_bytes()
                out.unlink()
        out_dul = work / "scan-dulwich.txt"
        scan["dulwich"] = median_time(
            [sys.executable, "-c", DULWICH_SCAN, str(files_repo)], args.dulwich_repeat, out_dul
        )
        scan["dulwich_packed_refs_only"] = median_time(
            [sys.executable, "-c", DULWICH_PACKED_SCAN, str(files_repo)], args.dulwich_repeat
        )
        results["scan_s"] = scan
        by_name = sorted(out_dul.read_bytes().splitlines(), key=lambda line: line.split(b" ", 1)[1])
        equal["dulwich"] = by_name == out_git.read_bytes().splitlines()
        results["scan_outputs_equal"] = equal
        say(f"  {scan} equal: {equal}")
        for p in (out_git, out_dul):
            p.unlink()

        # in-process scans (and the profile of the compiled path) for the record
        results["scan_in_process_s"] = {}
        for which in PATHS:
            use_path(which)
            with TableReader.from_path(git_table) as reader:
                t = time.perf_counter()
                count = sum(1 for _ in MergedTable([reader]).iter_refs(b"refs/"))
                merged_s = time.perf_counter() - t
                t = time.perf_counter()
                count2 = sum(1 for _ in reader.iter_refs(b"refs/"))
                results["scan_in_process_s"][which] = {
                    "merged": merged_s,
                    "reader": time.perf_counter() - t,
                }
                assert count == count2 == n + 1  # + refs/heads/main
        use_path("compiled")
        if args.profile:
            with TableReader.from_path(git_table) as reader:
                sink = io.StringIO()
                prof = cProfile.Profile()
                prof.enable()
                for rec in reader.iter_refs(b"refs/"):
                    sink.write(f"{rec.oid.hex()} {rec.refname.decode()}\n")
                prof.disable()
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(14)
            results["profile"] = s.getvalue()
            print(s.getvalue(), file=sys.stderr)

        # 4. lookups -----------------------------------------------------------------
        say("lookups")
        sample = [names[i] for i in rng.sample(range(n), min(args.lookups, n))]
        perf = time.perf_counter_ns
        results["lookup_ours_us"] = {}
        found_by_path: dict[str, list[str]] = {}
        for which in PATHS:
            use_path(which)
            with TableReader.from_path(git_table) as reader:
                merged = MergedTable([reader])
                keys = [name.encode() for name in sample]
                for key in keys:  # warm: the set of names is looked up once first
                    reader.ref(key)
                timings = []
                for key in keys:
                    t0 = perf()
                    reader.ref(key)
                    timings.append(perf() - t0)
                merged_t = []
                for key in keys:
                    t0 = perf()
                    found = merged.ref(key)
                    merged_t.append(perf() - t0)
                    assert found is not None
                found_by_path[which] = [
                    f"{type(r).__qualname__} {r!r}" for r in map(reader.ref, keys)
                ]
                timings.sort()
                merged_t.sort()
                results["lookup_ours_us"][which] = {
                    "median": statistics.median(timings) / 1e3,
                    "p90": timings[len(timings) * 9 // 10] / 1e3,
                    "p99": timings[len(timings) * 99 // 100] / 1e3,
                    "merged_median": statistics.median(merged_t) / 1e3,
                    "n": len(timings),
                    "cache_mb": process_cache().size_bytes / 2**20,
                }
        use_path("compiled")
        results["lookup_paths_equal"] = found_by_path["compiled"] == found_by_path["pure"]
        del found_by_path
        git_sample = sample[: args.git_lookups]
        git_times = [
            timed([git, "-C", str(repo), "show-ref", "--verify", name]) for name in git_sample
        ]
        results["lookup_git_process_ms"] = {
            "median": statistics.median(git_times) * 1e3,
            "n": len(git_times),
        }
        from dulwich.refs import Ref
        from dulwich.repo import Repo

        dul_sample = sample[: args.dulwich_cold]
        fresh = []
        for name in dul_sample:
            t = time.perf_counter()
            Repo(str(files_repo)).refs[Ref(name.encode())]
            fresh.append(time.perf_counter() - t)
        dul = Repo(str(files_repo))
        dul.refs[Ref(sample[0].encode())]
        warm = []
        for name in sample:
            ref = Ref(name.encode())
            t0 = perf()
            dul.refs[ref]
            warm.append(perf() - t0)
        results["lookup_dulwich"] = {
            "fresh_repo_ms": statistics.median(fresh) * 1e3,
            "fresh_n": len(fresh),
            "warm_us": statistics.median(warm) / 1e3,
            "warm_n": len(warm),
        }
        say(f"  {results['lookup_ours_us']} {results['lookup_git_process_ms']}")
        say(f"  {results['lookup_dulwich']}")

        # 5. cold open ----------------------------------------------------------------------
        say("cold open")
        cold_name = sample[-1]
        ours_cold = []
        for _ in range(5):
            t = time.perf_counter()
            out = run(
                [sys.executable, "-c", OUR_COLD.format(root=str(ROOT)), str(repo), cold_name]
            ).stdout
            ours_cold.append((time.perf_counter() - t, json.loads(out)))
        dul_cold = []
        for _ in range(3):
            t = time.perf_counter()
            out = run([sys.executable, "-c", DULWICH_COLD, str(files_repo), cold_name]).stdout
            dul_cold.append((time.perf_counter() - t, json.loads(out)))
        python_start = statistics.median(timed([sys.executable, "-c", "pass"]) for _ in range(5))

        def med(rows: list[tuple[float, dict[str, float]]], key: str) -> float:
            return statistics.median(r[1][key] for r in rows)

        results["cold"] = {
            "python_startup_ms": python_start * 1e3,
            "ours": {
                "process_ms": statistics.median(r[0] for r in ours_cold) * 1e3,
                **{k: med(ours_cold, k) for k in ours_cold[0][1]},
            },
            "dulwich": {
                "process_ms": statistics.median(r[0] for r in dul_cold) * 1e3,
                **{k: med(dul_cold, k) for k in dul_cold[0][1]},
            },
            "git_process_ms": results["lookup_git_process_ms"]["median"],
        }
        # 6. tombstones ----------------------------------------------------------------------
        if args.tombstones:
            say("tombstones")
            results["tombstones"] = tombstone_case(git, work, args.tombstones, args.repeat)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(f"# {r['refs']:,} refs, {r['commits']:,} commits; {r['git']}; Python {m['python']}")
    print(f"# {m['cpu']}, {m['memory']}, {m['os']}")
    print(f"# packed table: {r['table']['bytes']:,} bytes; compiled decoder built: {ACCELERATED}\n")
    gw = r["git_write_s"]
    sc = r["scan_s"]
    lo = r["lookup_ours_us"]
    lg = r["lookup_git_process_ms"]
    ld = r["lookup_dulwich"]
    c = r["cold"]
    co, cd = c["ours"], c["dulwich"]
    inp = r["scan_in_process_s"]

    def both(fmt: str, key: str, table: dict[str, Any]) -> str:
        return " / ".join(fmt.format(table[f"{key}_{w}"]) for w in PATHS)

    rows = [
        (
            f"write {r['refs']:,} refs (s)",
            f"{r['our_write_s']:.2f} (pure Python either way)",
            f"{gw['total']:.2f} (update-ref {gw['update_ref']:.2f}"
            f" + pack-refs {gw['pack_refs']:.2f})",
            "-",
            f"{r['our_write_s'] / gw['total']:.2f}x git;"
            f" byte-identical: {r['write_byte_identical']}",
        ),
        (
            "full scan, public path (TableReader.iter_refs, f-strings), whole process (s)",
            both("{:.2f}", "public", sc),
            f"{sc['git']:.2f} (for-each-ref)",
            f"{sc['dulwich']:.2f} (refs.as_dict);"
            f" {sc['dulwich_packed_refs_only']:.2f} (get_packed_refs)",
            " / ".join(f"{sc[f'public_{w}'] / sc['git']:.2f}x" for w in PATHS) + " git",
        ),
        (
            "full scan, MergedTable, bytes lines, whole process (s)",
            both("{:.2f}", "merged", sc),
            f"{sc['git']:.2f}",
            "-",
            " / ".join(f"{sc[f'merged_{w}'] / sc['git']:.2f}x" for w in PATHS)
            + " git; in process: "
            + " / ".join(
                f"{inp[w]['reader']:.2f} s reader, {inp[w]['merged']:.2f} s merged" for w in PATHS
            ),
        ),
        (
            f"warm random lookup, TableReader.ref, {lo['compiled']['n']:,} names (µs)",
            " / ".join(
                f"median {lo[w]['median']:.1f}, p90 {lo[w]['p90']:.1f}, p99 {lo[w]['p99']:.1f}"
                for w in PATHS
            ),
            f"{lg['median']:.2f} ms/process (n={lg['n']})",
            f"{ld['warm_us']:.1f} µs warm;"
            f" {ld['fresh_repo_ms']:.0f} ms fresh Repo (n={ld['fresh_n']})",
            "MergedTable.ref median "
            + " / ".join(f"{lo[w]['merged_median']:.1f}" for w in PATHS)
            + f"; cache {lo['compiled']['cache_mb']:.0f} MB;"
            f" equal records on both paths: {r['lookup_paths_equal']}",
        ),
        (
            "cold open + 1 lookup (ms)",
            f"{co['open_ms'] + co['lookup_ms']:.2f} in process;"
            f" {co['process_ms']:.0f} whole process",
            f"{c['git_process_ms']:.2f} whole process",
            f"{cd['open_ms'] + cd['lookup_ms']:.0f} in process;"
            f" {cd['process_ms']:.0f} whole process",
            f"python startup alone {c['python_startup_ms']:.0f} ms;"
            f" import aioreftable.lowlevel {co['import_ms']:.0f} ms",
        ),
        (
            "RSS after open (MB)",
            f"{co['rss_open']:.1f} (+{co['rss_open'] - co['rss_imported']:.1f} over import)",
            "-",
            f"{cd['rss_end']:.1f} after lookup",
            "",
        ),
    ]
    tomb = r.get("tombstones")
    if tomb:
        for size, t in tomb["sizes"].items():
            rows.append(
                (
                    f"{size:,} tombstones over {size:,} refs: scan, whole process (s)",
                    both("{:.2f}", "scan_process_s", t),
                    f"{t['git_for_each_ref_s']:.2f}",
                    "-",
                    "in process " + both("{:.3f}", "scan_in_process_s", t) + " s",
                )
            )
            rows.append(
                (
                    f"{size:,} tombstones: lookup of a deleted name / prefix check"
                    " / seek past them (µs, median)",
                    " / ".join(
                        f"{t[f'lookup_deleted_us_{w}']:.1f}, {t[f'prefix_check_us_{w}']:.1f},"
                        f" {t[f'seek_past_us_{w}']:.1f}"
                        for w in PATHS
                    ),
                    "-",
                    "-",
                    "",
                )
            )
            if "create_s_git" in t:
                rows.append(
                    (
                        f"create {size:,} other refs after deleting {size:,} (s, whole process)",
                        f"{t['create_s_ours']:.2f} (compiled)",
                        f"{t['create_s_git']:.2f} (update-ref --stdin)",
                        "-",
                        "git's p1401 'create new refs after deleting differently-named refs'",
                    )
                )
    print("ours: compiled / pure-Python decoder\n")
    print("| measure | aioreftable | git | dulwich (files backend) | notes |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nscan outputs equal to git's: {r['scan_outputs_equal']}")


if __name__ == "__main__":
    main()
