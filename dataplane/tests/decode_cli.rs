//! `nmadp decode` as a user runs it: the real binary, the shared vectors, standard input, a
//! capture made by scapy, and cross-checks with tshark and text2pcap.
//!
//! Tests that need an outside tool (scapy, tshark, text2pcap) skip with a message when it is
//! missing, unless `NMADP_REQUIRE_TOOLS=1` (set by `deploy/test-all.sh`, which installs them),
//! in which case a missing tool fails the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn nmadp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nmadp"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    nmadp()
        .arg("decode")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run nmadp")
}

fn tool_available(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("NMADP_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required (NMADP_REQUIRE_TOOLS=1) but missing"
        );
        eprintln!("skipped: {name} not installed (deploy/test-all.sh installs it)");
    }
    found
}

/// Every field of `expected` equals the one in `got` (the check of `check-vectors`).
fn subset(expected: &Value, got: &Value, path: &str, errs: &mut Vec<String>) {
    match expected {
        Value::Object(m) => {
            for (k, v) in m {
                subset(
                    v,
                    got.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                    errs,
                )
            }
        }
        Value::Array(a) => match got.as_array() {
            Some(g) if g.len() == a.len() => {
                for (i, (e, g)) in a.iter().zip(g).enumerate() {
                    subset(e, g, &format!("{path}[{i}]"), errs)
                }
            }
            _ => errs.push(format!("{path}: expected {} items, got {got}", a.len())),
        },
        _ => {
            if expected != got {
                errs.push(format!("{path}: expected {expected}, got {got}"))
            }
        }
    }
}

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("pipelines/tests/data/mx-public.jsonl"))
        .expect("vector file");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("vector JSON"))
        .collect()
}

