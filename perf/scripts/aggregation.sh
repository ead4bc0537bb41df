#!/usr/bin/env bash
# Aggregation quality through the N-MADP against kernel MPTCP, in the same runs, on the same
# emulated links (deploy/testbed/, mx-linkemu): each run executes the e2e tests (root needed),
# collects their `E2E RESULT` lines and reports every run as a share of the achievable TCP
# goodput (see ACHIEVABLE below), with min/median/max per scenario and mode.
#
#   RUNS=5 perf/scripts/aggregation.sh              # scenarios a and b, 5 runs each
#   SCENARIOS="a" RUNS=10 TESTS=all perf/scripts/aggregation.sh   # the whole e2e suite 10x
#
# Environment:
#   RUNS       runs per scenario (default 5)
#   SCENARIOS  any of: a (Wi-Fi 50 Mbit/s 20 ms + LTE 20 Mbit/s 60 ms), b (two 30 Mbit/s links,
#              10 ms and 40 ms), c (a plus 5G 100 Mbit/s 10 ms: three links); default "a b c"
#   TESTS      "agg" (default: the MPTCP baseline, the N-MADP TCP aggregation tests and the
#              measured-rates test) or "all"
#              (every e2e test: a pass/fail count of the whole suite per run)
#   OUT        results folder (default perf/results)
#   BUILD      release (default: the daemons as shipped) or debug (as `cargo test` runs them)
#
# ACHIEVABLE: the sum of the link rates times the TCP payload share of a full-size frame on the
# emulated link (mx-linkemu counts Ethernet frames):
#   through the tunnel (mx0 MTU 1400): 1348 B payload (1400 - 20 IPv4 - 20 TCP - 12 timestamps)
#     in 1400 + 6 trailer + 8 UDP + 20 IPv4 + 14 Ethernet = 1448 B  -> 93.09 %
#   kernel MPTCP (link MTU 1500): 1428 B payload (1500 - 20 - 20 - 12 - 20 DSS option)
#     in 1514 B                                                      -> 94.32 %
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
RUNS=${RUNS:-5}
SCENARIOS=${SCENARIOS:-a b c}
TESTS=${TESTS:-agg}
OUT=${OUT:-$ROOT/perf/results}
BUILD=${BUILD:-release}
case "$BUILD" in release) PROFILE_ARGS=(--release) ;; debug) PROFILE_ARGS=() ;; *) echo "BUILD=release|debug" >&2; exit 2 ;; esac
mkdir -p "$OUT"
LOG="$OUT/aggregation-runs.jsonl"
: > "$LOG"

cargo test -q "${PROFILE_ARGS[@]}" -p dataplane --test e2e --no-run >/dev/null 2>&1 || { echo "build failed" >&2; exit 1; }

scenario_env() {
    case "$1" in
        a) echo "WIFI_RATE=50 WIFI_DELAY=20 LTE_RATE=20 LTE_DELAY=60" ;;
        b) echo "WIFI_RATE=30 WIFI_DELAY=10 LTE_RATE=30 LTE_DELAY=40" ;;
        c) echo "WIFI_RATE=50 WIFI_DELAY=20 LTE_RATE=20 LTE_DELAY=60 NR_RATE=100 NR_DELAY=10" ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

for sc in $SCENARIOS; do
    envs=$(scenario_env "$sc") || exit 1
    for run in $(seq "$RUNS"); do
        filter=()
        [ "$TESTS" = agg ] && filter=(mptcp_baseline nmadp_tcp_aggregation nmadp_tcp_downlink_with_measured)
        t0=$SECONDS
        # shellcheck disable=SC2086
        out=$(env $envs cargo test -q "${PROFILE_ARGS[@]}" -p dataplane --test e2e -- --nocapture --test-threads=1 "${filter[@]}" 2>&1)
        rc=$?
        summary=$(printf '%s\n' "$out" | grep -E '^test result:' | tail -1)
        # A failed run keeps its whole output.
        [ $rc = 0 ] || printf '%s\n' "$out" > "$OUT/failed-$sc-$run.log"
        printf '%s\n' "$out" | grep -o 'E2E RESULT [a-z_0-9]*: .*' | sed 's/^E2E RESULT [a-z_0-9]*: //' |
            python3 -c '
import json, sys
sc, run, rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for line in sys.stdin:
    try:
        v = json.loads(line)
    except ValueError:
        continue
    v["_scenario"], v["_run"], v["_rc"] = sc, run, rc
    print(json.dumps(v))
' "$sc" "$run" "$rc" >> "$LOG"
        echo "scenario $sc run $run: rc $rc ($((SECONDS - t0)) s) $summary"
    done
done

python3 - "$LOG" "$OUT" "$SCENARIOS" "$RUNS" "$BUILD" <<'PY'
import json, statistics, sys, datetime
log, out, scenarios, runs, build = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4], sys.argv[5]
rates = {"a": (50, 20), "b": (30, 30), "c": (50, 20, 100)}
TUN, MPTCP = 1348 / 1448, 1428 / 1514
rows = [json.loads(l) for l in open(log) if l.strip()]
def series(sc, scen, key="goodput_mbit"):
    return [r[key] for r in rows if r["_scenario"] == sc and r.get("scenario") == scen and key in r]
lines = ["| scenario | mode | runs | goodput Mbit/s min / median / max | share of achievable min / median / max |",
         "|---|---|---|---|---|"]
summary = {}
for sc in scenarios:
    total = sum(rates[sc])
    for label, scen, key, factor in [
        ("N-MADP weighted, downlink", "nmadp_weighted", "goodput_mbit", TUN),
        ("N-MADP weighted, uplink", "nmadp_weighted", "uplink_mbit", TUN),
        ("N-MADP delay-aware, downlink", "nmadp_delay_aware", "goodput_mbit", TUN),
        ("N-MADP delay-aware, uplink", "nmadp_delay_aware", "uplink_mbit", TUN),
        ("N-MADP weighted, downlink, rates measured (-t 8 -O 2)", "nmadp_weighted_measured", "goodput_mbit", TUN),
        ("N-MADP delay-aware, downlink, rates measured (-t 8 -O 2)", "nmadp_delay_aware_measured", "goodput_mbit", TUN),
        (f"kernel MPTCP, {len(rates[sc])} subflows (uplink)", "mptcp", "goodput_mbit", MPTCP),
    ]:
        v = series(sc, scen, key)
        if not v:
            continue
        ach = total * factor
        s = [100 * x / ach for x in v]
        f = lambda xs: f"{min(xs):.1f} / {statistics.median(xs):.1f} / {max(xs):.1f}"
        lines.append(f"| ({sc}) {'+'.join(map(str, rates[sc]))} Mbit/s | {label} | {len(v)} | {f(v)} | {f(s)} % of {ach:.1f} |")
        summary[f"{sc}:{scen}:{key}"] = {"runs": v, "share_pct": [round(x, 1) for x in s]}
md = "\n".join(lines)
print(md)
open(f"{out}/aggregation.md", "w").write(md + "\n")
json.dump({"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "build": build, "summary": summary},
          open(f"{out}/aggregation.json", "w"), indent=1)
PY
