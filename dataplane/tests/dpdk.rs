//! DPDK port tests (feature `dpdk`): `cargo test -p dataplane --features dpdk --test dpdk`.
//!
//! One EAL per process, shared by every test (tests are threads of one process). Memory flags
//! come from `NMADP_EAL_MEM` (e.g. the output of `deploy/dpdk-env.sh`), default
//! `--no-huge -m 512`. Virtual devices only: `net_ring` (loopback: a ring port's queue `i`
//! transmits into its own rx queue `i`), `net_null`, and `net_af_packet` on a veth pair whose
//! other end is in a network namespace the test creates (needs root; deleted by a Drop guard).
//! Without DPDK installed (pkg-config fails) the tests print a skip message and pass.
#![cfg(feature = "dpdk")]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use dataplane::ports::dpdk::{
    DpdkPort, DpdkPortConfig, Eal, L2Mode, Mbuf, MbufPool, Mempool, ETH_HDR_LEN,
};
use dataplane::ports::{BufPool, Port};
use pipelines::{HeapBuf, PacketBuf};
use proptest::prelude::*;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!("{tag}{}", COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// EAL arguments of this test process.
fn eal_args() -> Vec<String> {
    let mem = std::env::var("NMADP_EAL_MEM").unwrap_or_else(|_| "--no-huge -m 512".into());
    let mut args: Vec<String> = vec![
        "-l".into(),
        "0".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        "--log-level".into(),
        "lib.eal:warning".into(),
        "--file-prefix".into(),
        format!("nmadp-t{}", std::process::id()),
        "--vdev".into(),
        "net_ring0".into(),
    ];
    args.extend(mem.split_whitespace().map(str::to_string));
    args
}

/// The shared EAL, or `None` (with a message) when DPDK is not installed.
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
        // rte_eal_init pins its calling thread to lcore 0: use a thread of its own.
        let args = eal_args();
        let eal = thread::spawn(move || Eal::init(&args))
            .join()
            .expect("EAL init thread");
        Some(eal.unwrap_or_else(|e| panic!("EAL init with {:?}: {e}", eal_args())))
    })
}

fn mempool(eal: &Eal, n: u32) -> Arc<Mempool> {
    Mempool::new(eal, &unique("nmadp_t"), n, 0, 2176, None).expect("mempool")
}

/// An IPv4/UDP packet `src:sport -> dst:dport` with a valid header checksum and UDP checksum 0
/// (none, allowed for IPv4 by RFC 768).
fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let mut sum: u32 = p
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

fn marked(seq: u32) -> Vec<u8> {
    udp4(
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        1000,
        2000,
        &[b"NMADP".as_slice(), &seq.to_be_bytes()].concat(),
    )
}

fn mbuf_with(pool: &mut MbufPool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("mbuf");
    assert!(m.extend_from_slice(bytes));
    m
}

/// Polls `port` until `want` packets arrived or 2 s passed.
fn rx_until(port: &mut DpdkPort, pool: &mut MbufPool, want: usize) -> Vec<Mbuf> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        let left = want - out.len();
        if port.rx_burst(pool, &mut out, left) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    out
}

#[test]
fn eal_init_is_shared_and_refuses_other_args() {
    let Some(eal) = eal() else { return };
    assert!(eal.version().starts_with("DPDK "), "{}", eal.version());
    assert!(Eal::init(&eal_args()).is_ok());
    let e = Eal::init(&["--no-huge".to_string()])
        .err()
        .expect("other args");
    assert!(e.message.contains("already initialised"), "{e}");
    assert!(eal.port_count() >= 1, "--vdev net_ring0 makes a port");
    assert_eq!(
        eal.file_prefix(),
        Some(format!("nmadp-t{}", std::process::id()).as_str())
    );
}

