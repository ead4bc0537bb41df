//! `nmadp demo` end to end: the real binary, its JSON summary and exit code.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The demo runs many threads in real time; two at once on a small machine only measure the
/// scheduler, so the runs take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn demo(args: &[&str]) -> (i32, Value, Duration) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_nmadp"))
        .arg("demo")
        .args(args)
        .output()
        .expect("run nmadp demo");
    let wall = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v, wall)
}

/// The unsigned integer at `path` (segments joined as a JSON pointer).
fn u(v: &Value, path: &[&str]) -> u64 {
    let ptr: String = path.iter().map(|p| format!("/{p}")).collect();
    v.pointer(&ptr)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{ptr} is not a number in {v}"))
}

#[test]
fn demo_carries_traffic_on_both_paths_in_order_both_ways() {
    let (code, v, wall) = demo(&["--duration", "3", "--json"]);
    assert_eq!(code, 0, "exit code; summary: {v}");
    assert!(
        wall < Duration::from_secs(3 + 5),
        "the demo must end by itself shortly after --duration, took {wall:?}"
    );
    for dir in ["downlink", "uplink"] {
        assert!(
            u(&v, &[dir, "delivered"]) > 0,
            "{dir} delivered nothing: {v}"
        );
        assert_eq!(u(&v, &[dir, "reordered_at_application"]), 0, "{dir}: {v}");
        assert_eq!(u(&v, &[dir, "duplicates"]), 0, "{dir}: {v}");
        assert_eq!(u(&v, &[dir, "corrupt"]), 0, "{dir}: {v}");
    }
    let paths = v["paths"].as_array().expect("paths");
    assert_eq!(paths.len(), 2);
    for p in paths {
        assert!(
            u(p, &["down", "packets"]) > 100 && u(p, &["up", "packets"]) > 10,
            "path {} did not carry traffic both ways: {p}",
            p["name"]
        );
    }
    // Default load (60 Mbit/s) exceeds the Wi-Fi link alone (50 Mbit/s): aggregation is real.
    assert!(
        v["downlink"]["delivered_mbps"].as_f64().unwrap_or(0.0) > 50.0,
        "downlink goodput: {}",
        v["downlink"]
    );
    assert_eq!(v["application_ok"], Value::Bool(true));
}

#[test]
fn demo_fails_over_to_lte_when_wifi_is_cut() {
    let (code, v, wall) = demo(&["--duration", "3", "--cut-wifi-at", "1", "--json"]);
    assert_eq!(
        code, 0,
        "no reordering or duplicates even across the cut: {v}"
    );
    assert!(wall < Duration::from_secs(3 + 5), "took {wall:?}");
    assert_eq!(v["paths"][0]["name"], "wifi");
    assert_eq!(v["paths"][0]["link_up"], Value::Bool(false));
    assert!(
        u(&v, &["paths", "0", "down", "dropped_down"])
            + u(&v, &["paths", "0", "up", "dropped_down"])
            > 0
    );
    // After the cut (and the failover time) the application keeps receiving, over lte.
    let tl = v["timeline"].as_array().expect("timeline");
    let at = |t: f64| {
        tl.iter()
            .rfind(|s| s["t_s"].as_f64().unwrap_or(0.0) <= t)
            .unwrap_or_else(|| panic!("no sample before {t} s: {tl:?}"))
    };
    let (a, b) = (at(2.0), at(3.0));
    assert!(
        u(b, &["down_delivered"]) > u(a, &["down_delivered"]) + 100,
        "downlink stalled after the cut: {a} -> {b}"
    );
    assert!(
        u(b, &["up_delivered"]) > u(a, &["up_delivered"]) + 10,
        "{a} -> {b}"
    );
    assert!(
        u(&b["links"][1], &["down_packets"]) > u(&a["links"][1], &["down_packets"]) + 100,
        "lte carried nothing after the cut: {a} -> {b}"
    );
    assert_eq!(
        u(&b["links"][0], &["down_packets"]),
        u(&a["links"][0], &["down_packets"]),
        "wifi carried packets while down"
    );
}

#[test]
fn demo_rejects_bad_flags_with_exit_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_nmadp"))
        .args(["demo", "--wifi-loss", "150"])
        .output()
        .expect("run nmadp demo");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wifi-loss"));
}
