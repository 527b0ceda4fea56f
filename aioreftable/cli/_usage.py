"""git's usage conventions for argparse: `-h` prints to stdout, usage errors exit 129."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, NoReturn

__all__ = ["USAGE_EXIT", "GitArgumentParser", "GitUsageError", "HelpShown"]

USAGE_EXIT = 129  # git's exit status for usage errors and for -h


class GitUsageError(Exception):
    """A command line git would refuse with ``error: ...`` and its usage text."""

    def __init__(
        self, message: str, parser: argparse.ArgumentParser | None = None, *, usage: bool = True
    ):
        super().__init__(message)
        self.parser = parser
        self.usage = usage  # git prints no usage after a bad option value


class HelpShown(Exception):
    """``-h`` was given: the help text is printed, the exit status is git's 129."""


_UNRECOGNIZED = re.compile(r"unrecognized arguments: (\S+)")


def _git_message(message: str) -> str:
    """argparse's wording in git's: unknown options name the option as git does."""
    m = _UNRECOGNIZED.match(message)
    if m:
        word = m.group(1)
        if word.startswith("--"):
            return f"unknown option `{word[2:]}'"
        if word.startswith("-") and len(word) > 1:
            return f"unknown switch `{word[1]}'"
        return f"unexpected argument '{word}'"
    return message


class GitArgumentParser(argparse.ArgumentParser):
    """Raises instead of exiting, so the entry point decides output and status like git."""

    # the destination and the parsers of this parser's subcommands (None: it has none)
    subcommands: tuple[str, dict[str, GitArgumentParser]] | None = None

    def add_subparsers(self, **kwargs: Any) -> Any:
        action = super().add_subparsers(**kwargs)
        self.subcommands = (kwargs.get("dest") or "", action.choices)
        return action

    def innermost(self, args: argparse.Namespace) -> GitArgumentParser:
        """The parser of the (sub)subcommand ``args`` was parsed for, for its usage line."""
        where = self
        while where.subcommands is not None:
            dest, choices = where.subcommands
            name = getattr(args, dest, None)
            if not isinstance(name, str) or name not in choices:
                break
            where = choices[name]
        return where

    def error(self, message: str) -> NoReturn:
        raise GitUsageError(_git_message(message), self)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        if status == 0:
            raise HelpShown()  # only the help action exits with 0
        raise GitUsageError(message or "usage error", self)  # pragma: no cover
