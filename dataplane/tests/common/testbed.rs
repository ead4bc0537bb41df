//! Shared helpers of the namespace end-to-end tests (copied from `e2e.rs`, which keeps its own
//! copy): the `deploy/testbed/testbed.sh` testbed torn down on drop, child processes killed on
//! drop, bounded iperf3 runs, a UDP echo through the tunnel, and the results written to
//! `target/e2e-results/<scenario>.json`.
//!
//! Use from a test file as
//! ```ignore
//! mod common;
//! #[macro_use]
//! #[path = "common/testbed.rs"]
//! mod testbed;
//! ```
//! (`udp_echo` enters namespaces with `common::in_netns`).
#![allow(dead_code)]

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
pub static LOCK: Mutex<()> = Mutex::new(());
pub static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Rate of one emulated link, Mbit/s: `WIFI_RATE` / `LTE_RATE` from the environment, as
/// `testbed.sh` reads them (defaults 50 and 20).
pub fn link_rate(var: &str) -> f64 {
    let default = if var.starts_with("WIFI") { 50.0 } else { 20.0 };
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r: &f64| r > 0.0)
        .unwrap_or(default)
}

/// Rate of the third access link ("nr", 5G), Mbit/s: `NR_RATE`, 0 (no such link) when unset,
/// as `testbed.sh` reads it.
pub fn nr_rate() -> f64 {
    std::env::var("NR_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r: &f64| r > 0.0)
        .unwrap_or(0.0)
}

/// A configuration template of `deploy/testbed/` filled in: run directory, steering mode and
/// the emulated links' rates; with a third link (`NR_RATE`), its delivery (the lines marked
/// `#@NR@ `) is uncommented.
pub fn fill_template(text: &str, run: &str, steering: &str) -> String {
    let rate = |r: f64| format!("{}", r.round().max(1.0) as u64);
    let text = if nr_rate() > 0.0 {
        text.replace("#@NR@ ", "")
    } else {
        text.to_string()
    };
    text.replace("@RUN@", run)
        .replace("@STEERING@", steering)
        .replace("@WIFI_RATE@", &rate(link_rate("WIFI_RATE")))
        .replace("@LTE_RATE@", &rate(link_rate("LTE_RATE")))
        .replace("@NR_RATE@", &rate(nr_rate()))
}

/// Sum of the access link rates, Mbit/s.
pub fn sum_mbit() -> f64 {
    link_rate("WIFI_RATE") + link_rate("LTE_RATE") + nr_rate()
}

/// The fastest access link's rate, Mbit/s.
pub fn fastest_mbit() -> f64 {
    link_rate("WIFI_RATE")
        .max(link_rate("LTE_RATE"))
        .max(nr_rate())
}

/// The share of an emulated link's rate that TCP payload can use through the tunnel: a full
/// segment through mx0 (MTU 1400: 1400 - 20 IPv4 - 20 TCP - 12 timestamps = 1348 bytes of
/// payload) travels as 1400 + 6 (trailer nh cid tc sn) + 8 UDP + 20 IPv4 + 14 Ethernet = 1448
/// bytes on the emulated link (mx-linkemu counts Ethernet frames).
pub const TUNNEL_PAYLOAD_SHARE: f64 = 1348.0 / 1448.0;

/// The same for kernel MPTCP over the links directly: MTU 1500, 1500 - 20 - 20 - 12 - 20 (DSS
/// option) = 1428 bytes of payload in a 1514-byte frame.
pub const MPTCP_PAYLOAD_SHARE: f64 = 1428.0 / 1514.0;

/// TCP goodput achievable through the tunnel on every link together, Mbit/s.
pub fn achievable_tunnel_mbit() -> f64 {
    sum_mbit() * TUNNEL_PAYLOAD_SHARE
}
/// iperf3 duration of throughput runs (s) and the omitted warm-up (s).
pub const IPERF_SECS: u32 = 6;
pub const IPERF_OMIT: u32 = 1;

pub const SERVER: &str = "10.71.3.2";

pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("e2e-results")
}

