"""The ref store's object database (dulwich) is closed with the store: no open pack files."""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Git

import aioreftable

pytestmark = [pytest.mark.anyio, pytest.mark.git]


def _open_packs() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith((".pack", ".idx")):
            found.add(target)
    return found


async def test_store_exit_closes_the_pack_files(git: Git, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git("init", "-q", "--ref-format=reftable", "-b", "main", str(repo))
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo)
    git("tag", "-a", "-m", "tag", "v1", cwd=repo)
    git("gc", "-q", cwd=repo)  # objects now live in a pack only
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    before = _open_packs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with aioreftable.open_ref_store(repo) as store:
            async with store.transaction(message="x") as tx:
                tx.create("refs/heads/x", head)  # looked up in the pack
                tx.create("refs/tags/v1-copy", git("rev-parse", "v1", cwd=repo).strip())
            assert _open_packs() - before != set()  # dulwich did open the pack
            (tag,) = [r async for r in store.iterate("refs/tags/v1-copy")]
            peeled = tag.peeled
            assert peeled == head
        assert _open_packs() - before == set()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


# -- the public object API (ObjectDatabase, store.objects) -----------------------------------


def _tag_object(git: Git, repo: Path, target: str, kind: str, name: str) -> str:
    """A tag object written as is (no check that ``target`` exists or has type ``kind``)."""
    body = f"object {target}\ntype {kind}\ntag {name}\ntagger T <t@example.com> 0 +0000\n\nx\n"
    return git("hash-object", "-t", "tag", "--literally", "-w", "--stdin", cwd=repo, input=body)


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
async def test_object_api_types_peeling_and_missing_objects(
    git: Git, git_repo: Callable[..., Path], object_format: str
) -> None:
    """Each kind of object, annotated tags (one, a tag of a tag, a chain three deep), tags
    whose chain breaks, and missing ids, against what git says of the same objects."""
    repo = git_repo(object_format=object_format)
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo)
    git("tag", "-a", "-m", "a", "v1", cwd=repo)
    git("tag", "-a", "-m", "b", "v2", "v1", cwd=repo)
    git("tag", "-a", "-m", "c", "v3", "v2", cwd=repo)
    git("tag", "-a", "-m", "tree", "t-tree", "HEAD^{tree}", cwd=repo)
    blob = git("hash-object", "-w", "--stdin", cwd=repo, input="blob\n").strip()
    git("gc", "-q", cwd=repo)  # the commit and tags packed, the objects below loose
    git("tag", "-a", "-m", "blob", "t-blob", blob, cwd=repo)
    ids = {r: git("rev-parse", r, cwd=repo).strip() for r in ("HEAD", "v1", "v2", "v3")}
    ids["tree"] = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    ids["t-tree"] = git("rev-parse", "t-tree", cwd=repo).strip()
    ids["t-blob"] = git("rev-parse", "t-blob", cwd=repo).strip()
    ids["blob"] = blob
    hexsz = 40 if object_format == "sha1" else 64
    missing = "1" * hexsz
    ids["to-missing"] = _tag_object(git, repo, missing, "commit", "m").strip()
    ids["to-missing-tag"] = _tag_object(git, repo, missing, "tag", "mt").strip()
    ids["tag-no-header"] = git(
        "hash-object", "-t", "tag", "--literally", "-w", "--stdin", cwd=repo, input="junk\n"
    ).strip()
    async with aioreftable.open_ref_store(repo) as store:
        objects = store.objects
        assert isinstance(objects, aioreftable.ObjectDatabase)
        assert objects.hash_algorithm is store.hash_algorithm
        assert store.hash_algorithm.hex_size == hexsz == len(store.null_oid)
        for name, oid in ids.items():
            want_type: str | None = git("cat-file", "-t", oid, cwd=repo).strip()
            if name == "tag-no-header":
                want_type = None  # git's parse_object fails: not an object to refs
            assert await objects.object_type(oid) == want_type, name
            assert await objects.contains(oid), name  # has_object does not parse
        assert await objects.object_type(missing) is None
        assert not await objects.contains(missing)
        assert await objects.missing([missing, ids["HEAD"], missing, "2" * hexsz]) == [
            missing,
            "2" * hexsz,
        ]
        # git's peel_object: through every tag, to the first object that is not a tag
        for tag in ("v1", "v2", "v3"):
            assert await objects.peel(ids[tag]) == ids["HEAD"], tag
        assert await objects.peel(ids["t-tree"]) == ids["tree"]
        assert await objects.peel(ids["t-blob"]) == blob
        for oid in (ids["HEAD"], ids["tree"], blob, missing):
            assert await objects.peel(oid) is None
        assert await objects.peel(ids["to-missing"]) == missing  # the header is trusted
        assert await objects.peel(ids["to-missing-tag"]) is None  # the chain breaks
        assert await objects.peel(ids["tag-no-header"]) is None
        assert (await objects.lookup([ids["tag-no-header"]]))[ids["tag-no-header"]] is None
        got = await objects.lookup([ids["v3"], blob, missing])
        assert got == {
            ids["v3"]: aioreftable.ObjectInfo("tag", ids["HEAD"]),
            blob: aioreftable.ObjectInfo("blob", None),
            missing: None,
        }
    for tag in ("v1", "v2", "v3"):
        assert git("rev-parse", f"{tag}^{{}}", cwd=repo).strip() == ids["HEAD"]


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
async def test_object_api_abbreviates_like_git(
    git: Git, git_repo: Callable[..., Path], object_format: str
) -> None:
    """git rev-parse --short=N names the same prefixes, among 1,500 packed and 300 loose
    blobs (many 4-digit prefixes are shared)."""
    repo = git_repo(object_format=object_format)
    stream = "".join(f"blob\nmark :{i}\ndata {len(str(i)) + 1}\n{i}\n" for i in range(1, 1501))
    git("fast-import", "--quiet", cwd=repo, input=stream)
    loose = git(
        "hash-object", "-w", "--stdin-paths", cwd=repo, input=_loose_files(repo, 300)
    ).split()
    packed = git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=repo)
    sample = list(dict.fromkeys(loose[:30] + packed.split()[::60]))
    want = {
        length: {
            oid: git("rev-parse", f"--short={length}", oid, cwd=repo).strip() for oid in sample
        }
        for length in (4, 7)
    }
    assert {len(v) for v in want[4].values()} >= {4, 5}  # not trivial
    async with aioreftable.open_ref_store(repo) as store:
        assert store.objects is not None
        for length in (4, 7):
            assert await store.objects.abbreviations(sample, length) == want[length]
        assert await store.objects.abbreviate(sample[0], 4) == want[4][sample[0]]
        full = len(sample[0])
        assert await store.objects.abbreviate(sample[0], full) == sample[0]
        assert await store.objects.abbreviate(sample[0], full + 10) == sample[0]


