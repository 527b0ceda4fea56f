#!/usr/bin/env bash
# Print the absolute path of a git >= 2.45 (needed for reftable) on stdout.
#
# Order of preference:
#   1. $AIOREFTABLE_TEST_GIT, if it is set and is >= 2.45;
#   2. `git` on PATH, if it is >= 2.45;
#   3. a cached private git built by an earlier run of this script;
#   4. Debian >= 13: `apt-get install git` from the normal sources;
#   5. Debian 12: trixie's git .deb (plus the few libraries it needs) is
#      extracted into a private cache dir, patched with patchelf to use
#      trixie's own glibc, and wrapped by a small script that sets
#      GIT_EXEC_PATH.  The system's packages are left alone: trixie is
#      added as an apt source pinned at priority 100, so nothing upgrades
#      from it.
#
# The private trixie git must also clone and push over HTTP (tests/test_http_git.py):
# its git-remote-http needs the system's libcurl3-gnutls, installed from Debian 12
# if missing, and is smoke-tested against a local dumb-HTTP server once per cache
# (marker .http-helper-ok; a cache from before that check gets it on the next run).
#
# Only the final path goes to stdout; all progress goes to stderr.
# Cache: ${AIOREFTABLE_CACHE:-$HOME/.cache/aioreftable}/git-trixie
#
# Options (scripts/ensure-git-new.sh uses them; without any, the above):
#   --suite SUITE  the Debian suite of step 5 (default trixie; the cache is
#                  git-SUITE; step 4 is only for trixie; any Debian >= 12)
#   --min M.N      the oldest git accepted (default 2.45)
#   --var NAME     the override variable of step 1 (default AIOREFTABLE_TEST_GIT)
set -euo pipefail

# Keep stdout clean: everything goes to stderr except the final answer (fd 3).
exec 3>&1 1>&2

SUITE=trixie
MIN_MAJOR=2
MIN_MINOR=45
OVERRIDE_VAR=AIOREFTABLE_TEST_GIT
while (($#)); do
    case $1 in
        --suite) SUITE=${2:?--suite needs a value}; shift 2 ;;
        --min)
            [[ ${2:-} =~ ^([0-9]+)\.([0-9]+)$ ]] || { printf 'ensure-git: ERROR: --min needs MAJOR.MINOR\n' >&2; exit 2; }
            MIN_MAJOR=${BASH_REMATCH[1]} MIN_MINOR=${BASH_REMATCH[2]}
            shift 2
            ;;
        --var) OVERRIDE_VAR=${2:?--var needs a value}; shift 2 ;;
        *) printf 'ensure-git: ERROR: unknown option %s\n' "$1" >&2; exit 2 ;;
    esac
done
[[ $SUITE =~ ^[a-z0-9-]+$ ]] || { printf 'ensure-git: ERROR: bad suite %s\n' "$SUITE" >&2; exit 2; }
[[ $OVERRIDE_VAR =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { printf 'ensure-git: ERROR: bad variable name %s\n' "$OVERRIDE_VAR" >&2; exit 2; }

log() { printf 'ensure-git: %s\n' "$*" >&2; }
die() { printf 'ensure-git: ERROR: %s\n' "$*" >&2; exit 1; }
answer() { printf '%s\n' "$1" >&3; exit 0; }

# git_ok PATH: true if PATH runs and reports a version >= MIN.
git_ok() {
    local g=$1 out major minor
    [ -n "$g" ] && [ -x "$g" ] || return 1
    out=$("$g" --version 2>/dev/null) || return 1
    if [[ $out =~ ^git\ version\ ([0-9]+)\.([0-9]+) ]]; then
        major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
        ((major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR)))
        return
    fi
    return 1
}

abspath() {
    local p=$1
    case $p in
        /*) ;;
        */*) p="$(cd "$(dirname "$p")" && pwd)/$(basename "$p")" ;;
        *) p=$(command -v "$p") || return 1 ;;
    esac
    printf '%s\n' "$p"
}

