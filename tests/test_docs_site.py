"""The docs site: it builds with warnings as errors, its programs run, its API pages are whole."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import aioreftable
import aioreftable.lowlevel

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PROGRAM_PAGES = ("getting-started.md", "cookbook.md")


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    # mkdocs.yml sets strict: broken links, pages missing from the nav and API references
    # that do not resolve all fail the build
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    # the reference is generated from the docstrings, not only headings
    assert "Open the refs of the repository at" in api


def _programs() -> list[tuple[str, int, str]]:
    found = []
    for page in PROGRAM_PAGES:
        blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)
        found += [(page, i, code) for i, code in enumerate(blocks) if "anyio.run(" in code]
    return found


def test_the_pages_have_programs() -> None:
    assert len([p for p in _programs() if p[0] == "cookbook.md"]) >= 2
    assert len([p for p in _programs() if p[0] == "getting-started.md"]) >= 1


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(
    ("page", "index", "code"), _programs(), ids=[f"{p}-{i}" for p, i, _ in _programs()]
)
def test_every_program_on_the_pages_runs(
    page: str, index: int, code: str, backend: str, tmp_path: Path
) -> None:
    # the same program on the other backend: anyio.run gets backend= from a prelude
    prelude = (
        f"import functools, anyio\nanyio.run = functools.partial(anyio.run, backend={backend!r})\n"
    )
    script = tmp_path / "program.py"
    script.write_text(prelude + code)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"{page} program {index}:\n{result.stderr}"
    assert result.stdout.strip(), f"{page} program {index} printed nothing"


def _documented(page: str) -> set[str]:
    text = (DOCS / page).read_text()
    return set(re.findall(r'^      heading: "([A-Za-z_0-9]+)"$', text, re.M))


def test_the_api_pages_document_every_public_name() -> None:
    assert _documented("api.md") == set(aioreftable.__all__)
    constants = {"ACCELERATED", "SHA1", "SHA256"}  # values, named in the page's prose
    assert _documented("api-lowlevel.md") == set(aioreftable.lowlevel.__all__) - constants
    prose = (DOCS / "api-lowlevel.md").read_text()
    assert all(f"`{name}`" in prose for name in constants)


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages == set(re.findall(r"([\w.-]+\.md)$", nav, re.M))
