"""git's config layers in git's order and the keys the ref store reads, by git's value rules."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.from_thread

from .. import _repo_io as repo_io
from .._errors import ReftableError
from .._format._layout import HashAlgorithm
from .._format._writer import WriteOptions
from .._repo import RepositoryLayout
from .._stack import StackOptions
from ._configfile import parse_config
from ._wildmatch import WM_CASEFOLD, WM_PATHNAME, wildmatch

__all__ = [
    "ConfigEntry",
    "AsyncHeadReader",
    "ConfigError",
    "HeadReader",
    "RepoConfig",
    "UnsupportedConfigWarning",
    "command_line_config",
    "config_from_entries",
    "given_git_dir",
    "global_config_paths",
    "load_config",
    "load_store_config",
    "parse_bool",
    "parse_int",
    "read_config",
    "read_config_outside",
    "read_store_config",
    "shared_perm",
]

PERM_UMASK = 0
PERM_GROUP = 0o660
PERM_EVERYBODY = 0o664


class UnsupportedConfigWarning(UserWarning):
    """The config uses a feature aioreftable cannot follow exactly (a ``%(prefix)/`` path:
    git's install prefix is taken as ``/usr``)."""


class ConfigError(ReftableError):
    """A config value git would refuse (bad boolean, integer out of range, ...)."""


def parse_bool(key: str, value: str | None) -> bool:
    """git_config_bool: a key without value is true; true/yes/on/1, false/no/off/0/""."""
    if value is None:
        return True
    v = value.strip().lower()
    if v in ("true", "yes", "on"):
        return True
    if v in ("false", "no", "off", ""):
        return False
    try:
        return parse_int(key, v) != 0
    except ConfigError:
        raise ConfigError(f"bad boolean config value '{value}' for '{key}'") from None


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_int(key: str, value: str | None) -> int:
    """git_config_int: strtoimax with base 0 (0x hex, leading-0 octal) and a k/m/g unit."""
    m = re.fullmatch(r"\s*([-+]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)([kKmMgG]?)\s*", value or "")
    if not m:
        raise ConfigError(f"bad numeric config value '{value}' for '{key}'")
    sign, digits, unit = m.groups()
    if digits[:2].lower() == "0x":
        number = int(digits, 16)
    elif digits.startswith("0"):
        number = int(digits, 8)
    else:
        number = int(digits)
    return (-number if sign == "-" else number) * _UNITS[unit.lower()]


def _shared_setting(value: str | None) -> int:
    """git_config_perm: PERM_UMASK, PERM_GROUP, PERM_EVERYBODY or -(mode & 0666)."""
    if value is None:
        return PERM_GROUP
    v = value.strip()
    if v == "umask":
        return PERM_UMASK
    if v == "group":
        return PERM_GROUP
    if v in ("all", "world", "everybody"):
        return PERM_EVERYBODY
    try:
        mode = int(v, 8)
    except ValueError:
        return PERM_GROUP if parse_bool("core.sharedrepository", v) else PERM_UMASK
    if mode in (0, 1, 2):
        return (PERM_UMASK, PERM_GROUP, PERM_EVERYBODY)[mode]
    if mode & 0o600 != 0o600:
        raise ConfigError(
            f"problem with core.sharedRepository filemode value (0{mode:03o}): "
            "the owner of files must always have read and write permissions"
        )
    return -(mode & 0o666)


def shared_perm(setting: int, mode: int) -> int:
    """git's calc_shared_perm(mode) for a core.sharedRepository setting."""
    tweak = -setting if setting < 0 else setting
    if not mode & 0o200:
        tweak &= ~0o222
    if mode & 0o100:
        tweak |= (tweak & 0o444) >> 2
    return (mode & ~0o777) | tweak if setting < 0 else mode | tweak


@dataclass(frozen=True, slots=True)
class RepoConfig:
    """What the ref store needs from ``config`` (git's names in comments)."""

    object_format: str = "sha1"  # extensions.objectFormat
    bare: bool = False  # core.bare
    block_size: int = 4096  # reftable.blockSize
    restart_interval: int = 16  # reftable.restartInterval
    index_objects: bool = True  # reftable.indexObjects
    geometric_factor: int = 2  # reftable.geometricFactor
    lock_timeout: float | None = 0.1  # reftable.lockTimeout (ms; -1 = forever)
    log_all_ref_updates: str | None = None  # core.logAllRefUpdates: true/false/always
    shared_repository: int = PERM_UMASK  # core.sharedRepository (git_config_perm)
    user_name: str | None = None  # user.name
    user_email: str | None = None  # user.email
    committer_name: str | None = None  # committer.name (wins over user.name)
    committer_email: str | None = None  # committer.email
    author_name: str | None = None  # author.name (only: a name is configured, see _ident)
    author_email: str | None = None  # author.email (likewise)

    def file_mode(self, umask: int) -> int:
        """Mode of new tables and tables.list: calc_shared_perm(0666 & ~umask)."""
        return shared_perm(self.shared_repository, 0o666 & ~umask)

    @property
    def hash_algorithm(self) -> HashAlgorithm:
        """The object format's hash (ValueError for a name that is not sha1 or sha256)."""
        return HashAlgorithm.by_name(self.object_format)

    def write_options(self) -> WriteOptions:
        return WriteOptions(
            block_size=self.block_size,
            restart_interval=self.restart_interval,
            index_objects=self.index_objects,
            hash=self.hash_algorithm.name,
        )

    def stack_options(self) -> StackOptions:
        """Stack options for this repository (file mode from core.sharedRepository)."""
        mode = None
        if self.shared_repository != PERM_UMASK:
            mode = self.file_mode(repo_io.current_umask())
        return StackOptions(
            lock_timeout=self.lock_timeout,
            geometric_factor=self.geometric_factor,
            file_mode=mode,
            write_options=self.write_options(),
        )

    def should_autocreate_reflog(self, refname: str) -> bool:
        """git's should_autocreate_reflog for ``core.logAllRefUpdates``."""
        setting = self.log_all_ref_updates
        if setting is None:
            setting = "false" if self.bare else "true"
        if setting == "always":
            return True
        if setting == "true":
            return refname == "HEAD" or refname.startswith(
                ("refs/heads/", "refs/remotes/", "refs/notes/")
            )
        return False


_KEYCHAR = re.compile(r"[A-Za-z0-9-]*")
_SPACE = " \t\n\r"  # git's isspace (sane_ctype), not C's
_SYSTEM_CONFIG = "/etc/gitconfig"  # git's ETC_GITCONFIG for a build with prefix=/usr


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One ``key = value`` as git reads it: where from (``scope``, ``origin``), the key in
    git's canonical form (section and name lowercased, subsection as written) and the value
    (None for a key given without ``=``)."""

    scope: str  # system, global, local, worktree or command (git config --show-scope)
    origin: str  # the file, or "command line"
    key: str
    value: str | None


_MAX_INCLUDE_DEPTH = 10  # git's MAX_INCLUDE_DEPTH
_PREFIX = "/usr"  # git's %(prefix), for a build with prefix=/usr (as _SYSTEM_CONFIG)


_read_file = repo_io.read_optional  # a config file's bytes, None when it does not exist


# -- conditional includes (config.c: git_config_include) --------------------------------------


def _interpolate(path: str, env: Mapping[str, str], *, real_home: bool) -> str | None:
    """git's interpolate_path: ``%(prefix)/``, ``~/`` ($HOME, its real path for conditions)
    and ``~user/``; None when it cannot expand."""
    if path.startswith("%(prefix)/"):
        warnings.warn(
            f"{path}: %(prefix) taken as {_PREFIX} (git's install prefix is not known)",
            UnsupportedConfigWarning,
            stacklevel=2,
        )
        return f"{_PREFIX}/{path[len('%(prefix)/') :]}"
    if not path.startswith("~"):
        return path
    slash = path.find("/")
    user, rest = (path[1:], "") if slash < 0 else (path[1:slash], path[slash:])
    if not user:
        home = env.get("HOME")
        if home is None:
            return None
        return (repo_io.realpath(home) if real_home else home) + rest
    home = repo_io.home_of(user)
    return None if home is None else home + rest


def _fs(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _remote_url(key: str) -> bool:
    """parse_config_key(var, "remote", ...) with a subsection and the name ``url``."""
    return key.startswith("remote.") and key.count(".") >= 2 and key.endswith(".url")


#: Names the ref HEAD is a symref to (None: not a symref), for ``onbranch:``; blocking.
HeadReader = Callable[[], "str | None"]
#: The same on the event loop (see :func:`read_store_config`).
AsyncHeadReader = Callable[[], Coroutine[Any, Any, "str | None"]]


class _Reader:
    """One reading of git's config sequence with includes followed (git's
    config_include_data: one include depth, the remote URLs of ``hasconfig:`` read once)."""

    def __init__(
        self,
        layout: RepositoryLayout | None,
        env: Mapping[str, str],
        given_git_dir: str | None,
        head: HeadReader | None,
        *,
        unconditional_remote_url: bool = False,
    ):
        self.layout = layout  # None: outside a repository (git init's view)
        self.env = env
        self.git_dirs: tuple[bytes, ...] = ()  # gitdir: conditions: none outside
        if layout is not None:
            real = repo_io.realpath(layout.git_dir)
            self.git_dirs = (_fs(real), _fs(given_git_dir or real))
        self.head = head
        self.head_known = False
        self.head_ref: str | None = None
        self.unconditional_remote_url = unconditional_remote_url
        self.forbid_remote_url = False
        self.remote_urls: list[str] | None = None
        self.depth = 0
        self.out: list[ConfigEntry] = []

    def sequence(self) -> list[ConfigEntry]:
        """git's do_git_config_sequence."""
        env = self.env
        if not _env_bool(env, "GIT_CONFIG_NOSYSTEM"):
            self.layer(env.get("GIT_CONFIG_SYSTEM", _SYSTEM_CONFIG), "system", eacces_ok=False)
        for path in global_config_paths(env):
            self.layer(path, "global", eacces_ok=True)
        if self.layout is not None:
            local_path = str(self.layout.common_dir / "config")
            self.layer(local_path, "local", eacces_ok=False)
            # read like git's repository format check: the file itself, not its includes
            local = {e.key: e.value for e in self.out if e.origin == local_path}
            worktree_config = local.get("extensions.worktreeconfig")
            if worktree_config is not None and parse_bool(
                "extensions.worktreeconfig", worktree_config
            ):
                path = str(self.layout.git_dir / "config.worktree")
                self.layer(path, "worktree", eacces_ok=False)
        for entry in command_line_config(env):
            error = self.entry(entry, None)
            if error is not None:
                raise ConfigError(f"unable to parse command-line config: {error}")
        return self.out

    def layer(self, path: str, scope: str, *, eacces_ok: bool) -> None:
        if not path:
            return
        try:
            data = _read_file(path)
        except PermissionError:
            if eacces_ok:
                return
            raise
        if data is not None:
            self.file(path, data, scope)

    def file(self, path: str, data: bytes, scope: str) -> None:
        for key, value, line in parse_config(data, path, ConfigError):
            error = self.entry(ConfigEntry(scope, path, key, value), path)
            if error is not None:
                raise ConfigError(f"{error} (bad config line {line} in file {path})")

    def entry(self, entry: ConfigEntry, path: str | None) -> str | None:
        """git_config_include: the entry itself, then what it includes. Returns the message
        of git's error() in an include (the caller dies with its own words); dies itself
        (ConfigError) where git does."""
        if self.forbid_remote_url:
            if _remote_url(entry.key):
                raise ConfigError(
                    "remote URLs cannot be configured in file directly or indirectly "
                    "included by includeIf.hasconfig:remote.*.url"
                )
        else:
            self.out.append(entry)
        key = entry.key
        error = None
        if key == "include.path":
            error = self.include(entry, path)
        if key.startswith("includeif.") and key.count(".") >= 2:
            condition, name = key[len("includeif.") :].rsplit(".", 1)
            if self.condition(condition, path) and name == "path":
                forbid = self.forbid_remote_url
                if self.unconditional_remote_url:
                    self.forbid_remote_url = True
                try:
                    error = self.include(entry, path)
                finally:
                    self.forbid_remote_url = forbid
        return error

    def include(self, entry: ConfigEntry, including: str | None) -> str | None:
        """git's handle_path_include: relative to the including file, missing files skipped,
        at most 10 levels deep; the message of git's error() where it fails."""
        if entry.value is None:
            return "missing value for 'include.path'"
        path = _interpolate(entry.value, self.env, real_home=False)
        if path is None:
            return f"could not expand include path '{entry.value}'"
        if not os.path.isabs(path):
            if including is None:
                return "relative config includes must come from files"
            slash = including.rfind("/")
            path = including[: slash + 1] + path
        try:
            data = _read_file(path)
        except IsADirectoryError:
            return f"unable to access '{path}': Is a directory"
        if data is None:
            return None
        self.depth += 1
        if self.depth > _MAX_INCLUDE_DEPTH:
            raise ConfigError(
                f"exceeded maximum include depth ({_MAX_INCLUDE_DEPTH}) while including\n"
                f"\t{path}\nfrom\n\t{including or 'the command line'}\n"
                "This might be due to circular includes."
            )
        self.file(path, data, entry.scope)
        self.depth -= 1
        return None

    def condition(self, condition: str, path: str | None) -> bool:
        """git's include_condition_is_true; an unknown condition is false."""
        for prefix, icase in (("gitdir:", False), ("gitdir/i:", True)):
            if condition.startswith(prefix):
                return self.gitdir(condition[len(prefix) :], path, icase)
        if condition.startswith("onbranch:"):
            return self.onbranch(condition[len("onbranch:") :])
        if condition.startswith("hasconfig:remote.*.url:"):
            return self.has_remote_url(condition[len("hasconfig:remote.*.url:") :])
        return False

    def gitdir(self, condition: str, including: str | None, icase: bool) -> bool:
        """git's include_by_gitdir: the pattern (``~`` expanded, ``./`` in the including
        file's real directory, ``**/`` before a relative one, ``**`` after a final ``/``)
        against the git dir's real path, then against the path as given."""
        pattern = _fs(_interpolate(condition, self.env, real_home=True) or condition)
        prefix = 0
        if pattern[:2] == b"./":
            if including is None:
                return False  # git: "relative config include conditionals must come from files"
            directory = _fs(os.path.dirname(repo_io.realpath(including)))
            pattern = directory + pattern[1:]
            prefix = len(directory) + 1
        elif not pattern.startswith(b"/"):
            pattern = b"**/" + pattern
        if pattern.endswith(b"/"):
            pattern += b"**"
        flags = WM_PATHNAME | (WM_CASEFOLD if icase else 0)
        for text in self.git_dirs:
            if prefix:
                head, literal = (pattern[:prefix], text[:prefix])
                if len(text) < prefix or (
                    head.lower() != literal.lower() if icase else head != literal
                ):
                    return False  # git does not try the other path here
            if wildmatch(pattern[prefix:], text[prefix:], flags):
                return True
        return False

    def onbranch(self, condition: str) -> bool:
        """git's include_by_branch: HEAD a symref to ``refs/heads/<name>``, ``<name>``
        matching the pattern (``**`` after a final ``/``)."""
        if not self.head_known:
            self.head_ref = self.head() if self.head is not None else None
            self.head_known = True
        ref = self.head_ref
        if ref is None or not ref.startswith("refs/heads/"):
            return False
        pattern = _fs(condition)
        if pattern.endswith(b"/"):
            pattern += b"**"
        return wildmatch(pattern, _fs(ref[len("refs/heads/") :]), WM_PATHNAME)

    def has_remote_url(self, pattern: str) -> bool:
        """git's include_by_remote_url: any ``remote.<name>.url`` of the whole config (read
        once more, with every ``hasconfig:`` include taken) matches the pattern."""
        if self.unconditional_remote_url:
            return True
        if self.remote_urls is None:
            full = _Reader(
                self.layout,
                self.env,
                self.git_dirs[1].decode("utf-8", "surrogateescape") if self.git_dirs else None,
                self.head,
                unconditional_remote_url=True,
            )
            full.head_known, full.head_ref = self.head_known, self.head_ref
            entries = full.sequence()
            self.remote_urls = [
                e.value for e in entries if _remote_url(e.key) and e.value is not None
            ]
        glob = _fs(pattern)
        return any(wildmatch(glob, _fs(url), WM_PATHNAME) for url in self.remote_urls)


