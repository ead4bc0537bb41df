//! Admin socket: server, protocol, rendering and the real `nmadpctl` binary, against a test
//! backend built on the real configuration types (the end-to-end test against the daemon
//! belongs with the runtime).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dataplane::admin::metrics::check_exposition;
use dataplane::admin::protocol::{
    ClientInfo, CounterRow, CounterScope, CounterSet, DropCounts, LatencyInfo, PathInfo,
    PathStateName, Removed, Response, Sequencing, Status, SteeringInfo, PROTOCOL_VERSION,
};
use dataplane::admin::server::ServerOptions;
use dataplane::admin::{AdminBackend, AdminServer, ServerError};
use dataplane::config::{Config, SteeringMode};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use pipelines::drop::DropReason;

// ---------------------------------------------------------------------------------------------
// Test backend: the example configuration plus counters, mutated live.

struct TestBackend {
    config: Mutex<Config>,
    shutdown: AtomicBool,
    calls: AtomicUsize,
}

fn example_config() -> Config {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/nmadp.toml");
    let text = std::fs::read_to_string(path).unwrap();
    Config::parse(&text, "nmadp.toml").unwrap()
}

/// Deterministic, distinct counters for a key, with a few drop reasons set.
fn counters_for(seed: u64) -> CounterSet {
    let mut a = [0u64; DropReason::COUNT];
    a[DropReason::NoPath as usize] = seed;
    a[DropReason::Truncated as usize] = 2 * seed;
    CounterSet {
        rx_packets: 100 * seed,
        rx_bytes: 150_000 * seed,
        tx_packets: 90 * seed,
        tx_bytes: 140_000 * seed,
        bursts: 10 * seed,
        handoffs_in: seed,
        handoffs_out: seed,
        ring_full: 0,
        drops: DropCounts::from_array(&a),
        sequencing: Sequencing {
            delivered: 80 * seed,
            reordered: 3 * seed,
            timeouts: seed,
            max_depth: 7 * seed,
            ..Sequencing::default()
        },
    }
}

impl TestBackend {
    fn new() -> Arc<TestBackend> {
        Arc::new(TestBackend {
            config: Mutex::new(example_config()),
            shutdown: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        })
    }

    fn paths_of(c: &dataplane::config::Client) -> Vec<PathInfo> {
        c.deliveries
            .iter()
            .map(|d| {
                let mut p = PathInfo::from_config(&c.name, d);
                if d.id == 0 {
                    p.state = PathStateName::Active;
                    p.srtt_ms = Some(12.5);
                    p.rttvar_ms = 1.25;
                    p.min_rtt_ms = Some(10.0);
                    p.loss = 0.01;
                    p.tx_rate_bps = 12_000_000;
                    p.rx_rate_bps = 3_000_000;
                    // A shaped path following its measured capacity.
                    p.shape_rate_bps = Some(49_450_000);
                    p.shape_measured = true;
                }
                p
            })
            .collect()
    }

    fn info(c: &dataplane::config::Client, i: usize) -> ClientInfo {
        ClientInfo {
            name: c.name.clone(),
            anchor_address: c.anchor_address.to_string(),
            steering: SteeringInfo::from_client(c),
            paths: Self::paths_of(c),
            counters: counters_for(i as u64 + 1),
        }
    }

    fn find<'a>(
        cfg: &'a Config,
        name: &str,
    ) -> Result<(usize, &'a dataplane::config::Client), String> {
        cfg.clients
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
            .ok_or_else(|| format!("no client named \"{name}\""))
    }
}

