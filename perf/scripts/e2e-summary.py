#!/usr/bin/env python3
"""Min/median/max of every e2e scenario over repeated runs, from the JSON lines that
perf/scripts/aggregation.sh (and the DPDK loop in perf/RESULTS.md) collect.

    python3 perf/scripts/e2e-summary.py perf/results/aggregation-runs.jsonl [more.jsonl ...]
"""
import json
import statistics
import sys

rows = []
for path in sys.argv[1:]:
    with open(path) as f:
        rows += [json.loads(l) for l in f if l.strip()]

def stat(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    if not xs:
        return "-"
    return f"{min(xs):.1f} / {statistics.median(xs):.1f} / {max(xs):.1f} ({len(xs)})"

FIELDS = [
    ("nmadp_failover", "udp_disruption_up_ms", "failover active-standby: paced UDP uplink silence, ms"),
    ("nmadp_failover", "udp_disruption_down_ms", "failover active-standby: paced UDP downlink silence, ms"),
    ("nmadp_failover", "disruption_ms", "failover active-standby: TCP gap (100 ms intervals), ms"),
    ("nmadp_failover_duplicate", "uplink_lost", "failover duplicate mode: uplink datagrams lost"),
    ("nmadp_failover_duplicate", "downlink_lost", "failover duplicate mode: downlink datagrams lost"),
    ("nmadp_restart", "cmadp_restart_resume_up_ms", "C-MADP SIGKILL + restart: uplink resumed after, ms"),
    ("nmadp_restart", "cmadp_restart_resume_down_ms", "C-MADP SIGKILL + restart: downlink resumed after, ms"),
    ("nmadp_restart", "nmadp_restart_resume_up_ms", "N-MADP SIGKILL + restart: uplink resumed after, ms"),
    ("nmadp_restart", "nmadp_restart_resume_down_ms", "N-MADP SIGKILL + restart: downlink resumed after, ms"),
    ("nmadp_rebind", "uplink_lost", "NAT rebinding twice: uplink datagrams lost"),
    ("nmadp_rebind", "downlink_lost", "NAT rebinding twice: downlink datagrams lost"),
    ("nmadp_udp_echo", "loss_pct", "UDP echo both ways: loss %"),
    ("nmadp_duplicate_loss5", "loss_pct", "duplicate mode, 5% loss per link: application loss %"),
    ("single_path_wifi", "goodput_mbit", "single-path TCP over Wi-Fi (routed), Mbit/s"),
    ("nmadp_dpdk_af_packet_weighted", "goodput_mbit", "DPDK net_af_packet, weighted TCP downlink, Mbit/s"),
    ("nmadp_dpdk_af_packet_weighted", "pct_of_achievable", "DPDK net_af_packet, weighted: share of achievable %"),
    ("nmadp_dpdk_af_xdp_weighted", "goodput_mbit", "DPDK net_af_xdp, weighted TCP downlink, Mbit/s"),
    ("nmadp_dpdk_af_xdp_weighted", "pct_of_achievable", "DPDK net_af_xdp, weighted: share of achievable %"),
    ("nmadp_dpdk_af_packet_udp_echo", "loss_pct", "DPDK net_af_packet UDP echo: loss %"),
    ("nmadp_dpdk_af_xdp_udp_echo", "loss_pct", "DPDK net_af_xdp UDP echo: loss %"),
]
print("| scenario | min / median / max (runs) |")
print("|---|---|")
for scen, key, label in FIELDS:
    xs = [r.get(key) for r in rows if r.get("scenario") == scen]
    if scen == "nmadp_rebind" and key.endswith("_ms"):
        continue
    if xs:
        print(f"| {label} | {stat(xs)} |")
reb = [max(d["ms"] for d in r["disruption_ms"]) for r in rows
       if r.get("scenario") == "nmadp_rebind" and isinstance(r.get("disruption_ms"), list)]
if reb:
    print(f"| NAT rebinding twice: longest silence of either stream, ms | {stat(reb)} |")