#[test]
fn ring_loopback_two_queues() {
    let Some(eal) = eal() else { return };
    let mp = mempool(eal, 2047);
    let mut pool = MbufPool::new(mp.clone());
    let mut cfg = DpdkPortConfig::new("net_ring0");
    cfg.queues = 2;
    let mut q0 = DpdkPort::open(eal, &cfg, mp.clone()).expect("open net_ring0");
    assert!(!q0.rss(), "net_ring has no RSS");
    assert!(q0.queue(0).is_err(), "queue 0 is held by q0");
    assert!(q0.queue(2).is_err(), "only 2 queues");
    assert!(
        DpdkPort::open(eal, &cfg, mp.clone()).is_err(),
        "a port opens once"
    );
    let mut q1 = q0.queue(1).expect("queue 1");
    assert!(q0.queue(1).is_err(), "queue 1 is held by q1");

    for (q, base) in [(&mut q0, 0u32), (&mut q1, 100u32)] {
        let mut tx: Vec<Mbuf> = (0..40)
            .map(|i| mbuf_with(&mut pool, &marked(base + i)))
            .collect();
        assert_eq!(
            q.tx_burst(&mut pool, &mut tx),
            40,
            "more than one burst of 32"
        );
        assert!(tx.is_empty());
        let got = rx_until(q, &mut pool, 40);
        assert_eq!(got.len(), 40);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.data(), marked(base + i as u32).as_slice());
            assert_eq!(m.nb_segs(), 1);
        }
        let st = q.stats();
        assert_eq!((st.tx_packets, st.rx_packets), (40, 40));
        assert_eq!(st.tx_bytes, 40 * marked(0).len() as u64);
        assert_eq!(st.rx_bytes, st.tx_bytes);
    }
    // Queue 1 is released with its handle.
    drop(q1);
    let q1 = q0.queue(1).expect("queue 1 again");
    drop(q1);

    let dev = q0.device_stats().expect("stats");
    assert_eq!((dev.rx_packets, dev.tx_packets), (80, 80));
    let xs = q0.xstats().expect("xstats");
    let get = |n: &str| xs.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
    assert_eq!(get("rx_good_packets"), Some(80), "{xs:?}");
    assert_eq!(get("tx_good_packets"), Some(80), "{xs:?}");
    drop(pool);
    drop(q0);
    assert_eq!(mp.in_use(), 0, "every mbuf returned");
}

#[test]
fn ring_tx_overflow_frees_refused_mbufs() {
    let Some(eal) = eal() else { return };
    let name = unique("net_ring_ovf");
    eal.create_vdev(&name, "").expect("vdev");
    let mp = mempool(eal, 4095);
    let mut pool = MbufPool::new(mp.clone());
    let mut port = DpdkPort::open(eal, &DpdkPortConfig::new(&name), mp.clone()).expect("open");
    // The ring behind queue 0 holds 1023 packets (a 1024-slot rte_ring).
    let mut tx: Vec<Mbuf> = (0..1500)
        .map(|i| mbuf_with(&mut pool, &marked(i)))
        .collect();
    let sent = port.tx_burst(&mut pool, &mut tx);
    assert!(tx.is_empty());
    assert!(sent < 1500 && sent > 0, "sent {sent}");
    let st = port.stats();
    assert_eq!(st.tx_packets as usize, sent);
    assert_eq!(st.tx_dropped as usize, 1500 - sent);
    let got = rx_until(&mut port, &mut pool, sent);
    assert_eq!(got.len(), sent);
    drop(got);
    drop(pool);
    drop(port);
    assert_eq!(mp.in_use(), 0, "refused mbufs were freed");
    eal.remove_vdev(&name).expect("remove vdev");
}