impl AdminBackend for TestBackend {
    fn status(&self) -> Result<Status, String> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let cfg = self.config.lock();
        let paths: Vec<PathInfo> = cfg.clients.iter().flat_map(Self::paths_of).collect();
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL_VERSION,
            role: "n-madp".into(),
            node_name: cfg.node.name.clone(),
            uptime_s: 3725,
            workers: cfg.node.workers,
            clients: cfg.clients.len() as u64,
            paths: paths.len() as u64,
            paths_up: paths
                .iter()
                .filter(|p| p.state == PathStateName::Active)
                .count() as u64,
            rx_pps: 1234.5,
            tx_pps: 1200.0,
            rx_packets: 300,
            tx_packets: 270,
            drops: 9,
        })
    }

    fn clients_list(&self) -> Result<Vec<ClientInfo>, String> {
        let cfg = self.config.lock();
        Ok(cfg
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| Self::info(c, i))
            .collect())
    }

    fn clients_show(&self, client: &str) -> Result<ClientInfo, String> {
        let cfg = self.config.lock();
        let (i, c) = Self::find(&cfg, client)?;
        Ok(Self::info(c, i))
    }

    fn clients_add(&self, toml: &str) -> Result<ClientInfo, String> {
        let mut cfg = self.config.lock();
        let c = cfg
            .parse_client(toml, "clients.add")
            .map_err(|e| e.to_string())?;
        cfg.clients.push(c);
        let i = cfg.clients.len() - 1;
        Ok(Self::info(&cfg.clients[i], i))
    }

    fn clients_remove(&self, client: &str) -> Result<(), String> {
        let mut cfg = self.config.lock();
        let (i, _) = Self::find(&cfg, client)?;
        cfg.clients.remove(i);
        Ok(())
    }

    fn paths_list(&self, client: Option<&str>) -> Result<Vec<PathInfo>, String> {
        let cfg = self.config.lock();
        match client {
            Some(n) => Ok(Self::paths_of(Self::find(&cfg, n)?.1)),
            None => Ok(cfg.clients.iter().flat_map(Self::paths_of).collect()),
        }
    }

    fn steering_show(&self, client: &str) -> Result<SteeringInfo, String> {
        let cfg = self.config.lock();
        Ok(SteeringInfo::from_client(Self::find(&cfg, client)?.1))
    }

    fn steering_set(
        &self,
        client: &str,
        tc: Option<u8>,
        mode: SteeringMode,
    ) -> Result<SteeringInfo, String> {
        let mut cfg = self.config.lock();
        let (i, _) = Self::find(&cfg, client)?;
        let c = &mut cfg.clients[i];
        match tc {
            None => c.steering = mode,
            Some(id) => {
                let t = c
                    .traffic_classes
                    .iter_mut()
                    .find(|t| t.id == id)
                    .ok_or_else(|| format!("client \"{client}\" has no traffic class {id}"))?;
                t.steering = mode;
            }
        }
        Ok(SteeringInfo::from_client(c))
    }

    fn counters(
        &self,
        scope: CounterScope,
        client: Option<&str>,
    ) -> Result<Vec<CounterRow>, String> {
        let cfg = self.config.lock();
        if let Some(n) = client {
            Self::find(&cfg, n)?;
        }
        let wanted =
            |c: &dataplane::config::Client| client.is_none() || client == Some(c.name.as_str());
        let row = |worker, client: Option<&str>, path: Option<(u8, &str)>, seed| CounterRow {
            worker,
            client: client.map(str::to_owned),
            path: path.map(|p| p.0),
            path_name: path.map(|p| p.1.to_owned()),
            counters: counters_for(seed),
        };
        Ok(match scope {
            CounterScope::Workers => (0..cfg.node.workers)
                .map(|w| row(Some(w), None, None, u64::from(w) + 1))
                .collect(),
            CounterScope::Clients => cfg
                .clients
                .iter()
                .enumerate()
                .filter(|(_, c)| wanted(c))
                .map(|(i, c)| row(None, Some(&c.name), None, i as u64 + 1))
                .collect(),
            CounterScope::Paths => cfg
                .clients
                .iter()
                .filter(|c| wanted(c))
                .flat_map(|c| {
                    c.deliveries.iter().map(move |d| {
                        row(
                            None,
                            Some(&c.name),
                            Some((d.id, &d.name)),
                            u64::from(d.id) + 1,
                        )
                    })
                })
                .collect(),
        })
    }

    fn latency(&self) -> Result<Vec<LatencyInfo>, String> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
        for i in 1..=10_000u64 {
            h.record(i * 100).unwrap(); // 0.1 µs .. 1 ms
        }
        Ok(vec![
            LatencyInfo::from_histogram("burst", Some(0), &h),
            LatencyInfo::from_histogram("burst", None, &h),
        ])
    }

    fn shutdown(&self) -> Result<(), String> {
        self.shutdown.store(true, Ordering::Relaxed);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A fresh directory under the system temp dir (Unix socket paths must stay short).
fn temp_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "nmadp-adm-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn start() -> (AdminServer, Arc<TestBackend>, PathBuf) {
    let dir = temp_dir();
    let path = dir.join("run/admin.sock"); // parent created by the server
    let b = TestBackend::new();
    let s = AdminServer::bind(&path, b.clone()).unwrap();
    (s, b, path)
}

