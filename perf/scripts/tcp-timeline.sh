#!/usr/bin/env bash
# One TCP transfer through nmadp/cmadp in the namespace testbed with a time line every 0.5 s:
# the server's `ss -ti` (cwnd, RTT, BBR's min_rtt and bandwidth, retransmits), the emulated
# links' counters (queue drops) and both daemons' `clients show` (counters, drops). This is how
# the weighted-TCP collapse was diagnosed (perf/RESULTS.md, "Why weighted TCP collapsed").
#
#   perf/scripts/tcp-timeline.sh NAME [STEERING] [SECONDS] [R|up]    (root; debug build;
#   BIN=target/release for the release build)
#   COMPENSATION=off perf/scripts/tcp-timeline.sh c1 weighted 8 R   # delay compensation off
#   RATES=unset perf/scripts/tcp-timeline.sh u1 weighted 8 R   # no rate_mbps at the N-MADP
#   RATES=measured perf/scripts/tcp-timeline.sh m1 weighted 8 R   # no rate_mbps, shaped: measured
#   NR_RATE=100 NR_DELAY=10 perf/scripts/tcp-timeline.sh c3 weighted    # three links (testbed.sh)
#   SHAPE=on|off [SHAPE_QUEUE_MS=200] perf/scripts/tcp-timeline.sh s1 weighted 8 R  # shapers on or
#   off on both sides (`shape = true` beside each rate_mbps; unset: as the templates say)
#
# Output in target/tcp-timeline/NAME/; prints iperf3's intervals, the goodput and the
# retransmits, and the last BBR min_rtt.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
NAME=${1:?name}
STEER=${2:-weighted}
SECS=${3:-8}
DIR=${4:-R}
B=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}
TB=$ROOT/deploy/testbed/testbed.sh
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/tcp-timeline/$NAME
rm -rf "$OUT"; mkdir -p "$OUT"
case "$B" in
    */release) cargo build -q --release -p dataplane --bins || exit 1 ;;
    *) cargo build -q -p dataplane --bins || exit 1 ;;
esac
LINKEMU=$B/mx-linkemu bash "$TB" up --name "$NAME" --mode nmadp >"$OUT/up.log" 2>&1 || { cat "$OUT/up.log"; exit 1; }
trap 'kill $CP $NP 2>/dev/null; wait 2>/dev/null; bash "$TB" down --name "$NAME" >/dev/null 2>&1' EXIT
RUN=/run/mxtb-$NAME
LINKS="wifi lte"
nr=()
if [ -n "${NR_RATE:-}" ] && [ "${NR_RATE:-0}" != 0 ]; then
    LINKS="wifi lte nr"
    nr=(-e 's/^#@NR@ //' -e "s#@NR_RATE@#$NR_RATE#g")
fi
NLINKS=$(echo $LINKS | wc -w)
for f in nmadp cmadp; do
    sed -e "s#@RUN@#$RUN#g" -e "s#@STEERING@#$STEER#g" \
        -e "s#@WIFI_RATE@#${WIFI_RATE:-50}#g" -e "s#@LTE_RATE@#${LTE_RATE:-20}#g" "${nr[@]}" \
        "$ROOT/deploy/testbed/$f.toml" >"$RUN/$f.toml"
done
if [ "${RATES:-configured}" = measured ]; then
    # No rate_mbps at the N-MADP, its paths still shaped: it measures each path's capacity
    # (pipelines::flow::capacity) and steers and shapes by the estimates.
    sed -i -e '/^rate_mbps *=/d' "$RUN/nmadp.toml"
fi
if [ "${RATES:-configured}" = unset ]; then
    # The N-MADP's paths get neither weight nor rate (as an operator who does not know the
    # access links' capacity would write them): weighted steering then splits equally.
    sed -i -e '/^rate_mbps *=/d' -e '/^shape\(_[a-z]*\)\? *=/d' "$RUN/nmadp.toml"
fi
case "${SHAPE:-}" in
    on) sed -i -e '/^shape\(_[a-z]*\)\? *=/d' -e 's/^\(rate_mbps *= *[0-9]*\).*/\1\nshape = true/' "$RUN/nmadp.toml" "$RUN/cmadp.toml" ;;
    off) sed -i '/^shape\(_[a-z]*\)\? *=/d' "$RUN/nmadp.toml" "$RUN/cmadp.toml" ;;
