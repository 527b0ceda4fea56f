"""`aioreftable stats`: its numbers against the codec's view (`aioreftable dump --json`),
against contents known in advance, and its next compaction against what git's
auto-compaction then does on a twin."""

from __future__ import annotations

import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cli_scenarios import NO_COMPACTION, Scenarios, run_git, run_ours, scenarios
from conftest import Git

from aioreftable.cli import main
from aioreftable.lowlevel import TableReader

__all__ = ["scenarios"]  # the session fixture


def stats(repo: Path, *extra: str) -> dict[str, Any]:
    out, err, code = run_ours(repo, ["stats", "--json", *extra])
    assert (err, code) == (b"", 0)
    result: dict[str, Any] = json.loads(out)
    return result


def listed(repo: Path) -> list[str]:
    return (repo / ".git" / "reftable" / "tables.list").read_text().splitlines()


def stdin(git: Git, repo: Path, lines: list[str]) -> None:
    """One transaction: one table (auto-compaction off)."""
    data = "".join(line + "\n" for line in lines)
    git("update-ref", "--stdin", cwd=repo, input=data, env=NO_COMPACTION)


def big_repo(git: Git, scenarios: Scenarios, path: Path) -> Path:
    """Tables with several blocks and an index, tombstones of refs and of reflogs."""
    repo = scenarios.build("empty-sha1", path)
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    stdin(git, repo, [f"create refs/heads/b/{n:04d} {head}" for n in range(1500)])
    stdin(git, repo, [f"delete refs/heads/b/{n:04d}" for n in range(0, 1500, 7)])
    git("reflog", "delete", "refs/heads/b/0001@{0}", cwd=repo, env=NO_COMPACTION)
    return repo


def test_stats_agree_with_dump(git: Git, scenarios: Scenarios, tmp_path: Path) -> None:
    repo = big_repo(git, scenarios, tmp_path / "repo")
    got = stats(repo)
    out, _, code = run_ours(repo, ["dump", "--json", "."])
    assert code == 0
    dumped = {Path(t["path"]).name: t for t in json.loads(out)}
    (stack,) = got["stacks"]
    assert [t["name"] for t in stack["tables"]] == listed(repo)
    index_levels_seen = 0
    for table in stack["tables"]:
        d = dumped[table["name"]]
        for key in ("size", "version", "block_size", "min_update_index", "max_update_index"):
            assert table[key] == d[key], key
        blocks = Counter(b["type"] for b in d["blocks"])
        records: Counter[str] = Counter()
        tombstones: Counter[str] = Counter()
        for b in d["blocks"]:
            records[b["type"]] += b["records"]
            for rec in b["record_list"]:
                tombstones[b["type"]] += rec.get("type") == "deletion"
        for section, kind in (("refs", "ref"), ("objs", "obj"), ("logs", "log")):
            assert table[section]["blocks"] == blocks[kind], (table["name"], section)
            assert table[section]["records"] == records[kind]
            if section != "objs":
                assert table[section]["tombstones"] == tombstones[kind]
        index_blocks = sum(table[s]["index_blocks"] for s in ("refs", "objs", "logs"))
        assert index_blocks == blocks["index"]
        for s in ("refs", "objs", "logs"):
            assert (table[s]["index_levels"] > 0) == (table[s]["index_blocks"] > 0)
            index_levels_seen += table[s]["index_levels"]
    assert index_levels_seen > 0  # the big table has a ref index
    assert stack["bytes"] == sum(t["size"] for t in stack["tables"])


def test_stats_of_known_contents(git: Git, scenarios: Scenarios, tmp_path: Path) -> None:
    """Refs outside refs/heads have no reflog: every record is known in advance."""
    repo = scenarios.build("empty-sha1", tmp_path / "repo")
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo, env=NO_COMPACTION)
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    stdin(git, repo, [f"create refs/x/{n} {head}" for n in range(10)])
    stdin(git, repo, [f"delete refs/x/{n}" for n in range(3)])
    (stack,) = stats(repo)["stacks"]
    tables = stack["tables"]
    assert [(t["min_update_index"], t["max_update_index"]) for t in tables] == [
        (1, 1),  # init: HEAD
        (2, 2),  # the commit
        (3, 3),
        (4, 4),
    ]
    counts = [(t["refs"]["records"], t["refs"]["tombstones"], t["logs"]["records"]) for t in tables]
    assert counts == [(1, 0, 0), (1, 0, 2), (10, 0, 0), (3, 3, 0)]  # the commit: main and HEAD
    assert stack["max_update_index"] == 4 and stack["hash"] == "sha1"
    assert all(t["version"] == 1 and t["block_size"] == 4096 for t in tables)
    # the text form of the same numbers
    out, err, code = run_ours(repo, ["stats"])
    assert (err, code) == (b"", 0)
    text = out.decode().splitlines()
    assert text[1] == f"  4 tables, {stack['bytes']} bytes, max update index 4"
    assert text[-4:-1] == [
        f"    {tables[3]['size']} bytes, version 1, block size 4096, update index 4..4",
        "    refs: 3 records (3 tombstones) in 1 block",
        "    logs: 0 records (0 tombstones) in 0 blocks",
    ]