def _canonical_key(key: str) -> str:
    """git_config_parse_key: ``section[.subsection].name``, section and name lowercased."""
    if not key:
        raise ConfigError("empty config key")
    first, last = key.find("."), key.rfind(".")
    if last <= 0:
        raise ConfigError(f"key does not contain a section: {key}")
    if last == len(key) - 1:
        raise ConfigError(f"key does not contain variable name: {key}")
    section, name = key[:first], key[last + 1 :]
    if not (_KEYCHAR.fullmatch(section) and _KEYCHAR.fullmatch(name) and name[0].isalpha()):
        raise ConfigError(f"invalid key: {key}")
    if "\n" in key:
        raise ConfigError(f"invalid key (newline): {key}")
    middle = key[first:last] if first != last else ""
    return f"{section.lower()}{middle}.{name.lower()}"


def _command(key: str, value: str | None) -> ConfigEntry:
    return ConfigEntry("command", "command line", _canonical_key(key), value)


def _sq_dequote_step(text: str, i: int) -> tuple[str, int | None] | None:
    """git's sq_dequote_step from ``text[i]``: the unquoted word and where the rest starts
    (None at the end), or None when the quoting is broken."""
    if i >= len(text) or text[i] != "'":
        return None
    out: list[str] = []
    i += 1
    while True:
        if i >= len(text):
            return None
        c = text[i]
        if c != "'":
            out.append(c)
            i += 1
            continue
        i += 1  # stepped out of the quotes
        if i >= len(text):
            return "".join(out), None
        if text[i] == "\\" and text[i + 1 : i + 2] in ("'", "!") and text[i + 2 : i + 3] == "'":
            out.append(text[i + 1])
            i += 3
            continue
        return "".join(out), i