def _loose_files(repo: Path, count: int) -> str:
    paths = []
    directory = repo.parent / "loose-files"
    directory.mkdir()
    for i in range(count):
        (directory / f"b{i}").write_text(f"loose {i}\n")
        paths.append(str(directory / f"b{i}"))
    return "\n".join(paths)


async def test_object_api_sees_objects_written_later_and_alternates(
    git: Git, git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """A miss rereads the directories, pack indexes and dulwich's store (git's
    reprepare_packed_git): objects packed or written after the first call are found;
    an alternate's objects count."""
    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo)
    shared = tmp_path / "shared"
    git("clone", "-q", "--shared", "--ref-format=reftable", str(repo), str(shared))
    database = aioreftable.ObjectDatabase(shared / ".git")  # no I/O yet
    try:
        first = git("rev-parse", "HEAD", cwd=repo).strip()
        assert await database.contains(first)  # only in the alternate
        assert await database.object_type(first) == "commit"
        git("commit", "-q", "--allow-empty", "-m", "two", cwd=shared)
        later = git("rev-parse", "HEAD", cwd=shared).strip()
        assert await database.contains(later)
        git("gc", "-q", "--prune=now", cwd=shared)  # now only in a new pack
        assert not (shared / ".git" / "objects" / later[:2] / later[2:]).exists()
        assert await database.contains(later)
        assert await database.object_type(later) == "commit"
    finally:
        await database.aclose()
    assert "ObjectDatabase" in repr(database)


async def test_object_api_refuses_malformed_ids(git: Git, git_repo: Callable[..., Path]) -> None:
    repo = git_repo(object_format="sha256")
    async with aioreftable.open_ref_store(repo) as store:
        objects = store.objects
        assert objects is not None
        for bad in ("1" * 40, "A" * 64, "g" * 64, "", "1" * 65):
            with pytest.raises(aioreftable.InvalidObjectIdError):
                await objects.contains(bad)
            with pytest.raises(ValueError):  # InvalidObjectIdError is also a ValueError
                await objects.peel(bad)
        assert await objects.missing([]) == []
        assert await objects.lookup([]) == {}
    async with aioreftable.open_ref_store(repo, object_database=False) as store:
        assert store.objects is None and store.peeler is None
