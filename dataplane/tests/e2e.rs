//! End to end on real packets: the namespaces of `deploy/testbed/testbed.sh` (client, emu, rtr,
//! nmadp, server; Wi-Fi 50 Mbit/s 20 ms and LTE 20 Mbit/s 60 ms one-way, emulated by
//! `mx-linkemu`), real TCP/UDP traffic from iperf3, and the measured numbers printed and written
//! to `target/e2e-results/<scenario>.json` (`deploy/testbed/results-table.py` turns them into the
//! perf/RESULTS.md table).
//!
//! Needs root, iperf3, mptcpize (package mptcpd), tshark (decode test) and the kernel's MPTCP;
//! a test prints "skipped: ..." and returns when root or a tool is missing. Each test builds its
//! own testbed (name carries the process id and a counter) and a Drop guard tears it down, even
//! on failure; every child process is killed on drop; every wait is bounded. Tests take a global
//! lock so throughput runs never overlap (the numbers would be meaningless).

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Serializes the tests of this file (throughput measurements must not overlap).
static LOCK: Mutex<()> = Mutex::new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Sum of the two access link rates, Mbit/s.
const SUM_MBIT: f64 = 70.0;
/// iperf3 duration of throughput runs (s) and the omitted warm-up (s).
const IPERF_SECS: u32 = 6;
const IPERF_OMIT: u32 = 1;

const SERVER: &str = "10.71.3.2";

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("e2e-results")
}

/// Prints the scenario's numbers and writes them to `target/e2e-results/<scenario>.json`.
fn record(scenario: &str, mut v: Value) {
    v["scenario"] = json!(scenario);
    v["date"] = json!(output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).trim());
    println!("E2E RESULT {scenario}: {v}");
    let dir = results_dir();
    let _ = fs::create_dir_all(&dir);
    let _ = fs::write(
        dir.join(format!("{scenario}.json")),
        serde_json::to_string_pretty(&v).unwrap_or_default(),
    );
}

fn output_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the environment cannot run these tests, if it cannot.
fn missing(tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root".into());
    }
    for t in tools {
        if !have(t) {
            return Some(format!("needs {t} (see deploy/testbed/README.md)"));
        }
    }
    None
}