def _parameters(text: str) -> list[ConfigEntry]:
    """git's parse_config_env_list for GIT_CONFIG_PARAMETERS (what ``git -c`` exports):
    ``'key'='value'``, ``'key'=`` (no value) or the old ``'key=value'``, space separated."""
    bogus = ConfigError("bogus format in GIT_CONFIG_PARAMETERS")
    entries = []
    cur: int | None = 0
    while cur is not None and cur < len(text):
        step = _sq_dequote_step(text, cur)
        if step is None:
            raise bogus
        key, cur = step
        if cur is None or text[cur] in _SPACE:
            name, eq, old_value = key.partition("=")
            if not name:
                raise ConfigError(f"bogus config parameter: {key}")
            entries.append(_command(name, old_value if eq else None))
        elif text[cur] == "=":
            cur += 1
            value: str | None = None
            if cur < len(text) and text[cur] == "'":
                step = _sq_dequote_step(text, cur)
                if step is None or (step[1] is not None and text[step[1]] not in _SPACE):
                    raise bogus
                value, cur = step
            elif cur < len(text) and text[cur] not in _SPACE:
                raise bogus
            entries.append(_command(key, value))
        else:
            raise bogus
        while cur is not None and cur < len(text) and text[cur] in _SPACE:
            cur += 1
    return entries


