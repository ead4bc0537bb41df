//! The runtime end to end over DPDK ports (feature `dpdk`):
//! `cargo test -p dataplane --features dpdk --test dpdk_runtime`.
//!
//! An N-MADP (2 workers) and a C-MADP (2 workers) in this process, joined back to back by
//! ethdev pairs made with `rte_eth_from_rings` over two rings ([`Eal::ring_pair`]): the
//! `net_ring` vdev loops each queue back into itself (and `nodeaction=NAME:0:ATTACH` shares the
//! very same rings), so it cannot be one end of a link. Every runtime moves mbufs
//! ([`DpdkBuffers`]), its workers registered as EAL lcores. One EAL per test binary; memory
//! flags from `NMADP_EAL_MEM` (default `--no-huge -m 512`). Without DPDK installed the tests
//! print a skip message and pass.
#![cfg(feature = "dpdk")]

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use dataplane::admin::AdminBackend;
use dataplane::config::{Config, SteeringMode};
use dataplane::ports::dpdk::{DpdkBuffers, DpdkPort, DpdkPortConfig, Eal, Mbuf, MbufPool};
use dataplane::ports::{BufPool, Port};
use dataplane::runtime::{
    DeliveryPort, PathSet, Runtime, RuntimeHandle, RuntimeOptions, RuntimePorts, WorkerPorts,
};
use pipelines::engine::adapt::push_udp_ip;
use pipelines::PacketBuf;

const WAIT: Duration = Duration::from_secs(15);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!("{tag}{}", COUNTER.fetch_add(1, Ordering::SeqCst))
}

fn eal_args() -> Vec<String> {
    let mem = std::env::var("NMADP_EAL_MEM").unwrap_or_else(|_| "--no-huge -m 512".into());
    let mut args: Vec<String> = [
        "-l",
        "0",
        "--no-pci",
        "--no-telemetry",
        "--log-level",
        "lib.eal:warning",
        "--file-prefix",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("nmadp-rt{}", std::process::id()));
    args.extend(mem.split_whitespace().map(str::to_string));
    args
}

