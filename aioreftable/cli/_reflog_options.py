"""git's parse-options for the `reflog` subcommands: options, abbreviations, messages, usage."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["USAGE", "GitOptionError", "Option", "Parsed", "parse", "print_usage"]


class GitOptionError(Exception):
    """A command line git's parse_options refuses: ``error: <message>`` and, when
    ``usage``, the command's usage with its options; exit 129."""

    def __init__(self, message: str, *, usage: bool = True, usage_to_stdout: bool = False):
        super().__init__(message)
        self.usage = usage
        self.usage_to_stdout = usage_to_stdout  # git prints it there after an ambiguity


class HelpRequested(Exception):
    """``-h``: the usage goes to stdout, exit 129."""


@dataclass(frozen=True)
class Option:
    """One option: a flag (``takes_value`` False, negatable with ``--no-``) or a
    ``--name=<value>`` option (PARSE_OPT_NONEG: no ``--no-`` form)."""

    long: str
    help: str
    short: str | None = None
    takes_value: bool = False
    argh: str = ""  # the value's name in the usage

    def usage_line(self) -> str:
        """The option's line(s) in git's usage_with_options."""
        if self.takes_value:
            head = f"    --{self.long} <{self.argh}>"
        else:
            head = f"    --[no-]{self.long}"
            if self.short:
                head = f"    -{self.short}, --[no-]{self.long}"
        if len(head) <= 25:  # git pads to column 26, else puts the help on its own line
            return f"{head.ljust(26)}{self.help}\n"
        return f"{head}\n{'':26}{self.help}\n"


@dataclass
class Parsed:
    """Options seen (by long name: True/False for flags, the last value for the others;
    ``order`` in command-line order) and the remaining arguments."""

    values: dict[str, bool | str] = field(default_factory=dict)
    order: list[tuple[str, str]] = field(default_factory=list)
    args: list[str] = field(default_factory=list)

    def flag(self, name: str) -> bool:
        return bool(self.values.get(name, False))


_SHOW = "git reflog [show] [<log-options>] [<ref>]"
_LIST = "git reflog list"
_EXISTS = "git reflog exists <ref>"
_WRITE = "git reflog write <ref> <old-oid> <new-oid> <message>"
_DELETE = (
    "git reflog delete [--rewrite] [--updateref]\n"
    "                  [--dry-run | -n] [--verbose] <ref>@{<specifier>}..."
)
_DROP = "git reflog drop [--all [--single-worktree] | <refs>...]"
_EXPIRE = (
    "git reflog expire [--expire=<time>] [--expire-unreachable=<time>]\n"
    "                  [--rewrite] [--updateref] [--stale-fix]\n"
    "                  [--dry-run | -n] [--verbose] [--all [--single-worktree] | <refs>...]"
)

#: git 2.55's usage strings, by subcommand ("" is ``git reflog`` itself).
USAGE: dict[str, tuple[str, ...]] = {
    "": (_SHOW, _LIST, _EXISTS, _WRITE, _DELETE, _DROP, _EXPIRE),
    "show": (_SHOW,),
    "list": (_LIST,),
    "exists": (_EXISTS,),
    "delete": (_DELETE,),
    "drop": (_DROP,),
    "expire": (_EXPIRE,),
}


def _usage_text(command: str, options: Sequence[Option]) -> str:
    out: list[str] = []
    for i, text in enumerate(USAGE[command]):
        lead = "usage: " if i == 0 else "   or: "
        lines = text.split("\n")
        out.append(lead + lines[0] + "\n")
        out.extend(" " * len(lead) + line + "\n" for line in lines[1:])
    out.append("\n")
    if options:
        out.extend(option.usage_line() for option in options)
        out.append("\n")
    return "".join(out)


def print_usage(command: str, options: Sequence[Option], *, to_stdout: bool = False) -> None:
    """git's usage_with_options: stderr for an error, stdout for ``-h``."""
    (sys.stdout if to_stdout else sys.stderr).write(_usage_text(command, options))


def _find_long(arg: str, options: Sequence[Option]) -> tuple[Option, bool]:
    """The option ``--arg`` (without ``=value``) names, exactly or by a unique prefix, and
    whether it is negated (``--no-name``)."""
    exact = [(o, False) for o in options if o.long == arg]
    exact += [(o, True) for o in options if not o.takes_value and f"no-{o.long}" == arg]
    if exact:
        return exact[0]
    found: list[tuple[Option, bool]] = []
    for o in options:
        if o.long.startswith(arg):
            found.append((o, False))
        elif not o.takes_value and f"no-{o.long}".startswith(arg) and arg.startswith("no-"):
            found.append((o, True))
    if len(found) == 1:
        return found[0]
    raise LookupError([f"--{'no-' if neg else ''}{o.long}" for o, neg in found])


def parse(argv: Sequence[str], options: Sequence[Option]) -> Parsed:
    """git's parse_options (no PARSE_OPT_STOP_AT_NON_OPTION): options anywhere before
    ``--``, unique prefixes of long options, ``-h`` for help."""
    parsed = Parsed()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            parsed.args.extend(argv[i:])
            break
        if arg.startswith("--"):
            body = arg[2:]
            name, eq, value = body.partition("=")
            try:
                option, negated = _find_long(name, options)
            except LookupError as e:
                (candidates,) = e.args
                if len(candidates) > 1:
                    raise GitOptionError(
                        f"ambiguous option: {body} (could be {candidates[0]} or {candidates[1]})",
                        usage_to_stdout=True,
                    ) from None
                raise GitOptionError(f"unknown option `{body}'") from None
            if not option.takes_value:
                if eq:
                    raise GitOptionError(f"option `{option.long}' takes no value", usage=False)
                parsed.values[option.long] = not negated
                parsed.order.append((option.long, ""))
                continue
            if not eq:
                if i >= len(argv):
                    raise GitOptionError(f"option `{option.long}' requires a value", usage=False)
                value = argv[i]
                i += 1
            parsed.values[option.long] = value
            parsed.order.append((option.long, value))
            continue
        if arg.startswith("-") and len(arg) > 1:
            for ch in arg[1:]:
                if ch == "h":
                    raise HelpRequested()
                short = [o for o in options if o.short == ch]
                if not short:
                    raise GitOptionError(f"unknown switch `{ch}'")
                parsed.values[short[0].long] = True
                parsed.order.append((short[0].long, ""))
            continue
        parsed.args.append(arg)
    return parsed
