"""Each kind of rejection a batch reports has its own exception type (issue 11: batches
classify rejections by error type, never by message)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Git
from refs_helpers import ENV, make_twins, object_ids

from aioreftable import (
    ExpectedSymrefError,
    IncorrectOldValueError,
    RejectReason,
    open_ref_store,
)
from aioreftable._refs._batch import classify

pytestmark = [pytest.mark.anyio, pytest.mark.git]


async def test_a_regular_ref_where_a_symref_is_expected(git: Git, tmp_path: Path) -> None:
    repo = make_twins(git, tmp_path)[1]
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(ExpectedSymrefError, match="expected symref with target") as info:
            async with store.transaction() as tx:
                tx.symref_verify("refs/heads/main", "refs/heads/other")
        assert isinstance(info.value, IncorrectOldValueError)  # what callers caught before
        assert classify(info.value) is RejectReason.EXPECTED_SYMREF
        async with store.batch() as batch:
            batch.symref_verify("refs/heads/main", "refs/heads/other")
            batch.update("refs/tags/v1", ids["c0"], old=ids["c0"])
        reasons = [r.reason for r in batch.results]
        assert reasons == [RejectReason.EXPECTED_SYMREF, RejectReason.INCORRECT_OLD_VALUE]


def test_the_reason_follows_the_type_not_the_message() -> None:
    assert classify(ExpectedSymrefError("anything", "refs/x")) is RejectReason.EXPECTED_SYMREF
    wrong = IncorrectOldValueError("expected symref with target 'x'", "refs/x")
    assert classify(wrong) is RejectReason.INCORRECT_OLD_VALUE