fn eal() -> Option<&'static Eal> {
    static E: OnceLock<Option<&'static Eal>> = OnceLock::new();
    *E.get_or_init(|| {
        let installed = Command::new("pkg-config")
            .args(["--exists", "libdpdk"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !installed {
            eprintln!("skipped: DPDK not installed (pkg-config --exists libdpdk failed)");
            return None;
        }
        let args = eal_args();
        let eal = thread::spawn(move || Eal::init(&args))
            .join()
            .expect("EAL init thread");
        Some(eal.unwrap_or_else(|e| panic!("EAL init with {:?}: {e}", eal_args())))
    })
}

/// A back-to-back link: two started one-queue ports (raw: IP packets in the mbufs).
fn link(eal: &'static Eal, bufs: &DpdkBuffers, tag: &str) -> (DpdkPort, DpdkPort) {
    let a = unique(&format!("{tag}a"));
    let b = unique(&format!("{tag}b"));
    let (a, b) = eal.ring_pair(&a, &b, 8192).expect("ring pair");
    let pool = bufs.mempool(0).clone();
    let pa = DpdkPort::open(eal, &DpdkPortConfig::new(&a), pool.clone()).expect("open a");
    let pb = DpdkPort::open(eal, &DpdkPortConfig::new(&b), pool).expect("open b");
    (pa, pb)
}

fn boxed(p: DpdkPort) -> Box<dyn Port<Mbuf>> {
    Box::new(p)
}

fn toml(role: &str, client: &str) -> String {
    format!(
        r#"
[node]
role = "{role}"
workers = 2
admin_socket = "/tmp/nmadp-test-unused.sock"
[ports.anchor]
kind = "ring"
[ports.delivery]
kind = "ring"
[control]
address = "192.0.2.1:8888"
[defaults]
steering = "weighted"
reorder = {{ window = 512, timeout_ms = 200 }}
probe = {{ interval_ms = 50, keepalive_ms = 50, dead_after = 3 }}
{client}
"#
    )
}

fn client(name: &str, anchor: &str, n_side: bool) -> String {
    let (wl, wr, ll, lr) = if n_side {
        (
            "192.0.2.1:10021",
            "198.51.100.2:40000",
            "192.0.2.1:10020",
            "203.0.113.2:40001",
        )
    } else {
        (
            "198.51.100.2:40000",
            "192.0.2.1:10021",
            "203.0.113.2:40001",
            "192.0.2.1:10020",
        )
    };
    format!(
        r#"
[[client]]
name = "{name}"
anchor_address = "{anchor}"
[[client.anchor]]
connection_id = 1
[[client.delivery]]
id = 0
name = "wifi"
local = "{wl}"
remote = "{wr}"
[[client.delivery]]
id = 1
name = "lte"
local = "{ll}"
remote = "{lr}"
"#
    )
}

fn opts() -> RuntimeOptions {
    RuntimeOptions {
        slow_path_tick: Duration::from_millis(1),
        ..RuntimeOptions::default()
    }
}

struct Testbed {
    nmadp: RuntimeHandle,
    cmadp: RuntimeHandle,
    /// The test's ends of the N-MADP's anchor links (one per worker) and of the C-MADP's.
    n_anchor: Vec<DpdkPort>,
    c_anchor: DpdkPort,
    pool: MbufPool,
}

const ALICE: &str = "10.0.0.2";

fn start(eal: &'static Eal) -> Testbed {
    let nbufs = DpdkBuffers::new(eal, &unique("n"), 2, &[], 8191, 128).expect("n mempool");
    let cbufs = DpdkBuffers::new(eal, &unique("c"), 2, &[], 8191, 128).expect("c mempool");
    let tbufs = DpdkBuffers::new(eal, &unique("t"), 1, &[], 8191, 0).expect("test mempool");
    // Links: n-wifi/c-wifi, n-lte/c-lte; anchors: N-MADP worker 0 and 1, C-MADP worker 0.
    let (n_wifi, c_wifi) = link(eal, &nbufs, "wifi");
    let (n_lte, c_lte) = link(eal, &nbufs, "lte");
    let (na0, ta0) = link(eal, &tbufs, "na0");
    let (na1, ta1) = link(eal, &tbufs, "na1");
    let (ca, tca) = link(eal, &tbufs, "ca");
    let n_devices = [na0.device(), na1.device(), n_wifi.device(), n_lte.device()];

    let ccfg = Config::parse(&toml("c-madp", &client("alice", ALICE, false)), "c.toml").unwrap();
    let cports = RuntimePorts {
        workers: vec![
            WorkerPorts {
                anchor: Some(boxed(ca)),
                delivery: vec![DeliveryPort {
                    port: boxed(c_wifi),
                    paths: PathSet::Only(vec![0]),
                }],
            },
            WorkerPorts {
                anchor: None,
                delivery: vec![DeliveryPort {
                    port: boxed(c_lte),
                    paths: PathSet::Only(vec![1]),
                }],
            },
        ],
    };
    let cmadp = Runtime::start_on(ccfg, cports, cbufs, opts()).expect("c-madp starts");
    let ncfg = Config::parse(&toml("n-madp", &client("alice", ALICE, true)), "n.toml").unwrap();
    let nports = RuntimePorts {
        workers: vec![
            WorkerPorts {
                anchor: Some(boxed(na0)),
                delivery: vec![DeliveryPort {
                    port: boxed(n_wifi),
                    paths: PathSet::Only(vec![0]),
                }],
            },
            WorkerPorts {
                anchor: Some(boxed(na1)),
                delivery: vec![DeliveryPort {
                    port: boxed(n_lte),
                    paths: PathSet::Only(vec![1]),
                }],
            },
        ],
    };
    let nmadp = Runtime::start_on(ncfg, nports, nbufs, opts()).expect("n-madp starts");
    for d in n_devices {
        nmadp.add_device(Arc::new(d));
    }
    let pool = MbufPool::new(tbufs.mempool(0).clone());
    Testbed {
        nmadp,
        cmadp,
        n_anchor: vec![ta0, ta1],
        c_anchor: tca,
        pool,
    }
}

fn udp_packet(pool: &mut MbufPool, src: &str, dst: &str, seq: u32) -> Mbuf {
    let mut b = pool.alloc().expect("test mbuf");
    // Leave headroom for the IP/UDP headers (an mbuf starts with 128 bytes of it).
    let mut payload = [0u8; 64];
    payload[..4].copy_from_slice(&seq.to_be_bytes());
    assert!(b.extend_from_slice(&payload));
    let src: IpAddr = src.parse().unwrap();
    let dst: IpAddr = dst.parse().unwrap();
    push_udp_ip(
        &mut b,
        SocketAddr::new(src, 5000),
        SocketAddr::new(dst, 53),
        seq as u16,
    )
    .unwrap();
    b
}

fn seq_of(p: &Mbuf) -> u32 {
    let d = p.data();
    u32::from_be_bytes(d[28..32].try_into().unwrap())
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < WAIT, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn all_usable(h: &RuntimeHandle) -> bool {
    let p = h.path_status();
    p.len() == 2 && p.iter().all(|s| s.usable)
}

/// Sends `n` packets (sequence numbers from `first`) and collects what comes out of the `rx`
/// ports until `n` arrived or the time bound; then waits a little for duplicates.
fn pump(
    pool: &mut MbufPool,
    tx: &mut DpdkPort,
    rx: &mut [&mut DpdkPort],
    src: &str,
    dst: &str,
    first: u32,
    n: u32,
) -> Vec<u32> {
    let mut got = Vec::new();
    let mut sent = first;
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let mut collect = |rx: &mut [&mut DpdkPort], pool: &mut MbufPool, got: &mut Vec<u32>| {
        for r in rx.iter_mut() {
            buf.clear();
            r.rx_burst(pool, &mut buf, 256);
            got.extend(buf.iter().map(seq_of));
            buf.clear(); // frees the mbufs
        }
    };
    while (got.len() as u32) < n && t0.elapsed() < WAIT {
        // The first PDU of a flow sets the receiver's expected SN: it goes alone.
        if sent < first + n && (sent == first || !got.is_empty()) {
            let size = if sent == first { 1 } else { 16 };
            let mut burst: Vec<Mbuf> = (sent..(sent + size).min(first + n))
                .map(|s| udp_packet(pool, src, dst, s))
                .collect();
            let k = burst.len();
            assert_eq!(tx.tx_burst(pool, &mut burst), k, "injection ring full");
            sent += k as u32;
        }
        collect(rx, pool, &mut got);
        thread::sleep(Duration::from_micros(300));
    }
    thread::sleep(Duration::from_millis(50));
    collect(rx, pool, &mut got);
    got
}

fn assert_seq(got: &[u32], want: std::ops::Range<u32>, what: &str) {
    let want: Vec<u32> = want.collect();
    if got != want.as_slice() {
        let at = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: got {} packets, want {}; first difference at index {at}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            got.get(at..(at + 5).min(got.len())),
            want.get(at..(at + 5).min(want.len()))
        );
    }
}

#[test]
fn back_to_back_over_dpdk_ports_uplink_steering_change_and_shutdown() {
    let Some(eal) = eal() else { return };
    let mut tb = start(eal);
    // Every worker thread got an lcore id (a failed rte_thread_register is a start warning).
    assert!(tb.nmadp.warnings().is_empty(), "{:?}", tb.nmadp.warnings());
    assert!(tb.cmadp.warnings().is_empty(), "{:?}", tb.cmadp.warnings());
    wait_until("n-madp paths usable", || all_usable(&tb.nmadp));
    wait_until("c-madp paths usable", || all_usable(&tb.cmadp));

    // Uplink: the C-MADP splits over wifi and lte (weighted), which arrive on two different
    // N-MADP workers; the owner puts them back in order and sends them out of its anchor.
    let (a, rest) = tb.n_anchor.split_at_mut(1);
    let up = pump(
        &mut tb.pool,
        &mut tb.c_anchor,
        &mut [&mut a[0], &mut rest[0]],
        ALICE,
        "8.8.8.8",
        0,
        2000,
    );
    assert_seq(&up, 0..2000, "uplink");
    tb.nmadp.refresh();
    let snaps = tb.nmadp.snapshots();
    let owner = tb.nmadp.owner("alice").unwrap();
    let id = tb.nmadp.client_id("alice").unwrap();
    let cs = snaps[owner].client(id).unwrap();
    assert!(
        cs.paths.iter().all(|p| p.counters.rx_pdus > 100),
        "both paths carried the uplink: {:?}",
        cs.paths
    );
    let handoffs: u64 = snaps.iter().map(|s| s.loop_counters.handoffs_out).sum();
    assert!(
        handoffs >= 100,
        "the non-owner handed packets over: {handoffs}"
    );

    // Downlink, injected on the worker that does not own alice, after a live steering change
    // to duplicate: every SDU on both paths, delivered once and in order.
    tb.nmadp
        .set_steering("alice", None, SteeringMode::Duplicate)
        .unwrap();
    let inject = 1 - owner;
    let down = pump(
        &mut tb.pool,
        &mut tb.n_anchor[inject],
        &mut [&mut tb.c_anchor],
        "8.8.8.8",
        ALICE,
        0,
        1000,
    );
    assert_seq(&down, 0..1000, "downlink, duplicate steering");
    tb.nmadp.refresh();
    let dup: u64 = tb.nmadp.snapshots()[owner]
        .client(id)
        .unwrap()
        .paths
        .iter()
        .map(|p| p.counters.duplicates_sent)
        .sum();
    assert!(dup >= 900, "duplicate mode sent copies: {dup}");

    // Every forwarded mbuf carried its receive time (the registered dynamic field) to its
    // transmit: per-packet residence measured for at least the SDUs counted above.
    let pk = tb.nmadp.packet_latency_histogram();
    assert!(pk.len() >= 2000, "{} packets timed", pk.len());
    assert!(pk.max() < 10_000_000_000, "residence {} ns", pk.max());

    // Port and device counters through the admin backend (what `nmadpctl ports` shows).
    let ports = AdminBackend::ports(&tb.nmadp, true).expect("ports");
    assert_eq!(ports.ports.len(), 4, "{ports:?}");
    let devs = &ports.devices;
    assert_eq!(devs.len(), 4, "{devs:?}");
    let total_rx: u64 = devs.iter().map(|d| d.rx_packets).sum();
    assert!(total_rx >= 3000, "device rx counters: {devs:?}");
    assert!(
        devs.iter()
            .all(|d| d.error.is_none() && !d.xstats.is_empty()),
        "xstats of every device: {devs:?}"
    );
    assert!(devs.iter().any(|d| d
        .xstats
        .iter()
        .any(|(k, v)| k == "rx_good_packets" && *v > 0)));

    // Graceful shutdown: bounded, reorder buffers flushed, final counters.
    let t0 = Instant::now();
    let finals = tb.nmadp.shutdown().expect("n-madp stops");
    tb.cmadp.shutdown().expect("c-madp stops");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(finals.iter().all(|s| s.stopped));
    assert_eq!(finals.iter().map(|s| s.reorder_depth).sum::<usize>(), 0);
    // The devices closed with the workers' ports; the registry reports it instead of failing.
    let after = AdminBackend::ports(&tb.nmadp, false).expect("ports after shutdown");
    assert!(
        after.devices.iter().all(|d| d.error.is_some()),
        "{:?}",
        after.devices
    );
    drop(tb);
}

/// `nmadp run` on DPDK ports from a configuration file (EAL from `[dpdk] eal_args`, vdevs
/// created from the `device` keys, one queue per worker), and `nmadpctl ports --xstats` against
/// it through the real binaries. A separate process: its own EAL and `--file-prefix`.
#[test]
fn nmadp_run_on_dpdk_ports_and_nmadpctl_ports() {
    if eal().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nmadp-dpdk-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("admin.sock");
    let mem = std::env::var("NMADP_EAL_MEM").unwrap_or_else(|_| "--no-huge -m 512".into());
    let mut eal_args = vec![
        "-l".to_string(),
        "0".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        "--log-level".into(),
        "lib.eal:warning".into(),
        "--file-prefix".into(),
        format!("nmadp-run{}", std::process::id()),
    ];
    eal_args.extend(mem.split_whitespace().map(str::to_string));
    let eal_toml = eal_args
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let cfg = format!(
        r#"
[node]
role = "n-madp"
workers = 1
[ports.anchor]
kind = "dpdk"
device = "net_ring0"
[ports.delivery]
kind = "dpdk"
device = "net_null0,size=64"
[control]
address = "192.0.2.1:8888"
[dpdk]
eal_args = [{eal_toml}]
mbufs = 4095
mbuf_cache = 64
{}"#,
        client("alice", ALICE, true)
    );
    let path = dir.join("nmadp.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nmadp"))
        .args(["run", "--config"])
        .arg(&path)
        .arg("--admin-socket")
        .arg(&sock)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut child);
    let ctl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nmadpctl"))
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
    let t0 = Instant::now();
    let out = loop {
        let o = ctl(&["ports", "--xstats"]);
        if o.status.success() || t0.elapsed() > WAIT {
            break o;
        }
        if let Ok(Some(st)) = guard.0.try_wait() {
            panic!("nmadp exited early: {st}");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Worker rows for both ports, device rows, and the null device's received packets (it
    // makes them up) counted by the device and in its xstats.
    for want in [
        "dpdk:net_ring0",
        "dpdk:net_null0",
        "devices",
        "xstats net_null0",
        "rx_good_packets",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let json = ctl(&["--json", "ports"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let null = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "net_null0")
        .cloned()
        .unwrap();
    assert!(null["rx_packets"].as_u64().unwrap() > 0, "{v}");
    assert!(null.get("xstats").is_none(), "no xstats unless asked: {v}");
    let st = ctl(&["shutdown"]);
    assert!(st.status.success());
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s.code();
        }
        assert!(t0.elapsed() < WAIT, "nmadp did not stop");
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}
