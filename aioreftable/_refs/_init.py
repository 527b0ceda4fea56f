"""init_repo: create a reftable repository laid out exactly as `git init --template=` does."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import anyio
import anyio.to_thread

from .. import _repo_io as repo_io
from .._errors import RefnameError
from .._format._layout import SHA1, HashAlgorithm
from .._format._records import RefRecord
from .._repo import RepositoryLayout, discover
from .._stack import open_stack
from ._config import load_config, read_config_outside
from ._refname import check_refname_format

__all__ = ["default_branch", "init_repo"]

STUB_HEAD = "ref: refs/heads/.invalid\n"
STUB_REFS_HEADS = "this repository uses the reftable format\n"


def _config_text(algo: HashAlgorithm, bare: bool) -> str:
    core = "[core]\n\trepositoryformatversion = 1\n\tfilemode = true\n"
    core += "\tbare = true\n" if bare else "\tbare = false\n\tlogallrefupdates = true\n"
    ext = "[extensions]\n"
    if algo != SHA1:  # git writes objectformat only for a hash other than its default
        ext += f"\tobjectformat = {algo.name}\n"
    return core + ext + "\trefstorage = reftable\n"


def _layout_files(git_dir: Path, algo: HashAlgorithm, bare: bool) -> None:
    """Everything but the stack (one thread hop)."""
    files = {
        "HEAD": STUB_HEAD,
        "refs/heads": STUB_REFS_HEADS,
        "config": _config_text(algo, bare),
    }
    repo_io.write_files(git_dir, ["objects/info", "objects/pack", "refs"], files)


async def default_branch(env: Mapping[str, str] | None = None) -> str | None:
    """The branch ``git init`` names when not told (git's repo_default_branch_name):
    ``GIT_TEST_DEFAULT_INITIAL_BRANCH_NAME``, else ``init.defaultBranch`` from the config git
    reads outside a repository (system, global, command line); None when neither is set
    (git then takes ``master`` and prints its advice). A name git refuses raises
    ``RefnameError("invalid branch name: init.defaultBranch = <name>")``."""
    env = os.environ if env is None else env
    name = env.get("GIT_TEST_DEFAULT_INITIAL_BRANCH_NAME") or None
    if name is None:
        entries = await anyio.to_thread.run_sync(read_config_outside, env)
        for entry in entries:
            if entry.key == "init.defaultbranch":
                name = entry.value  # the last one wins
        if name is None:
            return None
    if not check_refname_format(f"refs/heads/{name}"):
        raise RefnameError(f"invalid branch name: init.defaultBranch = {name}", name)
    return name


def _existing(git_dir: Path) -> RepositoryLayout | None:
    """The repository already at ``git_dir`` (re-init keeps it), None if there is none; a
    repository of another ref format raises UnsupportedRepositoryError (thread)."""
    return discover(git_dir) if repo_io.exists(git_dir / "config") else None


async def init_repo(
    path: str | os.PathLike[str],
    object_format: str = "sha1",
    initial_branch: str = "main",
    bare: bool = False,
) -> RepositoryLayout:
    """Create a reftable repository at ``path`` (``path/.git`` unless ``bare``) that git
    accepts: config with ``extensions.refStorage``, the HEAD and refs/heads stubs, objects/,
    and a first table holding HEAD -> refs/heads/<initial_branch> at update index 1.

    An existing reftable repository is left as it is (git's re-init keeps refs); a
    repository of another ref format is refused."""
    algo = HashAlgorithm.by_name(object_format)  # ValueError for an unknown one
    target = f"refs/heads/{initial_branch}"
    if not check_refname_format(target):
        raise RefnameError(f"invalid initial branch name: '{initial_branch}'", target)
    root = Path(path)
    git_dir = root if bare else root / ".git"
    existing = await anyio.to_thread.run_sync(_existing, git_dir)
    if existing is not None:
        return existing
    await anyio.to_thread.run_sync(_layout_files, git_dir, algo, bare)
    layout = await anyio.to_thread.run_sync(discover, git_dir)
    config = await anyio.to_thread.run_sync(load_config, layout)
    async with open_stack(layout.main_stack, config.stack_options(), create=True) as stack:
        if len(await stack.snapshot()) == 0:
            async with stack.addition() as add:
                add.writer.add_ref(
                    RefRecord.symref(b"HEAD", add.update_index, target.encode("utf-8"))
                )
    if not bare:
        layout = await anyio.to_thread.run_sync(discover, root)
    return layout
