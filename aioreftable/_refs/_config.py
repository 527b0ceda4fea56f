"""The repository config keys the ref store reads, parsed with git's value rules."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass

from .._errors import ReftableError
from .._format._writer import WriteOptions
from .._repo import RepositoryLayout
from .._stack import StackOptions

__all__ = [
    "ConfigError",
    "RepoConfig",
    "UnsupportedConfigWarning",
    "load_config",
    "parse_bool",
    "parse_int",
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


def load_config(layout: RepositoryLayout) -> RepoConfig:
    """Read ``<common dir>/config`` (includes are not followed)."""
    from dulwich.config import ConfigFile

    path = layout.common_dir / "config"
    cfg = ConfigFile.from_path(str(path)) if path.exists() else ConfigFile()
    conditional = [b".".join(k).decode() for k in cfg if k[0].lower() == b"includeif"]
    if conditional:  # dulwich follows [include] path=..., not the conditional form
        warnings.warn(
            f"{path}: {', '.join(conditional)} not followed (conditional includes)",
            UnsupportedConfigWarning,
            stacklevel=2,
        )

    def get(section: str, key: str) -> str | None:
        parts = section.split(".", 1)
        sect = tuple(p.encode() for p in parts)
        try:
            return cfg.get(sect, key.encode()).decode("utf-8", "surrogateescape")
        except KeyError:
            return None

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
    bare = get("core", "bare")
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
        user_name=get("user", "name"),
        user_email=get("user", "email"),
        committer_name=get("committer", "name"),
        committer_email=get("committer", "email"),
    )
