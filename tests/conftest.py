"""Shared fixtures: test data, the real git used for interop tests, anyio backends."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path

import pytest
from blocking_check import Detector

DATA = Path(__file__).parent / "data"
MIN_GIT = (2, 45)

# Fixed identity and dates so that git's and our outputs are comparable.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "A U Thor",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "C O Mitter",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_AUTHOR_DATE": "1112354055 +0200",
    "GIT_COMMITTER_DATE": "1112354055 +0200",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
    "LANG": "C",
    "TZ": "UTC",
}


def _git_version(path: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def find_git() -> tuple[str | None, str]:
    """The git to test against and a reason when there is none."""
    candidates = []
    env = os.environ.get("AIOREFTABLE_TEST_GIT")
    if env:
        candidates.append(env)
    on_path = shutil.which("git")
    if on_path:
        candidates.append(on_path)
    for cand in candidates:
        version = _git_version(cand)
        if version is not None and version >= MIN_GIT:
            return cand, ""
    return None, (
        f"no git >= {'.'.join(map(str, MIN_GIT))} (set AIOREFTABLE_TEST_GIT; tried {candidates})"
    )


_GIT, _GIT_REASON = find_git()


class Git:
    """Runs the test git with a fixed environment; ``git(*args, cwd=...)`` returns stdout."""

    def __init__(self, path: str):
        self.path = path
        self.env = {**os.environ, **GIT_ENV}

    def run(
        self,
        *args: str,
        cwd: str | os.PathLike[str] | None = None,
        input: str | bytes | None = None,
        check: bool = True,
        env: Mapping[str, str | None] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """``env`` adds to the fixed environment; a key mapped to None is removed from it
        (e.g. ``GIT_CONFIG_GLOBAL=None`` lets git read a test's own global config)."""
        data = input.encode() if isinstance(input, str) else input
        merged = {**self.env, **(env or {})}
        proc = subprocess.run(
            [self.path, *args],
            cwd=cwd,
            input=data,
            capture_output=True,
            env={k: v for k, v in merged.items() if v is not None},
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stderr.decode(errors='replace')}"
            )
        return proc

    def __call__(self, *args: str, **kw: object) -> str:
        return self.run(*args, **kw).stdout.decode()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def git() -> Git:
    """A real git >= 2.45; skips without one unless AIOREFTABLE_REQUIRE_GIT=1 (then fails)."""
    if _GIT is None:
        if os.environ.get("AIOREFTABLE_REQUIRE_GIT") == "1":
            pytest.fail(f"AIOREFTABLE_REQUIRE_GIT=1 but {_GIT_REASON}")
        pytest.skip(_GIT_REASON)
    return Git(_GIT)


MIN_GIT_NEW = (2, 52)


def find_git_new() -> tuple[str | None, str]:
    """The newer git (AIOREFTABLE_TEST_GIT_NEW, from scripts/ensure-git-new.sh) and a
    reason when there is none."""
    env = os.environ.get("AIOREFTABLE_TEST_GIT_NEW")
    want = ".".join(map(str, MIN_GIT_NEW))
    if not env:
        return (
            None,
            f"AIOREFTABLE_TEST_GIT_NEW is not set (a git >= {want}: scripts/ensure-git-new.sh)",
        )
    version = _git_version(env)
    if version is None or version < MIN_GIT_NEW:
        return None, f"AIOREFTABLE_TEST_GIT_NEW={env} is not a git >= {want} (version {version})"
    return env, ""


@pytest.fixture(scope="session")
def git_new() -> Git:
    """A real git >= 2.52 (AIOREFTABLE_TEST_GIT_NEW) for features the main test git lacks;
    skips without one unless AIOREFTABLE_REQUIRE_GIT=1 (then fails)."""
    path, reason = find_git_new()
    if path is None:
        if os.environ.get("AIOREFTABLE_REQUIRE_GIT") == "1":
            pytest.fail(f"AIOREFTABLE_REQUIRE_GIT=1 but {reason}")
        pytest.skip(reason)
    return Git(path)


@pytest.fixture
def git_repo(git: Git, tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``git_repo(name="repo", object_format="sha1", bare=False)`` -> path."""

    def make(name: str = "repo", object_format: str = "sha1", bare: bool = False) -> Path:
        path = tmp_path / name
        args = [
            "init",
            "-q",
            "--ref-format=reftable",
            f"--object-format={object_format}",
            "-b",
            "main",
        ]
        if bare:
            args.append("--bare")
        git(*args, str(path))
        return path

    return make


@pytest.fixture(autouse=True)
def _hermetic_git_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The library reads git's config layers from ``os.environ`` like git does: give it the
    same system/global config as the git runner (none), so that a developer's
    ``~/.gitconfig`` changes neither side. Tests of the layers pass their own ``env``."""
    for key, value in GIT_ENV.items():
        if key.startswith("GIT_CONFIG_"):
            monkeypatch.setenv(key, value)
    yield


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Notes a failed call: the detector then reports at teardown only what it did not show."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture(scope="session")
def _blocking_detector() -> Iterator[Detector]:
    detector = Detector()
    detector.activate()
    try:
        yield detector
    finally:
        detector.deactivate()


@pytest.fixture(autouse=True)
def blocking_detector(
    request: pytest.FixtureRequest, _blocking_detector: Detector
) -> Iterator[Detector]:
    """Every test runs with the blocking-call detector (tests/blocking_check.py): library code
    that blocks the event loop thread (asyncio or trio) fails the test, even when the
    library swallowed the BlockingCallError."""
    start = len(_blocking_detector.violations)
    yield _blocking_detector
    found = _blocking_detector.violations[start:]
    del _blocking_detector.violations[start:]
    if found and not request.node.stash.get(_CALL_FAILED, False):
        pytest.fail("blocking calls on the event loop:\n" + "\n".join(found), pytrace=False)
