#!/usr/bin/env bash
# End-to-end testbed: five network namespaces joined by veth pairs, with `mx-linkemu` emulating
# the Wi-Fi and LTE access links.
#
#   client                 emu (bridges only)                 rtr                nmadp             server
#   wifi 10.71.1.2 --veth-- c-wifi ==mx-linkemu== r-wifi --veth-- wifi 10.71.1.1
#   lte  10.71.2.2 --veth-- c-lte  ==mx-linkemu== r-lte  --veth-- lte  10.71.2.1
#   nr   10.71.4.2 --veth-- c-nr   ==mx-linkemu== r-nr   --veth-- nr   10.71.4.1   (NR_RATE set)
#                                                                  core 10.71.0.1 --veth-- dlv 10.71.0.2
#                                                                                          anc 10.71.3.1 --veth-- anc 10.71.3.2
#   (C-MADP TUN mx0 10.71.9.2 = the client's anchor address, nmadp mode)
#
# The emulator owns both interfaces it bridges (promiscuous AF_PACKET), so the client and the
# access router see an ordinary Ethernet link; rate (with a tail-drop queue), delay, loss, ... are
# the emulator's (no tc, no netem). `rtr` is the access/core router where both access networks
# meet: the N-MADP has ONE delivery address (10.71.0.2, ports 10021 Wi-Fi / 10020 LTE, WIRE.md).
#
# Modes:
#   routed (default): the nmadp namespace is a plain router (addresses on dlv/anc, forwarding on);
#                     the client has source routing per access link and a kernel MPTCP endpoint
#                     on lte (MPTCP baseline, single-path TCP reference).
#   nmadp:            dlv/anc carry no address and the kernel does not forward (the N-MADP owns
#                     them over AF_PACKET); neighbours of 10.71.0.2 and 10.71.3.1 are static.
#
# Every MAC address is fixed and every on-link neighbour is static, so no ARP is needed.
# Offloads (TSO/GSO/GRO/tx checksum) are off on every veth: AF_PACKET bridging of partial
# checksums or GSO super-frames would corrupt traffic and defeat the rate limit.
#
# Needs: iproute2, ethtool, python3 (ctl), mx-linkemu.
#
# Usage: testbed.sh up|down|status|ctl [--name SUFFIX] [--mode routed|nmadp]
#        testbed.sh ctl --name SUFFIX wifi|lte 'set loss=0.05'      (emulator control line)
#        testbed.sh exec --name SUFFIX client|emu|rtr|nmadp|server CMD...
# Environment: LINKEMU (path of mx-linkemu; default: target/{release,debug}/mx-linkemu),
#   WIFI_RATE=50 WIFI_DELAY=20 LTE_RATE=20 LTE_DELAY=60 (Mbit/s, one-way ms), QUEUE_MS=50
#   (tail-drop queue of each emulated link, in ms at its rate), WIFI_LOSS=0 LTE_LOSS=0, SEED=1.
#   NR_RATE (unset: two links) adds a third access link "nr" (5G) of that rate, with NR_DELAY
#   (default 10) and NR_LOSS=0; its MPTCP endpoint is a third subflow.
# Namespaces: tb-SUFFIX-{client,emu,rtr,nmadp,server}; run directory /run/mxtb-SUFFIX.

set -euo pipefail

CMD=${1:-}
shift || true
NAME=default
MODE=routed
while [ $# -gt 0 ]; do
    case "$1" in
        --name) NAME=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        *) break ;;
    esac
done
case "$NAME" in *[!A-Za-z0-9_-]* | "") echo "testbed: bad --name $NAME" >&2; exit 2 ;; esac
case "$MODE" in routed | nmadp) ;; *) echo "testbed: bad --mode $MODE" >&2; exit 2 ;; esac

P=tb-$NAME
NS_C=$P-client NS_E=$P-emu NS_R=$P-rtr NS_N=$P-nmadp NS_S=$P-server
ALL_NS="$NS_C $NS_E $NS_R $NS_N $NS_S"
RUN=/run/mxtb-$NAME