def _count_entries(env: Mapping[str, str]) -> list[ConfigEntry]:
    """GIT_CONFIG_COUNT with GIT_CONFIG_KEY_<n> / GIT_CONFIG_VALUE_<n> (git's strtoul rules)."""
    raw = env.get("GIT_CONFIG_COUNT")
    if raw is None:
        return []
    m = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?)(\d+)", raw)
    if raw and not m:
        raise ConfigError("bogus count in GIT_CONFIG_COUNT")
    count = int(m.group(2)) if m else 0
    if m and m.group(1) == "-" and count:
        count = 1 << 64  # strtoul wraps a negative number around
    if count > 2**31 - 1:
        raise ConfigError("too many entries in GIT_CONFIG_COUNT")
    entries = []
    for n in range(count):
        key = env.get(f"GIT_CONFIG_KEY_{n}")
        if key is None:
            raise ConfigError(f"missing config key GIT_CONFIG_KEY_{n}")
        value = env.get(f"GIT_CONFIG_VALUE_{n}")
        if value is None:
            raise ConfigError(f"missing config value GIT_CONFIG_VALUE_{n}")
        entries.append(_command(key, value))
    return entries


def command_line_config(env: Mapping[str, str]) -> list[ConfigEntry]:
    """git_config_from_parameters: GIT_CONFIG_COUNT's pairs, then GIT_CONFIG_PARAMETERS."""
    try:
        return _count_entries(env) + _parameters(env.get("GIT_CONFIG_PARAMETERS") or "")
    except ConfigError as exc:
        raise ConfigError(f"unable to parse command-line config: {exc}") from None