#[test]
fn ring_ethernet_mode_adds_and_strips_header() {
    let Some(eal) = eal() else { return };
    let name = unique("net_ring_eth");
    eal.create_vdev(&name, "").expect("vdev");
    let mp = mempool(eal, 1023);
    let mut pool = MbufPool::new(mp.clone());
    let src = [2, 0, 0, 0, 0, 1];
    let dst = [2, 0, 0, 0, 0, 2];
    let mut cfg = DpdkPortConfig::new(&name);
    cfg.mode = L2Mode::Ethernet {
        src_mac: src,
        dst_mac: dst,
    };
    let mut port = DpdkPort::open(eal, &cfg, mp.clone()).expect("open");
    let ip = marked(7);
    let mut tx = vec![
        mbuf_with(&mut pool, &ip),
        mbuf_with(&mut pool, b"\x00not ip"),
    ];
    assert_eq!(port.tx_burst(&mut pool, &mut tx), 1);
    assert_eq!(port.extra_stats().tx_not_ip, 1);
    assert_eq!(port.stats().tx_dropped, 1);
    assert_eq!(port.device_stats().expect("stats").tx_packets, 1);
    // What went on the wire is an Ethernet frame: read it back in raw mode.
    port.set_mode(L2Mode::Raw);
    let mut framed = Vec::new();
    framed.extend_from_slice(&dst);
    framed.extend_from_slice(&src);
    framed.extend_from_slice(&0x0800u16.to_be_bytes());
    framed.extend_from_slice(&ip);
    let got = rx_until(&mut port, &mut pool, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data(), framed.as_slice(), "header prepended");
    // net_ring hands back the very mbuf: the header went into the headroom.
    assert_eq!(got[0].headroom(), 128 - ETH_HDR_LEN);
    drop(got);

    // In Ethernet mode the handle strips the header of IP frames and drops non-IP and short
    // frames; a raw handle drops nothing.
    let mut arp = Vec::new();
    arp.extend_from_slice(&dst);
    arp.extend_from_slice(&src);
    arp.extend_from_slice(&0x0806u16.to_be_bytes());
    arp.extend_from_slice(&[0; 28]);
    let mut tx = vec![
        mbuf_with(&mut pool, &arp),
        mbuf_with(&mut pool, &framed),
        mbuf_with(&mut pool, &framed[..13]),
    ];
    assert_eq!(
        port.tx_burst(&mut pool, &mut tx),
        3,
        "raw mode sends anything"
    );
    port.set_mode(cfg.mode);
    // net_ring is synchronous: all three are in the ring already.
    let mut got = Vec::new();
    assert_eq!(
        port.rx_burst(&mut pool, &mut got, 32),
        1,
        "only the IP frame is kept"
    );
    assert_eq!(got[0].data(), ip.as_slice(), "header stripped");
    assert_eq!(
        got[0].headroom(),
        128 + ETH_HDR_LEN,
        "by adj, nothing moved"
    );
    assert_eq!(port.extra_stats().rx_filtered, 2, "ARP and a 13-byte frame");
    let mut got2 = Vec::new();
    assert_eq!(port.rx_burst(&mut pool, &mut got2, 32), 0);
    drop((got, got2));
    drop(port);
    drop(pool);
    assert_eq!(mp.in_use(), 0);
    eal.remove_vdev(&name).expect("remove vdev");
}

#[test]
fn ring_drops_chained_mbufs_on_rx() {
    let Some(eal) = eal() else { return };
    let name = unique("net_ring_seg");
    eal.create_vdev(&name, "").expect("vdev");
    let mp = mempool(eal, 255);
    let mut pool = MbufPool::new(mp.clone());
    let mut port = DpdkPort::open(eal, &DpdkPortConfig::new(&name), mp.clone()).expect("open");
    let mut head = mbuf_with(&mut pool, &marked(1));
    let head_len = head.len();
    head.chain(mbuf_with(&mut pool, b"second segment"))
        .expect("chain");
    assert_eq!(head.nb_segs(), 2);
    assert_eq!(head.pkt_len() as usize, head_len + 14);
    assert_eq!(head.len(), head_len, "PacketBuf sees the first segment");
    assert!(head.append(1).is_none(), "append refused on a chain");
    assert!(!head.trim(1), "trim refused on a chain");
    assert!(head.adj(1), "adj works on the first segment");
    let mut tx = vec![head, mbuf_with(&mut pool, &marked(2))];
    assert_eq!(port.tx_burst(&mut pool, &mut tx), 2);
    let mut got = Vec::new();
    assert_eq!(port.rx_burst(&mut pool, &mut got, 32), 1);
    assert_eq!(got[0].data(), marked(2).as_slice());
    assert_eq!(port.extra_stats().rx_multiseg, 1);
    assert_eq!(port.stats().rx_dropped, 1);
    drop(got);
    drop(pool);
    drop(port);
    assert_eq!(mp.in_use(), 0, "both segments freed");
    // Closing releases the ethdev (DPDK >= 20.11): reopening needs the vdev re-created.
    let cfg = DpdkPortConfig::new(&name);
    let e = DpdkPort::open(eal, &cfg, mp.clone())
        .err()
        .expect("released");
    assert_eq!(e.errno, libc::ENODEV, "{e}");
    eal.remove_vdev(&name).expect("remove vdev");
    eal.create_vdev(&name, "").expect("vdev again");
    drop(DpdkPort::open(eal, &cfg, mp.clone()).expect("reopen"));
    eal.remove_vdev(&name).expect("remove vdev");
}