# The private build's cache (step 3 and 5).
if [ -z "${HOME:-}" ]; then
    HOME=$(getent passwd "$(id -u)" | cut -d: -f6) || true
fi
CACHE_ROOT=${AIOREFTABLE_CACHE:-${HOME:-/tmp}/.cache/aioreftable}
case $CACHE_ROOT in /*) ;; *) CACHE_ROOT=$PWD/$CACHE_ROOT ;; esac
CACHE_DIR=$CACHE_ROOT/git-$SUITE
WRAPPER=$CACHE_DIR/bin/git
MARKER=$CACHE_DIR/.complete
# The tests push over HTTP with the trixie git: its git-remote-http links the
# system's libcurl (libcurl-gnutls.so.4, Debian 12's libcurl3-gnutls), which a
# clean Debian 12 lacks.  HTTP_MARKER says it was made to work and smoke-tested;
# a cache built before this check existed is checked once, without a download.
HTTP_MARKER=$CACHE_DIR/.http-helper-ok

cache_ok() { [ -f "$MARKER" ] && git_ok "$WRAPPER"; }
needs_http() { [ "$SUITE" = trixie ]; }
http_checked() { ! needs_http || [ -f "$HTTP_MARKER" ]; }

# --- 1. explicit override ---------------------------------------------------
if [ -n "${!OVERRIDE_VAR:-}" ]; then
    if cand=$(abspath "${!OVERRIDE_VAR}") && git_ok "$cand"; then
        # our own cache whose http helper is unchecked: check it below (step 3)
        if [ "$cand" != "$WRAPPER" ] || http_checked; then
            answer "$cand"
        fi
    else
        log "$OVERRIDE_VAR=${!OVERRIDE_VAR} is not a working git >= $MIN_MAJOR.$MIN_MINOR; looking elsewhere"
    fi
fi

# --- 2. git on PATH ---------------------------------------------------------
if cand=$(command -v git 2>/dev/null) && git_ok "$cand"; then
    answer "$(abspath "$cand")"
fi

# --- 3. cached private build (fast path) -------------------------------------
if cache_ok && http_checked; then
    answer "$WRAPPER"
fi

# --- helpers for the slow paths ---------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root() { sudo -n "$@"; }
else
    as_root() { die "need root (or passwordless sudo) to run: $*"; }
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-q -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)

apt_update() {
    log "apt-get update (this can take a while)"
    as_root apt-get "${APT_OPTS[@]}" update >&2
}

apt_install() {
    # Try with the current lists first; refresh them if that fails.
    if ! as_root apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "$@" >&2; then
        apt_update
        as_root apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "$@" >&2
    fi
}

# missing_libs BINARY: the shared libraries BINARY's own loader cannot find.
missing_libs() { LD_TRACE_LOADED_OBJECTS=1 "$1" 2>&1 </dev/null | awk '/not found/ {print $1}'; }

# http_smoke_test GIT: GIT lists and clones a repository from a local dumb-HTTP
# server (python3 -m http.server on 127.0.0.1); without python3, it must at least
# run git-remote-http far enough to fail connecting to a closed port.
http_smoke_test() {
    local g=$1 t rc=0 pid="" port="" oid out
    t=$(mktemp -d)
    (
        set -e
        cd "$t"
        export HOME=$t GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
        export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.invalid
        export GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.invalid
        unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY
        "$g" init -q --bare --ref-format=files -b main srv/r.git
        "$g" init -q -b main w
        "$g" -C w commit -q --allow-empty -m x
        "$g" -C w push -q ../srv/r.git main
        "$g" -C srv/r.git update-server-info
    ) >"$t.log" 2>&1 || rc=$?
    if ((rc == 0)) && ! command -v python3 >/dev/null 2>&1; then
        log "no python3 for a local HTTP server: only checking that git-remote-http runs"
        out=$(GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null "$g" ls-remote http://127.0.0.1:9/r.git 2>&1) || true
        grep -q "unable to access" <<<"$out" || { rc=1; printf '%s\n' "$out" >>"$t.log"; }
    elif ((rc == 0)); then
        python3 -u -m http.server --bind 127.0.0.1 --directory "$t/srv" 0 >"$t/http.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            port=$(grep -o 'port [0-9]*' "$t/http.log" | head -n1 | cut -d' ' -f2) || true
            [ -n "$port" ] && break
            sleep 0.1
        done
        oid=$("$g" -C "$t/w" rev-parse HEAD)
        (
            set -e
            [ -n "$port" ]
            export HOME=$t GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
            out=$("$g" ls-remote "http://127.0.0.1:$port/r.git")
            grep -q "^$oid[[:space:]]refs/heads/main\$" <<<"$out"
            "$g" clone -q "http://127.0.0.1:$port/r.git" "$t/c"
            [ "$("$g" -C "$t/c" rev-parse HEAD)" = "$oid" ]
        ) >>"$t.log" 2>&1 || rc=$?
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        cat "$t/http.log" >>"$t.log"
    fi
    if ((rc != 0)); then
        log "HTTP smoke test of $g failed:"
        cat "$t.log" >&2
    fi
    rm -rf "$t" "$t.log"
    return $rc
}

# ensure_http_helper: the private git's git-remote-http finds its libraries
# (installing Debian 12's libcurl3-gnutls if not) and passes the smoke test.
ensure_http_helper() {
    local helper=$CACHE_DIR/usr/lib/git-core/git-remote-http missing
    [ -x "$helper" ] || { log "$helper is missing"; return 1; }
    missing=$(missing_libs "$helper")
    if [ -n "$missing" ]; then
        log "git-remote-http cannot find ${missing//$'\n'/ }; installing libcurl3-gnutls"
        apt_install libcurl3-gnutls
        missing=$(missing_libs "$helper")
        [ -z "$missing" ] || { log "git-remote-http still cannot find: $missing"; return 1; }
    fi
    http_smoke_test "$WRAPPER"
}

# --- 3b. a cached build whose http helper was not checked yet ----------------
if cache_ok; then
    mkdir -p "$CACHE_ROOT"
    exec 9>"$CACHE_ROOT/git-$SUITE.lock"
    if command -v flock >/dev/null 2>&1; then
        flock 9
    fi
    if ! http_checked; then
        log "checking the http helper of $WRAPPER"
        ensure_http_helper || die "git-remote-http of $WRAPPER does not work (see above)"
        touch "$HTTP_MARKER"
    fi
    answer "$WRAPPER"
fi

command -v apt-get >/dev/null 2>&1 || die "no git >= $MIN_MAJOR.$MIN_MINOR found and this is not an apt-based system; install git >= $MIN_MAJOR.$MIN_MINOR and set AIOREFTABLE_TEST_GIT"

OS_ID=unknown OS_VERSION_ID="" OS_CODENAME=""
if [ -r /etc/os-release ]; then
    { read -r OS_ID; read -r OS_VERSION_ID; read -r OS_CODENAME; } < <(
        # shellcheck disable=SC1091
        . /etc/os-release && printf '%s\n' "${ID:-unknown}" "${VERSION_ID:-}" "${VERSION_CODENAME:-}"
    ) || true
fi

# --- 4. Debian >= 13: the distribution's git is new enough -------------------
debian_major=${OS_VERSION_ID%%.*}
if [ "$SUITE" = trixie ] && [ "$OS_ID" = debian ] && { { [[ $debian_major =~ ^[0-9]+$ ]] && ((debian_major >= 13)); } ||
    { [ -z "$OS_VERSION_ID" ] && [ -n "$OS_CODENAME" ] && [ "$OS_CODENAME" != bookworm ] && [ "$OS_CODENAME" != bullseye ] && [ "$OS_CODENAME" != buster ]; }; }; then
    log "Debian ${OS_VERSION_ID:-$OS_CODENAME}: installing git from the normal sources"
    apt_update
    as_root apt-get "${APT_OPTS[@]}" install -y --no-install-recommends git >&2
    hash -r
    if cand=$(command -v git) && git_ok "$cand"; then
        answer "$(abspath "$cand")"
    fi
    die "apt-get install git did not give git >= $MIN_MAJOR.$MIN_MINOR (got: $(git --version 2>&1 || true))"
fi

if ! [ "$OS_ID" = debian ] || { ! [ "$debian_major" = 12 ] && [ "$SUITE" = trixie ]; }; then
    die "git >= $MIN_MAJOR.$MIN_MINOR not found and no recipe for ${OS_ID} ${OS_VERSION_ID:-$OS_CODENAME}; install git >= $MIN_MAJOR.$MIN_MINOR and set AIOREFTABLE_TEST_GIT=/path/to/git"
fi

# --- 5. Debian 12: private git from trixie (or --suite) ------------------------
case $(uname -m) in
    x86_64) MULTIARCH=x86_64-linux-gnu LDSO=ld-linux-x86-64.so.2 ;;
    aarch64 | arm64) MULTIARCH=aarch64-linux-gnu LDSO=ld-linux-aarch64.so.1 ;;
    *) die "unsupported machine $(uname -m) for the $SUITE git recipe; set $OVERRIDE_VAR" ;;
esac

case $CACHE_DIR in
    *[\'\"\\\$\`]*) die "cache dir $CACHE_DIR contains quotes or \$; set AIOREFTABLE_CACHE to a plain path" ;;
esac

mkdir -p "$CACHE_ROOT"
# Serialise concurrent runs; re-check the cache once we hold the lock.
exec 9>"$CACHE_ROOT/git-$SUITE.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if cache_ok && http_checked; then
    answer "$WRAPPER"
fi
# We hold the lock: leftovers of interrupted builds can go.
rm -rf "$CACHE_ROOT"/git-"$SUITE".tmp.*

log "git >= $MIN_MAJOR.$MIN_MINOR not available; building a private git from Debian $SUITE into $CACHE_DIR"

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
SOURCES_FILE=/etc/apt/sources.list.d/aioreftable-$SUITE.sources
PIN_FILE=/etc/apt/preferences.d/aioreftable-$SUITE

keyring_knows_trixie() {
    [ -r "$KEYRING" ] || return 1
    if command -v gpg >/dev/null 2>&1; then
        local gh uids
        gh=$(mktemp -d)
        uids=$(GNUPGHOME=$gh gpg --batch --show-keys --with-colons "$KEYRING" 2>/dev/null) || true
        rm -rf "$gh"
        grep -q '^uid:.*(13/trixie)' <<<"$uids"
        return
    fi
    # No gpg: trust the keyring package version (trixie keys arrived in 2023.3+deb12u1).
    local v
    v=$(dpkg-query -W -f='${Version}' debian-archive-keyring 2>/dev/null) || return 1
    dpkg --compare-versions "$v" ge 2023.3+deb12u1
}

if ! keyring_knows_trixie; then
    log "$KEYRING does not know trixie's signing key; upgrading debian-archive-keyring"
    apt_install debian-archive-keyring
    keyring_knows_trixie || die "$KEYRING still lacks the Debian 13/trixie archive key after upgrading debian-archive-keyring"
fi

write_if_changed() {
    # write_if_changed FILE CONTENT -> returns 0 if the file was (re)written
    local f=$1 content=$2
    if [ -f "$f" ] && [ "$(cat "$f")" = "$content" ]; then
        return 1
    fi
    printf '%s\n' "$content" | as_root tee "$f" >/dev/null
    return 0
}

need_update=0
if write_if_changed "$SOURCES_FILE" "# Added by aioreftable scripts/ensure-git.sh: only to fetch git >= $MIN_MAJOR.$MIN_MINOR.
# Pinned low in $PIN_FILE, so nothing is upgraded from it.
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SUITE
Components: main
Signed-By: $KEYRING"; then
    log "wrote $SOURCES_FILE"
    need_update=1
fi
if write_if_changed "$PIN_FILE" "# Added by aioreftable scripts/ensure-git.sh: never upgrade from $SUITE by default.
Package: *
Pin: release n=$SUITE
Pin-Priority: 100"; then
    log "wrote $PIN_FILE"
fi

if ! command -v patchelf >/dev/null 2>&1; then
    log "installing patchelf"
    apt_install patchelf
fi

# Packages needed to *run* git for local, non-network commands: git itself,
# trixie's glibc (git needs GLIBC_2.38+), pcre2 and zlib.  libcurl is the
# system's (ensure_http_helper), libexpat only for git-http-push (WebDAV),
# perl only by a few scripts.
PKGS=(git libc6 libpcre2-8-0 zlib1g)

STAGE=$(mktemp -d "$CACHE_ROOT/git-$SUITE.tmp.XXXXXX")
# shellcheck disable=SC2317  # invoked by the trap
cleanup() { rm -rf "$STAGE"; }
trap cleanup EXIT
chmod 755 "$STAGE"
mkdir "$STAGE/debs"

download() {
    (cd "$STAGE/debs" && rm -f ./*.deb &&
        as_root apt-get "${APT_OPTS[@]}" -o APT::Sandbox::User=root download -t "$SUITE" "${PKGS[@]}" >&2)
}
if ((need_update)); then
    apt_update
fi
log "downloading ${PKGS[*]} from $SUITE"
if ! download; then
    apt_update
    download || die "apt-get download -t $SUITE ${PKGS[*]} failed"
fi

ROOT=$STAGE/root
mkdir "$ROOT"
for deb in "$STAGE"/debs/*.deb; do
    log "extracting $(basename "$deb")"
    dpkg -x "$deb" "$ROOT"
done

# Paths as they will be once $STAGE/root is renamed to $CACHE_DIR.
LIBDIRS=()
for d in usr/lib/$MULTIARCH lib/$MULTIARCH; do
    [ -e "$ROOT/$d/libc.so.6" ] && LIBDIRS+=("$d")
done
((${#LIBDIRS[@]})) || die "libc.so.6 not found in the extracted $SUITE libc6"
INTERP_REL=""
for d in "${LIBDIRS[@]}" usr/lib64 lib64 usr/lib lib; do
    if [ -e "$ROOT/$d/$LDSO" ]; then
        INTERP_REL=$d/$LDSO
        break
    fi
done
[ -n "$INTERP_REL" ] || die "$LDSO not found in the extracted $SUITE libc6"
INTERP=$CACHE_DIR/$INTERP_REL
RPATH=$(printf "$CACHE_DIR/%s:" "${LIBDIRS[@]}")
RPATH=${RPATH%:}

[ -f "$ROOT/usr/bin/git" ] || die "usr/bin/git missing from the $SUITE git package"
[ -d "$ROOT/usr/lib/git-core" ] || die "usr/lib/git-core missing from the $SUITE git package"

# usr/lib/git-core/git must be the same patched binary as usr/bin/git
# (git re-executes itself from GIT_EXEC_PATH).  Debian ships it as a
# separate copy, older packages as a hard link or symlink: normalise.
if [ -L "$ROOT/usr/lib/git-core/git" ] || ! [ "$ROOT/usr/lib/git-core/git" -ef "$ROOT/usr/bin/git" ]; then
    rm -f "$ROOT/usr/lib/git-core/git"
fi

# Patch every dynamically linked ELF executable in bin/ and git-core/ once
# (hard links share an inode, so skip those already done).
declare -A done_inodes=()
npatched=0
for f in "$ROOT"/usr/bin/* "$ROOT"/usr/lib/git-core/*; do
    if [ -L "$f" ] || ! [ -f "$f" ]; then continue; fi
    patchelf --print-interpreter "$f" >/dev/null 2>&1 || continue
    ino=$(stat -c '%d:%i' "$f")
    [ -z "${done_inodes[$ino]:-}" ] || continue
    done_inodes[$ino]=1
    patchelf --set-interpreter "$INTERP" --force-rpath --set-rpath "$RPATH" "$f"
    npatched=$((npatched + 1))
done
if ! [ -e "$ROOT/usr/lib/git-core/git" ]; then
    ln "$ROOT/usr/bin/git" "$ROOT/usr/lib/git-core/git" 2>/dev/null ||
        cp -p "$ROOT/usr/bin/git" "$ROOT/usr/lib/git-core/git"
fi
log "patched $npatched binaries (interpreter $INTERP)"

mkdir -p "$ROOT/bin"
TEMPLATE_LINE=""
if [ -d "$ROOT/usr/share/git-core/templates" ]; then
    TEMPLATE_LINE="GIT_TEMPLATE_DIR=\${GIT_TEMPLATE_DIR:-'$CACHE_DIR/usr/share/git-core/templates'}
export GIT_TEMPLATE_DIR"
fi
cat >"$ROOT/bin/git" <<EOF
#!/bin/sh
# Generated by aioreftable scripts/ensure-git.sh: Debian $SUITE's git,
# patched to run with its own glibc from this directory.
GIT_EXEC_PATH='$CACHE_DIR/usr/lib/git-core'
export GIT_EXEC_PATH
$TEMPLATE_LINE
exec '$CACHE_DIR/usr/bin/git' "\$@"
EOF
chmod 755 "$ROOT/bin/git"

# Swap the new tree into place (any stale/partial cache is discarded).
rm -rf "$CACHE_DIR"
mv "$ROOT" "$CACHE_DIR"

# --- smoke test ---------------------------------------------------------------
smoke_test() {
    local g=$1 t rc=0
    t=$(mktemp -d)
    (
        set -e
        cd "$t"
        export HOME=$t GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
        export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.invalid
        export GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.invalid
        unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY
        "$g" --version
        "$g" init -q --ref-format=reftable repo
        cd repo
        [ "$("$g" rev-parse --show-ref-format)" = reftable ]
        [ -d .git/reftable ]
        "$g" commit -q --allow-empty -m x
        "$g" update-ref refs/heads/other HEAD
        "$g" tag t1
        "$g" branch b1
        "$g" for-each-ref >/dev/null
        "$g" show-ref >/dev/null
        "$g" refs verify
        "$g" fsck --no-progress
        "$g" pack-refs --all
        "$g" reflog >/dev/null
        "$g" worktree add -q ../wt b1
        "$g" -C ../wt status --short
        "$g" check-ref-format --allow-onelevel foo
        cd "$t"
        "$g" init -q --ref-format=files files
        # git < 2.48 cannot migrate reflogs: make a repo without any.
        "$g" -C files -c core.logAllRefUpdates=false commit -q --allow-empty -m x
        "$g" -C files refs migrate --ref-format=reftable
        [ "$("$g" -C files rev-parse --show-ref-format)" = reftable ]
    ) >"$t.log" 2>&1 || rc=$?
    if ((rc != 0)); then
        log "smoke test of $g failed:"
        cat "$t.log" >&2
    fi
    rm -rf "$t" "$t.log"
    return $rc
}

if ! smoke_test "$WRAPPER"; then
    rm -rf "$CACHE_DIR"
    die "the private $SUITE git does not work (see above)"
fi
"$WRAPPER" --version >"$MARKER"
if needs_http; then
    ensure_http_helper || die "git-remote-http of $WRAPPER does not work (see above)"
    touch "$HTTP_MARKER"
fi
log "ready: $("$WRAPPER" --version) at $WRAPPER"
answer "$WRAPPER"