def global_config_paths(env: Mapping[str, str]) -> list[str]:
    """git_global_config_paths in reading order: ``GIT_CONFIG_GLOBAL`` alone, else
    ``$XDG_CONFIG_HOME/git/config`` (or ``$HOME/.config/git/config``) then ``~/.gitconfig``."""
    if "GIT_CONFIG_GLOBAL" in env:
        return [env["GIT_CONFIG_GLOBAL"]]
    home = env.get("HOME")
    xdg = env.get("XDG_CONFIG_HOME")
    paths = []
    if xdg:
        paths.append(f"{xdg}/git/config")
    elif home is not None:
        paths.append(f"{home}/.config/git/config")
    if home is not None:
        paths.append(f"{home}/.gitconfig")
    return paths


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    """git_env_bool: unset is false, else git's boolean rules."""
    value = env.get(name)
    try:
        return value is not None and parse_bool(name, value)
    except ConfigError:
        raise ConfigError(f"bad boolean environment value '{value}' for '{name}'") from None


def read_config(
    layout: RepositoryLayout,
    env: Mapping[str, str] | None = None,
    *,
    given_git_dir: str | None = None,
    head: HeadReader | None = None,
) -> list[ConfigEntry]:
    """Every config entry git sees in this repository, in git's order (later wins): system
    (unless GIT_CONFIG_NOSYSTEM), global, ``config``, ``config.worktree`` (with
    ``extensions.worktreeConfig``), then the command line; each ``include.path`` and each
    ``includeIf.<condition>.path`` whose condition holds is read in place.

    ``given_git_dir`` is the git dir as the caller named it (``gitdir:`` conditions match
    it as well as the real path); ``head`` returns the ref HEAD is a symref to (for
    ``onbranch:``; without it no branch matches, as in a repository without refs).
    Blocking: run it in a thread."""
    env = os.environ if env is None else env
    return _Reader(layout, env, given_git_dir, head).sequence()


