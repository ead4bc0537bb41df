#!/bin/sh
# Throughput per core of the N-MADP engine vs dpdk-testpmd, in ONE run, on the same vdevs
# (net_null0 -> net_null1,no-rx=1), the same forwarding core and the same packet sizes
# (issues "Kernel bypass" item 4, "Operator scale" item 6). Reference rows: testpmd io, macswap,
# 5tswap and csum with --record-core-cycles (busy TSC cycles per packet); nmadp-bench reports the
# same unit. Then the sessions sweep (bytes per client at rest and with live reorder state, the
# time to add them) and one versus two workers. Writes perf/RESULTS.md, the raw data in
# perf/results/ and perf/results/summary.json.
#
#   perf/scripts/compare.sh            # ~6 minutes
#   DUR=2 SIZES=64 SESSIONS=1000 PROFILE=0 perf/scripts/compare.sh    # a short run
#
# Environment (defaults): DUR=5 (seconds per point), SIZES="64 512 1500 imix", LCORE=1 (the
# forwarding core; testpmd's main lcore is 0), SESSIONS="1000 100000 1000000", WORKERS_LCORES="0,1"
# (the cores of the two-worker run; WORKERS_LCORES= skips it),
# SETUP_LIMIT=20 (seconds allowed for adding clients), PROFILE=1 (callgrind of downlink 64 B),
# NMADP_EAL_MEM (EAL memory flags; default: the output of deploy/dpdk-env.sh).
# Needs root (hugepages), DPDK 22.11 (dpdk-testpmd), python3; valgrind for the profile.
set -eu

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
DUR="${DUR:-5}"
SIZES="${SIZES:-64 512 1500 imix}"
LCORE="${LCORE:-1}"
SESSIONS="${SESSIONS:-1000 100000 1000000}"
SETUP_LIMIT="${SETUP_LIMIT:-20}"
PROFILE="${PROFILE:-1}"
WORKERS_LCORES="${WORKERS_LCORES-0,1}"
MEM="${NMADP_EAL_MEM:-$(sh deploy/dpdk-env.sh)}"
CMD="$0 (DUR=$DUR SIZES='$SIZES' LCORE=$LCORE SESSIONS='$SESSIONS' SETUP_LIMIT=$SETUP_LIMIT PROFILE=$PROFILE WORKERS_LCORES='$WORKERS_LCORES' NMADP_EAL_MEM='$MEM')"

cargo build -q --release -p perf --features dpdk --bin nmadp-bench
BENCH="$ROOT/target/release/nmadp-bench"
RAW="$ROOT/perf/results"
mkdir -p "$RAW"
rm -f "$RAW"/testpmd-*.txt "$RAW"/bench.jsonl "$RAW"/bench.err "$RAW"/callgrind.*
START="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
T0="$(date +%s)"

vdev_size() { if [ "$1" = imix ]; then echo 1518; else echo "$1"; fi; }

# 1. testpmd: main lcore 0, one forwarding lcore ($LCORE), busy cycles per packet recorded.
#    io for every size; macswap, 5tswap and csum (which touch the headers) at 64 B.
testpmd() { # mode size file
    echo "compare: testpmd $1, $2 B" >&2
    # shellcheck disable=SC2086
    timeout -s INT "$((DUR + 2))" dpdk-testpmd -l "0,$LCORE" --no-pci --no-telemetry \
        --file-prefix "nmadp-tp-$$" $MEM \
        --vdev "net_null0,size=$(vdev_size "$2"),copy=0" --vdev net_null1,no-rx=1 -- \
        --forward-mode="$1" --record-core-cycles --stats-period 1 --total-num-mbufs=16384 \
        --nb-cores=1 --burst=32 >"$RAW/$3" 2>&1 || true
    rm -rf "/var/run/dpdk/nmadp-tp-$$"
}
for s in $SIZES; do
    testpmd io "$s" "testpmd-$s.txt"
done
for m in macswap 5tswap csum; do
    testpmd "$m" 64 "testpmd-$m-64.txt"
done

run_bench() {
    echo "compare: nmadp-bench $*" >&2
    "$BENCH" --lcore "$LCORE" --eal-mem "$MEM" "$@" 2>>"$RAW/bench.err" >>"$RAW/bench.jsonl" ||
        echo "{\"error\": \"nmadp-bench $*\"}" >>"$RAW/bench.jsonl"
}

# 2. nmadp-bench io, downlink, uplink-reorder per size (1000 clients).
for s in $SIZES; do
    for m in io downlink uplink-reorder; do
        run_bench --mode "$m" --size "$s" --clients 1000 --duration "$DUR" --tag throughput
    done
done

# 3. Sessions sweep at 512 B, downlink and uplink with reordering.
for n in $SESSIONS; do
    for m in downlink uplink-reorder; do
        run_bench --mode "$m" --size 512 --clients "$n" --duration "$DUR" \
            --setup-limit "$SETUP_LIMIT" --tag sessions
    done
done

# 4. One versus two workers (downlink 64 B, 1000 clients in all; each worker owns half).
if [ -n "$WORKERS_LCORES" ]; then
    run_bench --mode downlink --size 64 --clients 1000 --duration "$DUR" --workers 2 \
        --lcores "$WORKERS_LCORES" --tag workers
fi

# 5. Profile: instruction counts of the steady state (step()) of downlink 64 B.
if [ "$PROFILE" = 1 ] && command -v valgrind >/dev/null; then
    echo "compare: callgrind, downlink 64 B" >&2
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='nmadp_bench::step' \
        --callgrind-out-file="$RAW/callgrind.down64" "$BENCH" --lcore "$LCORE" \
        --eal-mem "--no-huge -m 512" --mbufs 8191 --mode downlink --size 64 --clients 1000 \
        --duration 3 >"$RAW/callgrind.json" 2>"$RAW/callgrind.err" || true
    callgrind_annotate "$RAW/callgrind.down64" >"$RAW/callgrind.self.txt" 2>/dev/null || true
    callgrind_annotate --inclusive=yes "$RAW/callgrind.down64" >"$RAW/callgrind.incl.txt" \
        2>/dev/null || true
fi

T1="$(date +%s)"
export START LOAD_START CMD MEM RAW LCORE DUR SETUP_LIMIT
export ELAPSED="$((T1 - T0))"
# Replace only our part of RESULTS.md (between the markers); the end-to-end section stays.
python3 "$ROOT/perf/scripts/report.py" >"$RAW/report.md"
python3 - "$ROOT/perf/RESULTS.md" "$RAW/report.md" <<'PY'
import re, sys
path, new = sys.argv[1], open(sys.argv[2]).read()
new = re.sub(r"^# ", "## ", new, count=1)
new = re.sub(r"^## (?!N-MADP per-core)", "### ", new, flags=re.M)
begin, end = "<!-- BEGIN perf/scripts/compare.sh -->\n", "<!-- END perf/scripts/compare.sh -->\n"
try:
    old = open(path).read()
except FileNotFoundError:
    old = "# Results\n\n" + begin + end
if begin in old and end in old:
    head, rest = old.split(begin, 1)
    _, tail = rest.split(end, 1)
    out = head + begin + new + end + tail
else:
    out = old.rstrip("\n") + "\n\n" + begin + new + end
open(path, "w").write(out)
PY
echo "compare: wrote perf/RESULTS.md in ${ELAPSED}s" >&2
