#!/usr/bin/env bash
# The project's one test command (README.md, .ci/run). Installs what the tests need, then runs
# every test: format and lint, unit/property/integration tests, the shared vectors through the
# real `nmadp` binary, and a short fuzz run of every parser.
#
# Environment:
#   FUZZ_SECONDS  seconds per fuzz target (default 20; 0 skips fuzzing)
#   SHARED        folder holding the shared spec, vectors and tools (default: ../shared beside the repo)
#   SKIP_INSTALL  set to 1 to skip apt/cargo installs (they are skipped anyway when present)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
SHARED=${SHARED:-$ROOT/../shared}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

passed=0
failed=0
failures=()
stage() { printf '\n=== %s ===\n' "$*"; }
run() { # run NAME CMD...: one counted check
    local name=$1
    shift
    stage "$name"
    local t0=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "--- ok: $name ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "--- FAILED: $name ($((SECONDS - t0)) s)"
    fi
}

install_deps() {
    [ "${SKIP_INSTALL:-0}" = 1 ] && return 0
    local need=()
    command -v python3 >/dev/null || need+=(python3)
    command -v cc >/dev/null || need+=(gcc)
    if [ ${#need[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
        else
            echo "missing ${need[*]} and not root: install them" >&2
            return 1
        fi
    fi
    if [ "$FUZZ_SECONDS" != 0 ] && ! cargo fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz --locked --quiet || return 1
    fi
    return 0
}

vectors() {
    cargo build --release -q -p dataplane --bin nmadp || return 1
    local files=("$ROOT"/pipelines/tests/data/*.jsonl)
    if [ -x "$SHARED/tools/check-vectors" ] || [ -f "$SHARED/tools/check-vectors" ]; then
        # The shared checker and the shared vectors, when present, are the independent reference.
        shopt -s nullglob
        local shared_files=("$SHARED"/vectors/*.jsonl)
        shopt -u nullglob
        [ ${#shared_files[@]} -gt 0 ] && files=("${shared_files[@]}")
        python3 "$SHARED/tools/check-vectors" "$ROOT/target/release/nmadp" "${files[@]}"
    else
        echo "no $SHARED/tools/check-vectors: the vectors still run in the cargo tests"
    fi
}

fuzz() {
    [ "$FUZZ_SECONDS" = 0 ] && { echo "FUZZ_SECONDS=0: skipped"; return 0; }
    # cargo-fuzz needs nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP lets the one stable toolchain
    # on these machines accept them.
    export RUSTC_BOOTSTRAP=1
    local targets ok=0 t tmp
    targets=$(cd pipelines && cargo fuzz list) || return 1
    for t in $targets; do
        tmp=$(mktemp -d)
        # New inputs go to the temporary corpus (first folder); the committed seeds stay as they are.
        (cd pipelines && cargo fuzz run "$t" "$tmp" "fuzz/corpus/$t" -- \
            -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1) >"$tmp.log" 2>&1
        local rc=$?
        grep -E '^(Done|INFO: seed corpus|SUMMARY|thread .* panicked|==[0-9]+==ERROR)' "$tmp.log"
        if [ $rc != 0 ]; then
            tail -40 "$tmp.log"
            echo "fuzz target $t FAILED"
            ok=1
        fi
        rm -f "$tmp.log"
        rm -rf "$tmp"
    done
    return $ok
}

run "install dependencies" install_deps
run "cargo fmt --check" cargo fmt --all -- --check
run "cargo clippy -D warnings" cargo clippy --workspace --all-targets -q -- -D warnings
run "cargo test (unit, property, integration)" cargo test --workspace -q
run "shared vectors through nmadp decode --json" vectors
run "fuzz every parser (${FUZZ_SECONDS}s each)" fuzz

echo
if [ $failed -gt 0 ]; then
    printf 'failed stages: %s\n' "${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
