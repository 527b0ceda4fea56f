"""Verification after a run: replay every ledger against the repositories (acknowledged
writes visible or superseded, counters exact, reflogs complete and in order), then our deep
``verify()``, ``git refs verify``, ``git fsck`` and git's view of every ref against ours."""

from __future__ import annotations

import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from aioreftable import open_ref_store

from .ledger import LedgerData, Op
from .repos import counter_names, git_env, worktree_of

NAMESPACES = (
    "refs/heads/stress-p/",
    "refs/heads/stress-g/",
    "refs/stress-m/",
    "refs/stress-s/",
    "refs/worktree/stress/",
)
MAX_DETAILS = 50


@dataclass
class Findings:
    lost_acknowledged: int = 0
    corrupt_stacks: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def lost(self, detail: str) -> None:
        self.lost_acknowledged += 1
        self.note("lost: " + detail)

    def violation(self, kind: str, detail: str) -> None:
        self.violations[kind] += 1
        self.note(f"{kind}: {detail}")

    def note(self, detail: str) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append(detail)


def repo_of(worker: str, repos: int) -> int:
    """The repository a ledger's worker wrote to (``w3-i0``: worker 3, ``g1-i2``: git 1)."""
    return int(worker.split("-")[0][1:]) % repos


def value_map(refs: list[tuple[str, str | None, str | None]]) -> dict[str, str]:
    return {name: (oid if oid is not None else f"ref:{target}") for name, oid, target in refs}


def check_counters(
    f: Findings,
    ops: list[Op],
    values: dict[str, str],
    reflogs: dict[str, list[tuple[str, str]]],
    index: dict[str, int],
    counters: list[str],
    repo: str,
) -> None:
    for counter in counters:
        final = index.get(values.get(counter, ""))
        if final is None:
            f.violation("counter_value_unknown", f"{repo} {counter} = {values.get(counter)}")
            continue
        incs = [op for op in ops if op.op == "inc" and op.fields.get("c") == counter]
        acked = Counter(op.fields["frm"] for op in incs if op.status == "ack")
        doubt = {op.fields["frm"] for op in incs if op.status in ("doubt", "unknown")}
        for k, n in acked.items():
            if n > 1:  # two writers were told they moved the counter from k: a lost update
                for _ in range(n - 1):
                    f.lost(f"{repo} {counter}: increment from {k} acknowledged {n} times")
            if k >= final:
                f.lost(f"{repo} {counter}: increment from {k} acknowledged, counter is {final}")
        unexplained = set(range(final)) - set(acked) - doubt
        for k in sorted(unexplained)[:5]:
            f.note(f"{repo} {counter}: increment from {k} applied but never attempted")
        if unexplained:
            f.violations["unacknowledged_increment"] += len(unexplained)
        f.checks.setdefault("counters", {})[f"{repo}:{counter}"] = {
            "value": final,
            "acknowledged": sum(acked.values()),
            "in_doubt": len(doubt),
        }
        steps = []
        for old, new in reflogs.get(counter, []):
            if old in index and new in index:
                steps.append((index[old], index[new]))
        seen = set(steps)
        for k in sorted(acked):
            if k < final and (k, k + 1) not in seen:
                f.lost(f"{repo} {counter}: reflog lacks the acknowledged {k} -> {k + 1}")
        if steps != [(k, k + 1) for k in range(final)]:
            f.violation("reflog_order", f"{repo} {counter}: reflog is not 0 -> 1 -> ... -> {final}")


def check_changes(f: Findings, ops: list[Op], values: dict[str, str], repo: str) -> None:
    """Private refs: each one's value must be what its last acknowledged write left, or what
    an in-doubt write after it would have left; atomic groups in doubt all or nothing."""
    allowed: dict[str, set[str | None]] = {}
    by_ack: dict[str, bool] = {}
    last_op: dict[str, Op] = {}
    for op in ops:
        if op.op != "set" or op.status == "nack":
            continue
        for name, _old, new in op.fields["u"]:
            if op.status == "ack":
                allowed[name] = {new}
                by_ack[name] = True
            else:
                allowed.setdefault(name, {None}).add(new)
                by_ack[name] = False
            last_op[name] = op
    for name, options in allowed.items():
        actual = values.get(name)
        if actual not in options:
            if by_ack[name]:
                f.lost(f"{repo} {name}: {actual} but the last acknowledged write left {options}")
            else:
                f.violation("unexplained_value", f"{repo} {name}: {actual} not in {options}")
    for op in ops:
        if op.op == "set" and op.fields.get("atomic") and op.status in ("doubt", "unknown"):
            mine = [
                (n, new) for n, old, new in op.fields["u"] if last_op.get(n) is op and old != new
            ]
            applied = [values.get(n) == new for n, new in mine]
            if any(applied) and not all(applied):
                f.violation("torn_transaction", f"{repo} {op.worker}#{op.op_id}: {applied}")
    for name in values:
        if name.startswith(NAMESPACES) and name not in allowed:
            f.violation("unexpected_ref", f"{repo} {name} = {values[name]}")


