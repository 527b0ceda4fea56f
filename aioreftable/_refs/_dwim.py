"""git's short ref names: the rev-parse rules (repo_dwim_ref, repo_dwim_log) and their inverse
(refs_shorten_unambiguous_ref), on the one resolve loop of ``RefView``."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from .._errors import RefnameError
from .._stack import Snapshot
from ._core import RefCore, RefView, StackKey, SymrefDepthError, encode_name
from ._refname import check_refname_format

__all__ = [
    "REV_PARSE_RULES",
    "DwimMatch",
    "DwimResult",
    "ambiguous_path",
    "dwim_log",
    "dwim_ref",
    "expand_name",
    "match_rule",
    "resolve_name",
    "shorten",
]

#: git's ref_rev_parse_rules: the full names a short name may stand for, in order of
#: precedence (each a prefix and a suffix around the short name).
REV_PARSE_RULES: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("refs/", ""),
    ("refs/tags/", ""),
    ("refs/heads/", ""),
    ("refs/remotes/", ""),
    ("refs/remotes/", "/HEAD"),
)


@dataclass(frozen=True, slots=True)
class DwimMatch:
    """One rule's full name that resolved: ``name`` as the rule spelled it, ``ref`` the name
    its symrefs lead to (git's ``real_ref``; ``name`` itself for a direct ref, or the
    symref whose target has the reflog, in :func:`dwim_log`), ``oid`` its value."""

    name: str
    ref: str
    oid: str


@dataclass(frozen=True, slots=True)
class DwimResult:
    """What git's repo_dwim_ref / repo_dwim_log found for a short name: the matches in rule
    order (every rule is tried while ``core.warnAmbiguousRefs`` is on, else only up to the
    first match) and git's warnings on the way (``ignoring dangling symref <name>``),
    without the ``warning: `` prefix."""

    short: str
    matches: tuple[DwimMatch, ...]
    warnings: tuple[str, ...] = ()

    @property
    def ref(self) -> str | None:
        """The first match's resolved name (git's ``real_ref``), None when nothing matched."""
        return self.matches[0].ref if self.matches else None

    @property
    def oid(self) -> str | None:
        """The first match's value, None when nothing matched."""
        return self.matches[0].oid if self.matches else None

    @property
    def ambiguous(self) -> bool:
        """More than one rule matched (git's ``refname '<short>' is ambiguous``)."""
        return len(self.matches) > 1


def expand_name(short: str) -> list[str]:
    """git's expand_ref_prefix: the full names ``short`` stands for, in rule order
    (``@`` is HEAD, as git's interpret_empty_at reads it)."""
    name = "HEAD" if short == "@" else short
    return [prefix + name + suffix for prefix, suffix in REV_PARSE_RULES]


def match_rule(refname: str, rule: tuple[str, str]) -> str | None:
    """git's match_parse_rule: the short name ``rule`` would expand to ``refname``, or None."""
    prefix, suffix = rule
    if not refname.startswith(prefix):
        return None
    rest = refname[len(prefix) :]
    if not rest.endswith(suffix):
        return None
    return rest[: len(rest) - len(suffix)]


def ambiguous_path(name: str) -> bool:
    """git's ambiguous_path (get_oid_basic accepts only unambiguous ref paths): a leading
    or trailing slash, an empty component, or a component of dots only."""
    slash = True
    for ch in name:
        if ch == "\0":
            break
        if ch == "/":
            if slash:
                break
            slash = True
        elif ch != ".":
            slash = False
    return slash


def _lookup_view(core: RefCore, scope: AsyncExitStack) -> RefView:
    """A view that reads one snapshot per stack for every name of one lookup (the rules of
    a short name see one state, and each stack is checked for reload once)."""
    taken: dict[StackKey, Snapshot] = {}

    async def snapshot(key: StackKey) -> Snapshot:
        if key not in taken:
            taken[key] = await (await core.stack_for(key, scope)).snapshot()
        return taken[key]

    return RefView(core, snapshot)


