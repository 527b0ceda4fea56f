"""Transaction internals: the D/F check of large transactions (NameSet), against git."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Git
from hypothesis import given, settings
from hypothesis import strategies as st
from refs_helpers import Op, apply_ours, git_apply, make_twins, object_ids, show_refs

from aioreftable._refs._core import NameSet

pytestmark = [pytest.mark.anyio]

_NAMES = st.lists(
    st.text(alphabet="ab/", min_size=1, max_size=6), max_size=30
)  # short names over a small alphabet: many prefixes and collisions


@settings(max_examples=200, deadline=None)
@given(
    names=_NAMES,
    removed=_NAMES,
    prefix=st.text(alphabet="ab/", max_size=4),
)
def test_nameset_is_a_sorted_set(names: list[str], removed: list[str], prefix: str) -> None:
    model = set(names)
    index = NameSet(names[: len(names) // 2])
    for name in names[len(names) // 2 :]:
        index.add(name)
    for name in removed:
        index.discard(name)
        model.discard(name)
    assert list(index) == sorted(model) and len(index) == len(model)
    assert all(name in index for name in model)
    assert not any(name in index for name in set(removed) - model)
    under = sorted(name for name in model if name.startswith(prefix))
    assert index.first_with_prefix(prefix) == (under[0] if under else None)


_SIZE = 3000  # creates per transaction


@pytest.mark.git
@pytest.mark.parametrize(
    "extra",
    [
        "refs/heads/d7",  # a directory of names created in the same transaction
        "refs/heads/d7/b7/x",  # below a name created in the same transaction
        "refs/heads/main/x",  # below an existing ref
        "refs/heads",  # a directory of everything
        "refs/heads/d9/b2999z",  # no conflict
    ],
)
async def test_df_in_a_large_transaction_as_git(git: Git, tmp_path: Path, extra: str) -> None:
    theirs, ours = make_twins(git, tmp_path)
    oid = object_ids(git, theirs)["c1"]
    ops = [Op("create", f"refs/heads/d{i % 50}/b{i}", oid) for i in range(_SIZE)]
    for at in (0, _SIZE // 2, _SIZE):  # the conflicting name first, amid, last
        batch = [*ops[:at], Op("create", extra, oid), *ops[at:]]
        expected = git_apply(git, theirs, batch, "big")
        got = await apply_ours(ours, batch, "big")
        assert got == expected
        assert show_refs(git, ours) == show_refs(git, theirs)
        if expected is None:  # both committed (no conflict): once is enough
            assert len(show_refs(git, ours).splitlines()) == _SIZE + 6
            break
