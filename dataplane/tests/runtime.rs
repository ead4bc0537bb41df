//! The runtime end to end over in-memory ring ports: an N-MADP (2 workers) and C-MADPs joined
//! back to back by ring pairs, one pair per (client, path). Every wait is bounded in time.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use dataplane::admin::protocol::CounterScope;
use dataplane::admin::AdminBackend;
use dataplane::config::Config;
use dataplane::ports::ring::{ring_pair, RingPort};
use dataplane::ports::{BufPool, HeapPool, Port, PortStats};
use dataplane::runtime::directory::owner_of;
use dataplane::runtime::{
    DeliveryPort, PathSet, Runtime, RuntimeHandle, RuntimeOptions, RuntimePorts, WorkerPorts,
};
use pipelines::engine::adapt::push_udp_ip;
use pipelines::{HeapBuf, PacketBuf};

const WAIT: Duration = Duration::from_secs(10);

/// A delivery port joining several links: transmits each packet on the link whose far end has
/// the packet's outer destination address (a tiny router), receives from all.
struct Fabric {
    name: String,
    links: Vec<(IpAddr, RingPort<HeapBuf>)>,
    stats: PortStats,
}

impl Port<HeapBuf> for Fabric {
    fn name(&self) -> &str {
        &self.name
    }
    fn rx_burst(
        &mut self,
        pool: &mut dyn BufPool<HeapBuf>,
        out: &mut Vec<HeapBuf>,
        max: usize,
    ) -> usize {
        let mut n = 0;
        for (_, l) in self.links.iter_mut() {
            n += l.rx_burst(pool, out, max - n);
        }
        self.stats.rx_packets += n as u64;
        n
    }
    fn tx_burst(&mut self, pool: &mut dyn BufPool<HeapBuf>, pkts: &mut Vec<HeapBuf>) -> usize {
        let mut sent = 0;
        for p in pkts.drain(..) {
            let dst = dataplane::runtime::directory::ip_addr(p.data(), true);
            match self.links.iter_mut().find(|(a, _)| Some(*a) == dst) {
                Some((_, l)) => {
                    let mut v = vec![p];
                    sent += l.tx_burst(pool, &mut v);
                }
                None => {
                    self.stats.tx_dropped += 1;
                    pool.free(p);
                }
            }
        }
        self.stats.tx_packets += sent as u64;
        sent
    }
    fn stats(&self) -> PortStats {
        self.stats
    }
}

fn udp_packet(src: &str, dst: &str, seq: u32) -> HeapBuf {
    let mut b = HeapBuf::new(128, 2048);
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

fn seq_of(p: &HeapBuf) -> u32 {
    let d = p.data();
    u32::from_be_bytes(d[28..32].try_into().unwrap())
}

fn nmadp_toml(clients: &str) -> String {
    format!(
        r#"
[node]
role = "n-madp"
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
{clients}
"#
    )
}

fn nmadp_client(name: &str, anchor: &str, wifi: &str, lte: &str) -> String {
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
local = "192.0.2.1:10021"
remote = "{wifi}"
[[client.delivery]]
id = 1
name = "lte"
local = "192.0.2.1:10020"
remote = "{lte}"
"#
    )
}

fn cmadp_toml(name: &str, anchor: &str, wifi: &str, lte: &str, workers: u16) -> String {
    format!(
        r#"
[node]
role = "c-madp"
workers = {workers}
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
[[client]]
name = "{name}"
anchor_address = "{anchor}"
[[client.anchor]]
connection_id = 1
[[client.delivery]]
id = 0
name = "wifi"
local = "{wifi}"
remote = "192.0.2.1:10021"
[[client.delivery]]
id = 1
name = "lte"
local = "{lte}"
remote = "192.0.2.1:10020"
"#
    )
}

fn opts() -> RuntimeOptions {
    RuntimeOptions {
        slow_path_tick: Duration::from_millis(1),
        ..RuntimeOptions::default()
    }
}

/// A client's C-MADP and the test's ends of the rings.
struct ClientSide {
    handle: RuntimeHandle,
    /// The test's end of the C-MADP anchor ring.
    anchor: RingPort<HeapBuf>,
}

struct Testbed {
    nmadp: RuntimeHandle,
    /// The test's ends of the N-MADP's two anchor rings (one per worker).
    n_anchor: Vec<RingPort<HeapBuf>>,
    clients: Vec<ClientSide>,
}

