"""Refname rules of git (refs.c): check_refname_format, refname_is_safe, the one name check
(require_refname) and worktree routing."""

from __future__ import annotations

from typing import Literal, NamedTuple

from .._errors import RefnameError

__all__ = [
    "NameRule",
    "OtherWorktreeRef",
    "ParsedWorktreeRef",
    "WorktreeKind",
    "WorktreeRef",
    "check_refname_format",
    "is_per_worktree_ref",
    "is_pseudo_ref",
    "is_root_ref_syntax",
    "is_worktree_id",
    "parse_worktree_ref",
    "refname_is_readable",
    "refname_is_safe",
    "reflog_message",
    "require_refname",
]

# git's refname_disposition: 0 ok, 1 end of component, 2 '.', 3 '{', 4 bad, 5 '*'
_DISPOSITION = bytearray(256)
for _c in range(0x20):
    _DISPOSITION[_c] = 4
for _c in b" :?[\\^~\x7f":
    _DISPOSITION[_c] = 4
_DISPOSITION[ord("/")] = 1
_DISPOSITION[ord(".")] = 2
_DISPOSITION[ord("{")] = 3
_DISPOSITION[ord("*")] = 5
_LOCK_SUFFIX = b".lock"
_PSEUDO_REFS = frozenset({"FETCH_HEAD", "MERGE_HEAD"})


def _encode(name: str | bytes) -> bytes:
    return name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")


def _name_bytes(name: str | bytes) -> bytes | None:
    """A name's bytes as stored, or None if it has none (a lone surrogate) or holds a NUL
    (git's C strings end there: ``refs/heads/x\\0y`` would be ``refs/heads/x`` to git)."""
    try:
        raw = _encode(name)
    except UnicodeEncodeError:
        return None
    return None if b"\0" in raw else raw


def check_refname_format(
    name: str | bytes, *, allow_onelevel: bool = False, refspec_pattern: bool = False
) -> bool:
    """git's check_refname_format: True when ``name`` is a valid refname.

    Components are separated by '/'; none may be empty, start with '.', end with '.lock',
    or contain '..', '@{', control characters, space, ':', '?', '[', '\\\\', '^', '~', DEL;
    the name may not be '@' or end with '.'; '*' only once and only with
    ``refspec_pattern``; one component only with ``allow_onelevel``.
    """
    raw = _name_bytes(name)
    if raw is None or raw == b"@":
        return False
    pattern_allowed = refspec_pattern
    components = 0
    start = 0
    n = len(raw)
    while True:
        last = 0
        i = start
        while i < n:
            ch = raw[i]
            disp = _DISPOSITION[ch]
            if disp == 1:
                break
            if disp == 2 and last == 0x2E:  # ".."
                return False
            if disp == 3 and last == 0x40:  # "@{"
                return False
            if disp == 4:
                return False
            if disp == 5:
                if not pattern_allowed:
                    return False
                pattern_allowed = False  # one '*' per refname
            last = ch
            i += 1
        component = raw[start:i]
        if not component or component[0] == 0x2E or component.endswith(_LOCK_SUFFIX):
            return False
        components += 1
        if i >= n:
            break
        start = i + 1
    if raw.endswith(b"."):
        return False
    return allow_onelevel or components >= 2


def refname_is_safe(name: str | bytes) -> bool:
    """git's refname_is_safe (used for deletions): a normalized path below refs/, or an
    all-uppercase/underscore root name. ``../../x`` is not safe, nor is a NUL byte."""
    raw = _name_bytes(name)
    if raw is None:
        return False
    if raw.startswith(b"refs/"):
        rest = raw[5:]
        if not rest or rest.startswith(b"/") or rest.endswith(b"/"):
            return False
        return all(part not in (b"", b".", b"..") for part in rest.split(b"/"))
    return bool(raw) and all(0x41 <= c <= 0x5A or c == 0x5F for c in raw)


def refname_is_readable(name: str | bytes) -> bool:
    """A name some git operation accepts: a valid refname (one level allowed) or a safe one
    (what git reads with RESOLVE_REF_ALLOW_BAD_NAME and deletes). Everything else, NUL
    bytes and ``..`` components included, names nothing."""
    return check_refname_format(name, allow_onelevel=True) or refname_is_safe(name)


#: Which names an operation takes: "format" for names it gives a value (check_refname_format,
#: one level allowed), "safe" for names it deletes or verifies (refname_is_safe), "symref"
#: for names it makes symrefs (both, like update-ref --stdin), "readable" for every name the
#: store routes (either of them).
NameRule = Literal["format", "safe", "symref", "readable"]

