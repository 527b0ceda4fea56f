"""Refname rules of git (refs.c): check_refname_format, refname_is_safe, worktree routing."""

from __future__ import annotations

__all__ = [
    "check_refname_format",
    "is_per_worktree_ref",
    "is_pseudo_ref",
    "is_root_ref_syntax",
    "parse_worktree_ref",
    "refname_is_safe",
    "reflog_message",
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


def check_refname_format(
    name: str | bytes, *, allow_onelevel: bool = False, refspec_pattern: bool = False
) -> bool:
    """git's check_refname_format: True when ``name`` is a valid refname.

    Components are separated by '/'; none may be empty, start with '.', end with '.lock',
    or contain '..', '@{', control characters, space, ':', '?', '[', '\\\\', '^', '~', DEL;
    the name may not be '@' or end with '.'; '*' only once and only with
    ``refspec_pattern``; one component only with ``allow_onelevel``.
    """
    raw = _encode(name)
    if raw == b"@" or b"\0" in raw:
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
    all-uppercase/underscore root name. ``../../x`` is not safe."""
    raw = _encode(name)
    if raw.startswith(b"refs/"):
        rest = raw[5:]
        if not rest or rest.startswith(b"/") or rest.endswith(b"/"):
            return False
        return all(part not in (b"", b".", b"..") for part in rest.split(b"/"))
    return bool(raw) and all(0x41 <= c <= 0x5A or c == 0x5F for c in raw)


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


def parse_worktree_ref(name: str) -> tuple[str, str | None, str]:
    """git's parse_worktree_ref: (kind, worktree id, name as stored).

    kind is "current" (this worktree's stack), "main" (``main-worktree/<ref>``), "other"
    (``worktrees/<id>/<ref>``) or "shared" (the main stack, name unchanged).
    """
    if name.startswith("worktrees/"):
        rest = name[len("worktrees/") :]
        slash = rest.find("/")
        if slash > 0:
            bare = rest[slash + 1 :]
            if is_per_worktree_ref(bare):
                return "other", rest[:slash], bare
        return "shared", None, name
    if name.startswith("main-worktree/"):
        bare = name[len("main-worktree/") :]
        if is_per_worktree_ref(bare):
            return "main", None, bare
    if is_per_worktree_ref(name):
        return "current", None, name
    return "shared", None, name


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
