#!/usr/bin/env bash
# Print the absolute path of a git >= 2.52 on stdout, for the tests of features
# newer than the suite's main git (AIOREFTABLE_TEST_GIT_NEW, fixture `git_new`).
#
# scripts/ensure-git.sh's recipe with Debian sid (unstable) instead of trixie:
# $AIOREFTABLE_TEST_GIT_NEW if it is new enough, else `git` on PATH, else a
# private git extracted from sid's .debs (with sid's glibc and the few libraries
# it needs) into ${AIOREFTABLE_CACHE:-$HOME/.cache/aioreftable}/git-sid; sid is
# added as an apt source pinned at priority 100, so nothing upgrades from it.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/ensure-git.sh" --suite sid --min 2.52 --var AIOREFTABLE_TEST_GIT_NEW
