#!/usr/bin/env bash
# One-way delays of a TCP transfer through nmadp/cmadp, per packet: tshark captures on the
# server's interface and on the client's mx0 at once, matched by TCP sequence number (downlink
# data) and acknowledgement number (uplink pure ACKs). This is how the early release of
# equalisation holds was found (perf/RESULTS.md, "Aggregation quality": a third of the uplink
# ACKs at the fast path's 20 ms instead of the compensated 60 ms). Also prints ping's RTTs and
# the server's TCP minrtt.
#
#   perf/scripts/owd-capture.sh [STEERING] [RATE]     (root; release build; RATE for iperf3 -b,
#                                                      default 5M; testbed.sh variables apply)
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
STEER=${1:-weighted}
RATE=${2:-5M}
NAME=owd
B=${CARGO_TARGET_DIR:-$ROOT/target}/release
TB=$ROOT/deploy/testbed/testbed.sh
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/owd-capture
rm -rf "$OUT"; mkdir -p "$OUT"
cargo build -q --release -p dataplane --bins || exit 1
LINKEMU=$B/mx-linkemu bash "$TB" up --name "$NAME" --mode nmadp >"$OUT/up.log" 2>&1 || { cat "$OUT/up.log"; exit 1; }
trap 'kill $CP $NP 2>/dev/null; wait 2>/dev/null; bash "$TB" down --name "$NAME" >/dev/null 2>&1' EXIT
RUN=/run/mxtb-$NAME
for f in nmadp cmadp; do
    sed -e "s#@RUN@#$RUN#g" -e "s#@STEERING@#$STEER#g" \
        -e "s#@WIFI_RATE@#${WIFI_RATE:-50}#g" -e "s#@LTE_RATE@#${LTE_RATE:-20}#g" \
        "$ROOT/deploy/testbed/$f.toml" >"$RUN/$f.toml"
done
ip netns exec "tb-$NAME-nmadp" "$B/nmadp" run --config "$RUN/nmadp.toml" >"$OUT/nmadp.log" 2>&1 &
NP=$!
ip netns exec "tb-$NAME-client" "$B/cmadp" --config "$RUN/cmadp.toml" >"$OUT/cmadp.log" 2>&1 &
CP=$!
for _ in $(seq 50); do ip netns exec "tb-$NAME-client" ip link show mx0 >/dev/null 2>&1 && break; sleep 0.1; done
ip netns exec "tb-$NAME-client" ip addr add 10.71.9.2/32 dev mx0
ip netns exec "tb-$NAME-client" ip route add 10.71.3.0/24 dev mx0 src 10.71.9.2
sleep 3
ip netns exec "tb-$NAME-client" timeout 10 ping -c 20 -i 0.1 10.71.3.2 | tail -1
ip netns exec "tb-$NAME-server" timeout 20 iperf3 -s -1 -p 5999 >/dev/null 2>&1 &
sleep 0.5
SIF=$(ip -n "tb-$NAME-server" -o link | awk -F': ' '$2 !~ /^lo/ {print $2}' | cut -d@ -f1 | head -1)
ip netns exec "tb-$NAME-server" timeout 6 tshark -q -i "$SIF" -w "$OUT/srv.pcap" -f "tcp port 5999" 2>/dev/null &
ip netns exec "tb-$NAME-client" timeout 6 tshark -q -i mx0 -w "$OUT/cli.pcap" -f "tcp port 5999" 2>/dev/null &
sleep 1.5
ip netns exec "tb-$NAME-client" timeout 10 iperf3 -c 10.71.3.2 -p 5999 -t 2 -b "$RATE" -R >/dev/null &
sleep 1.5
ip netns exec "tb-$NAME-server" ss -tin 2>/dev/null | grep -o "minrtt:[0-9.]*" | tr '\n' ' '; echo
sleep 3
for f in srv cli; do
    tshark -r "$OUT/$f.pcap" -T fields -e frame.time_epoch -e ip.src -e tcp.seq_raw -e tcp.ack_raw \
        -e tcp.len 2>/dev/null >"$OUT/$f.txt"
done
python3 - "$OUT" <<'PY'
import collections, sys
out = sys.argv[1]
def load(f):
    r = []
    for line in open(f):
        p = line.rstrip("\n").split("\t")
        if len(p) >= 5:
            r.append((float(p[0]), p[1], int(p[2]), int(p[3]), int(p[4] or 0)))
    return r
srv, cli = load(out + "/srv.txt"), load(out + "/cli.txt")
def owd(a, b, src, key):
    first = {}
    for t, s, seq, ack, ln in a:
        k = key(seq, ack, ln)
        if s == src and k is not None:
            first.setdefault(k, t)
    return sorted((t - first[k]) * 1000 for t, s, seq, ack, ln in b
                  if s == src and (k := key(seq, ack, ln)) in first)
for name, d in [("downlink data", owd(srv, cli, "10.71.3.2", lambda s, a, l: s if l > 0 else None)),
                ("uplink ACKs", owd(cli, srv, "10.71.9.2", lambda s, a, l: a if l == 0 else None))]:
    if not d:
        print(name, "none matched"); continue
    q = lambda f: d[min(len(d) - 1, int(f * len(d)))]
    print("%s: %d, ms min %.1f p10 %.1f median %.1f p90 %.1f max %.1f" % (name, len(d), d[0], q(.1), q(.5), q(.9), d[-1]))
    print("  5-ms histogram:", sorted(collections.Counter(int(x // 5) * 5 for x in d).items()))
PY
