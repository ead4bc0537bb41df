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
# Tests that use outside tools (tshark, scapy, text2pcap, namespaces) must run here, not skip.
export NMADP_REQUIRE_TOOLS=1

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

# Debian packages the tests use: tshark and text2pcap (independent dissector and capture
# writer), ethtool and iproute2 (namespaces, veth offloads), pkg-config.
# DPDK 22.11 with its headers, and clang for bindgen (../shared/DPDK-NOTES.md).
# iperf3, mptcpize (its own package on Debian 12, with libmptcpwrap0; mptcpd does not ship it),
# ping, ss (iproute2) and sysctl/ps (procps) for the namespace testbed (deploy/testbed/);
# nftables and conntrack for the NAT-rebinding test (a NAT on the testbed's access router).
# Checked against ../shared/tools/image-packages-rust.txt (what a new machine has): iproute2,
# pkg-config, procps, python3 and python3-pip are there; everything else here is not.
APT_PACKAGES=(tshark wireshark-common ethtool iproute2 pkg-config procps
    dpdk dpdk-dev libdpdk-dev libclang-dev clang
    iperf3 mptcpize libmptcpwrap0 iputils-ping nftables conntrack)

install_deps() {
    [ "${SKIP_INSTALL:-0}" = 1 ] && return 0
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "missing packages ${missing[*]} and not root: install them" >&2
            return 1
        fi
        echo "installing ${missing[*]}"
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || return 1
    fi
    # scapy builds packets independently of our code (sample capture, cross-checks).
    # The python3 on PATH may be the system one (PEP 668: externally managed) or a private one.
    python3 -c 'import scapy' 2>/dev/null ||
        python3 -m pip install -q --disable-pip-version-check scapy 2>/dev/null ||
        python3 -m pip install -q --disable-pip-version-check --break-system-packages scapy || return 1
    python3 -c 'import scapy' || return 1
    # Every command a test runs must now be on PATH (a missing one fails its test, never skips).
    local t
    for t in tshark text2pcap ethtool ip tc ss iperf3 mptcpize ping sysctl nft conntrack dpdk-testpmd clang pkg-config; do
        command -v "$t" >/dev/null || { echo "missing command after install: $t" >&2; return 1; }
    done
    if [ "$FUZZ_SECONDS" != 0 ] && ! cargo fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz --locked --quiet || return 1
    fi
    return 0
}

vectors() {
    # The debug binary: already built by the integration tests, so this costs nothing.
    cargo build -q -p dataplane --bin nmadp || return 1
    local files=("$ROOT"/pipelines/tests/data/*.jsonl)
    if [ -x "$SHARED/tools/check-vectors" ] || [ -f "$SHARED/tools/check-vectors" ]; then
        # The shared checker and the shared vectors, when present, are the independent reference.
        shopt -s nullglob
        local shared_files=("$SHARED"/vectors/*.jsonl)
        shopt -u nullglob
        [ ${#shared_files[@]} -gt 0 ] && files=("${shared_files[@]}")
        python3 "$SHARED/tools/check-vectors" "$ROOT/target/debug/nmadp" "${files[@]}"
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

dpdk_env() {
    # Hugepages when the machine allows, else --no-huge; the DPDK tests read NMADP_EAL_MEM.
    NMADP_EAL_MEM=$(bash deploy/dpdk-env.sh) || return 1
    export NMADP_EAL_MEM
    echo "EAL memory flags: $NMADP_EAL_MEM"
}

run "install dependencies" install_deps
run "hugepages for DPDK" dpdk_env
run "cargo fmt --check" cargo fmt --all -- --check
# The workspace must build on a machine without DPDK: check it without the feature, then lint
# and test everything with it.
run "cargo check without DPDK" cargo check --workspace -q
run "cargo clippy -D warnings" cargo clippy --workspace --all-targets --features dataplane/dpdk -q -- -D warnings
run "cargo test (unit, property, integration, DPDK vdevs, namespaces)" \
    cargo test --workspace --features dataplane/dpdk -q
run "shared vectors through nmadp decode --json" vectors
run "fuzz every parser (${FUZZ_SECONDS}s each)" fuzz

echo
if [ $failed -gt 0 ]; then
    printf 'failed stages: %s\n' "${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
