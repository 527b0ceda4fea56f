"""Repository I/O lives in one seam (issue 11 item 3): the repository and ref modules below
reach files, directories, the user database and the host only through
``aioreftable/_repo_io.py`` (the stack's files go through ``aioreftable/_fs.py``).

Checked on the syntax tree: a call of ``open``, of a blocking ``os``/``os.path``/``socket``/
``pwd``/``shutil`` function, or of a ``pathlib.Path`` method that touches the disk.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "aioreftable"

# The modules that must go through the seam: discovery and every module of the ref layer.
THROUGH_SEAM = (
    "_repo.py",
    *sorted(f"_refs/{path.name}" for path in (PACKAGE / "_refs").glob("*.py")),
)

BLOCKING_MODULE_CALLS = {
    "os": {
        "listdir", "scandir", "stat", "lstat", "open", "read", "umask", "getcwd", "mkdir",
        "makedirs", "remove", "unlink", "rename", "replace", "getuid", "walk", "fstat",
    },
    "mmap": {"mmap"},
    "path": {"exists", "isfile", "isdir", "islink", "realpath", "samefile", "getsize"},
    "socket": {"gethostname", "getaddrinfo", "getfqdn"},
    "pwd": {"getpwuid", "getpwnam"},
    "shutil": {"copy", "copyfile", "rmtree", "move"},
}  # fmt: skip

PATH_METHODS = {
    "read_text", "read_bytes", "write_text", "write_bytes", "exists", "is_file", "is_dir",
    "resolve", "mkdir", "iterdir", "stat", "unlink", "glob", "rglob", "open", "touch",
}  # fmt: skip


def _blocking_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            found.append(f"open() at line {node.lineno}")
        elif isinstance(func, ast.Attribute):
            owner = func.value
            name = owner.id if isinstance(owner, ast.Name) else None
            if isinstance(owner, ast.Attribute) and owner.attr == "path":
                name = "path"  # os.path.<fn>
            if name in BLOCKING_MODULE_CALLS and func.attr in BLOCKING_MODULE_CALLS[name]:
                found.append(f"{name}.{func.attr}() at line {node.lineno}")
            elif name not in ("repo_io", "self") and func.attr in PATH_METHODS:
                if func.attr == "resolve" and node.args:
                    continue  # not Path.resolve(), which takes no name (RefView.resolve)
                found.append(f".{func.attr}() at line {node.lineno}")
    return found


def test_repository_modules_do_io_only_through_the_seam() -> None:
    offenders = {}
    for rel in THROUGH_SEAM:
        calls = _blocking_calls(ast.parse((PACKAGE / rel).read_text(), rel))
        if calls:
            offenders[rel] = calls
    assert offenders == {}, offenders


def test_the_codec_opens_no_files() -> None:
    """Opening files left the codec: ``MmapSource(path)`` and ``TableReader.from_path`` ask
    the seam (``aioreftable/_mapfile.py``) to open and map."""
    offenders = {}
    for path in sorted((PACKAGE / "_format").glob("*.py")):
        calls = _blocking_calls(ast.parse(path.read_text(), path.name))
        if calls:
            offenders[path.name] = calls
    assert offenders == {}, offenders


def test_the_check_sees_each_kind_of_call() -> None:
    source = (
        "open('x')\nos.listdir(d)\nos.path.isfile(p)\nsocket.gethostname()\n"
        "pwd.getpwnam('u')\n(p / 'c').read_text()\nPath(s).resolve()\nrepo_io.exists(p)\n"
        "mmap.mmap(fd, n)\nos.fstat(fd)\nview.resolve('HEAD')\n"
    )
    assert len(_blocking_calls(ast.parse(source))) == 9


def test_every_ref_module_is_checked() -> None:
    assert {"_refs/_core.py", "_refs/_store.py", "_refs/_peel.py"} <= set(THROUGH_SEAM)