struct ClientSpec {
    name: &'static str,
    anchor: &'static str,
    wifi: &'static str,
    lte: &'static str,
    /// C-MADP workers (2: the wifi ring feeds worker 0, the lte ring worker 1).
    workers: u16,
}

fn start(specs: &[ClientSpec]) -> Testbed {
    let mut n_clients = String::new();
    for s in specs {
        n_clients.push_str(&nmadp_client(s.name, s.anchor, s.wifi, s.lte));
    }
    let ncfg = Config::parse(&nmadp_toml(&n_clients), "nmadp.toml").unwrap();
    // N-MADP: worker 0 holds every client's wifi link, worker 1 every lte link.
    let mut wifi_links = Vec::new();
    let mut lte_links = Vec::new();
    let mut client_sides = Vec::new();
    for s in specs {
        let (nw, cw) = ring_pair::<HeapBuf>("n-wifi", "c-wifi", 4096);
        let (nl, cl) = ring_pair::<HeapBuf>("n-lte", "c-lte", 4096);
        let wifi: SocketAddr = s.wifi.parse().unwrap();
        let lte: SocketAddr = s.lte.parse().unwrap();
        wifi_links.push((wifi.ip(), nw));
        lte_links.push((lte.ip(), nl));
        let ccfg = Config::parse(
            &cmadp_toml(s.name, s.anchor, s.wifi, s.lte, s.workers),
            "cmadp.toml",
        )
        .unwrap();
        let (c_anchor, test_anchor) = ring_pair::<HeapBuf>("c-anchor", "test", 4096);
        let ports = if s.workers == 2 {
            RuntimePorts {
                workers: vec![
                    WorkerPorts {
                        anchor: Some(Box::new(c_anchor)),
                        delivery: vec![DeliveryPort {
                            port: Box::new(cw),
                            paths: PathSet::Only(vec![0]),
                        }],
                    },
                    WorkerPorts {
                        anchor: None,
                        delivery: vec![DeliveryPort {
                            port: Box::new(cl),
                            paths: PathSet::Only(vec![1]),
                        }],
                    },
                ],
            }
        } else {
            RuntimePorts {
                workers: vec![WorkerPorts {
                    anchor: Some(Box::new(c_anchor)),
                    delivery: vec![
                        DeliveryPort {
                            port: Box::new(cw),
                            paths: PathSet::Only(vec![0]),
                        },
                        DeliveryPort {
                            port: Box::new(cl),
                            paths: PathSet::Only(vec![1]),
                        },
                    ],
                }],
            }
        };
        let handle = Runtime::start_with(ccfg, ports, opts()).unwrap();
        client_sides.push(ClientSide {
            handle,
            anchor: test_anchor,
        });
    }
    let (na0, ta0) = ring_pair::<HeapBuf>("n-anchor0", "test0", 8192);
    let (na1, ta1) = ring_pair::<HeapBuf>("n-anchor1", "test1", 8192);
    let ports = RuntimePorts {
        workers: vec![
            WorkerPorts {
                anchor: Some(Box::new(na0)),
                delivery: vec![DeliveryPort {
                    port: Box::new(Fabric {
                        name: "wifi".into(),
                        links: wifi_links,
                        stats: PortStats::default(),
                    }),
                    paths: PathSet::Only(vec![0]),
                }],
            },
            WorkerPorts {
                anchor: Some(Box::new(na1)),
                delivery: vec![DeliveryPort {
                    port: Box::new(Fabric {
                        name: "lte".into(),
                        links: lte_links,
                        stats: PortStats::default(),
                    }),
                    paths: PathSet::Only(vec![1]),
                }],
            },
        ],
    };
    let nmadp = Runtime::start_with(ncfg, ports, opts()).unwrap();
    Testbed {
        nmadp,
        n_anchor: vec![ta0, ta1],
        clients: client_sides,
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn all_usable(h: &RuntimeHandle, client: &str) -> bool {
    let p = h.path_status();
    let mine: Vec<_> = p.iter().filter(|s| s.client_name == client).collect();
    mine.len() == 2 && mine.iter().all(|s| s.usable)
}

/// Sends `n` packets (sequence numbers from `first`) in bursts and collects what comes out of
/// `rx` until `n` arrived or the time bound.
fn pump(
    tx: &mut RingPort<HeapBuf>,
    rx: &mut [&mut RingPort<HeapBuf>],
    src: &str,
    dst: &str,
    first: u32,
    n: u32,
) -> Vec<u32> {
    let mut pool = HeapPool::default();
    let mut got = Vec::new();
    let mut sent = first;
    let t0 = Instant::now();
    let mut buf = Vec::new();
    while (got.len() as u32) < n && t0.elapsed() < WAIT {
        // The first PDU of a flow sets the receiver's expected SN (reorder buffer
        // synchronisation): it goes alone, the rest follows once it arrived.
        if sent < first + n && (sent == first || !got.is_empty()) {
            let size = if sent == first { 1 } else { 16 };
            let mut burst: Vec<HeapBuf> = (sent..(sent + size).min(first + n))
                .map(|s| udp_packet(src, dst, s))
                .collect();
            let k = burst.len() as u32;
            assert_eq!(
                tx.tx_burst(&mut pool, &mut burst),
                k as usize,
                "injection ring full"
            );
            sent += k;
        }
        for r in rx.iter_mut() {
            buf.clear();
            r.rx_burst(&mut pool, &mut buf, 256);
            got.extend(buf.iter().map(seq_of));
        }
        std::thread::sleep(Duration::from_micros(300));
    }
    // Anything late (a duplicate would show here).
    std::thread::sleep(Duration::from_millis(50));
    for r in rx.iter_mut() {
        buf.clear();
        r.rx_burst(&mut pool, &mut buf, 4096);
        got.extend(buf.iter().map(seq_of));
    }
    got
}

/// In order and exactly once, with a short message (not the whole list).
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

fn specs_two_workers() -> Vec<ClientSpec> {
    // alice and bob on different N-MADP workers.
    let alice = "10.0.0.2";
    let bob = ["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        .into_iter()
        .find(|b| owner_of(b.parse().unwrap(), 2) != owner_of(alice.parse().unwrap(), 2))
        .unwrap();
    vec![
        ClientSpec {
            name: "alice",
            anchor: alice,
            wifi: "198.51.100.2:40000",
            lte: "203.0.113.2:40001",
            workers: 2,
        },
        ClientSpec {
            name: "bob",
            anchor: bob,
            wifi: "198.51.100.3:40000",
            lte: "203.0.113.3:40001",
            workers: 1,
        },
    ]
}

fn shutdown_all(tb: &Testbed) {
    let t0 = Instant::now();
    tb.nmadp.shutdown().expect("n-madp stops");
    for c in &tb.clients {
        c.handle.shutdown().expect("c-madp stops");
    }
    assert!(t0.elapsed() < WAIT, "shutdown took {:?}", t0.elapsed());
}

#[test]
fn back_to_back_in_order_exactly_once_both_directions() {
    let mut tb = start(&specs_two_workers());
    wait_until("n-madp paths usable", || {
        all_usable(&tb.nmadp, "alice") && all_usable(&tb.nmadp, "bob")
    });
    wait_until("c-madp paths usable", || {
        all_usable(&tb.clients[0].handle, "alice")
    });

    // Uplink: alice's C-MADP splits over wifi and lte (weighted): the two paths arrive on two
    // different N-MADP workers; the owner puts them back in order.
    let (a, rest) = tb.n_anchor.split_at_mut(1);
    let up = pump(
        &mut tb.clients[0].anchor,
        &mut [&mut a[0], &mut rest[0]],
        "10.0.0.2",
        "8.8.8.8",
        0,
        2000,
    );
    assert_seq(&up, 0..2000, "uplink");

    // Downlink for alice, injected on the worker that does NOT own her (a handoff), and for bob.
    let alice_owner = tb.nmadp.owner("alice").unwrap();
    let inject = 1 - alice_owner;
    let down = {
        let (c0, _) = tb.clients.split_at_mut(1);
        pump(
            &mut tb.n_anchor[inject],
            &mut [&mut c0[0].anchor],
            "8.8.8.8",
            "10.0.0.2",
            0,
            2000,
        )
    };
    assert_seq(&down, 0..2000, "downlink");
    let bob_anchor = tb.nmadp.config().clients[1].anchor_address.to_string();
    let down_bob = {
        let (_, c1) = tb.clients.split_at_mut(1);
        pump(
            &mut tb.n_anchor[0],
            &mut [&mut c1[0].anchor],
            "8.8.8.8",
            &bob_anchor,
            0,
            500,
        )
    };
    assert_seq(&down_bob, 0..500, "bob downlink");

    tb.nmadp.refresh();
    let snaps = tb.nmadp.snapshots();
    let handoffs: u64 = snaps.iter().map(|s| s.loop_counters.handoffs_out).sum();
    assert!(
        handoffs >= 1000,
        "both paths' packets reached one owner: {handoffs} handoffs"
    );
    let full: u64 = snaps.iter().map(|s| s.loop_counters.handoff_full).sum();
    assert_eq!(full, 0);
    // Both paths carried alice's traffic.
    let alice = tb.nmadp.client_id("alice").unwrap();
    let cs = snaps[alice_owner].client(alice).unwrap();
    assert!(
        cs.paths.iter().all(|p| p.counters.rx_pdus > 100),
        "{:?}",
        cs.paths
    );
    // The admin view of alice's receive sequencing: every uplink SDU went through her
    // reorder buffer (in order or after a wait), nothing given up on, none duplicated; the
    // owner's worker row sums its clients'.
    let rows = AdminBackend::counters(&tb.nmadp, CounterScope::Clients, Some("alice")).unwrap();
    let q = rows[0].counters.sequencing;
    assert!(q.delivered >= 2000, "{q:?}");
    assert_eq!(q.in_order + q.reordered, q.delivered, "{q:?}");
    assert_eq!((q.duplicates, q.late, q.gaps_skipped), (0, 0, 0), "{q:?}");
    let rows = AdminBackend::counters(&tb.nmadp, CounterScope::Workers, None).unwrap();
    let w = rows[alice_owner].counters.sequencing;
    assert!(w.delivered >= q.delivered, "{w:?} vs {q:?}");
    // Latency was recorded: per loop iteration, and per packet for every SDU the N-MADP
    // forwarded (2000 up, 2000 + 500 down; the probes and keep-alives it makes itself carry no
    // receive time, the keep-alives it receives go to the slow path, not to a port).
    assert!(!tb.nmadp.latency_histogram().is_empty());
    let pk = tb.nmadp.packet_latency_histogram();
    assert!(pk.len() >= 4500, "{} packets timed", pk.len());
    assert!(
        pk.min() >= 1 && pk.max() < 10_000_000_000,
        "{}..{}",
        pk.min(),
        pk.max()
    );
    let l = AdminBackend::latency(&tb.nmadp).unwrap();
    assert!(l
        .iter()
        .any(|i| i.metric == "packet" && i.worker.is_none() && i.count >= 4500));
    shutdown_all(&tb);
}

#[test]
fn live_changes_add_client_duplicate_steering_remove_client() {
    let mut tb = start(&specs_two_workers());
    wait_until("paths usable", || {
        all_usable(&tb.nmadp, "alice") && all_usable(&tb.nmadp, "bob")
    });
    wait_until("c-madp paths usable", || {
        all_usable(&tb.clients[0].handle, "alice")
    });

    // Add a client live (no C-MADP behind it: its probes go nowhere) while alice's traffic flows.
    let base = tb.nmadp.config();
    let carol = base
        .parse_client(
            &nmadp_client(
                "carol",
                "10.0.0.99",
                "198.51.100.9:40000",
                "203.0.113.9:40001",
            ),
            "add",
        )
        .unwrap();
    tb.nmadp.add_client(carol).unwrap();
    assert!(tb.nmadp.client_names().contains(&"carol".to_string()));
    assert!(
        tb.nmadp.add_client(base.clients[0].clone()).is_err(),
        "duplicate name refused"
    );

    // Duplicate steering for alice's downlink: every SDU on both paths, delivered once.
    tb.nmadp
        .set_steering("alice", None, dataplane::config::SteeringMode::Duplicate)
        .unwrap();
    let down = pump(
        &mut tb.n_anchor[0],
        &mut [&mut tb.clients[0].anchor],
        "8.8.8.8",
        "10.0.0.2",
        0,
        1000,
    );
    assert_seq(&down, 0..1000, "duplicate mode");
    tb.nmadp.refresh();
    let owner = tb.nmadp.owner("alice").unwrap();
    let id = tb.nmadp.client_id("alice").unwrap();
    let dup: u64 = tb.nmadp.snapshots()[owner]
        .client(id)
        .unwrap()
        .paths
        .iter()
        .map(|p| p.counters.duplicates_sent)
        .sum();
    assert!(dup >= 900, "duplicate mode sent copies: {dup}");
    assert!(tb
        .nmadp
        .set_steering("nobody", None, dataplane::config::SteeringMode::Single)
        .is_err());

    // Remove bob and carol; alice keeps flowing without loss.
    tb.nmadp.remove_client("bob").unwrap();
    tb.nmadp.remove_client("carol").unwrap();
    assert!(tb.nmadp.remove_client("bob").is_err());
    let down = pump(
        &mut tb.n_anchor[1],
        &mut [&mut tb.clients[0].anchor],
        "8.8.8.8",
        "10.0.0.2",
        1000,
        1000,
    );
    assert_seq(&down, 1000..2000, "after removals");
    // Bob's downlink is now an unknown client on the N-MADP.
    let bob_anchor = base.clients[1].anchor_address.to_string();
    let mut pool = HeapPool::default();
    let mut v = vec![udp_packet("8.8.8.8", &bob_anchor, 0)];
    tb.n_anchor[0].tx_burst(&mut pool, &mut v);
    wait_until("unknown client counted", || {
        tb.nmadp.refresh();
        tb.nmadp
            .snapshots()
            .iter()
            .map(|s| s.engine.dropped(pipelines::DropReason::UnknownClient))
            .sum::<u64>()
            >= 1
    });
    shutdown_all(&tb);
}

#[test]
fn graceful_shutdown_is_bounded_and_counters_are_final() {
    let mut tb = start(&specs_two_workers());
    wait_until("paths usable", || all_usable(&tb.nmadp, "alice"));
    wait_until("c-madp paths usable", || {
        all_usable(&tb.clients[0].handle, "alice")
    });
    let (a, rest) = tb.n_anchor.split_at_mut(1);
    let up = pump(
        &mut tb.clients[0].anchor,
        &mut [&mut a[0], &mut rest[0]],
        "10.0.0.2",
        "8.8.8.8",
        0,
        300,
    );
    assert_eq!(up.len(), 300);
    let t0 = Instant::now();
    let finals = tb.nmadp.shutdown().expect("clean stop");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        finals.iter().all(|s| s.stopped),
        "every worker published its final counters"
    );
    assert_eq!(
        finals.iter().map(|s| s.reorder_depth).sum::<usize>(),
        0,
        "reorder buffers flushed"
    );
    let again = tb.nmadp.snapshots();
    assert_eq!(
        finals
            .iter()
            .map(|s| s.loop_counters.rx_packets)
            .collect::<Vec<_>>(),
        again
            .iter()
            .map(|s| s.loop_counters.rx_packets)
            .collect::<Vec<_>>(),
        "counters are final"
    );
    assert!(
        tb.nmadp
            .add_client(tb.nmadp.config().clients[0].clone())
            .is_err(),
        "stopped"
    );
    assert!(tb.nmadp.shutdown().is_ok(), "a second shutdown is harmless");
    for c in &tb.clients {
        c.handle.shutdown().unwrap();
    }
}

#[test]
fn a_keepalive_from_a_strangers_endpoint_moves_nothing() {
    // A single N-MADP with one ring as its delivery side; we play the network.
    let ncfg = Config::parse(
        &nmadp_toml(&nmadp_client(
            "alice",
            "10.0.0.2",
            "198.51.100.2:40000",
            "203.0.113.2:40001",
        )),
        "n.toml",
    )
    .unwrap();
    let (nd, mut td) = ring_pair::<HeapBuf>("n-deliv", "net", 1024);
    let (na, _ta) = ring_pair::<HeapBuf>("n-anchor", "test", 1024);
    let ports = RuntimePorts {
        workers: vec![
            WorkerPorts {
                anchor: Some(Box::new(na)),
                delivery: vec![DeliveryPort {
                    port: Box::new(nd),
                    paths: PathSet::All,
                }],
            },
            WorkerPorts::default(),
        ],
    };
    let h = Runtime::start_with(ncfg, ports, opts()).unwrap();
    h.refresh();
    let before = h.path_remote("alice", 0);
    assert_eq!(before, Some("198.51.100.2:40000".parse().unwrap()));
    // Keep-alive (type 0, CID 0, SN 7) from a stranger to the control endpoint.
    let mut pool = HeapPool::default();
    let mut ka = HeapBuf::new(128, 512);
    assert!(ka.extend_from_slice(&[0, 0, 0, 7]));
    push_udp_ip(
        &mut ka,
        "192.0.2.99:5555".parse().unwrap(),
        "192.0.2.1:8888".parse().unwrap(),
        1,
    )
    .unwrap();
    td.tx_burst(&mut pool, &mut vec![ka]);
    wait_until("unknown peer counted", || {
        h.slow_path_counters().supervision.unknown_peer >= 1
    });
    assert_eq!(
        h.slow_path_counters().supervision.last_unknown_peer,
        Some("192.0.2.99:5555".parse().unwrap())
    );
    h.refresh();
    assert_eq!(h.path_remote("alice", 0), before, "no path moved");
    assert_eq!(
        h.path_remote("alice", 1),
        Some("203.0.113.2:40001".parse().unwrap())
    );
    let id = h.client_id("alice").unwrap();
    let owner = h.owner("alice").unwrap();
    let c = h.snapshots()[owner].client(id).unwrap().clone();
    assert_eq!(c.counters.rebinds, 0);
    assert!(c.paths.iter().all(|p| p.counters.rebinds == 0));
    // The probes toward alice's configured endpoints still go out on the ring, not to the
    // stranger.
    let mut got = Vec::new();
    wait_until("probes", || {
        td.rx_burst(&mut pool, &mut got, 64);
        !got.is_empty()
    });
    for p in &got {
        let dst = dataplane::runtime::directory::ip_addr(p.data(), true).unwrap();
        assert_ne!(dst, "192.0.2.99".parse::<IpAddr>().unwrap());
    }
    h.shutdown().unwrap();
}

/// One N-MADP with one ring as its delivery side (we play the network), `alice` with her
/// Wi-Fi endpoint configured and her LTE endpoint not.
fn nmadp_without_lte_remote() -> (RuntimeHandle, RingPort<HeapBuf>, RingPort<HeapBuf>) {
    let text = nmadp_toml(&nmadp_client(
        "alice",
        "10.0.0.2",
        "198.51.100.2:40000",
        "203.0.113.2:40001",
    ))
    .replace("remote = \"203.0.113.2:40001\"\n", "");
    let ncfg = Config::parse(&text, "n.toml").unwrap();
    let (nd, td) = ring_pair::<HeapBuf>("n-deliv", "net", 1024);
    let (na, ta) = ring_pair::<HeapBuf>("n-anchor", "test", 1024);
    let ports = RuntimePorts {
        workers: vec![
            WorkerPorts {
                anchor: Some(Box::new(na)),
                delivery: vec![DeliveryPort {
                    port: Box::new(nd),
                    paths: PathSet::All,
                }],
            },
            WorkerPorts::default(),
        ],
    };
    (Runtime::start_with(ncfg, ports, opts()).unwrap(), td, ta)
}

/// A probe ACK (type 1, CID, acknowledged SN, reserved) from `from` to the control endpoint.
fn probe_ack(from: &str, cid: u8, sn: u16) -> HeapBuf {
    let mut b = HeapBuf::new(128, 512);
    let s = sn.to_be_bytes();
    assert!(b.extend_from_slice(&[1, cid, s[0], s[1], 0]));
    push_udp_ip(
        &mut b,
        from.parse().unwrap(),
        "192.0.2.1:8888".parse().unwrap(),
        1,
    )
    .unwrap();
    b
}

#[test]
fn s5_2_an_unknown_path_endpoint_is_learnt_from_the_rcid_probe_ack() {
    let (h, mut td, _ta) = nmadp_without_lte_remote();
    let mut pool = HeapPool::default();
    h.refresh();
    assert_eq!(h.path_remote("alice", 1), None);
    // The LTE monitor's probe REQs go over Wi-Fi (CID 0) with R-CID = 1 (draft-04 §5.2).
    let mut rcid_sn = None;
    let deadline = Instant::now() + WAIT;
    while rcid_sn.is_none() && Instant::now() < deadline {
        let mut got = Vec::new();
        td.rx_burst(&mut pool, &mut got, 64);
        for p in &got {
            let d = p.data();
            let dst = dataplane::runtime::directory::ip_addr(d, true).unwrap();
            assert_eq!(
                dst,
                "198.51.100.2".parse::<IpAddr>().unwrap(),
                "only Wi-Fi is known"
            );
            let m = &d[28..];
            // Type 1 (REQ), CID 0, flags with R-CID present (0x20) and R-CID 1.
            if m[0] == 1 && m[1] == 0 && m[4] & 0xa0 == 0xa0 && m[5] == 1 {
                rcid_sn = Some(u16::from_be_bytes([m[2], m[3]]));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let sn = rcid_sn.expect("a probe REQ with R-CID = 1 over Wi-Fi");
    // A stranger acknowledging another SN moves nothing.
    td.tx_burst(
        &mut pool,
        &mut vec![probe_ack("192.0.2.99:5555", 1, sn.wrapping_add(777))],
    );
    wait_until("stranger counted", || {
        h.slow_path_counters().supervision.unknown_peer >= 1
    });
    h.refresh();
    assert_eq!(h.path_remote("alice", 1), None, "a wrong SN learns nothing");
    // The client's ACK over LTE: its source becomes the LTE remote.
    td.tx_burst(&mut pool, &mut vec![probe_ack("203.0.113.7:41234", 1, sn)]);
    wait_until("LTE remote learnt", || {
        h.refresh();
        h.path_remote("alice", 1) == Some("203.0.113.7:41234".parse().unwrap())
    });
    assert_eq!(h.slow_path_counters().supervision.remotes_learnt, 1);
    assert_eq!(
        h.path_remote("alice", 0),
        Some("198.51.100.2:40000".parse().unwrap())
    );
    // From now on the LTE probes go to it directly (CID 1, no R-CID).
    wait_until("a direct LTE probe", || {
        let mut got = Vec::new();
        td.rx_burst(&mut pool, &mut got, 64);
        got.iter().any(|p| {
            let d = p.data();
            dataplane::runtime::directory::ip_addr(d, true)
                == Some("203.0.113.7".parse::<IpAddr>().unwrap())
                && d[29] == 1
                && d[32] & 0x20 == 0
        })
    });
    h.shutdown().unwrap();
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nmadp-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn configuration_errors_name_file_and_line() {
    let bad = write(
        "bad.toml",
        "[node]\nrole = \"n-madp\"\nworkers = 0\n[ports.anchor]\nkind = \"ring\"\n[ports.delivery]\nkind = \"ring\"\n[control]\naddress = \"192.0.2.1:8888\"\n",
    );
    let exe = env!("CARGO_BIN_EXE_nmadp");
    for args in [
        vec!["check-config", bad.to_str().unwrap()],
        vec!["run", "--no-admin", "--config", bad.to_str().unwrap()],
    ] {
        let out = Command::new(exe).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml:3:"), "{args:?}: {err}");
        assert!(err.contains("node.workers"), "{err}");
    }
    // A good file: a summary; a ring-port daemon cannot run outside one process.
    let good = write(
        "good.toml",
        &include_str!("../../deploy/examples/nmadp.toml")
            .replace("cores = [2, 3]", "")
            .replace("slow_path_core = 1", ""),
    );
    let out = Command::new(exe)
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("2 client(s)") && s.contains("alice"), "{s}");
    let ring = write(
        "ring.toml",
        &nmadp_toml(&nmadp_client(
            "alice",
            "10.0.0.2",
            "198.51.100.2:40000",
            "203.0.113.2:40001",
        )),
    );
    let out = Command::new(exe)
        .args(["run", "--no-admin", "--config", ring.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ring"));
    // A mapping error (SN without TC with two classes) names the client and delivery.
    let mut t = nmadp_toml(&nmadp_client(
        "alice",
        "10.0.0.2",
        "198.51.100.2:40000",
        "203.0.113.2:40001",
    ));
    t.push_str("[[client.traffic_class]]\nid = 5\nmatch = { dscp = [46] }\n");
    let t = t.replace(
        "[[client.delivery]]\nid = 1",
        "[[client.delivery]]\nid = 1\ntrailer.uplink = [\"sn\"]",
    );
    let m = write("map.toml", &t);
    let out = Command::new(exe)
        .args(["check-config", m.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("alice") && err.contains("lte"), "{err}");
}
