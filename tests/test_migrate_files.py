"""The files backend as bytes (_refs/_filesbackend.py) and the config rewrite of the
migration, against files git wrote and `git config` edits."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Git
from migrate_helpers import build_source, git_view

from aioreftable import migrate_refs
from aioreftable._format._layout import SHA1, SHA256, HashAlgorithm
from aioreftable._refs._filesbackend import (
    LogLine,
    PackedRef,
    format_loose,
    format_packed_refs,
    format_reflog_line,
    parse_packed_refs,
    parse_reflog,
)
from aioreftable._refs._migrate import _edit_config, _format_settings

pytestmark = [pytest.mark.anyio, pytest.mark.git]


@pytest.mark.parametrize("algo", [SHA1, SHA256], ids=lambda a: a.name)
def test_git_written_files_read_and_write_back_byte_for_byte(
    git: Git, tmp_path: Path, algo: HashAlgorithm
) -> None:
    """packed-refs (header, ^ lines) and every reflog file git wrote are parsed and
    formatted back to the same bytes."""
    repo = build_source(git, tmp_path / "repo", algo.name)
    git("pack-refs", "--all", cwd=repo)
    packed = (repo / ".git" / "packed-refs").read_bytes()
    entries, fully = parse_packed_refs(packed, algo)
    assert fully and len(entries) >= 8
    assert sum(e.peeled is not None for e in entries) == 3
    assert format_packed_refs(entries) == packed
    logs = [p for p in (repo / ".git" / "logs").rglob("*") if p.is_file()]
    assert len(logs) >= 6
    for path in logs:
        data = path.read_bytes()
        lines = parse_reflog(data, algo)
        assert lines and b"".join(format_reflog_line(line) for line in lines) == data, path


def test_reflog_lines_git_writes() -> None:
    old, new = bytes(20), bytes.fromhex("11" * 20)
    line = LogLine(old, new, b"A U Thor", b"a@x", 1112354055, -530, b"moved")
    text = b"0" * 40 + b" " + b"11" * 20 + b" A U Thor <a@x> 1112354055 -0530\tmoved\n"
    assert format_reflog_line(line) == text
    assert parse_reflog(text, SHA1) == [line]
    bare = line._replace(message=b"", tz=1400, name=b"")
    assert format_reflog_line(bare) == b"0" * 40 + b" " + b"11" * 20 + b"  <a@x> 1112354055 +1400\n"
    assert parse_reflog(format_reflog_line(bare), SHA1) == [bare]
    garbage = b"not a line\n" + text + b"0" * 40 + b" short <x> 1 +0000\n" + text[:50] + b"\n"
    assert parse_reflog(garbage, SHA1) == [line]


def test_packed_refs_rules() -> None:
    a, b = bytes.fromhex("aa" * 20), bytes.fromhex("bb" * 20)
    entries = [PackedRef("refs/tags/z", a, b), PackedRef("refs/heads/a", b, None)]
    data = format_packed_refs(entries)
    assert data == (
        b"# pack-refs with: peeled fully-peeled sorted \n"
        + b"bb" * 20 + b" refs/heads/a\n" + b"aa" * 20 + b" refs/tags/z\n^" + b"bb" * 20 + b"\n"
    )  # fmt: skip
    old_style = data.split(b"\n", 1)[1]  # no header: peeled ids are not known to be complete
    parsed, fully = parse_packed_refs(old_style, SHA1)
    assert not fully and [e.name for e in parsed] == ["refs/heads/a", "refs/tags/z"]
    assert parse_packed_refs(b"zz junk\n^" + b"aa" * 20 + b"\n", SHA1) == ([], False)
    assert format_loose(oid=a) == b"aa" * 20 + b"\n"
    assert format_loose(target="refs/heads/main") == b"ref: refs/heads/main\n"


async def test_packed_refs_without_fully_peeled_are_peeled_from_objects(
    git: Git, tmp_path: Path
) -> None:
    """An old packed-refs (no header, no ^ lines): the tags are peeled from the object
    database, as git's reftable writer peels."""
    repo = build_source(git, tmp_path / "repo")
    git("pack-refs", "--all", cwd=repo)
    packed = repo / ".git" / "packed-refs"
    body = [ln for ln in packed.read_bytes().splitlines(True)[1:] if not ln.startswith(b"^")]
    packed.write_bytes(b"".join(body))
    before = git_view(git, repo)
    await migrate_refs(repo, to="reftable")
    assert git_view(git, repo)["show-ref"] == before["show-ref"]
    assert before["show-ref"].count("^{}") == 3


CONFIGS = [
    b"[core]\n\trepositoryformatversion = 0\n\tbare = false\n",
    b"[core]\n\trepositoryformatversion = 0\n[extensions]\n\tobjectformat = sha256\n",
    b"[core]\n\trepositoryformatversion = 1\n[extensions]\n\trefstorage = reftable\n",
    b"[core]\n\trepositoryformatversion = 1\n[extensions]\n\trefStorage = reftable\n"
    b"\tobjectformat = sha256\n[user]\n\tname = x\n",
    b"[core]\n\trepositoryformatversion = 1\n[extensions]\n\trelativeworktrees = true\n"
    b"\trefstorage = reftable\n",
    b'[Core]\n\tRepositoryFormatVersion = 0\n[remote "o"]\n\turl = u\n',
]


@pytest.mark.parametrize("config", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_config_edits_are_gits(git_new: Git, tmp_path: Path, config: bytes) -> None:
    """The migration's config settings (git's initialize_repository_version) written as
    `git config` writes them, both directions."""
    algo = SHA256 if b"sha256" in config else SHA1
    for to in ("reftable", "files"):
        if (b"refstorage" in config.lower()) == (to == "reftable"):
            continue  # the repository already uses that format
        settings = _format_settings(config, algo, to)
        path = tmp_path / f"config-{to}"
        path.write_bytes(config)
        for key, value in settings.items():
            if value is None:
                git_new("config", "--file", str(path), "--unset", key)
            else:
                git_new("config", "--file", str(path), key, value)
        assert _edit_config(config, settings) == path.read_bytes(), to
        expected = "1" if algo is SHA256 or to == "reftable" or b"relative" in config else "0"
        assert settings["core.repositoryformatversion"] == expected