/// Prints the scenario's numbers and writes them to `target/e2e-results/<scenario>.json`.
pub fn record(scenario: &str, mut v: Value) {
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

pub fn output_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the environment cannot run these tests, if it cannot.
pub fn missing(tools: &[&str]) -> Option<String> {
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

/// Returns from the test (or fails under `NMADP_REQUIRE_TOOLS=1`) unless root and the tools.
macro_rules! skip_unless {
    ($($tool:expr),*) => {
        if let Some(why) = $crate::testbed::missing(&[$($tool),*]) {
            // deploy/test-all.sh installs every tool and sets NMADP_REQUIRE_TOOLS=1: there a
            // missing tool is a failure, not a skip.
            assert!(
                std::env::var("NMADP_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "required but missing: {why}"
            );
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A child process killed (and reaped) on drop.
pub struct Proc {
    child: Option<Child>,
    what: String,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, what: &str) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc {
            child: Some(child),
            what: what.into(),
        }
    }

    /// Waits at most `limit` for the process to exit; kills it after that. Returns its output.
    pub fn wait_output(mut self, limit: Duration) -> Output {
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

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then SIGKILL after 2 s; returns the output.
    pub fn terminate(mut self) -> Output {
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
pub enum Mode {
    /// The nmadp namespace routes (MPTCP baseline, single-path reference).
    Routed,
    /// The N-MADP owns the nmadp namespace's interfaces.
    Nmadp,
}

/// One testbed (`testbed.sh up`), torn down on drop (`testbed.sh down`).
pub struct Testbed {
    pub name: String,
    pub script: PathBuf,
}

impl Testbed {
    pub fn up(mode: Mode, env: &[(&str, &str)]) -> Testbed {
        Testbed::up_tagged("e", mode, env)
    }

    /// A testbed named `<tag><pid>x<n>` (the tag tells test binaries apart in `ip netns`).
    pub fn up_tagged(tag: &str, mode: Mode, env: &[(&str, &str)]) -> Testbed {
        let name = format!(
            "{tag}{}x{}",
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

    pub fn ns(&self, which: &str) -> String {
        format!("tb-{}-{which}", self.name)
    }

    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/mxtb-{}", self.name))
    }

    /// `ip netns exec <ns> args...` as a Command.
    pub fn cmd(&self, which: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(which)]).args(args);
        c
    }

    /// Runs a command in a namespace, bounded by `limit`; panics unless it succeeds.
    pub fn run(&self, which: &str, args: &[&str], limit: Duration) -> String {
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

    pub fn spawn(&self, which: &str, args: &[&str]) -> Proc {
        let mut c = self.cmd(which, args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        Proc::spawn(&mut c, &format!("{which}: {}", args.join(" ")))
    }

    /// One control line to the emulator of `link` ("wifi" or "lte"); its JSON answer.
    pub fn emu(&self, link: &str, line: &str) -> Value {
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
    pub fn emu_delivered(&self, link: &str) -> (u64, u64) {
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
pub struct IperfRun {
    /// Goodput at the receiver, Mbit/s (warm-up omitted).
    pub mbit: f64,
    /// Receiver-side interval throughputs, Mbit/s, with their durations (s).
    pub intervals: Vec<(f64, f64)>,
    /// UDP: lost datagrams and total.
    pub lost: u64,
    pub packets: u64,
}

impl IperfRun {
    /// Longest run of consecutive intervals with (almost) nothing received, ms.
    pub fn longest_gap_ms(&self, floor_mbit: f64) -> f64 {
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

pub struct Iperf<'a> {
    pub tb: &'a Testbed,
    /// Namespace of the client side (the one running `iperf3 -c`).
    pub client_ns: &'a str,
    pub server_ns: &'a str,
    pub server_addr: &'a str,
    pub port: u16,
    pub secs: u32,
    pub omit: u32,
    pub interval: f64,
    /// Wrap both ends in `mptcpize run`.
    pub mptcp: bool,
    /// Extra client arguments (`-u -b 10M`, `-R`, `-B addr`).
    pub extra: Vec<String>,
}

impl<'a> Iperf<'a> {
    pub fn new(tb: &'a Testbed, port: u16) -> Iperf<'a> {
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
    pub fn run(&self) -> IperfRun {
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
            // The server's side of the story (its JSON has the intervals it saw).
            let so = String::from_utf8_lossy(&server_out.stdout);
            let tail: String = so
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "iperf3 client output ({e}): {text}{}\niperf3 server stderr: {}\niperf3 server stdout (tail): {tail}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&server_out.stderr)
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
        }
    }
}

/// `mbit` as a percentage of the raw link sum.
pub fn pct(mbit: f64) -> f64 {
    (mbit / sum_mbit() * 1000.0).round() / 10.0
}

/// `mbit` as a percentage of `of`.
pub fn pct_of(mbit: f64, of: f64) -> f64 {
    (mbit / of.max(1e-9) * 1000.0).round() / 10.0
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The C-MADP's anchor address (TUN mx0 in the client namespace, nmadp mode).
pub const ANCHOR: &str = "10.71.9.2";

pub fn all_objects<'v>(v: &'v Value, out: &mut Vec<&'v serde_json::Map<String, Value>>) {
    match v {
        Value::Object(m) => {
            out.push(m);
            for x in m.values() {
                all_objects(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| all_objects(x, out)),
        _ => {}
    }
}

/// UDP echo: `n` datagrams from `from_ns` to `to_addr` (an echo thread in `to_ns`); how many
/// came back within the deadline.
pub fn udp_echo(
    tb: &Testbed,
    from_ns: &str,
    to_ns: &str,
    bind: &str,
    to_addr: &str,
    n: u32,
) -> u32 {
    use std::net::UdpSocket;
    let echo_bind = format!("{bind}:7007");
    let echo = crate::common::in_netns(&tb.ns(to_ns), move || {
        let s = UdpSocket::bind(&echo_bind).expect("bind echo");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        s
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::SeqCst) {
            if let Ok((k, from)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(&buf[..k], from);
            }
        }
    });
    let sock = crate::common::in_netns(&tb.ns(from_ns), || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        s
    });
    let dst = format!("{to_addr}:7007");
    let mut got = std::collections::HashSet::new();
    for seq in 0..n {
        let mut msg = b"MXE2E".to_vec();
        msg.extend_from_slice(&seq.to_be_bytes());
        msg.resize(200, 0xab);
        sock.send_to(&msg, &dst).expect("send");
        let mut buf = [0u8; 2048];
        while let Ok((k, _)) = sock.recv_from(&mut buf) {
            if k == 200 && buf.starts_with(b"MXE2E") {
                got.insert(u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]));
            }
            if got.len() as u32 == n {
                break;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 2048];
    while (got.len() as u32) < n && Instant::now() < deadline {
        if let Ok((k, _)) = sock.recv_from(&mut buf) {
            if k == 200 && buf.starts_with(b"MXE2E") {
                got.insert(u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]));
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let _ = t.join();
    got.len() as u32
}

/// Waits (at most 5 s) for cmadp's TUN `mx0` in the client namespace, then gives it the anchor
/// address and the route to the server side. `check_alive` panics if a daemon died meanwhile.
pub fn setup_client_anchor(tb: &Testbed, mut check_alive: impl FnMut()) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ok = tb
            .cmd("client", &["ip", "link", "show", "mx0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            break;
        }
        check_alive();
        assert!(Instant::now() < deadline, "cmadp did not create mx0");
        thread::sleep(Duration::from_millis(50));
    }
    let t = Duration::from_secs(5);
    tb.run(
        "client",
        &["ip", "addr", "add", &format!("{ANCHOR}/32"), "dev", "mx0"],
        t,
    );
    tb.run(
        "client",
        &[
            "ip",
            "route",
            "add",
            "10.71.3.0/24",
            "dev",
            "mx0",
            "src",
            ANCHOR,
        ],
        t,
    );
}
