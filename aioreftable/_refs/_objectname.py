"""git's object names without revision syntax (get_oid_basic, get_short_oid): a full id, a
ref by the dwim rules (``@`` is HEAD), a unique abbreviated id; git's warnings and errors."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from ._core import RefCore
from ._dwim import ambiguous_path, dwim_ref
from ._peel import ObjectDatabase

__all__ = ["MINIMUM_ABBREV", "GitMessage", "ObjectName", "describe_object", "get_oid"]

#: git's MINIMUM_ABBREV: a shorter hex prefix is never read as an abbreviated id.
MINIMUM_ABBREV = 4
#: git's DEFAULT_ABBREV for repositories below 16,384 objects (candidates of an ambiguity).
_CANDIDATE_ABBREV = 7
_HEX = frozenset("0123456789abcdefABCDEF")
_TYPE_ORDER = {"tag": 0, "commit": 1, "tree": 2, "blob": 3}  # git's sort_ambiguous

# git's object_name_msg advice after "refname '<40-hex>' is ambiguous."
OBJECT_NAME_ADVICE = """\
Git normally never creates a ref that ends with 40 hex characters
because it will be ignored when you just specify 40-hex. These refs
may be created by mistake. For example,

  git switch -c $br $(git rev-parse ...)

where "$br" is somehow empty and a 40-hex ref is created. Please
examine these refs and maybe delete them. Turn this message off by
running "git config set advice.objectNameWarning false\""""


@dataclass(frozen=True, slots=True)
class GitMessage:
    """A message git prints on stderr while reading a name: ``level`` is git's prefix
    (``warning``, ``error``, ``hint``: one per line) or ``plain`` (printed as it is)."""

    level: Literal["warning", "error", "hint", "plain"]
    text: str

    def render(self) -> str:
        """The text as git writes it to stderr (each line of a hint prefixed)."""
        if self.level == "plain":
            return self.text + "\n"
        if self.level == "hint":
            return "".join(f"hint: {line}\n" for line in self.text.split("\n"))
        return f"{self.level}: {self.text}\n"


@dataclass(frozen=True, slots=True)
class ObjectName:
    """What a name stands for (:meth:`RefStore.get_oid`): ``oid`` (None: nothing, as git's
    ``not a valid object name``), ``ref`` the full ref name it was read through (git's
    ``real_ref``; None for an id) and git's messages on the way, in order."""

    name: str
    oid: str | None
    ref: str | None = None
    messages: tuple[GitMessage, ...] = ()

    @property
    def ambiguous(self) -> bool:
        """An abbreviated id that more than one object shares (git's error)."""
        return any(m.level == "error" for m in self.messages)


def _is_hex(text: str) -> bool:
    return bool(text) and set(text) <= _HEX