#[test]
fn mbuf_pool_exhaustion_and_return() {
    let Some(eal) = eal() else { return };
    let mp = mempool(eal, 100);
    let mut pool = MbufPool::new(mp.clone());
    let mut held = Vec::new();
    while let Some(m) = pool.alloc() {
        held.push(m);
        assert!(held.len() <= 100, "more mbufs than the pool has");
    }
    assert_eq!(held.len(), 100);
    assert_eq!(pool.alloc_failures, 1);
    assert_eq!(mp.in_use(), 100);
    for m in held.drain(..) {
        pool.free(m);
    }
    assert_eq!(mp.in_use(), 0);
    let m = pool.alloc().expect("after free");
    assert_eq!((m.headroom(), m.len(), m.tailroom()), (128, 0, 2048));
    drop(m);
    drop(pool);
    assert_eq!(mp.in_use(), 0, "the stash is returned on drop");
}

#[test]
fn null_pmd_throughput_smoke() {
    let Some(eal) = eal() else { return };
    let name = unique("net_null_smoke");
    eal.create_vdev(&name, "").expect("vdev");
    let mp = mempool(eal, 4095);
    let mut pool = MbufPool::new(mp.clone());
    let mut port = DpdkPort::open(eal, &DpdkPortConfig::new(&name), mp.clone()).expect("open");
    let pkt = marked(0);
    let mut tx = Vec::with_capacity(32);
    let mut rx = Vec::with_capacity(32);
    let start = Instant::now();
    let (mut sent, mut received) = (0u64, 0u64);
    while start.elapsed() < Duration::from_millis(500) {
        for _ in 0..256 {
            for _ in 0..32 {
                match pool.alloc() {
                    Some(mut m) => {
                        m.extend_from_slice(&pkt);
                        tx.push(m);
                    }
                    None => break,
                }
            }
            sent += port.tx_burst(&mut pool, &mut tx) as u64;
            received += port.rx_burst(&mut pool, &mut rx, 32) as u64;
            rx.clear();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "net_null smoke ({}): tx {:.1} Mpps, rx {:.1} Mpps (alloc+fill+tx, rx+free; one thread, not an lcore)",
        std::env::var("NMADP_EAL_MEM").unwrap_or_else(|_| "--no-huge -m 512".into()),
        sent as f64 / secs / 1e6,
        received as f64 / secs / 1e6
    );
    assert!(sent > 0 && received > 0);
    assert_eq!(port.stats().tx_packets, sent);
    drop(pool);
    drop(port);
    assert_eq!(mp.in_use(), 0);
    eal.remove_vdev(&name).expect("remove vdev");
}

#[derive(Debug, Clone)]
enum Op {
    Prepend(usize, u8),
    Append(usize, u8),
    Adj(usize),
    Trim(usize),
    Write(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly small sizes, sometimes beyond the room and beyond u16.
    let n = prop_oneof![8 => 0usize..300, 1 => 1000usize..3000, 1 => 65530usize..70000];
    prop_oneof![
        (n.clone(), any::<u8>()).prop_map(|(n, b)| Op::Prepend(n, b)),
        (n.clone(), any::<u8>()).prop_map(|(n, b)| Op::Append(n, b)),
        n.clone().prop_map(Op::Adj),
        n.prop_map(Op::Trim),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Op::Write(i, b)),
    ]
}

fn packetbuf_ops_agree(ops: &[Op]) -> std::result::Result<(), TestCaseError> {
    let Some(eal) = eal() else { return Ok(()) };
    static POOL: OnceLock<Arc<Mempool>> = OnceLock::new();
    let mp = POOL.get_or_init(|| mempool(eal, 63));
    let mut m = mp.alloc().expect("mbuf");
    let mut h = HeapBuf::new(128, 2176);
    for op in ops {
        match *op {
            Op::Prepend(n, b) => {
                let (x, y) = (m.prepend(n), h.prepend(n));
                prop_assert_eq!(x.is_some(), y.is_some(), "prepend {}", n);
                if let (Some(x), Some(y)) = (x, y) {
                    x.fill(b);
                    y.fill(b);
                }
            }
            Op::Append(n, b) => {
                let (x, y) = (m.append(n), h.append(n));
                prop_assert_eq!(x.is_some(), y.is_some(), "append {}", n);
                if let (Some(x), Some(y)) = (x, y) {
                    x.fill(b);
                    y.fill(b);
                }
            }
            Op::Adj(n) => prop_assert_eq!(m.adj(n), h.adj(n), "adj {}", n),
            Op::Trim(n) => prop_assert_eq!(m.trim(n), h.trim(n), "trim {}", n),
            Op::Write(i, b) => {
                let len = h.len();
                prop_assert_eq!(m.len(), len);
                if len > 0 {
                    m.data_mut()[i % len] = b;
                    h.data_mut()[i % len] = b;
                }
            }
        }
        prop_assert_eq!(m.headroom(), h.headroom());
        prop_assert_eq!(m.tailroom(), h.tailroom());
        prop_assert_eq!(m.data(), h.data());
        prop_assert_eq!(m.pkt_len() as usize, h.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn mbuf_packetbuf_matches_heapbuf(ops in proptest::collection::vec(op(), 0..40)) {
        packetbuf_ops_agree(&ops)?;
    }
}

// ---- net_af_packet on a veth pair with one end in a network namespace ----

const MAC_D: [u8; 6] = [0x02, 0, 0, 0, 0, 0xd1];
const MAC_N: [u8; 6] = [0x02, 0, 0, 0, 0, 0xd2];
const IP_D: [u8; 4] = [10, 77, 0, 1];
const IP_N: [u8; 4] = [10, 77, 0, 2];

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(cmd: &str, args: &[&str]) {
    run(cmd, args).unwrap_or_else(|e| panic!("{e}"));
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Namespace `nmadp-dpdk-<tag><pid>` with veth `nd<tag><pid>n` inside and `nd<tag><pid>k`
/// outside (`tag` keeps tests running at once apart); both are deleted on drop.
struct VethNs {
    ns: String,
    outer: String,
    inner: String,
}

impl Drop for VethNs {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.outer]);
        let _ = run("ip", &["netns", "del", &self.ns]);
    }
}

fn veth_ns(tag: &str) -> Option<VethNs> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (network namespaces, AF_PACKET)");
        return None;
    }
    let pid = std::process::id();
    let ns = format!("nmadp-dpdk-{tag}{pid}");
    if let Err(e) = run("ip", &["netns", "add", &ns]) {
        eprintln!("skipped: cannot create a network namespace ({e})");
        return None;
    }
    let v = VethNs {
        ns,
        outer: format!("nd{tag}{pid}k"),
        inner: format!("nd{tag}{pid}n"),
    };
    let (ns, outer, inner) = (v.ns.as_str(), v.outer.as_str(), v.inner.as_str());
    must(
        "ip",
        &[
            "link",
            "add",
            outer,
            "address",
            &mac_str(MAC_D),
            "type",
            "veth",
            "peer",
            "name",
            inner,
            "address",
            &mac_str(MAC_N),
            "netns",
            ns,
        ],
    );
    let _ = run(
        "sysctl",
        &["-qw", &format!("net.ipv6.conf.{outer}.disable_ipv6=1")],
    );
    must("ip", &["link", "set", "dev", outer, "up"]);
    must("ip", &["-n", ns, "link", "set", "dev", "lo", "up"]);
    must(
        "ip",
        &["-n", ns, "addr", "add", "10.77.0.2/24", "dev", inner],
    );
    must("ip", &["-n", ns, "link", "set", "dev", inner, "up"]);
    // DPDK answers no ARP: a permanent neighbour for its address.
    must(
        "ip",
        &[
            "-n",
            ns,
            "neigh",
            "add",
            "10.77.0.1",
            "lladdr",
            &mac_str(MAC_D),
            "dev",
            inner,
            "nud",
            "permanent",
        ],
    );
    // No partial checksums from the kernel sender (veth offload).
    let _ = run(
        "ip",
        &["netns", "exec", ns, "ethtool", "-K", inner, "tx", "off"],
    );
    let _ = run("ethtool", &["-K", outer, "tx", "off"]);
    Some(v)
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: an open namespace file; setns affects only this thread.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}