#[test]
fn every_shared_vector_decodes_as_expected() {
    let mut failures = Vec::new();
    let vs = vectors();
    for v in &vs {
        let mut args: Vec<&str> = vec!["--json"];
        args.extend(
            v["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap()),
        );
        args.push(v["hex"].as_str().unwrap());
        let out = run(&args);
        let name = v["name"].as_str().unwrap();
        if let Some(code) = v.get("expect_exit") {
            if out.status.code() != code.as_i64().map(|c| c as i32) {
                failures.push(format!("{name}: exit {:?}", out.status.code()));
            }
            continue;
        }
        if !out.status.success() {
            failures.push(format!(
                "{name}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let got: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
        let mut errs = Vec::new();
        subset(&v["expect"], &got, "", &mut errs);
        if !errs.is_empty() {
            failures.push(format!("{name}: {}", errs.join("; ")));
        }
    }
    assert!(vs.len() >= 17);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_has_every_wire_md_key_with_null_for_absent_layers() {
    let v = &vectors()[0];
    let out = run(&["--json", v["hex"].as_str().unwrap()]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["direction", "outer", "ip", "trailer", "sdus", "control"] {
        assert!(got.get(key).is_some(), "missing {key}");
    }
    assert!(got["outer"].is_null() && got["control"].is_null());
    for key in [
        "length",
        "flags",
        "next_header",
        "connection_id",
        "traffic_class",
        "sequence_number",
        "first_sdu_length",
        "fragment",
    ] {
        assert!(got["trailer"].get(key).is_some(), "missing trailer.{key}");
    }
}

#[test]
fn malformed_input_exits_2_naming_field_and_offset() {
    for v in vectors().iter().filter(|v| v.get("expect_exit").is_some()) {
        let out = run(&[v["hex"].as_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", v["name"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.stdout.is_empty(), "nothing on stdout for {}", v["name"]);
        if !v["hex"].as_str().unwrap().is_empty() {
            assert!(
                err.contains("field `") && err.contains("byte offset"),
                "{}: {err}",
                v["name"]
            );
        }
    }
    // A trailer whose flags announce more than the PDU holds: the flags octet is blamed.
    let out = run(&["45000015000100004072000a0a0000010a000002fc"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("MX trailer") && err.contains("byte offset 20"),
        "{err}"
    );
    assert!(err.contains("^^"), "hex excerpt with a pointer: {err}");
    // Not hex at all.
    let out = run(&["45zz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid hex character"));
}

#[test]
fn standard_input_takes_one_pdu_per_line() {
    let vs = vectors();
    let mut child = nmadp()
        .args(["decode", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!(
        "# two PDUs\n{}\n\n{}\n",
        vs[0]["hex"].as_str().unwrap(),
        vs[1]["hex"].as_str().unwrap()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["trailer"]["sequence_number"], 513);
    assert_eq!(lines[1]["trailer"]["sequence_number"], 65535);
    assert_eq!(
        (lines[0]["packet"].as_u64(), lines[1]["packet"].as_u64()),
        (Some(2), Some(4))
    );
}

#[test]
fn human_output_names_every_layer() {
    let concat = vectors()
        .into_iter()
        .find(|v| v["name"] == "concat-2")
        .unwrap();
    let out = run(&[concat["hex"].as_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("proto 114 (MX)"), "{text}");
    assert!(text.contains("flags 0x98 [NH SN FSL]"), "{text}");
    assert!(text.contains("SDU 1/2  48 bytes  UDP  sn 5"), "{text}");
    assert!(text.contains("SDU 2/2  55 bytes  UDP  sn 6"), "{text}");
}

fn decode_capture_json(path: &Path) -> (Output, Vec<Value>) {
    let out = run(&["--json", "--pcap", path.to_str().unwrap()]);
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

/// The committed sample (made by scapy from WIRE.md, not by our code) decodes completely.
#[test]
fn committed_sample_capture_decodes() {
    let (out, lines) = decode_capture_json(&repo().join("deploy/samples/mx-sample.pcap"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines.len(), 11, "11 MAMS packets, the 12th is plain DNS");
    let sns: Vec<Vec<u64>> = lines
        .iter()
        .map(|l| {
            l["sdus"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s["sequence_number"].as_u64())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(sns[..3], [vec![1], vec![2], vec![3, 4, 5]]);
    assert_eq!(lines[6]["direction"], "uplink");
    assert_eq!(lines[7]["control"]["type"], "probe-req");
    assert_eq!(lines[8]["control"]["type"], "probe-ack");
    assert_eq!(lines[9]["control"]["type"], "keep-alive");
    assert_eq!(lines[10]["gre"]["anchor_connection_id"], 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("11 MAMS PDUs decoded, 0 malformed, 1 other")
    );
}

/// scapy builds the capture afresh and states its intent; the decoder must agree with it.
#[test]
fn scapy_capture_matches_the_generators_intent() {
    if !tool_available("python3") {
        return;
    }
    let probe = Command::new("python3")
        .args(["-c", "import scapy"])
        .output()
        .unwrap();
    if !probe.status.success() {
        assert!(
            std::env::var("NMADP_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "scapy is required but missing"
        );
        eprintln!("skipped: scapy not installed");
        return;
    }
    let dir = tempdir();
    let pcap = dir.join("fresh.pcap");
    let gen = Command::new("python3")
        .arg(repo().join("deploy/samples/make-sample.py"))
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let intent: Vec<Value> = String::from_utf8_lossy(&gen.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (out, lines) = decode_capture_json(&pcap);
    assert!(out.status.success());
    let by_packet = |n: u64| lines.iter().find(|l| l["packet"].as_u64() == Some(n));
    for i in &intent {
        let n = i["packet"].as_u64().unwrap();
        let got = by_packet(n);
        match i["kind"].as_str().unwrap() {
            "other" => assert!(got.is_none(), "packet {n} is not MAMS"),
            "data" => {
                let got = got.unwrap();
                assert_eq!(got["direction"], i["direction"], "packet {n}");
                let sns: Vec<&Value> = got["sdus"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| &s["sequence_number"])
                    .collect();
                let want: Vec<&Value> = i["sns"].as_array().unwrap().iter().collect();
                assert_eq!(sns, want, "packet {n}");
            }
            "fragment" => {
                let got = got.unwrap();
                assert!(got["trailer"]["fragment"].is_object(), "packet {n}");
            }
            "control" => {
                let got = got.unwrap();
                assert_eq!(got["control"]["type"], i["type"], "packet {n}");
                assert_eq!(got["direction"], i["direction"], "packet {n}");
            }
            "gre" => assert!(got.unwrap()["gre"].is_object()),
            k => panic!("unknown kind {k}"),
        }
    }
}

/// tshark (an independent dissector) agrees on the outer headers: each tunnelled default-layout
/// PDU fills its UDP payload exactly (inner IP length + 8 == UDP length) and the outer UDP
/// checksums are good.
#[test]
fn tshark_agrees_on_outer_headers_of_the_sample() {
    if !tool_available("tshark") {
        return;
    }
    let pcap = repo().join("deploy/samples/mx-sample.pcap");
    let ts = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
        ])
        .args([
            "-e",
            "frame.number",
            "-e",
            "udp.length",
            "-e",
            "udp.checksum.status",
        ])
        .output()
        .unwrap();
    assert!(
        ts.status.success(),
        "{}",
        String::from_utf8_lossy(&ts.stderr)
    );
    let (_, lines) = decode_capture_json(&pcap);
    let mut checked = 0;
    for row in String::from_utf8_lossy(&ts.stdout).lines() {
        let f: Vec<&str> = row.split('\t').collect();
        let (Ok(n), Ok(udp_len)) = (f[0].parse::<u64>(), f[1].parse::<u64>()) else {
            continue;
        };
        let Some(ours) = lines
            .iter()
            .find(|l| l["packet"].as_u64() == Some(n) && l["outer"]["udp_src"].is_number())
        else {
            continue;
        };
        assert_eq!(f[2], "1", "tshark: good UDP checksum on packet {n}");
        assert_eq!(ours["outer"]["udp_checksum_ok"], true);
        if let Some(total) = ours["ip"]["total_length"].as_u64() {
            assert_eq!(total + 8, udp_len, "packet {n}: PDU fills the UDP payload");
        }
        checked += 1;
    }
    assert_eq!(checked, 10, "ten UDP-tunnelled MAMS packets");
}

/// text2pcap (Wireshark) turns the vectors' hex into a raw-IP capture; decoding the capture
/// gives the same answers as decoding the hex.
#[test]
fn text2pcap_capture_of_the_vectors_decodes_like_the_hex() {
    if !tool_available("text2pcap") {
        return;
    }
    let data: Vec<Value> = vectors()
        .into_iter()
        .filter(|v| v["args"].as_array().unwrap().is_empty() && v.get("expect").is_some())
        .collect();
    let mut dump = String::new();
    for v in &data {
        let hex = v["hex"].as_str().unwrap();
        for (i, chunk) in hex.as_bytes().chunks(32).enumerate() {
            let bytes: Vec<String> = chunk
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            dump.push_str(&format!("{:06x} {}\n", i * 16, bytes.join(" ")));
        }
    }
    let dir = tempdir();
    let (txt, pcap) = (dir.join("vectors.txt"), dir.join("vectors.pcap"));
    std::fs::write(&txt, dump).unwrap();
    let t = Command::new("text2pcap")
        .args(["-q", "-l", "101"])
        .arg(&txt)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let (out, lines) = decode_capture_json(&pcap);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines.len(), data.len());
    for (v, got) in data.iter().zip(&lines) {
        let mut errs = Vec::new();
        subset(&v["expect"], got, "", &mut errs);
        assert!(errs.is_empty(), "{}: {errs:?}", v["name"]);
    }
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "nmadp-decode-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