/// One raw line out, one line back.
struct Raw {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Raw {
    fn connect(path: &Path) -> Raw {
        let w = UnixStream::connect(path).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    fn recv(&mut self) -> Response {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        assert!(l.ends_with('\n'), "no full line: {l:?}");
        serde_json::from_str(&l).unwrap()
    }

    fn ask(&mut self, line: &str) -> Response {
        self.send(format!("{line}\n").as_bytes());
        self.recv()
    }
}

fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nmadpctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("NMADP_ADMIN_SOCKET")
        .output()
        .unwrap()
}

/// Runs nmadpctl, expects success, returns stdout.
fn ctl_ok(socket: &Path, args: &[&str]) -> String {
    let o = ctl(socket, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "nmadpctl {args:?}: stderr {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn ctl_json<T: serde::de::DeserializeOwned>(socket: &Path, args: &[&str]) -> T {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = ctl_ok(socket, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

const CAROL: &str = r#"
[[client]]
name = "carol"
anchor_address = "10.0.0.9"
steering = "per-flow"

[[client.anchor]]
connection_id = 1

[[client.delivery]]
id = 0
name = "wifi"
local = "192.0.2.1:10031"
mtu = 1500
"#;

// ---------------------------------------------------------------------------------------------
// Socket handling.

#[test]
fn socket_mode_is_0600_and_parent_is_created() {
    let (s, _b, path) = start();
    let md = std::fs::symlink_metadata(&path).unwrap();
    assert!(md.file_type().is_socket());
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    let parent = std::fs::metadata(path.parent().unwrap()).unwrap();
    assert_eq!(
        parent.permissions().mode() & 0o077,
        0,
        "new parent is private"
    );
    // No temporary socket left behind.
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("admin.sock")]);
    s.shutdown();
}

#[test]
fn stale_socket_file_is_replaced() {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("admin.sock");
    drop(UnixListener::bind(&path).unwrap()); // leaves a socket file nobody listens on
    assert!(UnixStream::connect(&path).is_err());
    let s = AdminServer::bind(&path, TestBackend::new()).unwrap();
    assert!(Raw::connect(&path).ask(r#"{"cmd":"status"}"#).ok);
    s.shutdown();
}

#[test]
fn live_socket_is_not_stolen() {
    let (s, _b, path) = start();
    let err = AdminServer::bind(&path, TestBackend::new())
        .err()
        .expect("second server must fail");
    assert!(matches!(err, ServerError::InUse(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("in use"),
        "{msg}"
    );
    // The first server still serves.
    assert!(Raw::connect(&path).ask(r#"{"cmd":"status"}"#).ok);
    s.shutdown();
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("admin.sock");
    std::fs::write(&path, "precious").unwrap();
    let err = AdminServer::bind(&path, TestBackend::new())
        .err()
        .expect("must refuse");
    assert!(matches!(err, ServerError::NotASocket(_)), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn shutdown_removes_the_socket_file_and_nmadpctl_then_exits_2() {
    let (s, b, path) = start();
    assert_eq!(
        ctl_ok(&path, &["shutdown"]),
        "the daemon is shutting down\n"
    );
    assert!(b.shutdown.load(Ordering::Relaxed));
    s.shutdown();
    assert!(!path.exists());
    let o = ctl(&path, &["status"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&path.display().to_string()), "{err}");
}

#[test]
fn dropping_the_server_also_removes_the_socket() {
    let (s, _b, path) = start();
    drop(s);
    assert!(!path.exists());
}

// ---------------------------------------------------------------------------------------------
// Robustness.

#[test]
fn malformed_and_overlong_requests_get_errors_and_the_server_keeps_serving() {
    let (s, _b, path) = start();
    let mut c = Raw::connect(&path);
    for bad in [
        "not json",
        "{\"cmd\":\"reboot\"}",
        "{\"cmd\":\"clients.show\"}",
        "{\"cmd\":\"status\"",
        "[]",
        "\u{0}\u{1}",
    ] {
        let r = c.ask(bad);
        assert!(!r.ok, "{bad}");
        assert!(r.error.unwrap().starts_with("malformed request"), "{bad}");
    }
    // Invalid UTF-8.
    c.send(b"\xff\xfe{\n");
    assert!(!c.recv().ok);
    // A line over 1 MiB: one error, then the connection is still in sync.
    let mut long = vec![b'x'; (1 << 20) + 10];
    long.push(b'\n');
    c.send(&long);
    let r = c.recv();
    assert!(!r.ok);
    assert!(r.error.unwrap().contains("longer than 1048576"));
    // Exactly 1 MiB is allowed (and is malformed JSON here).
    let mut max = vec![b' '; (1 << 20) - 2];
    max.extend_from_slice(b"{}\n");
    c.send(&max);
    assert!(c.recv().error.unwrap().starts_with("malformed request"));
    // Blank lines are ignored; CRLF is accepted.
    c.send(b"\n  \r\n{\"cmd\":\"status\"}\r\n");
    let r = c.recv();
    assert!(r.ok, "{r:?}");
    // Backend errors are error responses too.
    let r = c.ask(r#"{"cmd":"clients.show","client":"nobody"}"#);
    assert_eq!(r.error.as_deref(), Some("no client named \"nobody\""));
    // A request without its final newline is answered at EOF.
    let mut c2 = Raw::connect(&path);
    c2.send(br#"{"cmd":"status"}"#);
    c2.w.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c2.recv().ok);
    s.shutdown();
}

#[test]
fn concurrent_clients_are_served() {
    let (s, b, path) = start();
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(&path);
                for _ in 0..40 {
                    let r = if i % 2 == 0 {
                        c.ask(r#"{"cmd":"status"}"#)
                    } else {
                        c.ask(r#"{"cmd":"counters","scope":"paths","client":null}"#)
                    };
                    assert!(r.ok, "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(b.calls.load(Ordering::Relaxed), 6 * 40);
    s.shutdown();
}

#[test]
fn connections_beyond_the_limit_are_refused_with_a_message() {
    let dir = temp_dir();
    let path = dir.join("admin.sock");
    let opts = ServerOptions {
        max_clients: 2,
        ..ServerOptions::default()
    };
    let s = AdminServer::bind_with(&path, TestBackend::new(), opts).unwrap();
    let mut a = Raw::connect(&path);
    let mut b = Raw::connect(&path);
    assert!(a.ask(r#"{"cmd":"status"}"#).ok);
    assert!(b.ask(r#"{"cmd":"status"}"#).ok);
    let mut c = Raw::connect(&path);
    let r = c.recv();
    assert!(r.error.unwrap().contains("too many admin connections"));
    drop(a);
    // The slot frees once the server notices the closed connection.
    let mut ok = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        if s.active_connections() < 2 {
            ok = Raw::connect(&path).ask(r#"{"cmd":"status"}"#).ok;
            break;
        }
    }
    assert!(ok);
    drop(b);
    s.shutdown();
}

// ---------------------------------------------------------------------------------------------
// Every command through the real nmadpctl, human and JSON.

#[test]
fn status_round_trips() {
    let (s, _b, path) = start();
    let st: Status = ctl_json(&path, &["status"]);
    assert_eq!(st.protocol, PROTOCOL_VERSION);
    assert_eq!(st.version, env!("CARGO_PKG_VERSION"));
    assert_eq!((st.clients, st.paths, st.paths_up), (2, 4, 2));
    let h = ctl_ok(&path, &["status"]);
    assert!(h.contains("role:"), "{h}");
    assert!(h.contains("01:02:05"), "{h}");
    assert!(h.contains("paths up:    2/4"), "{h}");
    s.shutdown();
}

#[test]
fn clients_list_show_add_remove_round_trip_and_apply_live() {
    let (s, _b, path) = start();
    let l: Vec<ClientInfo> = ctl_json(&path, &["clients", "list"]);
    assert_eq!(
        l.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    let h = ctl_ok(&path, &["clients", "list"]);
    let alice = h.lines().find(|l| l.starts_with("alice")).unwrap();
    assert_eq!(
        alice.split_whitespace().collect::<Vec<_>>(),
        ["alice", "10.0.0.2", "weighted", "1/2", "100", "90", "3"]
    );

    let a: ClientInfo = ctl_json(&path, &["clients", "show", "alice"]);
    assert_eq!(a.paths.len(), 2);
    assert_eq!(a.steering.traffic_classes[0].mode, SteeringMode::Duplicate);
    let h = ctl_ok(&path, &["clients", "show", "alice"]);
    assert!(h.contains("client alice (anchor 10.0.0.2)"), "{h}");
    assert!(h.contains("drop no_path"), "{h}");

    // Add from a file, in [[client]] syntax; the answer is the new client.
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("carol.toml");
    std::fs::write(&f, CAROL).unwrap();
    let f = f.to_str().unwrap();
    let out = ctl_ok(&path, &["clients", "add", f]);
    assert!(out.starts_with("added client carol"), "{out}");
    let l: Vec<ClientInfo> = ctl_json(&path, &["clients", "list"]);
    assert_eq!(l.len(), 3);
    assert_eq!(l[2].steering.default, SteeringMode::PerFlow);
    // Adding it again: rejected by the configuration checks, exit 1, message on stderr.
    let o = ctl(&path, &["clients", "add", f]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert!(err.contains("clients.add:3:"), "line of `name`: {err}");

    let r: Removed = ctl_json(&path, &["clients", "remove", "carol"]);
    assert_eq!(r.removed, "carol");
    assert_eq!(
        ctl_ok(&path, &["clients", "remove", "bob"]),
        "removed client bob\n"
    );
    let l: Vec<ClientInfo> = ctl_json(&path, &["clients", "list"]);
    assert_eq!(l.len(), 1);
    let o = ctl(&path, &["clients", "remove", "bob"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no client named \"bob\""));
    s.shutdown();
}

#[test]
fn clients_add_rejects_invalid_tables_with_positions() {
    let (s, _b, path) = start();
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (CAROL.replace("mtu = 1500", "mtu = 99999"), "mtu"),
        (CAROL.replace("[[client]]", "[client]"), "client"),
        (
            format!(
                "{CAROL}{}",
                CAROL
                    .replace("carol", "dave")
                    .replace("10.0.0.9", "10.0.0.10")
            ),
            "exactly one [[client]] table, found 2",
        ),
        ("# nothing\n".to_owned(), "found 0"),
        (
            CAROL.replace("10.0.0.9", "10.0.0.2"),
            "already client \"alice\"",
        ),
        (CAROL.replace("steering", "steerin"), "steerin"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let f = dir.join(format!("bad{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let o = ctl(&path, &["clients", "add", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "case {i}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "case {i}: {err}");
    }
    // A missing file is reported before connecting.
    let o = ctl(&path, &["clients", "add", "/nonexistent/x.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x.toml"));
    s.shutdown();
}

#[test]
fn paths_round_trip() {
    let (s, _b, path) = start();
    let all: Vec<PathInfo> = ctl_json(&path, &["paths"]);
    assert_eq!(all.len(), 4);
    let bob: Vec<PathInfo> = ctl_json(&path, &["paths", "--client", "bob"]);
    assert_eq!(bob.len(), 2);
    assert_eq!(bob[0].remote.as_deref(), Some("[2001:db8:a::7]:10021"));
    assert_eq!(bob[1].adaptation, "udp-optimized");
    let h = ctl_ok(&path, &["paths", "--client", "alice"]);
    let wifi = h.lines().find(|l| l.contains(" wifi ")).unwrap();
    for want in [
        "active",
        "12.50",
        "1.00",
        "12.00 Mb/s",
        "(learned)",
        "~49.45 Mb/s",
    ] {
        assert!(wifi.contains(want), "{want}: {wifi}");
    }
    let alice: Vec<PathInfo> = ctl_json(&path, &["paths", "--client", "alice"]);
    assert_eq!(
        (alice[0].shape_rate_bps, alice[0].shape_measured),
        (Some(49_450_000), true)
    );
    // Not shaped: "-".
    let lte = h.lines().find(|l| l.contains(" lte ")).unwrap();
    assert!(lte.trim_end().ends_with(" -"), "{lte}");
    assert!(h
        .lines()
        .any(|l| l.contains(" lte ") && l.contains("probing")));
    let o = ctl(&path, &["paths", "--client", "nobody"]);
    assert_eq!(o.status.code(), Some(1));
    s.shutdown();
}

#[test]
fn steering_show_and_set_round_trip_and_apply_live() {
    let (s, _b, path) = start();
    let st: SteeringInfo = ctl_json(&path, &["steering", "show", "alice"]);
    assert_eq!(st.default, SteeringMode::Weighted);
    let out = ctl_ok(&path, &["steering", "set", "alice", "duplicate"]);
    assert!(out.contains("default steering duplicate"), "{out}");
    let st: SteeringInfo = ctl_json(&path, &["steering", "set", "alice", "single", "--tc", "46"]);
    assert_eq!(st.default, SteeringMode::Duplicate);
    assert_eq!(st.traffic_classes[0].mode, SteeringMode::Single);
    let h = ctl_ok(&path, &["steering", "show", "alice"]);
    assert!(h.contains("default steering duplicate"), "{h}");
    let tc = h
        .lines()
        .find(|l| l.trim_start().starts_with("46"))
        .unwrap();
    assert!(tc.contains("single") && tc.contains("0,1"), "{tc}");
    // Unknown traffic class: error response; unknown mode: rejected before sending.
    assert_eq!(
        ctl(&path, &["steering", "set", "alice", "single", "--tc", "7"])
            .status
            .code(),
        Some(1)
    );
    let o = ctl(&path, &["steering", "set", "alice", "fastest"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown steering mode"));
    s.shutdown();
}

#[test]
fn counters_include_every_drop_reason_in_every_scope_and_form() {
    let (s, _b, path) = start();
    for scope in ["workers", "clients", "paths"] {
        let rows: Vec<CounterRow> = ctl_json(&path, &["counters", scope]);
        assert!(!rows.is_empty(), "{scope}");
        for r in &rows {
            let labels: Vec<&str> = r.counters.drops.0.iter().map(|(l, _)| l.as_str()).collect();
            let all: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
            assert_eq!(labels, all, "{scope}");
        }
        let h = ctl_ok(&path, &["counters", scope]);
        for r in DropReason::ALL {
            assert!(
                h.lines()
                    .any(|l| l.split_whitespace().nth(1) == Some(r.as_str())),
                "{scope}: {r} missing\n{h}"
            );
        }
    }
    // Default scope is workers; rows carry their keys.
    let rows: Vec<CounterRow> = ctl_json(&path, &["counters"]);
    assert_eq!(
        rows.iter().map(|r| r.worker).collect::<Vec<_>>(),
        [Some(0), Some(1)]
    );
    let rows: Vec<CounterRow> = ctl_json(&path, &["counters", "paths", "--client", "bob"]);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.client.as_deref() == Some("bob")));
    let h = ctl_ok(&path, &["counters", "paths", "--client", "bob"]);
    let head = h.lines().nth(1).unwrap();
    assert_eq!(
        head.split_whitespace().collect::<Vec<_>>(),
        ["COUNTER", "bob/wifi", "bob/lte", "TOTAL"]
    );
    // Sequencing counters: per worker and per client, not per path.
    let rows: Vec<CounterRow> = ctl_json(&path, &["counters", "clients"]);
    assert!(rows.iter().any(|r| r.counters.sequencing.timeouts > 0));
    for scope in ["workers", "clients"] {
        let t = ctl_ok(&path, &["counters", scope]);
        for k in [
            "seq delivered",
            "seq timeouts",
            "seq equalized",
            "seq max_depth",
        ] {
            assert!(t.lines().any(|l| l.starts_with(k)), "{scope}: {k}\n{t}");
        }
    }
    let t = ctl_ok(&path, &["counters", "paths"]);
    assert!(!t.contains("seq "), "{t}");
    let np = h.lines().find(|l| l.starts_with("drop no_path")).unwrap();
    assert_eq!(
        np.split_whitespace().collect::<Vec<_>>(),
        ["drop", "no_path", "1", "2", "3"]
    );
    s.shutdown();
}

#[test]
fn latency_round_trips_in_microseconds() {
    let (s, _b, path) = start();
    let l: Vec<LatencyInfo> = ctl_json(&path, &["latency"]);
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].count, 10_000);
    assert!((l[0].p50_us - 500.0).abs() < 1.0, "{}", l[0].p50_us);
    assert!((l[0].p999_us - 999.0).abs() < 2.0, "{}", l[0].p999_us);
    assert!((l[0].max_us - 1000.0).abs() < 1.0, "{}", l[0].max_us);
    let h = ctl_ok(&path, &["latency"]);
    assert!(h.starts_with("METRIC"), "{h}");
    assert!(h
        .lines()
        .any(|l| l.starts_with("burst") && l.contains(" all ")));
    s.shutdown();
}

#[test]
fn metrics_are_valid_prometheus_text_with_every_reason() {
    let (s, _b, path) = start();
    let text = ctl_ok(&path, &["metrics"]);
    let sum = check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(sum.families > 20, "{sum:?}");
    for r in DropReason::ALL {
        for (family, labels) in [
            ("nmadp_worker_drops_total", "worker=\"1\","),
            ("nmadp_client_drops_total", "client=\"bob\","),
            ("nmadp_path_drops_total", "client=\"alice\",path=\"lte\","),
        ] {
            let want = format!("{family}{{{labels}reason=\"{}\"}} ", r.as_str());
            assert!(text.contains(&want), "{want}");
        }
    }
    assert!(text.contains("nmadp_path_state{client=\"alice\",path=\"wifi\",state=\"active\"} 1\n"));
    assert!(text.contains("nmadp_path_srtt_seconds{client=\"alice\",path=\"wifi\"} 0.0125\n"));
    assert!(text.contains("nmadp_latency_seconds_count{metric=\"burst\",worker=\"0\"} 10000\n"));
    assert!(text.contains("quantile=\"0.99\""));
    assert!(text.contains("# TYPE nmadp_client_seq_timeouts_total counter\n"));
    assert!(text.contains("# TYPE nmadp_worker_seq_max_depth gauge\n"));
    assert!(!text.contains("nmadp_path_seq_"));
    assert!(text.contains("nmadp_latency_seconds{metric=\"burst\",quantile=\"1\"} 0.001"));
    // --json carries the same text as one JSON string.
    let j: String = ctl_json(&path, &["metrics"]);
    assert_eq!(j, text);
    s.shutdown();
}

#[test]
fn socket_path_comes_from_the_environment_when_not_given() {
    let (s, _b, path) = start();
    let o = Command::new(env!("CARGO_BIN_EXE_nmadpctl"))
        .arg("status")
        .env("NMADP_ADMIN_SOCKET", &path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    // Without either, the default path is named in the error (no daemon there in tests).
    let o = Command::new(env!("CARGO_BIN_EXE_nmadpctl"))
        .arg("status")
        .env_remove("NMADP_ADMIN_SOCKET")
        .output()
        .unwrap();
    if o.status.code() == Some(2) {
        assert!(String::from_utf8_lossy(&o.stderr).contains("/run/nmadp/admin.sock"));
    }
    s.shutdown();
}