WIFI_RATE=${WIFI_RATE:-50} WIFI_DELAY=${WIFI_DELAY:-20} WIFI_LOSS=${WIFI_LOSS:-0}
LTE_RATE=${LTE_RATE:-20} LTE_DELAY=${LTE_DELAY:-60} LTE_LOSS=${LTE_LOSS:-0}
NR_RATE=${NR_RATE:-} NR_DELAY=${NR_DELAY:-10} NR_LOSS=${NR_LOSS:-0}
QUEUE_MS=${QUEUE_MS:-50} SEED=${SEED:-1}
case "$NR_RATE" in "" | 0) LINKS="wifi lte" ;; *) LINKS="wifi lte nr" ;; esac

# Fixed MAC addresses (locally administered).
MAC_C_WIFI=02:71:01:00:00:02 MAC_R_WIFI=02:71:01:00:00:01
MAC_C_LTE=02:71:02:00:00:02 MAC_R_LTE=02:71:02:00:00:01
MAC_C_NR=02:71:04:00:00:02 MAC_R_NR=02:71:04:00:00:01
MAC_R_CORE=02:71:00:00:00:01 MAC_N_DLV=02:71:00:00:00:02
MAC_N_ANC=02:71:03:00:00:01 MAC_S_ANC=02:71:03:00:00:02

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