_RULES = {
    "format": lambda name: check_refname_format(name, allow_onelevel=True),
    "safe": refname_is_safe,
    "symref": lambda name: (
        check_refname_format(name, allow_onelevel=True) and refname_is_safe(name)
    ),
    "readable": refname_is_readable,
}


def _shown(name: str) -> str:
    return name if name.isprintable() else repr(name)[1:-1]


def require_refname(name: str, rule: NameRule = "readable", *, message: str = "") -> None:
    """The one name check of the ref store: RefnameError unless ``name`` passes ``rule``
    (TypeError for a non-str). ``message`` replaces ``invalid ref name '{name}'``; it may
    use ``{name}`` (shown with control characters escaped)."""
    if not isinstance(name, str):
        raise TypeError(f"a refname is a str, not {type(name).__name__}")
    if not _RULES[rule](name):
        text = (message or "invalid ref name '{name}'").format(name=_shown(name))
        raise RefnameError(text, name)


def is_worktree_id(wid: str) -> bool:
    """One path component that names a linked worktree's directory: a valid one-level
    refname without '/' (never empty, '.', '..' or a NUL)."""
    return "/" not in wid and check_refname_format(wid, allow_onelevel=True)


def is_root_ref_syntax(name: str) -> bool:
    """Only 'A'-'Z', '-' and '_' (HEAD, ORIG_HEAD, CHERRY_PICK_HEAD, ...)."""
    return all("A" <= c <= "Z" or c in "-_" for c in name)


def is_pseudo_ref(name: str) -> bool:
    """FETCH_HEAD and MERGE_HEAD: plain files, never stored in reftable."""
    return name in _PSEUDO_REFS


def is_per_worktree_ref(name: str) -> bool:
    """Refs that belong to one worktree: root refs and refs/{worktree,bisect,rewritten}/."""
    return is_root_ref_syntax(name) or name.startswith(
        ("refs/worktree/", "refs/bisect/", "refs/rewritten/")
    )


#: Where git's parse_worktree_ref puts a name: "current" (this worktree's stack), "main"
#: (``main-worktree/<ref>``: the main worktree's), "other" (``worktrees/<id>/<ref>``: that
#: linked worktree's) or "shared" (the main stack, the name unchanged).
WorktreeKind = Literal["current", "main", "other", "shared"]


class WorktreeRef(NamedTuple):
    """A name of this worktree, the main one or the shared refs, and its name as stored."""

    kind: Literal["current", "main", "shared"]
    worktree: None
    bare: str


class OtherWorktreeRef(NamedTuple):
    """``worktrees/<id>/<ref>``: a per-worktree ref of the linked worktree ``id``."""

    kind: Literal["other"]
    worktree: str  # the worktree id as written (no "/"; WorktreeKey validates it)
    bare: str


#: What parse_worktree_ref returns: ``kind`` tells the variant (only "other" has an id).
ParsedWorktreeRef = WorktreeRef | OtherWorktreeRef


def parse_worktree_ref(name: str) -> ParsedWorktreeRef:
    """git's parse_worktree_ref: (kind, worktree id, name as stored); see WorktreeKind.
    Only the "other" kind names a worktree (``OtherWorktreeRef``)."""
    if name.startswith("worktrees/"):
        rest = name[len("worktrees/") :]
        slash = rest.find("/")
        if slash > 0:
            bare = rest[slash + 1 :]
            if is_per_worktree_ref(bare):
                return OtherWorktreeRef("other", rest[:slash], bare)
        return WorktreeRef("shared", None, name)
    if name.startswith("main-worktree/"):
        bare = name[len("main-worktree/") :]
        if is_per_worktree_ref(bare):
            return WorktreeRef("main", None, bare)
    if is_per_worktree_ref(name):
        return WorktreeRef("current", None, name)
    return WorktreeRef("shared", None, name)


_SPACE = frozenset(b" \t\n\r")


def reflog_message(message: str | bytes, block_size: int) -> bytes:
    """A reflog message as git stores it, without the final LF the writer adds: git's
    copy_reflog_msg (whitespace runs become one space, both ends trimmed), then truncated to
    ``block_size // 2`` bytes like the reftable backend."""
    out = bytearray()
    was_space = True
    for c in _encode(message):
        space = c in _SPACE
        if was_space and space:
            continue
        was_space = space
        out.append(0x20 if space else c)
    while out and out[-1] in _SPACE:
        out.pop()
    return bytes(out[: block_size // 2])