def _short_date(epoch: int, tz: int) -> str:
    """git's show_date(DATE_SHORT) at the offset ``tz`` (+HHMM as an int)."""
    sign = -1 if tz < 0 else 1
    minutes = sign * ((abs(tz) // 100) * 60 + abs(tz) % 100)
    return time.strftime("%Y-%m-%d", time.gmtime(epoch + 60 * minutes))


def _signature_date(line: bytes) -> tuple[int, int]:
    """(epoch, offset) of an ``author``/``tagger`` line; (0, 0) when it has none."""
    rest = line[line.rfind(b">") + 1 :].split()
    try:
        epoch = int(rest[0])
    except (IndexError, ValueError):
        return 0, 0
    try:
        tz = int(rest[1])
    except (IndexError, ValueError):
        tz = 0
    return epoch, tz


def _headers(body: bytes) -> tuple[list[bytes], bytes]:
    """An object's header lines and its message (after the first blank line)."""
    head, _, message = body.partition(b"\n\n")
    return head.split(b"\n"), message


def _subject(message: bytes) -> str:
    """git's %s: the first paragraph's lines, trailing blanks cut, joined by spaces."""
    lines = message.split(b"\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    out: list[bytes] = []
    for line in lines:
        line = line.rstrip(b" \t\r\v\f")
        if not line:
            break
        out.append(line)
    return b" ".join(out).decode("utf-8", "replace")


def describe_object(abbrev: str, found: tuple[str, bytes] | None) -> str:
    """One candidate of an ambiguous id as git's show_ambiguous_object describes it."""
    if found is None:
        return f"{abbrev} [bad object]"
    kind, body = found
    if kind == "commit":
        headers, message = _headers(body)
        author = next((h for h in headers if h.startswith(b"author ")), b"")
        return f"{abbrev} commit {_short_date(*_signature_date(author))} - {_subject(message)}"
    if kind == "tag":
        headers, _ = _headers(body)
        ok = len(headers) >= 2 and headers[0].startswith(b"object ")
        ok = ok and headers[1].startswith(b"type ")
        name = headers[2][4:] if ok and len(headers) > 2 and headers[2][:4] == b"tag " else None
        if name is None:
            return f"{abbrev} [bad tag, could not parse it]"
        tagger = next((h for h in headers[3:4] if h.startswith(b"tagger ")), None)
        epoch = 0 if tagger is None else _signature_date(tagger)[0]
        return f"{abbrev} tag {_short_date(epoch, 0)} - {name.decode('utf-8', 'replace')}"
    return f"{abbrev} {kind}"


async def _ambiguity(objects: ObjectDatabase, prefix: str, oids: list[str]) -> GitMessage:
    """git's hint after ``short object ID <prefix> is ambiguous``: the candidates, tags
    first, then commits, trees and blobs, each kind by id."""
    raw = await objects.raw_objects(oids)
    abbrevs = await objects.abbreviations(oids, _CANDIDATE_ABBREV)

    def order(oid: str) -> tuple[int, str]:
        found = raw[oid]
        return (-1 if found is None else _TYPE_ORDER[found[0]]), oid

    lines = [f"  {describe_object(abbrevs[oid], raw[oid])}" for oid in sorted(oids, key=order)]
    return GitMessage("hint", "The candidates are:\n" + "\n".join(lines))


async def _short_oid(
    objects: ObjectDatabase | None, name: str, hexsz: int
) -> tuple[list[str], str] | None:
    """git's get_short_oid: the candidates of a hex prefix of 4 digits or more, None when
    ``name`` cannot be one."""
    if objects is None or not MINIMUM_ABBREV <= len(name) <= hexsz or not _is_hex(name):
        return None
    prefix = name.lower()
    return await objects.expand_prefix(prefix), prefix


async def get_oid(
    core: RefCore, objects: ObjectDatabase | None, name: str, *, warn_ambiguous: bool = True
) -> ObjectName:
    """git's get_oid_basic then get_short_oid (no revision syntax: ``x~1``, ``x^{}``,
    ``x@{1}``, ``x:path`` name nothing here): a full id (with git's warning when a ref has
    that name too), a ref by the dwim rules (the first match; ``refname '<name>' is
    ambiguous`` when another rule matches or the name is also an abbreviated id), then a
    unique abbreviated id of 4 or more digits (else git's error and candidates)."""
    messages: list[GitMessage] = []
    hexsz = core.hash.hex_size
    if len(name) == hexsz and _is_hex(name):
        if warn_ambiguous:
            found = await dwim_ref(core, name)
            messages += [GitMessage("warning", w) for w in found.warnings]
            if found.matches:
                messages.append(GitMessage("warning", f"refname '{name}' is ambiguous."))
                messages.append(GitMessage("plain", OBJECT_NAME_ADVICE))
        return ObjectName(name, name.lower(), None, tuple(messages))
    if not name or not ambiguous_path(name):
        found = await dwim_ref(core, name, warn_ambiguous=warn_ambiguous)
        messages += [GitMessage("warning", w) for w in found.warnings]
        if found.matches:
            if warn_ambiguous:
                short = await _short_oid(objects, name, hexsz)
                if found.ambiguous or (short is not None and len(short[0]) == 1):
                    messages.append(GitMessage("warning", f"refname '{name}' is ambiguous."))
            return ObjectName(name, found.oid, found.ref, tuple(messages))
    short = await _short_oid(objects, name, hexsz)
    if short is None or not short[0]:
        return ObjectName(name, None, None, tuple(messages))
    candidates, prefix = short
    if len(candidates) == 1:
        return ObjectName(name, candidates[0], None, tuple(messages))
    assert objects is not None
    messages.append(GitMessage("error", f"short object ID {prefix} is ambiguous"))
    messages.append(await _ambiguity(objects, prefix, candidates))
    return ObjectName(name, None, None, tuple(messages))