find_linkemu() {
    if [ -n "${LINKEMU:-}" ]; then
        [ -x "$LINKEMU" ] || { echo "testbed: LINKEMU=$LINKEMU is not executable" >&2; return 1; }
        echo "$LINKEMU"
        return
    fi
    for p in "$root/target/release/mx-linkemu" "$root/target/debug/mx-linkemu"; do
        if [ -x "$p" ]; then echo "$p"; return; fi
    done
    echo "testbed: mx-linkemu not found (cargo build -p dataplane --bin mx-linkemu, or set LINKEMU)" >&2
    return 1
}

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# veth NS_A IF_A MAC_A NS_B IF_B MAC_B (MAC "-" = kernel-chosen)
veth() {
    local a=(name "$2") b=(name "$5")
    [ "$3" != - ] && a+=(address "$3")
    [ "$6" != - ] && b+=(address "$6")
    ip -n "$1" link add "${a[@]}" type veth peer "${b[@]}" netns "$4"
    for x in "$1:$2" "$4:$5"; do
        local ns=${x%%:*} dev=${x#*:}
        nsx "$ns" ethtool -K "$dev" tso off gso off gro off tx off >/dev/null 2>&1 || true
        ip -n "$ns" link set dev "$dev" up
    done
}

neigh() { ip -n "$1" neigh replace "$2" lladdr "$3" dev "$4" nud permanent; }

sysctls() {
    local ns=$1
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
}

start_emu() { # name a b rate delay loss seed
    local name=$1 a=$2 b=$3 rate=$4 delay=$5 loss=$6 seed=$7
    local q
    q=$(awk -v r="$rate" -v m="$QUEUE_MS" 'BEGIN { printf "%d", r * 1e6 / 8 * m / 1000 }')
    nsx "$NS_E" "$EMU_BIN" -a "$a" -b "$b" --rate-mbit "$rate" --delay-ms "$delay" \
        --loss "$loss" --queue-limit-bytes "$q" --seed "$seed" --control "$RUN/$name.sock" \
        >"$RUN/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

wait_sock() {
    for _ in $(seq 100); do
        [ -S "$1" ] && return 0
        sleep 0.05
    done
    echo "testbed: $1 did not appear" >&2
    return 1
}

ctl_line() { # socket line
    python3 - "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    c = s.recv(65536)
    if not c:
        break
    buf += c
print(buf.decode().strip())
EOF
}

down() {
    for n in wifi lte nr; do
        local f=$RUN/$n.pid
        [ -f "$f" ] || continue
        local pid
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    for ns in $ALL_NS; do
        if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
            # Whatever a test left running in OUR namespaces (the names are unique to this run).
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    rm -rf "$RUN"
}

up() {
    EMU_BIN=$(find_linkemu)
    for ns in $ALL_NS; do
        if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
            echo "testbed: $ns exists (testbed.sh down --name $NAME)" >&2
            exit 1
        fi
    done
    # Any failure (or signal) before the end tears down what was built.
    trap 'rc=$?; trap - EXIT; if [ $rc -ne 0 ]; then echo "testbed: up failed, tearing down" >&2; down; fi; exit $rc' EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$RUN"
    echo "$MODE" >"$RUN/mode"
    for ns in $ALL_NS; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        sysctls "$ns"
    done
    # Links. Emulator-side ends get kernel MACs (they are bridge ports, never addressed).
    veth "$NS_C" wifi "$MAC_C_WIFI" "$NS_E" c-wifi -
    veth "$NS_E" r-wifi - "$NS_R" wifi "$MAC_R_WIFI"
    veth "$NS_C" lte "$MAC_C_LTE" "$NS_E" c-lte -
    veth "$NS_E" r-lte - "$NS_R" lte "$MAC_R_LTE"
    if [ "$LINKS" != "wifi lte" ]; then
        veth "$NS_C" nr "$MAC_C_NR" "$NS_E" c-nr -
        veth "$NS_E" r-nr - "$NS_R" nr "$MAC_R_NR"
        ip -n "$NS_C" addr add 10.71.4.2/24 dev nr
        neigh "$NS_C" 10.71.4.1 "$MAC_R_NR" nr
        ip -n "$NS_C" route add 10.71.0.0/24 via 10.71.4.1 dev nr metric 30
        ip -n "$NS_C" route add default via 10.71.4.1 dev nr table 103
        ip -n "$NS_C" rule add from 10.71.4.2 table 103 pref 103
        ip -n "$NS_R" addr add 10.71.4.1/24 dev nr
        neigh "$NS_R" 10.71.4.2 "$MAC_C_NR" nr
    fi
    veth "$NS_R" core "$MAC_R_CORE" "$NS_N" dlv "$MAC_N_DLV"
    veth "$NS_N" anc "$MAC_N_ANC" "$NS_S" anc "$MAC_S_ANC"

    # Client.
    ip -n "$NS_C" addr add 10.71.1.2/24 dev wifi
    ip -n "$NS_C" addr add 10.71.2.2/24 dev lte
    neigh "$NS_C" 10.71.1.1 "$MAC_R_WIFI" wifi
    neigh "$NS_C" 10.71.2.1 "$MAC_R_LTE" lte
    # The N-MADP's delivery address over either access link (a socket bound to a device picks
    # that device's route).
    ip -n "$NS_C" route add 10.71.0.0/24 via 10.71.1.1 dev wifi metric 10
    ip -n "$NS_C" route add 10.71.0.0/24 via 10.71.2.1 dev lte metric 20
    # Source routing: each address leaves by its own link.
    ip -n "$NS_C" route add default via 10.71.1.1 dev wifi table 101
    ip -n "$NS_C" route add default via 10.71.2.1 dev lte table 102
    ip -n "$NS_C" rule add from 10.71.1.2 table 101 pref 101
    ip -n "$NS_C" rule add from 10.71.2.2 table 102 pref 102

    # Router.
    nsx "$NS_R" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$NS_R" addr add 10.71.1.1/24 dev wifi
    ip -n "$NS_R" addr add 10.71.2.1/24 dev lte
    ip -n "$NS_R" addr add 10.71.0.1/24 dev core
    neigh "$NS_R" 10.71.1.2 "$MAC_C_WIFI" wifi
    neigh "$NS_R" 10.71.2.2 "$MAC_C_LTE" lte
    neigh "$NS_R" 10.71.0.2 "$MAC_N_DLV" core
    ip -n "$NS_R" route add 10.71.3.0/24 via 10.71.0.2 dev core
    ip -n "$NS_R" route add 10.71.9.0/24 via 10.71.0.2 dev core

    # Server.
    ip -n "$NS_S" addr add 10.71.3.2/24 dev anc
    neigh "$NS_S" 10.71.3.1 "$MAC_N_ANC" anc
    ip -n "$NS_S" route add default via 10.71.3.1 dev anc

    if [ "$MODE" = routed ]; then
        # The nmadp namespace is a plain router.
        nsx "$NS_N" sysctl -qw net.ipv4.ip_forward=1
        ip -n "$NS_N" addr add 10.71.0.2/24 dev dlv
        ip -n "$NS_N" addr add 10.71.3.1/24 dev anc
        neigh "$NS_N" 10.71.0.1 "$MAC_R_CORE" dlv
        neigh "$NS_N" 10.71.3.2 "$MAC_S_ANC" anc
        ip -n "$NS_N" route add 10.71.1.0/24 via 10.71.0.1 dev dlv
        ip -n "$NS_N" route add 10.71.2.0/24 via 10.71.0.1 dev dlv
        ip -n "$NS_N" route add 10.71.4.0/24 via 10.71.0.1 dev dlv
        # The client reaches the server over Wi-Fi by default.
        ip -n "$NS_C" route add default via 10.71.1.1 dev wifi
        # Kernel MPTCP: a second subflow from the LTE address; both ends accept 2 subflows.
        nsx "$NS_C" sysctl -qw net.mptcp.enabled=1
        nsx "$NS_S" sysctl -qw net.mptcp.enabled=1
        ip -n "$NS_C" mptcp limits set subflow 3 add_addr_accepted 3
        ip -n "$NS_S" mptcp limits set subflow 3 add_addr_accepted 3
        ip -n "$NS_C" mptcp endpoint add 10.71.2.2 dev lte subflow
        if [ "$LINKS" != "wifi lte" ]; then
            ip -n "$NS_C" mptcp endpoint add 10.71.4.2 dev nr subflow
        fi
    else
        # The N-MADP owns dlv and anc (AF_PACKET): no address, no forwarding, no ARP.
        nsx "$NS_N" sysctl -qw net.ipv4.ip_forward=0
        ip -n "$NS_N" link set dev dlv arp off
        ip -n "$NS_N" link set dev anc arp off
        # Its AF_PACKET ports send to their next hop's MAC (gateway_mac in nmadp.toml).
    fi

    start_emu wifi c-wifi r-wifi "$WIFI_RATE" "$WIFI_DELAY" "$WIFI_LOSS" "$SEED"
    start_emu lte c-lte r-lte "$LTE_RATE" "$LTE_DELAY" "$LTE_LOSS" "$((SEED + 1))"
    if [ "$LINKS" != "wifi lte" ]; then
        start_emu nr c-nr r-nr "$NR_RATE" "$NR_DELAY" "$NR_LOSS" "$((SEED + 2))"
    fi
    for n in $LINKS; do wait_sock "$RUN/$n.sock"; done
    trap - EXIT INT TERM
    echo "testbed $NAME up ($MODE): namespaces $ALL_NS; links $LINKS; control $RUN/<link>.sock"
}

status() {
    for ns in $ALL_NS; do
        if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
            echo "== $ns"
            ip -n "$ns" -br addr
        else
            echo "== $ns: absent"
        fi
    done
    for n in wifi lte nr; do
        if [ -S "$RUN/$n.sock" ]; then
            echo "== emulator $n: $(ctl_line "$RUN/$n.sock" stats)"
        fi
    done
}

case "$CMD" in
    up) up ;;
    down) down ;;
    status) status ;;
    ctl)
        link=${1:?wifi|lte|nr}; line=${2:?control line}
        ctl_line "$RUN/$link.sock" "$line" ;;
    exec)
        which=${1:?namespace}; shift
        nsx "$P-$which" "$@" ;;
    *)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 2 ;;
esac
