"""git's config layers in git's order and the keys the ref store reads, by git's value rules."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from .._errors import ReftableError
from .._format._writer import WriteOptions
from .._repo import RepositoryLayout
from .._stack import StackOptions

__all__ = [
    "ConfigEntry",
    "ConfigError",
    "RepoConfig",
    "UnsupportedConfigWarning",
    "command_line_config",
    "global_config_paths",
    "load_config",
    "parse_bool",
    "parse_int",
    "read_config",
    "shared_perm",
]

PERM_UMASK = 0
PERM_GROUP = 0o660
PERM_EVERYBODY = 0o664


class UnsupportedConfigWarning(UserWarning):
    """The config uses a feature aioreftable does not follow (conditional includes)."""


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

    def write_options(self) -> WriteOptions:
        return WriteOptions(
            block_size=self.block_size,
            restart_interval=self.restart_interval,
            index_objects=self.index_objects,
            hash="sha256" if self.object_format == "sha256" else "sha1",
        )

    def stack_options(self) -> StackOptions:
        """Stack options for this repository (file mode from core.sharedRepository)."""
        mode = None
        if self.shared_repository != PERM_UMASK:
            mode = self.file_mode(_current_umask())
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


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def _file_entries(path: str, scope: str, *, missing_ok_eacces: bool) -> list[ConfigEntry]:
    """The entries of one config file ([include] followed by dulwich), [] when it does not
    exist (git's access_or_die: ENOENT/ENOTDIR skip; EACCES skips only where git allows)."""
    from dulwich.config import ConfigFile

    if not path:
        return []
    try:
        cfg = ConfigFile.from_path(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError:
        if missing_ok_eacces:
            return []
        raise
    except ValueError as exc:
        raise ConfigError(f"bad config file {path}: {exc}") from None
    conditional = [b".".join(k).decode() for k in cfg if k[0].lower() == b"includeif"]
    if conditional:  # dulwich follows [include] path=..., not the conditional form
        warnings.warn(
            f"{path}: {', '.join(conditional)} not followed (conditional includes)",
            UnsupportedConfigWarning,
            stacklevel=4,
        )
    entries = []
    for section in cfg.sections():
        head = section[0].decode("utf-8", "surrogateescape").lower()
        if len(section) > 1:
            head += "." + section[1].decode("utf-8", "surrogateescape")
        for name, value in cfg.items(section):
            key = f"{head}.{name.decode('utf-8', 'surrogateescape').lower()}"
            entries.append(ConfigEntry(scope, path, key, value.decode("utf-8", "surrogateescape")))
    return entries


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
    layout: RepositoryLayout, env: Mapping[str, str] | None = None
) -> list[ConfigEntry]:
    """Every config entry git sees in this repository, in git's order (later wins): system
    (unless GIT_CONFIG_NOSYSTEM), global, ``config``, ``config.worktree`` (with
    ``extensions.worktreeConfig``), then the command line. Blocking: run it in a thread."""
    env = os.environ if env is None else env
    entries: list[ConfigEntry] = []
    if not _env_bool(env, "GIT_CONFIG_NOSYSTEM"):
        path = env.get("GIT_CONFIG_SYSTEM", _SYSTEM_CONFIG)
        entries += _file_entries(path, "system", missing_ok_eacces=False)
    for path in global_config_paths(env):
        entries += _file_entries(path, "global", missing_ok_eacces=True)
    local = _file_entries(str(layout.common_dir / "config"), "local", missing_ok_eacces=False)
    entries += local
    worktree_config = {e.key: e.value for e in local}.get("extensions.worktreeconfig")
    if worktree_config is not None and parse_bool("extensions.worktreeconfig", worktree_config):
        path = str(layout.git_dir / "config.worktree")
        entries += _file_entries(path, "worktree", missing_ok_eacces=False)
    for entry in command_line_config(env):
        entries.append(entry)
        if entry.key == "include.path":
            entries += _command_line_include(entry.value, env)
        elif entry.key.startswith("includeif."):
            warnings.warn(
                f"command line: {entry.key} not followed (conditional includes)",
                UnsupportedConfigWarning,
                stacklevel=3,
            )
    return entries


def _command_line_include(value: str | None, env: Mapping[str, str]) -> list[ConfigEntry]:
    """git's handle_path_include for ``-c include.path=...``: an absolute path (``~``
    expanded), read when it exists, its entries in the command scope."""
    error = "unable to parse command-line config"
    if value is None:
        raise ConfigError(f"{error}: missing value for 'include.path'")
    path = value
    if path == "~" or path.startswith("~/"):
        if "HOME" not in env:
            raise ConfigError(f"{error}: could not expand include path '{value}'")
        path = env["HOME"] + path[1:]
    if not os.path.isabs(path):
        raise ConfigError(f"{error}: relative config includes must come from files")
    return _file_entries(path, "command", missing_ok_eacces=False)


def load_config(layout: RepositoryLayout, env: Mapping[str, str] | None = None) -> RepoConfig:
    """The settings git would use in this repository, from all of git's config layers
    (:func:`read_config`; ``env`` replaces ``os.environ``). Blocking: run it in a thread."""
    entries = read_config(layout, env)
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
