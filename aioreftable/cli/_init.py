"""`aioreftable init`: git init --ref-format=reftable's messages, through init_repo."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import anyio

from .. import RepositoryLayout, UnsupportedRepositoryError, default_branch, discover, init_repo

__all__ = ["add_parser", "run_init"]

FATAL_EXIT = 128
HASHES = ("sha1", "sha256")

# git's advice when the initial branch comes from no option and no config (refs.c, 2.55).
DEFAULT_BRANCH_ADVICE = """\
Using '{0}' as the name for the initial branch. This default branch name
will change to "main" in Git 3.0. To configure the initial branch name
to use in all of your new repositories, which will suppress this warning,
call:

\tgit config --global init.defaultBranch <name>

Names commonly chosen instead of 'master' are 'main', 'trunk' and
'development'. The just-created branch can be renamed via this command:

\tgit branch -m <name>

Disable this message with "git config set advice.defaultBranchName false\""""


def add_parser(sub: Any) -> None:
    """Adds `init` to the subcommands (``sub``: argparse's subparsers action)."""
    p = sub.add_parser(
        "init",
        help="create an empty reftable repository or reinitialize an existing one",
        description="Like git init --ref-format=reftable.",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="be quiet")
    p.add_argument("--bare", action="store_true", help="create a bare repository")
    p.add_argument(
        "-b", "--initial-branch", metavar="NAME", help="override the name of the initial branch"
    )
    p.add_argument("--object-format", metavar="HASH", help="sha1 (the default) or sha256")
    p.add_argument("--ref-format", metavar="FORMAT", help="reftable (the only one made here)")
    p.add_argument("directory", nargs="?", metavar="DIR")
    p.set_defaults(run=run_init)


def _die(message: str) -> int:
    print(f"fatal: {message}", file=sys.stderr)
    return FATAL_EXIT


def _hash_name(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The hash asked for (None: the default or the existing one) or git's error."""
    if args.object_format is not None:
        if args.object_format not in HASHES:
            return None, f"unknown hash algorithm '{args.object_format}'"
        return args.object_format, None
    env = os.environ.get("GIT_DEFAULT_HASH")
    if env:
        if env not in HASHES:
            return None, f"unknown hash algorithm '{env}'"
        return env, None
    return None, None


def _enter(directory: str) -> str | None:
    """chdir into DIR, creating it (and its parents) first as git does; git's error."""
    try:
        os.chdir(directory)
        return None
    except OSError:
        pass
    try:
        os.makedirs(directory, exist_ok=False)
    except OSError as e:
        return f"cannot mkdir {directory}: {e.strerror}"
    try:
        os.chdir(directory)
    except OSError as e:
        return f"cannot chdir to {directory}: {e.strerror}"
    return None


def _existing(git_dir: str) -> RepositoryLayout | None:
    """The repository to re-initialize (git: HEAD is there), None for a new one."""
    if not os.path.lexists(os.path.join(git_dir, "HEAD")):
        return None
    return discover(git_dir)


def run_init(args: argparse.Namespace) -> int:
    if args.ref_format is not None and args.ref_format != "reftable":
        if args.ref_format == "files":
            return _die("aioreftable init makes reftable repositories only")
        return _die(f"unknown ref storage format '{args.ref_format}'")
    if args.directory is not None:
        error = _enter(args.directory)
        if error:
            return _die(error)
    hash_name, error = _hash_name(args)
    if error:
        return _die(error)
    root = os.getcwd()
    git_dir = root if args.bare else os.path.join(root, ".git")
    try:
        existing = _existing(git_dir)
    except UnsupportedRepositoryError:
        return _die("attempt to reinitialize repository with different reference storage format")
    shown = git_dir if git_dir.endswith("/") else git_dir + "/"
    if existing is not None:
        if args.object_format is not None and existing.hash_algorithm.name != hash_name:
            return _die("attempt to reinitialize repository with different hash")
        if args.initial_branch is not None:
            print(f"warning: re-init: ignored --initial-branch={args.initial_branch}",
                  file=sys.stderr)  # fmt: skip
        if not args.quiet:
            print(f"Reinitialized existing Git repository in {shown}")
        return 0
    branch = args.initial_branch  # git: an empty -b is refused, not the default
    if branch is None:  # GIT_TEST_DEFAULT_INITIAL_BRANCH_NAME, else init.defaultBranch
        branch = anyio.run(default_branch)
    if branch is None:
        branch = "master"
        if not args.quiet:
            advice = DEFAULT_BRANCH_ADVICE.format(branch)
            lines = [f"hint: {line}" if line else "hint:" for line in advice.split("\n")]
            print("\n".join(lines), file=sys.stderr)
    anyio.run(_create, root, hash_name or "sha1", branch, args.bare)
    if not args.quiet:
        print(f"Initialized empty Git repository in {shown}")
    return 0


async def _create(root: str, hash_name: str, branch: str, bare: bool) -> None:
    await init_repo(root, object_format=hash_name, initial_branch=branch, bare=bare)