def check_feeds(
    f: Findings,
    feeds: list[dict[str, Any]],
    ops: list[Op],
    values: dict[str, str],
    index: dict[str, int],
    repo: str,
) -> None:
    """Change-feed sessions: the values a consumer saw are values the counter went through
    (never past its final value); each session saw every step between its first and last
    value exactly once (checked by the consumer), so every acknowledged increment there."""
    total = f.checks.setdefault("feed", {"sessions": 0, "changes": 0, "acknowledged_seen": 0})
    acked = [op for op in ops if op.op == "inc" and op.status == "ack"]
    for session in feeds:
        total["sessions"] += 1
        total["changes"] += int(session.get("n", 0))
        for counter, (first, last) in session["c"].items():
            final = index.get(values.get(counter, ""), -1)
            if last > final:
                f.violation("feed_phantom", f"{repo} {counter}: feed saw {last}, final {final}")
            total["acknowledged_seen"] += sum(
                1 for op in acked if op.fields["c"] == counter and first <= op.fields["frm"] < last
            )


def git(gitpath: str, repo: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [gitpath, *args], cwd=repo, capture_output=True, text=True, env=git_env(), check=False
    )


async def read_repo(repo: str, counters: list[str], worktree: bool) -> dict[str, Any]:
    """Everything verification needs from one repository, through the public API (with
    ``worktree``, the refs/worktree/ refs of its linked worktree as well)."""
    wt_refs = []
    if worktree:
        async with open_ref_store(worktree_of(Path(repo))) as store:
            wt_refs = [(r.name, r.oid, r.target) async for r in store.iterate("refs/worktree/")]
    async with open_ref_store(repo) as store:
        refs = [(r.name, r.oid, r.target) async for r in store.iterate("refs/")]
        reflogs = {}
        for c in counters:
            entries = await store.reflog(c, oldest_first=True)
            reflogs[c] = [(e.old, e.new) for e in entries]
        findings = await store.verify()
    return {"refs": refs, "wt_refs": wt_refs, "reflogs": reflogs, "findings": findings}


def git_checks(
    f: Findings, gitpath: str, repo: str, ours: dict[str, Any], counters: list[str]
) -> bool:
    """git's checks of one repository; False when the stack is corrupt in git's eyes."""
    sound = True
    for args in (("refs", "verify"), ("fsck", "--no-dangling", "--no-progress")):
        proc = git(gitpath, repo, *args)
        if proc.returncode != 0:
            sound = False
            f.note(f"{repo}: git {' '.join(args)}: {proc.stdout}{proc.stderr}"[:2000])
    proc = git(
        gitpath, repo, "for-each-ref", "--format=%(refname) %(objectname) %(symref)", "refs/"
    )
    theirs = {line.split(" ")[0]: line for line in proc.stdout.splitlines()}
    values = value_map(ours["refs"])
    mine = {}
    for name, value in values.items():
        if value.startswith("ref:"):
            target = value[4:]
            mine[name] = f"{name} {values.get(target, '')} {target}"
        else:
            mine[name] = f"{name} {value} "
    if theirs != mine:
        diff = sorted(set(theirs.items()) ^ set(mine.items()))
        f.violation("git_view_mismatch", f"{repo}: {len(diff)} lines differ, e.g. {diff[:3]}")
    for c in counters:
        proc = git(gitpath, repo, "reflog", "show", "--format=%H", c, "--")
        if len(proc.stdout.split()) != len(ours["reflogs"][c]):
            f.violation(
                "git_reflog_mismatch",
                f"{repo} {c}: git shows {len(proc.stdout.split())} entries, we read "
                f"{len(ours['reflogs'][c])}",
            )
    return sound


async def verify_run(run: dict[str, Any], chain: list[str], data: LedgerData) -> Findings:
    from .profiles import Profile

    profile = Profile.from_dict(run["profile"])
    counters = counter_names(profile)
    index = {oid: k for k, oid in enumerate(chain)}
    f = Findings()
    for failure in data.failures:
        kind = str(failure.get("e", ""))
        if kind.startswith("violation:"):
            f.violation(kind.removeprefix("violation:"), str(failure.get("d", "")))
    if data.corrupt_lines:
        f.violation("ledger_corrupt", ", ".join(data.corrupt_lines[:10]))
    by_repo: dict[int, list[Op]] = defaultdict(list)
    for op in data.ops:
        by_repo[repo_of(op.worker, len(run["repos"]))].append(op)
    for number, repo in enumerate(run["repos"]):
        try:
            ours = await read_repo(repo, counters, profile.worktree)
        except Exception as exc:  # a stack we cannot even open is corrupt
            f.corrupt_stacks += 1
            f.note(f"{repo}: cannot be read: {type(exc).__name__}: {exc}")
            continue
        errors = [str(x) for x in ours["findings"] if x.severity == "error"]
        warnings = [str(x) for x in ours["findings"] if x.severity == "warning"]
        f.checks.setdefault("verify_warnings", {})[repo] = warnings[:20]
        values = value_map(ours["refs"] + ours["wt_refs"])
        ops = by_repo[number]
        check_counters(f, ops, values, ours["reflogs"], index, counters, repo)
        check_changes(f, ops, values, repo)
        feeds = [s for s in data.feeds if repo_of(str(s["file"]), len(run["repos"])) == number]
        check_feeds(f, feeds, ops, values, index, repo)
        preload = [v for n, v in values.items() if n.startswith("refs/preload/")]
        if len(preload) != profile.preload_refs:
            f.lost(f"{repo}: {len(preload)} of {profile.preload_refs} preloaded refs")
        sound = await anyio.to_thread.run_sync(git_checks, f, run["git"], repo, ours, counters)
        if errors:
            f.note(f"{repo}: verify(): {errors[:5]}")
        if errors or not sound:
            f.corrupt_stacks += 1
    return f
