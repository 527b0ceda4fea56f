"""git's wildmatch (wildmatch.c): ``*``, ``**``, ``?``, ``[...]`` with POSIX classes, escapes.

One implementation serves the library (config ``includeIf "gitdir:"``) and the
applications (``for-each-ref`` patterns: ``WM_PATHNAME``)."""

from __future__ import annotations

from ._refs._wildmatch import WM_CASEFOLD, WM_PATHNAME, wildmatch

__all__ = ["WM_CASEFOLD", "WM_PATHNAME", "wildmatch"]