esac
if [ -n "${SHAPE_QUEUE_MS:-}" ]; then
    sed -i -e '/^shape_queue_ms *=/d' -e "s/^shape = true.*/shape = true\nshape_queue_ms = $SHAPE_QUEUE_MS/" "$RUN/nmadp.toml" "$RUN/cmadp.toml"
fi
if [ "${COMPENSATION:-on}" = off ]; then
    sed -i 's/^\[defaults\]$/[defaults]\ndelay_compensation = false/' "$RUN/nmadp.toml"
fi
ip netns exec "tb-$NAME-nmadp" "$B/nmadp" run --config "$RUN/nmadp.toml" >"$OUT/nmadp.log" 2>&1 &
NP=$!
ip netns exec "tb-$NAME-client" "$B/cmadp" --config "$RUN/cmadp.toml" >"$OUT/cmadp.log" 2>&1 &
CP=$!
for _ in $(seq 50); do ip netns exec "tb-$NAME-client" ip link show mx0 >/dev/null 2>&1 && break; sleep 0.1; done
ip netns exec "tb-$NAME-client" ip addr add 10.71.9.2/32 dev mx0
ip netns exec "tb-$NAME-client" ip route add 10.71.3.0/24 dev mx0 src 10.71.9.2
for _ in $(seq 30); do
    a=$("$B/nmadpctl" --socket "$RUN/nmadp-admin.sock" --json paths 2>/dev/null | grep -o '"state":"active"' | wc -l)
    [ "$a" -ge "$NLINKS" ] && break
    ip netns exec "tb-$NAME-client" ping -c1 -W1 10.71.3.2 >/dev/null 2>&1
    sleep 0.3
done
ip netns exec "tb-$NAME-server" iperf3 -s -1 -p 5999 >/dev/null 2>&1 &
sleep 0.5
args=(-c 10.71.3.2 -p 5999 -t "$SECS" -i 0.5 -J)
[ "$DIR" = R ] && args+=(-R)
[ -n "${CC:-}" ] && args+=(-C "$CC")
ip netns exec "tb-$NAME-client" timeout $((SECS + 10)) iperf3 "${args[@]}" >"$OUT/iperf.json" 2>&1 &
IP=$!
for i in $(seq $((SECS * 2))); do
    sleep 0.5
    { echo "T $i"; "$B/nmadpctl" --socket "$RUN/cmadp-admin.sock" --json clients show client 2>/dev/null; } >>"$OUT/cmadp-clients.txt"
    { echo "T $i"; "$B/nmadpctl" --socket "$RUN/nmadp-admin.sock" --json clients show client 2>/dev/null; } >>"$OUT/nmadp-clients.txt"
    { echo "T $i"; ip netns exec "tb-$NAME-server" ss -tin 2>/dev/null | grep -A1 5999; } >>"$OUT/ss-server.txt"
    { echo "T $i"; "$B/nmadpctl" --socket "$RUN/nmadp-admin.sock" paths 2>/dev/null; } >>"$OUT/nmadp-paths.txt"
    { echo "T $i"; for l in $LINKS; do echo "$l $(bash "$TB" ctl --name "$NAME" $l stats 2>/dev/null)"; done; } >>"$OUT/emu.txt"
done
wait $IP
for d in nmadp cmadp; do
    "$B/nmadpctl" --socket "$RUN/$d-admin.sock" counters >"$OUT/$d-counters.txt" 2>&1
done
python3 - "$OUT" <<'PY'
import json, re, sys
out = sys.argv[1]
d = json.load(open(out + "/iperf.json"))
print("intervals", [round(i["sum"]["bits_per_second"] / 1e6, 1) for i in d["intervals"]])
e = d["end"]
print("received Mbit/s %.1f" % (e["sum_received"]["bits_per_second"] / 1e6), "retransmits", e["sum_sent"].get("retransmits"))
ss = open(out + "/ss-server.txt").read()
m = [x for x in ss.splitlines() if "bytes_sent" in x and "unacked" in x]
if m:
    last = m[-1]
    pick = lambda pat: (re.search(pat, last) or [""])[0]
    print("last sample:", pick(r"minrtt:[0-9.]+"), pick(r"(?<![a-z])rtt:[0-9./]+"),
          pick(r"cwnd:[0-9]+"), pick(r"bbr:\(bw:[0-9]+bps"))
PY
