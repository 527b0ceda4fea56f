"""The harness's in-process faults (stress/faults.py, stress/sweep.py): the sweep's checks
can fail (a seam that skips the directory fsync loses acknowledged transactions in a power
cut, and the sweep says so), injected errors come out unwrapped, and the change-feed
verifier flags a consumer that saw a value the counter never reached."""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # stress/ is a top-level package of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from stress import sweep  # noqa: E402
from stress.faults import FaultyOS, eintr, enospc  # noqa: E402
from stress.ledger import Op  # noqa: E402
from stress.repos import find_git  # noqa: E402
from stress.verify import Findings, check_feeds  # noqa: E402


class NoDirSync(FaultyOS):
    """A seam that never makes directory entries durable (the bug the sweep must see)."""

    def fsync_dir(self, path: str) -> None:
        self._tick("fsync_dir", path)


def crash_points(tmp_path: Path, seam: type[FaultyOS]) -> sweep.Result:
    """The last crash points of the auto-compaction case: the transaction was acknowledged
    before them (they fall in the background compaction the store's exit waits for)."""
    git = find_git()
    tmp_path.mkdir()
    t = sweep.prepare(git, tmp_path, "auto-compaction")
    total: list[int] = []
    anyio.run(sweep.count_into, t, "auto-compaction", tmp_path, total)
    res = sweep.Result()
    for k in range(total[0] - 3, total[0] + 1):
        d = tmp_path / f"{seam.__name__}-{k}"
        shutil.copytree(t.path, d, symlinks=True)
        sweep.one(sweep.crash_point, res, git, t, "auto-compaction", k, d, seam, backend="trio")
    return res


@pytest.mark.git
def test_the_sweep_reports_acknowledged_writes_a_power_cut_took(tmp_path: Path) -> None:
    honest = crash_points(tmp_path / "honest", FaultyOS)
    assert honest.lost_acknowledged == 0 and not honest.violations, honest.details
    assert honest.corrupt_stacks == 0
    assert honest.outcomes["applied"] == 4  # acknowledged, so there after every cut
    lying = crash_points(tmp_path / "lying", NoDirSync)
    assert lying.lost_acknowledged >= 1, lying.details
    assert any("acknowledged transaction is not there" in d for d in lying.details)


def test_injected_errors_are_the_errors_the_os_would_raise() -> None:
    assert type(enospc()) is OSError and enospc().errno == errno.ENOSPC
    assert type(eintr()) is InterruptedError and eintr().errno == errno.EINTR
    fs = FaultyOS()
    fs.arm(1, "fail", only={"listdir"}, error=eintr())
    with pytest.raises(InterruptedError):
        fs.listdir(str(ROOT))
    assert fs.failed_call == ("listdir", ROOT.name)
    assert fs.listdir(str(ROOT))  # a failed call fails once


def test_the_feed_verifier_flags_a_value_the_counter_never_reached() -> None:
    chain = [f"{n + 1:040x}" for n in range(10)]
    index = {oid: k for k, oid in enumerate(chain)}
    c = "refs/heads/stress-counter-0"
    ops = [Op("w0-i0", n, "inc", {"c": c, "frm": n}, status="ack") for n in range(4)]
    f = Findings()
    check_feeds(f, [{"c": {c: [1, 4]}, "n": 3, "file": "w1-i0"}], ops, {c: chain[4]}, index, "r")
    assert not f.violations and f.checks["feed"]["acknowledged_seen"] == 3
    f = Findings()
    check_feeds(f, [{"c": {c: [1, 6]}, "n": 5, "file": "w1-i0"}], ops, {c: chain[4]}, index, "r")
    assert f.violations["feed_phantom"] == 1


def test_a_profile_may_be_the_sweep_alone_but_not_nothing() -> None:
    from stress.profiles import Profile, find

    for name in ("crash-sweep", "power-cut"):
        profile = find(name)
        profile.check()
        assert profile.processes == profile.git_writers == 0 and profile.sweep
    assert find("quick").sweep == "crash,enospc,eintr" and find("quick").gc_daemon
    with pytest.raises(ValueError, match="at least one worker process or the sweep"):
        Profile(name="x", description="", processes=0, weights={"counter": 1}).check()
    with pytest.raises(ValueError, match="unknown sweep faults"):
        Profile(name="x", description="", weights={"counter": 1}, sweep="crash,flood").check()
