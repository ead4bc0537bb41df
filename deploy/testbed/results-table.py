#!/usr/bin/env python3
"""Turns target/e2e-results/*.json (written by dataplane/tests/e2e.rs) into the Markdown table
of perf/RESULTS.md, section "End to end (namespaces)".

Usage: deploy/testbed/results-table.py [RESULTS_DIR]
"""
import json
import pathlib
import sys

ROWS = [
    ("nmadp_weighted", "N-MADP weighted 5:2 (TCP)"),
    ("nmadp_delay_aware", "N-MADP delay-aware (TCP)"),
    ("nmadp_failover", "N-MADP failover, Wi-Fi cut at 2 s (TCP, active-standby)"),
    ("nmadp_duplicate_loss5", "N-MADP duplicate, 5% loss per link (UDP 10 Mbit/s)"),
    ("nmadp_udp_echo", "N-MADP UDP echo both directions"),
    ("nmadp_tshark", "N-MADP delivery capture (tshark + nmadp decode)"),
    ("mptcp", "Kernel MPTCP, 2 subflows (TCP)"),
    ("single_path_wifi", "Single-path TCP over Wi-Fi"),
]


def cell(v, fmt="{:.1f}"):
    if v is None:
        return "-"
    if isinstance(v, (int, float)):
        return fmt.format(v)
    return str(v)


def main():
    root = pathlib.Path(__file__).resolve().parents[2]
    d = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "target" / "e2e-results"
    res = {}
    for f in sorted(d.glob("*.json")):
        try:
            res[f.stem] = json.loads(f.read_text())
        except ValueError:
            pass
    print("| scenario | goodput Mbit/s | % of the link sum | disruption ms | loss % | notes | reproduce |")
    print("|---|---|---|---|---|---|---|")
    for key, label in ROWS:
        r = res.get(key)
        if r is None:
            print(f"| {label} | not measured | | | | | |")
            continue
        print(
            "| {} | {} | {} | {} | {} | {} | `{}` |".format(
                label,
                cell(r.get("goodput_mbit")),
                cell(r.get("pct_of_sum", r.get("pct_of_70"))),
                cell(r.get("disruption_ms"), "{:.0f}"),
                cell(r.get("loss_pct"), "{:.2f}"),
                r.get("notes", ""),
                r.get("command", ""),
            )
        )
    dates = sorted({r.get("date", "") for r in res.values() if r.get("date")})
    if dates:
        print(f"\nMeasured {dates[0]}" + (f" .. {dates[-1]}" if len(dates) > 1 else "") + ".")


if __name__ == "__main__":
    main()