async def _resolve(view: RefView, name: str) -> tuple[str | None, str | None, bool]:
    """:func:`resolve_name` on ``view``."""
    try:
        last, ref = await view.resolve(name)
    except SymrefDepthError:
        return None, None, True
    except RefnameError:  # an unreadable name, or another worktree that does not exist
        return None, None, False
    if last is None:  # malformed: ``name`` itself (no symref followed) or one on the way
        return None, None, check_refname_format(name, allow_onelevel=True)
    return last, None if ref is None else ref.oid, last != name


async def resolve_name(core: RefCore, name: str) -> tuple[str | None, str | None, bool]:
    """git's refs_resolve_ref_unsafe(RESOLVE_REF_READING) with its flag REF_ISSYMREF: (the
    name the chain of symrefs reached, its value, whether a symref was followed). The
    value is None for a missing or dangling ref; the name is None for a malformed name
    (``name`` itself, or one on the way) or a chain past git's depth."""
    async with AsyncExitStack() as scope:
        return await _resolve(_lookup_view(core, scope), name)


async def dwim_ref(core: RefCore, short: str, *, warn_ambiguous: bool = True) -> DwimResult:
    """git's repo_dwim_ref: each rule's full name resolved; a dangling symref other than
    HEAD is skipped with git's warning; with ``warn_ambiguous`` (core.warnAmbiguousRefs)
    every rule is tried, else the first match ends the search."""
    matches: list[DwimMatch] = []
    warnings: list[str] = []
    async with AsyncExitStack() as scope:
        view = _lookup_view(core, scope)
        for full in expand_name(short):
            last, oid, via_symref = await _resolve(view, full)
            if last is not None and oid is not None:
                matches.append(DwimMatch(full, last, oid))
                if not warn_ambiguous:
                    break
            elif via_symref and full != "HEAD":
                warnings.append(f"ignoring dangling symref {full}")
    return DwimResult(short, tuple(matches), tuple(warnings))


async def _has_reflog(core: RefCore, name: str) -> bool:
    """git's refs_reflog_exists (an existence marker counts)."""
    try:
        key, bare = core.route(name)
    except RefnameError:
        return False
    async with AsyncExitStack() as scope:
        try:
            snapshot = await (await core.stack_for(key, scope)).snapshot()
        except RefnameError:
            return False
        return next(iter(snapshot.iter_logs(encode_name(bare))), None) is not None


async def dwim_log(core: RefCore, short: str, *, warn_ambiguous: bool = True) -> DwimResult:
    """git's repo_dwim_log: each rule's full name that resolves and has a reflog, or whose
    symref chain reaches a name with one (then ``ref`` is that name); the first match ends
    the search unless ``warn_ambiguous``. No warnings (git prints none here)."""
    matches: list[DwimMatch] = []
    for full in expand_name(short):
        last, oid, _ = await resolve_name(core, full)
        if last is None or oid is None:
            continue
        if await _has_reflog(core, full):
            found = full
        elif last != full and await _has_reflog(core, last):
            found = last
        else:
            continue
        matches.append(DwimMatch(full, found, oid))
        if not warn_ambiguous:
            break
    return DwimResult(short, tuple(matches))


async def _ref_exists(core: RefCore, name: str) -> bool:
    """git's refs_ref_exists: ``name`` resolves to a value (a dangling symref does not)."""
    return (await resolve_name(core, name))[1] is not None


async def shorten(core: RefCore, refname: str, *, strict: bool = False) -> str:
    """git's refs_shorten_unambiguous_ref: the shortest name the rules expand back to
    ``refname`` (``refs/heads/main`` -> ``main``) while no rule of higher precedence (with
    ``strict``: no other rule at all) names an existing ref; ``refname`` itself otherwise."""
    for i in range(len(REV_PARSE_RULES) - 1, 0, -1):
        short = match_rule(refname, REV_PARSE_RULES[i])
        if short is None:
            continue
        rules_to_fail = len(REV_PARSE_RULES) if strict else i
        for j in range(rules_to_fail):
            if j == i:
                continue
            prefix, suffix = REV_PARSE_RULES[j]
            if await _ref_exists(core, prefix + short + suffix):
                break
        else:
            return short
    return refname
