"""Hatchling build hook: compile the optional block decoder (aioreftable/_format/_speedups.c).

Where a C compiler and Python's headers exist, wheels (and editable installs, in place) get
the compiled module; where they do not, or with ``AIOREFTABLE_PURE_PYTHON=1`` set, the wheel
is pure Python and this hook prints one warning. The package works either way:
``aioreftable.lowlevel.ACCELERATED`` says which decoder is live.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("aioreftable") / "_format" / "_speedups.c"
MODULE = "aioreftable/_format/_speedups"


def _compile(source: Path, target: Path) -> None:
    """One compiler call: the C file to a loadable module (raises where that fails)."""
    include = sysconfig.get_path("include")
    if not include or not (Path(include) / "Python.h").is_file():
        raise RuntimeError(f"Python.h not found (looked in {include})")
    ldshared = shlex.split(sysconfig.get_config_var("LDSHARED") or "cc -shared")
    if os.environ.get("CC"):  # as setuptools does: CC replaces the compiler of LDSHARED
        ldshared[0:1] = shlex.split(os.environ["CC"])
    cflags = shlex.split(os.environ.get("AIOREFTABLE_CFLAGS", "-O2"))
    cmd = [*ldshared, "-fPIC", *cflags, f"-I{include}", str(source), "-o", str(target)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{proc.stderr.strip()}")


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        in_place = root / (MODULE + suffix)
        if version == "editable":  # the source tree is imported: build next to the source
            target = in_place
            in_place.unlink(missing_ok=True)  # no stale module from an earlier build
        else:
            target = Path(tempfile.mkdtemp(prefix="aioreftable-build-")) / ("_speedups" + suffix)
        if os.environ.get("AIOREFTABLE_PURE_PYTHON", "") not in ("", "0"):
            self._warn("AIOREFTABLE_PURE_PYTHON is set")
            return
        try:
            _compile(root / SOURCE, target)
        except (OSError, RuntimeError) as e:
            self._warn(str(e))
            return
        if version != "editable":
            build_data["force_include"][str(target)] = MODULE + suffix
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def _warn(self, why: str) -> None:
        print(
            "WARNING: aioreftable is installed without its compiled block decoder"
            f" (pure Python, slower reads): {why}",
            file=sys.stderr,
        )
