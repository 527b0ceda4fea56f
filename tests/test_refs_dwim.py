"""git's short names and abbreviated ids in RefStore (dwim_ref, dwim_log, shorten,
resolve_name, get_oid, objects.expand_prefix) against git 2.47 on SHA-1 and SHA-256."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from conftest import Git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioreftable import InvalidObjectIdError, RefStore, open_ref_store
from aioreftable._refs._dwim import ambiguous_path, expand_name, match_rule

pytestmark = pytest.mark.anyio

FORMATS = ["sha1", "sha256"]


def _init(git: Git, path: Path, fmt: str) -> Path:
    git("init", "-q", "--ref-format=reftable", f"--object-format={fmt}", "-b", "main", str(path))
    return path


def _stdin(git: Git, repo: Path, lines: list[str]) -> None:
    git("update-ref", "--stdin", cwd=repo, input="".join(line + "\n" for line in lines))


def _scenario(git: Git, tmp_path: Path, fmt: str) -> tuple[Path, dict[str, str]]:
    """A repository whose names collide across the rules, with reflogs and symrefs."""
    repo = _init(git, tmp_path / f"dwim-{fmt}", fmt)
    oids: dict[str, str] = {}
    for n in range(3):
        git("commit", "-q", "--allow-empty", "-m", f"c{n}", cwd=repo)
        oids[f"c{n}"] = git("rev-parse", "HEAD", cwd=repo).strip()
    c0, c1, c2 = oids["c0"], oids["c1"], oids["c2"]
    git("tag", "-a", "-m", "annotated", "v1", c0, cwd=repo)
    git("tag", "v2", c1, cwd=repo)
    _stdin(
        git,
        repo,
        [
            f"create refs/heads/topic {c1}",
            f"create refs/topic {c2}",  # refs/%s wins over refs/heads/%s
            f"create refs/heads/v1 {c2}",  # a branch and a tag named alike
            f"create refs/remotes/origin/main {c1}",
            f"create refs/remotes/origin/topic {c0}",
            f"create refs/remotes/up/HEAD {c2}",
            f"create refs/heads/{c0[:7]} {c1}",  # a branch named like an abbreviated id
            f"create refs/heads/{c1} {c2}",  # a branch named like a full id
            f"create refs/heads/remotes/origin/main {c0}",
            f"create refs/heads/deep/x {c2}",
            f"create refs/tags/heads/x {c0}",
        ],
    )
    for name, target in [
        ("refs/remotes/origin/HEAD", "refs/remotes/origin/main"),
        ("refs/heads/sym", "refs/heads/main"),
        ("refs/heads/chain", "refs/heads/sym"),
        ("refs/heads/gone", "refs/heads/nowhere"),
        ("refs/remotes/lost/HEAD", "refs/remotes/lost/main"),
        ("refs/tags/dangling", "refs/tags/none"),
    ]:
        git("symbolic-ref", name, target, cwd=repo)
    quiet = ["-c", "core.logAllRefUpdates=false", "symbolic-ref"]
    git(*quiet, "refs/heads/quiet", "refs/heads/main", cwd=repo)  # no reflog of its own
    git(*quiet, "refs/heads/quieter", "refs/heads/quiet", cwd=repo)
    return repo, oids


def _names(oids: dict[str, str]) -> list[str]:
    c0, c1 = oids["c0"], oids["c1"]
    return [
        "main", "topic", "v1", "v2", "origin", "origin/main", "origin/topic", "up", "lost",
        "gone", "sym", "chain", "dangling", "nothing", "HEAD", "@", "@@", "refs/heads/main",
        "heads/main", "tags/v1", "remotes/origin/main", "remotes/origin", "heads/x", "deep",
        "deep/x", "refs/topic", "refs", "heads", c0[:7], c0[:4], c0[:6], c1, c1.upper(),
        c0.upper()[:8], c0, "main/", "/main", "ma//in", "deep/.", "..", "main~1", "v1^{}",
        "main@{0}", "", "ORIG_HEAD", "FETCH_HEAD", "worktrees/nope/HEAD", "main.lock",
        "refs/heads/../x",
    ]  # fmt: skip


async def _ours(store: RefStore, name: str) -> tuple[str, str]:
    found = await store.get_oid(name)
    out = "" if found.oid is None else found.oid + "\n"
    return out, "".join(m.render() for m in found.messages)


def _theirs(git: Git, repo: Path, name: str) -> tuple[str, str]:
    proc = git.run("rev-parse", "--verify", "--end-of-options", name, cwd=repo, check=False)
    err = proc.stderr.decode()
    err = err.removesuffix("fatal: Needed a single revision\n")
    # git 2.55's advice names `git config set`; 2.47's said `git config`
    err = err.replace('running "git config advice.', 'running "git config set advice.')
    return proc.stdout.decode(), err


@pytest.mark.parametrize("fmt", FORMATS)
async def test_get_oid_and_dwim_ref_answer_as_git_rev_parse(
    git: Git, tmp_path: Path, fmt: str
) -> None:
    repo, oids = _scenario(git, tmp_path, fmt)
    names = _names(oids)
    async with open_ref_store(repo) as store:
        for name in names:
            if _revision_syntax(name):  # not the library's: it names nothing there
                assert (await store.get_oid(name)).oid is None
                continue
            assert await _ours(store, name) == _theirs(git, repo, name), name
            full = git.run("rev-parse", "--symbolic-full-name", name, cwd=repo, check=False)
            found = await store.dwim_ref(name)
            if found.ambiguous:
                assert f"error: refname '{name}' is ambiguous\n" in full.stderr.decode()
                assert full.stdout == b"", name
            elif found.matches and not _revision_syntax(name):
                assert full.stdout.decode() == f"{found.ref}\n", name
            elif not _revision_syntax(name) and full.returncode == 0:
                assert full.stdout.decode() in ("", f"{name}\n", f"{found.ref}\n"), name


def _revision_syntax(name: str) -> bool:
    return any(c in name for c in "~^:") or "@{" in name


@pytest.mark.parametrize("fmt", FORMATS)
async def test_dwim_warnings_and_matches(git: Git, tmp_path: Path, fmt: str) -> None:
    repo, oids = _scenario(git, tmp_path, fmt)
    async with open_ref_store(repo) as store:
        v1 = await store.dwim_ref("v1")
        assert [m.name for m in v1.matches] == ["refs/tags/v1", "refs/heads/v1"]
        assert v1.ambiguous and v1.ref == "refs/tags/v1"
        assert (await store.dwim_ref("v1", warn_ambiguous=False)).matches == v1.matches[:1]
        origin = await store.dwim_ref("origin")
        assert [(m.name, m.ref) for m in origin.matches] == [
            ("refs/remotes/origin/HEAD", "refs/remotes/origin/main")
        ]
        lost = await store.dwim_ref("lost")
        assert lost.matches == () and lost.warnings == (
            "ignoring dangling symref refs/remotes/lost/HEAD",
        )
        chain = await store.dwim_ref("chain")
        assert chain.ref == "refs/heads/main" and chain.oid == oids["c2"]
        assert await store.resolve_name("refs/heads/chain") == ("refs/heads/main", oids["c2"])
        assert await store.resolve_name("refs/heads/gone") == ("refs/heads/nowhere", None)
        assert await store.resolve_name("refs/heads/nothing") == ("refs/heads/nothing", None)
        assert await store.resolve_name("refs/heads/../x") == (None, None)
        assert await store.resolve_name("worktrees/nope/HEAD") == (None, None)
        assert (await store.dwim_ref("@")).ref == "refs/heads/main"
        assert store.expand_name("x") == [
            "x", "refs/x", "refs/tags/x", "refs/heads/x", "refs/remotes/x",
            "refs/remotes/x/HEAD",
        ]  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
async def test_shorten_as_for_each_ref_and_rev_parse_abbrev_ref(
    git: Git, tmp_path: Path, fmt: str
) -> None:
    repo, _ = _scenario(git, tmp_path, fmt)
    strict = git("for-each-ref", "--format=%(refname)%00%(refname:short)", cwd=repo)
    pairs = [line.split("\0") for line in strict.splitlines()]
    async with open_ref_store(repo) as store:
        for full, short in pairs:
            assert await store.shorten(full, strict=True) == short, full
            # rev-parse --abbrev-ref shortens the name a symref resolves to
            loose = git.run("rev-parse", "--abbrev-ref=loose", full, cwd=repo, check=False)
            resolved = (await store.dwim_ref(full)).ref
            if resolved is None:
                assert loose.returncode == 128, full
            else:
                assert await store.shorten(resolved) + "\n" == loose.stdout.decode(), full
        # symbolic-ref --short uses the loose rules
        for sym in ["refs/heads/sym", "refs/remotes/origin/HEAD"]:
            ours = await store.shorten((await store.read(sym)).target or "")  # type: ignore[union-attr]
            assert ours + "\n" == git("symbolic-ref", "--short", sym, cwd=repo)
        assert await store.shorten("refs/remotes/HEAD") == "remotes/HEAD"
        assert await store.shorten("HEAD") == "HEAD"


def _object_bytes(kind: str, body: bytes, fmt: str) -> str:
    h = hashlib.sha1 if fmt == "sha1" else hashlib.sha256
    return h(f"{kind} {len(body)}\0".encode() + body).hexdigest()


def _colliding(kind: str, prefix: str, fmt: str, make: object) -> bytes:
    """A body of ``kind`` whose id starts with ``prefix`` (brute force, deterministic)."""
    assert callable(make)
    for i in range(2_000_000):
        body: bytes = make(i)
        if _object_bytes(kind, body, fmt).startswith(prefix):
            return body
    raise AssertionError("no collision")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_abbreviated_ids_loose_and_packed(git: Git, tmp_path: Path, fmt: str) -> None:
    repo = _init(git, tmp_path / f"ab-{fmt}", fmt)
    git("commit", "-q", "--allow-empty", "-m", "root", cwd=repo)
    tree = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    paths = tmp_path / "blobs"
    paths.mkdir()
    for i in range(400):
        (paths / str(i)).write_text(f"blob {i}\n")
    ids = git("hash-object", "-w", *(str(paths / str(i)) for i in range(400)), cwd=repo).split()
    assert len(ids) == 400
    # the first 400 in a pack of their own (unreachable: repack would leave them loose)
    pack = repo / ".git" / "objects" / "pack" / "pack"
    git("pack-objects", "-q", str(pack), cwd=repo, input="".join(i + "\n" for i in ids))
    git("prune-packed", cwd=repo)
    assert not (repo / ".git" / "objects" / ids[0][:2] / ids[0][2:]).exists()
    target = ids[0][:4]
    author = "A U Thor <author@example.com> 1112354055 +0200"
    commit = _colliding(
        "commit",
        target,
        fmt,
        lambda i: (
            f"tree {tree}\nauthor {author}\ncommitter {author}\n\nsubject {i}\n  second line \n"
            f"\nbody\n"
        ).encode(),
    )
    tag = _colliding(
        "tag",
        target,
        fmt,
        lambda i: (f"object {ids[1]}\ntype blob\ntag t{i}\ntagger {author}\n\nmessage\n").encode(),
    )
    for kind, body in [("commit", commit), ("tag", tag)]:
        git("hash-object", "-t", kind, "-w", "--stdin", cwd=repo, input=body)
    for i in range(400, 700):  # loose ones
        (paths / str(i)).write_text(f"blob {i}\n")
    git("hash-object", "-w", *(str(paths / str(i)) for i in range(400, 700)), cwd=repo)
    everything = git("rev-parse", f"--disambiguate={target}", cwd=repo).split()
    assert len(everything) >= 3
    async with open_ref_store(repo) as store:
        assert store.objects is not None
        prefixes = {target, target.upper()} | {i[:n] for i in ids[::37] for n in (4, 5, 9)}
        prefixes |= {"0000", "ffff", "abcd", "1234"}
        for prefix in sorted(prefixes):
            theirs = git("rev-parse", f"--disambiguate={prefix}", cwd=repo).split()
            assert await store.objects.expand_prefix(prefix) == sorted(theirs), prefix
            assert await _ours(store, prefix) == _theirs(git, repo, prefix), prefix
        every = git(
            "cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=repo
        ).split()
        for digits in (ids[5][:1], ids[5][:2], ids[5][:3]):  # below git's 4: all objects
            assert await store.objects.expand_prefix(digits) == sorted(
                x for x in every if x.startswith(digits)
            )
        assert await store.objects.expand_prefix(ids[5]) == [ids[5]]
        rng = random.Random(fmt)  # random prefixes of 1 to 9 digits, either case
        for _ in range(200):
            digits = "".join(rng.choice("0123456789abcdef") for _ in range(rng.randint(1, 9)))
            if rng.random() < 0.5:  # most random prefixes match nothing: take a real one
                digits = rng.choice(every)[: len(digits)]
            wanted = sorted(x for x in every if x.startswith(digits))
            assert await store.objects.expand_prefix(digits.upper()) == wanted, digits
        for prefix in [rng.choice(every)[: rng.randint(4, 6)] for _ in range(15)]:
            assert await _ours(store, prefix) == _theirs(git, repo, prefix), prefix
        for bad in ["", "xyz", "0" * 65]:
            with pytest.raises(InvalidObjectIdError):
                await store.objects.expand_prefix(bad)
        found = await store.get_oid(target)
        assert found.ambiguous and found.oid is None
        # a name that is a branch and a unique abbreviation: git's warning
        unique = ids[100][:8]
        git("update-ref", f"refs/tags/{unique}", ids[0], cwd=repo)
        assert await _ours(store, unique) == _theirs(git, repo, unique)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_dwim_log_as_git_reflog(git: Git, tmp_path: Path, fmt: str) -> None:
    repo, _ = _scenario(git, tmp_path, fmt)
    async with open_ref_store(repo) as store:
        assert (await store.dwim_log("main")).ref == "refs/heads/main"
        assert (await store.dwim_log("quiet")).ref == "refs/heads/main"
        assert (await store.dwim_log("quieter")).ref == "refs/heads/main"
        assert (await store.dwim_log("gone")).matches == ()
        assert (await store.dwim_log("@")).ref == "HEAD"
        v1 = await store.dwim_log("v1")
        assert [m.ref for m in v1.matches] == ["refs/heads/v1"]  # a tag has no reflog
        for name in ["main", "topic", "origin/main", "chain", "sym", "quiet", "quieter", "@"]:
            ours = await store.reflog((await store.dwim_log(name)).ref or "")
            theirs = git("reflog", "show", "--format=%H", name, cwd=repo).split()
            assert [e.new for e in ours] == theirs, name


def test_pure_rules() -> None:
    assert expand_name("@") == expand_name("HEAD")
    assert match_rule("refs/remotes/HEAD", ("refs/remotes/", "/HEAD")) is None
    assert match_rule("refs/remotes/o/HEAD", ("refs/remotes/", "/HEAD")) == "o"
    assert match_rule("refs/heads/x", ("refs/tags/", "")) is None
    for name, ambiguous in [
        ("main", False), ("a/b", False), ("/a", True), ("a/", True), ("a//b", True),
        ("a/./b", True), ("a/..", True), ("..", True), (".a", False), ("a/.b", False), ("", True),
    ]:  # fmt: skip
        assert ambiguous_path(name) is ambiguous, name


_COMPONENT = st.sampled_from(["a", "b", "HEAD", "main", "x1"])
_SPACES = st.sampled_from(["", "refs/", "refs/heads/", "refs/tags/", "refs/remotes/"])


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    names=st.sets(
        st.tuples(_SPACES, st.lists(_COMPONENT, min_size=1, max_size=2).map(tuple)),
        min_size=1,
        max_size=8,
    )
)
def test_random_names_shorten_and_dwim_as_git(
    git: Git, tmp_path_factory: pytest.TempPathFactory, names: set[tuple[str, tuple[str, ...]]]
) -> None:
    import anyio

    repo = _init(git, tmp_path_factory.mktemp("hyp") / "r", "sha1")
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=repo)
    fulls = sorted({space + "/".join(parts) for space, parts in names})
    fulls = [f for f in fulls if f.startswith("refs/") and f.count("/") >= 1]
    for full in fulls:  # one by one: a D/F conflict with an earlier name is skipped
        git.run("update-ref", full, "HEAD", cwd=repo, check=False)
    shorts = git("for-each-ref", "--format=%(refname)%00%(refname:short)", cwd=repo)
    probes = {"/".join(p) for _, p in names} | {"main", "HEAD", "refs/heads/main", "@"}
    probes |= {f"{space}{p}" for p in list(probes) for space in ("heads/", "tags/", "remotes/")}

    async def check() -> None:
        async with open_ref_store(repo) as store:
            for line in shorts.splitlines():
                full, short = line.split("\0")
                assert await store.shorten(full, strict=True) == short
                loose = git("rev-parse", "--abbrev-ref=loose", full, cwd=repo)
                assert await store.shorten(full) + "\n" == loose
            for probe in sorted(probes):
                assert await _ours(store, probe) == _theirs(git, repo, probe), probe

    anyio.run(check)