def read_config_outside(env: Mapping[str, str] | None = None) -> list[ConfigEntry]:
    """The config entries git sees outside a repository (before ``git init`` made one):
    system, global and command line, includes followed; ``gitdir:`` and ``onbranch:``
    conditions never hold. Blocking: run it in a thread."""
    env = os.environ if env is None else env
    return _Reader(None, env, None, None).sequence()


def given_git_dir(
    start: str | os.PathLike[str], layout: RepositoryLayout, env: Mapping[str, str]
) -> str | None:
    """The git dir as git names it when run in ``start`` (``$PWD`` when it is the same
    directory, so a symlinked path stays as given): ``GIT_DIR``, ``start`` or
    ``start/.git`` when that is the repository's git dir, a gitfile's target as written;
    None otherwise (git then sees only the real path). Blocking."""
    if env.get("GIT_DIR"):
        return _absolute(os.path.join(os.fspath(start), env["GIT_DIR"]), env)
    here = _absolute(os.fspath(start), env)
    real = repo_io.realpath(layout.git_dir)
    for candidate in (here, os.path.join(here, ".git")):
        if repo_io.is_dir(candidate) and repo_io.realpath(candidate) == real:
            return candidate
    gitfile = os.path.join(here, ".git")
    if repo_io.is_file(gitfile):
        text = repo_io.read_text(gitfile).strip()
        if text.startswith("gitdir:"):
            target = text[len("gitdir:") :].strip()
            return os.path.normpath(os.path.join(here, target))
    return None


def _absolute(path: str, env: Mapping[str, str]) -> str:
    """git's strbuf_add_absolute_path: a relative path joined to ``$PWD`` when that names
    the working directory (the path the user typed), else to the physical one."""
    if os.path.isabs(path):
        return os.path.normpath(path)
    cwd = repo_io.getcwd()
    pwd = env.get("PWD")
    base = cwd
    if pwd and pwd != cwd:
        try:
            if repo_io.samefile(pwd, cwd):
                base = pwd
        except OSError:
            pass
    return os.path.normpath(os.path.join(base, path))