macro_rules! skip_unless {
    ($($tool:expr),*) => {
        if let Some(why) = missing(&[$($tool),*]) {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A child process killed (and reaped) on drop.
struct Proc {
    child: Option<Child>,
    what: String,
}

impl Proc {
    fn spawn(cmd: &mut Command, what: &str) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc {
            child: Some(child),
            what: what.into(),
        }
    }

    /// Waits at most `limit` for the process to exit; kills it after that. Returns its output.
    fn wait_output(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    eprintln!("{}: still running after {limit:?}, killed", self.what);
                    let _ = child.kill();
                    break;
                }
            }
        }
        child.wait_with_output().expect("wait")
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then SIGKILL after 2 s; returns the output.
    fn terminate(mut self) -> Output {
        let mut child = self.child.take().expect("child");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait_with_output().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// The nmadp namespace routes (MPTCP baseline, single-path reference).
    Routed,
    /// The N-MADP owns the nmadp namespace's interfaces.
    Nmadp,
}

/// One testbed (`testbed.sh up`), torn down on drop (`testbed.sh down`).
struct Testbed {
    name: String,
    script: PathBuf,
}

impl Testbed {
    fn up(mode: Mode, env: &[(&str, &str)]) -> Testbed {
        let name = format!(
            "e{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let script = workspace_root().join("deploy/testbed/testbed.sh");
        let tb = Testbed { name, script };
        let mode = match mode {
            Mode::Routed => "routed",
            Mode::Nmadp => "nmadp",
        };
        let out = Command::new(&tb.script)
            .args(["up", "--name", &tb.name, "--mode", mode])
            .env("LINKEMU", env!("CARGO_BIN_EXE_mx-linkemu"))
            .envs(env.iter().copied())
            .output()
            .expect("run testbed.sh");
        assert!(
            out.status.success(),
            "testbed.sh up: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tb
    }

    fn ns(&self, which: &str) -> String {
        format!("tb-{}-{which}", self.name)
    }

    fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/mxtb-{}", self.name))
    }

    /// `ip netns exec <ns> args...` as a Command.
    fn cmd(&self, which: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(which)]).args(args);
        c
    }

    /// Runs a command in a namespace, bounded by `limit`; panics unless it succeeds.
    fn run(&self, which: &str, args: &[&str], limit: Duration) -> String {
        let mut c = self.cmd(which, args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = Proc::spawn(&mut c, &args.join(" ")).wait_output(limit);
        assert!(
            out.status.success(),
            "{which}: {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn spawn(&self, which: &str, args: &[&str]) -> Proc {
        let mut c = self.cmd(which, args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        Proc::spawn(&mut c, &format!("{which}: {}", args.join(" ")))
    }

    /// One control line to the emulator of `link` ("wifi" or "lte"); its JSON answer.
    fn emu(&self, link: &str, line: &str) -> Value {
        use std::io::Write;
        let path = self.run_dir().join(format!("{link}.sock"));
        let mut s = std::os::unix::net::UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(b"\n") {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let v: Value = serde_json::from_slice(&buf)
            .unwrap_or_else(|e| panic!("emulator answer {:?}: {e}", String::from_utf8_lossy(&buf)));
        assert_ne!(v["ok"], json!(false), "emulator {link} {line}: {v}");
        v
    }

    /// Bytes the emulator of `link` delivered client -> router (a2b) and back (b2a).
    fn emu_delivered(&self, link: &str) -> (u64, u64) {
        let s = self.emu(link, "stats");
        (
            s["a_to_b"]["bytes_delivered"].as_u64().unwrap_or(0),
            s["b_to_a"]["bytes_delivered"].as_u64().unwrap_or(0),
        )
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let out = Command::new(&self.script)
            .args(["down", "--name", &self.name])
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!(
                    "testbed.sh down {}: {}",
                    self.name,
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// Measured by one iperf3 run.
#[derive(Debug, Default, Clone)]
struct IperfRun {
    /// Goodput at the receiver, Mbit/s (warm-up omitted).
    mbit: f64,
    /// Receiver-side interval throughputs, Mbit/s, with their durations (s).
    intervals: Vec<(f64, f64)>,
    /// UDP: lost datagrams and total.
    lost: u64,
    packets: u64,
    /// The client's JSON report.
    json: Value,
}

impl IperfRun {
    /// Longest run of consecutive intervals with (almost) nothing received, ms.
    fn longest_gap_ms(&self, floor_mbit: f64) -> f64 {
        let mut best = 0.0f64;
        let mut cur = 0.0f64;
        for &(mbit, secs) in &self.intervals {
            if mbit < floor_mbit {
                cur += secs * 1000.0;
                best = best.max(cur);
            } else {
                cur = 0.0;
            }
        }
        best
    }
}

struct Iperf<'a> {
    tb: &'a Testbed,
    /// Namespace of the client side (the one running `iperf3 -c`).
    client_ns: &'a str,
    server_ns: &'a str,
    server_addr: &'a str,
    port: u16,
    secs: u32,
    omit: u32,
    interval: f64,
    /// Wrap both ends in `mptcpize run`.
    mptcp: bool,
    /// Extra client arguments (`-u -b 10M`, `-R`, `-B addr`).
    extra: Vec<String>,
}

impl<'a> Iperf<'a> {
    fn new(tb: &'a Testbed, port: u16) -> Iperf<'a> {
        Iperf {
            tb,
            client_ns: "client",
            server_ns: "server",
            server_addr: SERVER,
            port,
            secs: IPERF_SECS,
            omit: IPERF_OMIT,
            interval: 0.5,
            mptcp: false,
            extra: Vec::new(),
        }
    }

    /// Runs server (one-off) and client; the receiver's numbers come from the server's JSON
    /// (with `-R` the client is the receiver).
    fn run(&self) -> IperfRun {
        let port = self.port.to_string();
        let interval = format!("{}", self.interval);
        let mut sargs: Vec<&str> = Vec::new();
        if self.mptcp {
            sargs.extend(["mptcpize", "run"]);
        }
        sargs.extend(["iperf3", "-s", "-1", "-J", "-p", &port, "-i", &interval]);
        let server = self.tb.spawn(self.server_ns, &sargs);
        // The server listens within a few ms; retry the client's connection instead of sleeping
        // a fixed time.
        let secs = self.secs.to_string();
        let omit = self.omit.to_string();
        let mut cargs: Vec<&str> = Vec::new();
        if self.mptcp {
            cargs.extend(["mptcpize", "run"]);
        }
        cargs.extend([
            "iperf3",
            "-c",
            self.server_addr,
            "-p",
            &port,
            "-t",
            &secs,
            "-O",
            &omit,
            "-i",
            &interval,
            "-J",
            "--connect-timeout",
            "3000",
        ]);
        cargs.extend(self.extra.iter().map(String::as_str));
        let limit = Duration::from_secs(u64::from(self.secs + self.omit) + 15);
        let mut client_out = None;
        for _ in 0..20 {
            thread::sleep(Duration::from_millis(100));
            let mut c = self.tb.cmd(self.client_ns, &cargs);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            let out = Proc::spawn(&mut c, "iperf3 client").wait_output(limit);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains("Connection refused") || text.contains("unable to connect") {
                continue;
            }
            client_out = Some((out, text));
            break;
        }
        let (out, text) = client_out.expect("iperf3 client never connected");
        let server_out = server.wait_output(Duration::from_secs(5));
        let cj: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "iperf3 client output ({e}): {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(
            cj.get("error").is_none(),
            "iperf3 client error: {}",
            cj["error"]
        );
        let sj: Value = serde_json::from_slice(&server_out.stdout).unwrap_or(Value::Null);
        let reverse = self.extra.iter().any(|a| a == "-R");
        // The receiver's report: the server's unless -R.
        let rj = if reverse { &cj } else { &sj };
        let udp = self.extra.iter().any(|a| a == "-u");
        let intervals = rj["intervals"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|i| i["sum"]["omitted"] != json!(true))
                    .map(|i| {
                        (
                            i["sum"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6,
                            i["sum"]["seconds"].as_f64().unwrap_or(0.0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (mbit, lost, packets) = if udp {
            let s = &cj["end"]["sum"];
            (
                s["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6,
                s["lost_packets"].as_u64().unwrap_or(0),
                s["packets"].as_u64().unwrap_or(0),
            )
        } else {
            (
                cj["end"]["sum_received"]["bits_per_second"]
                    .as_f64()
                    .unwrap_or(0.0)
                    / 1e6,
                0,
                0,
            )
        };
        IperfRun {
            mbit,
            intervals,
            lost,
            packets,
            json: cj,
        }
    }
}

fn pct(mbit: f64) -> f64 {
    (mbit / SUM_MBIT * 1000.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// ------------------------------------------------------------------------------------------------
// MPTCP baseline (does not need the N-MADP): client and server talk directly over both emulated
// links; the `rtr` and `nmadp` namespaces only route.

/// Single-path TCP over Wi-Fi alone (the reference), then kernel MPTCP with two subflows
/// (Wi-Fi initial subflow + LTE subflow from the `ip mptcp endpoint ... subflow`).
#[test]
fn mptcp_baseline_aggregates_wifi_and_lte() {
    skip_unless!("iperf3", "mptcpize");
    let _g = lock();
    let tb = Testbed::up(Mode::Routed, &[]);

    let wifi = Iperf::new(&tb, 5201).run();
    println!(
        "single-path TCP over Wi-Fi: {:.1} Mbit/s ({}% of {SUM_MBIT})",
        wifi.mbit,
        pct(wifi.mbit)
    );
    record(
        "single_path_wifi",
        json!({
            "goodput_mbit": round2(wifi.mbit), "pct_of_70": pct(wifi.mbit),
            "command": "cargo test -p dataplane --test e2e -- --nocapture mptcp",
        }),
    );
    assert!(
        wifi.mbit > 30.0,
        "Wi-Fi alone carries {:.1} Mbit/s",
        wifi.mbit
    );

    let (lte_before, _) = tb.emu_delivered("lte");
    let mp = Iperf {
        mptcp: true,
        ..Iperf::new(&tb, 5202)
    }
    .run();
    let (lte_after, _) = tb.emu_delivered("lte");
    let lte_mbyte = (lte_after - lte_before) as f64 / 1e6;
    println!(
        "MPTCP (2 subflows): {:.1} Mbit/s ({}% of {SUM_MBIT}); LTE carried {lte_mbyte:.1} MB uplink",
        mp.mbit,
        pct(mp.mbit)
    );
    record(
        "mptcp",
        json!({
            "goodput_mbit": round2(mp.mbit), "pct_of_70": pct(mp.mbit),
            "wifi_only_mbit": round2(wifi.mbit),
            "lte_uplink_mbyte": round2(lte_mbyte),
            "command": "cargo test -p dataplane --test e2e -- --nocapture mptcp",
        }),
    );
    // The LTE subflow carried a real share (> 20% of what LTE could carry in the run).
    let lte_capacity_mbyte = 20.0 * f64::from(IPERF_SECS + IPERF_OMIT) / 8.0;
    assert!(
        lte_mbyte > 0.2 * lte_capacity_mbyte,
        "the LTE subflow carried only {lte_mbyte:.1} MB"
    );
    assert!(
        mp.mbit > wifi.mbit,
        "MPTCP {:.1} Mbit/s does not beat Wi-Fi alone {:.1} Mbit/s",
        mp.mbit,
        wifi.mbit
    );
}
