"""`aioreftable for-each-ref` against `git for-each-ref` on every scenario."""

from __future__ import annotations

import pytest
from cli_scenarios import SCENARIOS, Scenarios, run_both, scenarios
from conftest import Git

__all__ = ["scenarios"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenarios_show_ref(git: Git, scenarios: Scenarios, name: str) -> None:
    ours, theirs = run_both(git, scenarios[name], ["show-ref", "--head", "-d"])
    assert ours == theirs