#[test]
fn af_packet_veth_both_ways() {
    let Some(eal) = eal() else { return };
    let Some(v) = veth_ns("p") else { return };
    let vdev = format!("net_af_packet_t{}", std::process::id());
    eal.create_vdev(&vdev, &format!("iface={}", v.outer))
        .expect("net_af_packet vdev");
    veth_both_ways(eal, v, &vdev, true);
}

/// DPDK's net_af_xdp on the veth (an AF_XDP socket on queue 0; the PMD loads its own XDP
/// program, no bpffs needed). Same checks as over net_af_packet.
#[test]
fn af_xdp_veth_both_ways() {
    let Some(eal) = eal() else { return };
    let Some(v) = veth_ns("x") else { return };
    let vdev = format!("net_af_xdp_t{}", std::process::id());
    eal.create_vdev(
        &vdev,
        &format!("iface={},start_queue=0,queue_count=1", v.outer),
    )
    .expect("net_af_xdp vdev");
    // The PMD's zero-copy umem keeps the mbufs of its fill ring after close: not all return.
    veth_both_ways(eal, v, &vdev, false);
}

/// Kernel socket in the namespace -> DPDK port, and back, over vdev `vdev` on `v.outer`.
fn veth_both_ways(eal: &'static Eal, v: VethNs, vdev: &str, all_mbufs_return: bool) {
    let vdev = vdev.to_string();
    // net_af_xdp fills its fill queue from this pool at queue setup (zero copy between umem
    // and mbuf): 2047 mbufs are not enough ("Failed to get enough buffers for fq").
    let mp = mempool(eal, 8191);
    let mut pool = MbufPool::new(mp.clone());
    let mut cfg = DpdkPortConfig::new(&vdev);
    cfg.mode = L2Mode::Ethernet {
        src_mac: MAC_D,
        dst_mac: MAC_N,
    };
    let mut port = DpdkPort::open(eal, &cfg, mp.clone()).expect("open the port");
    assert_eq!(port.mac(), MAC_D, "the PMD takes the interface's MAC");

    // Namespace -> DPDK: a kernel UDP socket sends, the port receives the IP packet.
    let sender = in_netns(&v.ns, || {
        let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(IP_N), 5000)).expect("bind");
        for i in 0..5u8 {
            s.send_to(
                &[b'N', b'S', i],
                SocketAddrV4::new(Ipv4Addr::from(IP_D), 6000),
            )
            .expect("send_to");
            thread::sleep(Duration::from_millis(20));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut found = None;
    let mut out = Vec::new();
    while found.is_none() && Instant::now() < deadline {
        out.clear();
        if port.rx_burst(&mut pool, &mut out, 32) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        found = out
            .iter()
            .find(|m| {
                let d = m.data();
                d.len() >= 31 && d[9] == 17 && d[22..24] == 6000u16.to_be_bytes()
            })
            .map(|m| m.data().to_vec());
    }
    sender.join().expect("sender thread");
    let p = found.expect("UDP packet from the namespace reached the DPDK port");
    assert_eq!(p[0] >> 4, 4);
    assert_eq!(&p[12..16], &IP_N);
    assert_eq!(&p[16..20], &IP_D);
    assert_eq!(&p[20..22], &5000u16.to_be_bytes());
    assert_eq!(&p[28..30], b"NS");
    assert!(port.stats().rx_packets >= 1);

    // DPDK -> namespace: the port sends, a kernel UDP socket receives.
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = in_netns(&v.ns, move || {
        let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(IP_N), 7000)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        ready_tx.send(()).expect("ready");
        let mut buf = [0u8; 256];
        s.recv_from(&mut buf)
            .map(|(n, from)| (buf[..n].to_vec(), from))
    });
    ready_rx.recv().expect("receiver ready");
    let payload = b"hello from dpdk";
    let mut tx = vec![mbuf_with(&mut pool, &udp4(IP_D, IP_N, 6000, 7000, payload))];
    assert_eq!(port.tx_burst(&mut pool, &mut tx), 1);
    let (got, from) = receiver
        .join()
        .expect("receiver thread")
        .expect("UDP datagram from DPDK reached the namespace socket");
    assert_eq!(got, payload);
    assert_eq!(from, SocketAddrV4::new(Ipv4Addr::from(IP_D), 6000).into());
    assert_eq!(port.stats().tx_packets, 1);

    drop(out);
    drop(pool);
    drop(port);
    eal.remove_vdev(&vdev).expect("remove the vdev");
    if all_mbufs_return {
        assert_eq!(mp.in_use(), 0);
    }
    drop(v);
}