async def read_store_config(
    layout: RepositoryLayout,
    env: Mapping[str, str],
    start: str | os.PathLike[str],
    head: AsyncHeadReader | None = None,
) -> list[ConfigEntry]:
    """:func:`read_config` for a store opened at ``start``, in a worker thread. ``head``
    (run on the event loop, at most once, only when an ``onbranch:`` condition is
    evaluated) names the ref HEAD is a symref to; the ref store passes one that reads
    it through the stacks (``_store.read_head_ref``), as this module knows no refs."""
    sync_head: HeadReader | None = None
    if head is not None:
        reader = head

        def sync_head() -> str | None:
            return anyio.from_thread.run(reader)

    def read() -> list[ConfigEntry]:
        given = given_git_dir(start, layout, env)
        return read_config(layout, env, given_git_dir=given, head=sync_head)

    return await anyio.to_thread.run_sync(read)


async def load_store_config(
    layout: RepositoryLayout,
    env: Mapping[str, str],
    start: str | os.PathLike[str],
    head: AsyncHeadReader | None = None,
) -> RepoConfig:
    """:func:`load_config` as :func:`read_store_config` reads it (the ref store's)."""
    return config_from_entries(layout, await read_store_config(layout, env, start, head))


def load_config(
    layout: RepositoryLayout,
    env: Mapping[str, str] | None = None,
    *,
    given_git_dir: str | None = None,
    head: HeadReader | None = None,
) -> RepoConfig:
    """The settings git would use in this repository, from all of git's config layers
    (:func:`read_config`; ``env`` replaces ``os.environ``). Blocking: run it in a thread."""
    entries = read_config(layout, env, given_git_dir=given_git_dir, head=head)
    return config_from_entries(layout, entries)


def config_from_entries(layout: RepositoryLayout, entries: list[ConfigEntry]) -> RepoConfig:
    """The settings of :class:`RepoConfig` from the entries, the last of each key winning."""
    values = {e.key: e.value for e in entries}
    # core.bare as the repository's own config says: git's discovery reads it there, and a
    # core.bare from another layer does not make a discovered work tree bare
    local = {e.key: e.value for e in entries if e.scope == "local"}

    def get(section: str, key: str) -> str | None:
        """The value, None when unset; a key given without a value reads as true (dulwich
        reads a valueless key in a file the same way)."""
        name = f"{section}.{key}"
        if name not in values:
            return None
        value = values[name]
        return "true" if value is None else value

    def text(section: str, key: str) -> str | None:
        name = f"{section}.{key}"
        if name in values and values[name] is None:
            raise ConfigError(f"missing value for '{name}'")
        return values.get(name)

    def num(section: str, key: str, default: int, limit: int) -> int:
        raw = get(section, key)
        if raw is None:
            return default
        value = parse_int(f"{section}.{key}", raw)
        if not 0 <= value <= limit:
            raise ConfigError(f"{section}.{key} value {value} is out of range (0..{limit})")
        return value or default

    lock_ms = get("reftable", "locktimeout")
    lock_timeout: float | None = 0.1
    if lock_ms is not None:
        ms = parse_int("reftable.locktimeout", lock_ms)
        if ms < -1:
            raise ConfigError(f"reftable.lockTimeout cannot be negative: {ms}")
        lock_timeout = None if ms == -1 else ms / 1000
    log_all = get("core", "logallrefupdates")
    if log_all is not None and log_all.strip().lower() != "always":
        log_all = "true" if parse_bool("core.logallrefupdates", log_all) else "false"
    elif log_all is not None:
        log_all = "always"
    index_objects = get("reftable", "indexobjects")
    bare = local.get("core.bare")
    shared = get("core", "sharedrepository")
    return RepoConfig(
        object_format=layout.object_format,
        bare=parse_bool("core.bare", bare) if bare is not None else layout.work_tree is None,
        block_size=num("reftable", "blocksize", 4096, 16777215),
        restart_interval=num("reftable", "restartinterval", 16, 65535),
        index_objects=index_objects is None or parse_bool("reftable.indexobjects", index_objects),
        geometric_factor=num("reftable", "geometricfactor", 2, 255),
        lock_timeout=lock_timeout,
        log_all_ref_updates=log_all,
        shared_repository=PERM_UMASK if shared is None else _shared_setting(shared),
        user_name=text("user", "name"),
        user_email=text("user", "email"),
        committer_name=text("committer", "name"),
        committer_email=text("committer", "email"),
        author_name=text("author", "name"),
        author_email=text("author", "email"),
    )