@pytest.mark.parametrize("extra", [0, 1, 3])
def test_next_compaction_is_what_git_does(
    git: Git, scenarios: Scenarios, tmp_path: Path, extra: int
) -> None:
    """The range stats predicts is the range git's `pack-refs --auto` then merges (and
    none when git leaves a geometric stack alone)."""
    repo = big_repo(git, scenarios, tmp_path / "repo")
    git("pack-refs", cwd=repo)
    for n in range(extra):
        git("branch", f"small-{n}", cwd=repo, env=NO_COMPACTION)
    stdin(git, repo, [f"delete refs/heads/b/{n:04d}" for n in range(1, 1500, 50)])
    names = listed(repo)
    (stack,) = stats(repo)["stacks"]
    nxt = stack["next_compaction"]
    assert (nxt is None) == (extra == 0)  # a big table under small ones: geometric
    assert run_git(git, repo, ["pack-refs", "--auto"])[2] == 0
    after = [name.rsplit("-", 1)[0] for name in listed(repo)]
    if nxt is None:
        assert listed(repo) == names
        return
    start, end = nxt["start"], nxt["end"]
    assert nxt["tables"] == names[start:end]
    lo = names[start].split("-")[0]
    hi = names[end - 1].split("-")[1]
    expected = [n.rsplit("-", 1)[0] for n in names[:start]]
    expected += [f"{lo}-{hi}"]
    expected += [n.rsplit("-", 1)[0] for n in names[end:]]
    assert after == expected


def test_stats_of_a_linked_worktree(scenarios: Scenarios) -> None:
    wt = scenarios["worktree-sha1"]
    main = stats(wt.with_name(wt.name.removesuffix(".wt")))["stacks"]
    from_wt = stats(wt)["stacks"]
    assert len(main) == 1 and len(from_wt) == 2
    assert from_wt[0] == main[0]
    assert from_wt[1]["path"].endswith(f"/worktrees/{wt.name}/reftable")
    assert sum(t["refs"]["records"] for t in from_wt[1]["tables"]) >= 3  # HEAD, bisect, wt-only


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, repo: Path, argv: list[str]
) -> tuple[int, str, str]:
    """Our command with stderr a terminal (stdout is not one)."""
    err, out = _Terminal(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.chdir(repo)
    code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "label"),
    [
        (["stats"], "Reading tables"),
        (["stats", "--json"], "Reading tables"),
        (["refs", "verify"], "Checking references"),
        (["pack-refs"], "Compacting references"),
        (["compact"], "Compacting tables"),
    ],
)
def test_progress_bar_on_a_terminal_only(
    scenarios: Scenarios, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str],
    label: str,
) -> None:  # fmt: skip
    repo = scenarios.copy("tombstones-sha1", tmp_path / "repo")
    tables = len(listed(repo))
    code, out, err = on_a_terminal(monkeypatch, repo, argv)
    assert code == 0 and label in err
    if argv[0] == "stats":
        assert f"{tables}/{tables}" in err  # one step per table
        assert out == run_ours(repo, argv)[0].decode()  # stdout as when piped
    quiet = on_a_terminal(monkeypatch, repo, [*argv, "-q"])
    assert quiet[0] == 0 and quiet[2] == ""  # -q: nothing on the terminal
    assert run_ours(repo, argv)[1] == b""  # piped: no bar


def test_stats_of_a_damaged_table_is_one_fatal_line(scenarios: Scenarios, tmp_path: Path) -> None:
    """A log block that does not inflate: the table opens, stats' full read fails."""
    repo = scenarios.copy("tombstones-sha1", tmp_path / "repo")
    path = repo / ".git" / "reftable" / listed(repo)[-1]
    with TableReader.from_path(path) as reader:
        (offset,) = [b.offset for b in reader.blocks() if b.typ == ord("g")]
    data = bytearray(path.read_bytes())
    data[offset + 12] ^= 0xFF
    path.write_bytes(bytes(data))
    out, err, code = run_ours(repo, ["stats"])
    assert (out, code) == (b"", 128)
    assert err.startswith(f"fatal: {path}: ".encode()) and err.count(b"\n") == 1
