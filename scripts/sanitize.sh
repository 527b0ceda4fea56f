#!/bin/sh
# The compiled block decoder under AddressSanitizer and UndefinedBehaviorSanitizer: builds
# aioreftable/_format/_speedups.c with -fsanitize=address,undefined into a copy of the
# package, then runs on it the differential tests (both decoders on every fixture, on damaged,
# truncated and generated tables), the corruption tests, and, when FUZZ_PYTHON names an
# interpreter with atheris installed, the fuzzer (scripts/fuzz_codec.py) for FUZZ_SECONDS (60).
#
#   sh scripts/sanitize.sh                          # gcc: sanitizers, random-mutation fuzzing
#   CC=clang-14 FUZZ_PYTHON=python sh scripts/sanitize.sh   # clang: coverage-guided fuzzing
#
# With clang the module is also built with -fsanitize=fuzzer-no-link and atheris's own
# ASan+libFuzzer runtime is preloaded, so libFuzzer sees the C module's edges and guides the
# fuzzer by them (its log names _speedups.c functions as NEW_FUNC). With gcc's libasan
# preloaded, atheris's coverage does not reach libFuzzer, so that run mutates at random.
# Run before a release (not a CI step; CI runs a short coverage-guided fuzz of the normal
# build in tests/test_accel_fuzz.py). Needs gcc or clang with their sanitizer runtimes
# (Debian: clang-14 libclang-rt-14-dev) and, with clang, atheris in $PYTHON.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
CC=${CC:-gcc}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
INC=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("include"))')
SUFFIX=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
SANITIZE=address,undefined
case $("$CC" --version 2>/dev/null | head -n 1) in
    *clang*)
        SANITIZE=$SANITIZE,fuzzer-no-link
        # atheris's runtime: ASan plus libFuzzer, which reads the module's coverage counters
        ASAN_LIB=$("$PY" -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so
        FUZZ_PRELOAD=$ASAN_LIB
        ;;
    *)
        ASAN_LIB=$("$CC" -print-file-name=libasan.so)
        # atheris is C++: ASan must find the real __cxa_throw, so libstdc++ is preloaded too
        FUZZ_PRELOAD="$ASAN_LIB:$("$CC" -print-file-name=libstdc++.so.6)"
        ;;
esac
[ -e "$ASAN_LIB" ] || { echo "sanitize.sh: no ASan runtime at $ASAN_LIB" >&2; exit 1; }
cp -r "$ROOT/aioreftable" "$WORK/aioreftable"
rm -f "$WORK"/aioreftable/_format/*.so
"$CC" -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=$SANITIZE \
    -fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter \
    -Wno-missing-field-initializers -I"$INC" "$ROOT/aioreftable/_format/_speedups.c" \
    -o "$WORK/aioreftable/_format/_speedups$SUFFIX"
export LD_PRELOAD="$ASAN_LIB"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONPATH="$WORK"
unset AIOREFTABLE_PURE_PYTHON || true
cd "$WORK"  # not the checkout: its in-place module would come first on sys.path
"$PY" -c 'import aioreftable._format._accel as a, sys; m = a.speedups
assert m is not None and m.__file__.startswith(sys.argv[1]), m; print("sanitized:", m.__file__)' "$WORK"
cd "$ROOT/tests"
"$PY" -m pytest -q -p no:cacheprovider -rs test_accel_differential.py test_accel_scan.py test_format_mutations.py \
    test_format_properties.py test_format_threads.py
if [ -n "${FUZZ_PYTHON:-}" ]; then
    ARTIFACTS="$ROOT/build/fuzz"  # crashes and slow inputs land here (build/ is ignored)
    mkdir -p "$ARTIFACTS"
    cd "$WORK"
    "$FUZZ_PYTHON" -c 'import aioreftable._format._accel as a, sys
assert a.speedups.__file__.startswith(sys.argv[1])' "$WORK"
    LD_PRELOAD="$FUZZ_PRELOAD" \
        "$FUZZ_PYTHON" "$ROOT/scripts/fuzz_codec.py" -max_total_time="${FUZZ_SECONDS:-60}" \
        -rss_limit_mb=4096 -artifact_prefix="$ARTIFACTS/"
fi
echo "sanitize.sh: no sanitizer report"
