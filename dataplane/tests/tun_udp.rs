//! TUN and UDP socket port tests in network namespaces this test creates (names carry the
//! process id; a Drop guard deletes them even on failure). They need root and print
//! "skipped: needs root" without it. All traffic stays inside those namespaces.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use common::{addr, collect_marked, in_netns, marker, netns_or_skip, output, payload, veth, Netns};
use dataplane::ports::tun::{TunConfig, TunPort};
use dataplane::ports::udp_socket::{UdpSocketConfig, UdpSocketPort};
use dataplane::ports::{BufPool, HeapPool, Port};
use pipelines::mx::{add_trailer, strip_trailer, PduOptions};
use pipelines::wire::mx_trailer::MxTrailer;
use pipelines::wire::{ipv4, ipv6, udp};
use pipelines::{HeapBuf, PacketBuf};

/// An IP/UDP packet `src -> dst` around `data`, checksums filled (what an engine would send).
fn udp_packet(src: SocketAddr, dst: SocketAddr, data: &[u8]) -> Vec<u8> {
    let ih = if src.is_ipv4() { 20 } else { 40 };
    let mut p = vec![0u8; ih + 8 + data.len()];
    p[ih + 8..].copy_from_slice(data);
    emit_outer(&mut p, src, dst);
    p
}

/// Writes an IP + UDP header at the front of `p` for the payload after it.
fn emit_outer(p: &mut [u8], src: SocketAddr, dst: SocketAddr) {
    let ih = if src.is_ipv4() { 20 } else { 40 };
    let plen = p.len() - ih - 8;
    let (h, rest) = p.split_at_mut(ih);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4::Repr {
            src_addr: s,
            dst_addr: d,
            next_header: 17,
            payload_len: 8 + plen,
            hop_limit: 64,
            dscp: 0,
            ecn: 0,
            ident: 1,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(h)),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::Repr {
            src_addr: s,
            dst_addr: d,
            next_header: 17,
            payload_len: 8 + plen,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut ipv6::Packet::new_unchecked(h)),
        _ => panic!("mixed families"),
    }
    udp::Repr {
        src_port: src.port(),
        dst_port: dst.port(),
    }
    .emit(
        &mut udp::Packet::new_unchecked(rest),
        &src.ip(),
        &dst.ip(),
        plen,
        true,
    );
}

/// Parsed view of an IP/UDP packet: (src, dst, IP length field total, UDP length, payload).
fn parse_udp(p: &[u8]) -> (SocketAddr, SocketAddr, usize, usize, Vec<u8>) {
    let (s, d, total, l4): (IpAddr, IpAddr, usize, &[u8]) = match p[0] >> 4 {
        4 => {
            let ip = ipv4::Packet::new_checked(p).expect("ipv4");
            assert!(ip.verify_checksum(), "IPv4 header checksum");
            assert_eq!(ip.next_header(), 17);
            let l4 = &p[ip.header_len()..ip.total_len()];
            (
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.total_len(),
                l4,
            )
        }
        6 => {
            let ip = ipv6::Packet::new_checked(p).expect("ipv6");
            assert_eq!(ip.next_header(), 17);
            let l4 = &p[40..ip.total_len()];
            (
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.total_len(),
                l4,
            )
        }
        v => panic!("version {v}"),
    };
    assert_eq!(total, p.len(), "IP length = buffer length");
    let u = udp::Packet::new_checked(l4).expect("udp");
    if s.is_ipv6() || u.checksum() != 0 {
        assert!(u.verify_checksum(&s, &d), "UDP checksum");
    }
    (
        SocketAddr::new(s, u.src_port()),
        SocketAddr::new(d, u.dst_port()),
        total,
        usize::from(u.len()),
        u.payload().to_vec(),
    )
}

fn open_udp(ns: &Netns, local: &str, dev: Option<&str>) -> UdpSocketPort {
    let cfg = UdpSocketConfig::new(local.parse().unwrap(), dev);
    in_netns(&ns.name, move || {
        UdpSocketPort::open(&cfg).unwrap_or_else(|e| panic!("open {cfg:?}: {e}"))
    })
}

fn bind(ns: &Netns, local: &str) -> UdpSocket {
    let local = local.to_string();
    let s = in_netns(&ns.name, move || UdpSocket::bind(&local).expect("bind"));
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// A TUN interface in `ns` with 10.200.0.1/24 and fd00:200::1/64, up, MTU 1400.
fn tun_in(ns: &Netns) -> TunPort {
    in_netns(&ns.name, || {
        let t = TunPort::open(&TunConfig::named("mxtun%d")).expect("open TUN");
        t.set_mtu(1400).expect("mtu");
        t.set_up().expect("up");
        t.add_address("10.200.0.1/24").expect("addr v4");
        t.add_address("fd00:200::1/64").expect("addr v6");
        t
    })
}

#[test]
fn tun_rx_sees_routed_packets_and_tx_reaches_sockets() {
    let Some(ns) = netns_or_skip("tun") else {
        return;
    };
    let mut tun = tun_in(&ns);
    assert!(tun.ifname().starts_with("mxtun"), "{}", tun.ifname());
    assert_eq!(tun.name(), format!("tun:{}", tun.ifname()));
    let link = output("ip", &["-n", &ns.name, "link", "show", "dev", tun.ifname()]);
    assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");
    let mut pool = HeapPool::default();

    for (local, remote) in [
        ("10.200.0.1:0", "10.200.0.2:9999"),
        ("[fd00:200::1]:0", "[fd00:200::2]:9999"),
    ] {
        let sock = bind(&ns, local);
        let me = sock.local_addr().unwrap();
        let remote: SocketAddr = remote.parse().unwrap();
        // Application -> TUN rx.
        sock.send_to(&payload(1, 100), remote).unwrap();
        let got = collect_marked(&mut tun, &mut pool, 1, Duration::from_secs(3));
        assert_eq!(got.len(), 1, "routed packet seen on rx_burst ({remote})");
        let (s, d, _, ulen, data) = parse_udp(&got[0]);
        assert_eq!((s, d, ulen), (me, remote, 108));
        assert_eq!(data, payload(1, 100));

        // TUN tx -> application.
        let mut pkts = vec![HeapBuf::from_slice(&udp_packet(
            remote,
            me,
            &payload(2, 50),
        ))];
        assert_eq!(tun.tx_burst(&mut pool, &mut pkts), 1);
        assert!(pkts.is_empty());
        let mut buf = [0u8; 2048];
        let (n, from) = sock
            .recv_from(&mut buf)
            .expect("datagram written into the TUN");
        assert_eq!(from, remote);
        assert_eq!(&buf[..n], &payload(2, 50)[..]);
    }
    // Not IP: dropped and counted.
    let mut pkts = vec![HeapBuf::from_slice(&[0x10, 1, 2, 3]), HeapBuf::default()];
    assert_eq!(tun.tx_burst(&mut pool, &mut pkts), 0);
    assert_eq!(tun.extra_stats().tx_not_ip, 2);
    let st = tun.stats();
    assert_eq!(st.tx_packets, 2);
    assert_eq!(st.tx_bytes, (20 + 8 + 50) + (40 + 8 + 50));
    assert_eq!(st.tx_dropped, 2);
    assert!(st.rx_packets >= 2, "{st:?}");
}

#[test]
fn tun_multi_queue_opens_several_queues_of_one_interface() {
    let Some(ns) = netns_or_skip("tmq") else {
        return;
    };
    let (q0, q1) = in_netns(&ns.name, || {
        let cfg = TunConfig {
            name: Some("mxq0".into()),
            multi_queue: true,
        };
        let q0 = TunPort::open(&cfg).expect("queue 0");
        let q1 = TunPort::open(&cfg).expect("queue 1");
        // A single-queue open of a multi-queue interface is refused by the kernel.
        assert!(TunPort::open(&TunConfig::named("mxq0")).is_err());
        (q0, q1)
    });
    assert_eq!(q0.ifname(), "mxq0");
    assert_eq!(q1.ifname(), "mxq0");
}

/// Namespaces A and B joined by two veth pairs: a1 (10.1.0.1, fd00:1::1) <-> b1 (10.1.0.2,
/// fd00:1::2) and a2 (10.2.0.1, fd00:2::1) <-> b2 (10.2.0.2, fd00:2::2).
struct TwoLinks {
    a: Netns,
    b: Netns,
}

impl TwoLinks {
    fn new() -> Option<TwoLinks> {
        let a = netns_or_skip("ua")?;
        let b = Netns::new("ub").unwrap();
        for k in 1..=2 {
            let (va, vb) = (format!("a{k}"), format!("b{k}"));
            veth(&a, &va, &b, &vb);
            addr(&a, &va, &format!("10.{k}.0.1/24"));
            addr(&b, &vb, &format!("10.{k}.0.2/24"));
            addr(&a, &va, &format!("fd00:{k}::1/64"));
            addr(&b, &vb, &format!("fd00:{k}::2/64"));
        }
        Some(TwoLinks { a, b })
    }
}

/// Sends 32 packets with outer headers `from -> to` in one burst and checks what `rx` sees.
fn burst_of_32(tx: &mut UdpSocketPort, rx: &mut UdpSocketPort, to: SocketAddr) {
    let mut pool = HeapPool::default();
    let from = tx.local_addr();
    let lens: Vec<usize> = (0..32).map(|i| 10 + i * 41).collect();
    let mut pkts: Vec<HeapBuf> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| HeapBuf::from_slice(&udp_packet(from, to, &payload(i as u32, l))))
        .collect();
    assert_eq!(tx.tx_burst(&mut pool, &mut pkts), 32);
    let st = tx.stats();
    assert_eq!(st.tx_packets, 32);
    assert_eq!(st.tx_bytes, lens.iter().sum::<usize>() as u64);
    assert_eq!(tx.extra_stats().tx_src_mismatch, 0);
    // Everything is queued by now (veth delivers synchronously); one rx burst takes all 32.
    thread::sleep(Duration::from_millis(100));
    let mut out = Vec::new();
    assert_eq!(rx.rx_burst(&mut pool, &mut out, 32), 32, "one burst of 32");
    let hdr = if to.is_ipv4() { 28 } else { 48 };
    for (i, b) in out.iter().enumerate() {
        let (s, d, total, ulen, data) = parse_udp(b.data());
        assert_eq!(s, from, "sender address:port");
        assert_eq!(d, to, "socket address:port");
        assert_eq!(total, hdr + lens[i]);
        assert_eq!(ulen, 8 + lens[i]);
        assert_eq!(data, payload(i as u32, lens[i]), "in order, intact");
        if to.is_ipv4() {
            assert_eq!(b.data()[26..28], [0, 0], "no UDP checksum over IPv4");
        }
    }
    let st = rx.stats();
    assert_eq!(st.rx_packets, 32);
    assert_eq!(
        st.rx_bytes,
        lens.iter().map(|l| (hdr + l) as u64).sum::<u64>()
    );
}

#[test]
fn udp_ports_carry_bursts_with_synthesized_ipv4_headers() {
    let Some(t) = TwoLinks::new() else { return };
    let mut tx = open_udp(&t.a, "10.1.0.1:0", Some("a1"));
    let mut rx = open_udp(&t.b, "10.1.0.2:5000", Some("b1"));
    assert_ne!(tx.local_addr().port(), 0);
    assert_eq!(tx.name(), format!("udp:a1/{}", tx.local_addr()));
    burst_of_32(&mut tx, &mut rx, "10.1.0.2:5000".parse().unwrap());
}

#[test]
fn udp_ports_carry_bursts_with_synthesized_ipv6_headers() {
    let Some(t) = TwoLinks::new() else { return };
    let mut tx = open_udp(&t.a, "[fd00:1::1]:0", Some("a1"));
    let mut rx = open_udp(&t.b, "[fd00:1::2]:5000", Some("b1"));
    burst_of_32(&mut tx, &mut rx, "[fd00:1::2]:5000".parse().unwrap());
}

#[test]
fn udp_port_bound_to_a_device_receives_only_what_arrives_on_it() {
    let Some(t) = TwoLinks::new() else { return };
    let mut pool = HeapPool::default();
    // Same wildcard port on both links: SO_BINDTODEVICE before bind keeps them apart, and
    // IP_PKTINFO tells the real destination address.
    let mut on_b1 = open_udp(&t.b, "0.0.0.0:5002", Some("b1"));
    let mut on_b2 = open_udp(&t.b, "0.0.0.0:5002", Some("b2"));
    let mut via_a2 = open_udp(&t.a, "10.2.0.1:0", Some("a2"));
    let to: SocketAddr = "10.2.0.2:5002".parse().unwrap();
    let mut pkts: Vec<HeapBuf> = (0..4)
        .map(|i| HeapBuf::from_slice(&udp_packet(via_a2.local_addr(), to, &payload(i, 20))))
        .collect();
    assert_eq!(via_a2.tx_burst(&mut pool, &mut pkts), 4);
    let got = collect_marked(&mut on_b2, &mut pool, 4, Duration::from_secs(3));
    assert_eq!(got.len(), 4, "the socket bound to b2 receives");
    let (s, d, ..) = parse_udp(&got[0]);
    assert_eq!(
        (s, d),
        (via_a2.local_addr(), to),
        "destination from IP_PKTINFO"
    );
    let stray = collect_marked(&mut on_b1, &mut pool, 1, Duration::from_millis(300));
    assert!(
        stray.is_empty(),
        "the socket bound to b1 sees nothing from b2"
    );
    assert_eq!(on_b1.stats().rx_packets, 0);

    // And the other way round.
    let mut via_a1 = open_udp(&t.a, "10.1.0.1:0", Some("a1"));
    let to1: SocketAddr = "10.1.0.2:5002".parse().unwrap();
    let mut pkts = vec![HeapBuf::from_slice(&udp_packet(
        via_a1.local_addr(),
        to1,
        &payload(9, 20),
    ))];
    assert_eq!(via_a1.tx_burst(&mut pool, &mut pkts), 1);
    let got = collect_marked(&mut on_b1, &mut pool, 1, Duration::from_secs(3));
    assert_eq!(got.len(), 1);
    assert_eq!(parse_udp(&got[0]).1, to1);
    assert!(collect_marked(&mut on_b2, &mut pool, 1, Duration::from_millis(300)).is_empty());
    assert_eq!(on_b2.stats().rx_packets, 4);
}

#[test]
fn udp_port_counts_malformed_and_source_mismatch_on_tx() {
    let Some(t) = TwoLinks::new() else { return };
    let mut pool = HeapPool::default();
    let mut tx = open_udp(&t.a, "10.1.0.1:0", Some("a1"));
    let mut rx = open_udp(&t.b, "10.1.0.2:5003", Some("b1"));
    let me = tx.local_addr();
    let to = rx.local_addr();
    let good = udp_packet(me, to, &payload(1, 30));
    let mut truncated = good.clone();
    truncated.truncate(25);
    let mut not_udp = good.clone();
    not_udp[9] = 6;
    let v6 = udp_packet(
        "[fd00:1::1]:1".parse().unwrap(),
        "[fd00:1::2]:5003".parse().unwrap(),
        &payload(2, 30),
    );
    let other_src = udp_packet(
        SocketAddr::new(Ipv4Addr::new(10, 9, 9, 9).into(), 4242),
        to,
        &payload(3, 30),
    );
    let mut pkts: Vec<HeapBuf> = [&good, &truncated, &not_udp, &v6, &other_src]
        .iter()
        .map(|p| HeapBuf::from_slice(p))
        .collect();
    assert_eq!(tx.tx_burst(&mut pool, &mut pkts), 2);
    let ex = tx.extra_stats();
    assert_eq!(ex.tx_malformed, 3, "truncated, not UDP, wrong family");
    assert_eq!(ex.tx_src_mismatch, 1);
    assert_eq!(tx.stats().tx_dropped, 3);
    let got = collect_marked(&mut rx, &mut pool, 2, Duration::from_secs(3));
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_eq!(parse_udp(g).0, me, "the kernel picks the source");
    }
}

#[test]
fn mini_cmadp_path_tun_to_udp_with_mx_trailer_and_back() {
    let Some(a) = netns_or_skip("ma") else {
        return;
    };
    let b = Netns::new("mb").unwrap();
    veth(&a, "a1", &b, "b1");
    addr(&a, "a1", "10.1.0.1/24");
    addr(&b, "b1", "10.1.0.2/24");
    let mut tun = tun_in(&a);
    let mut port_a = open_udp(&a, "10.1.0.1:0", Some("a1"));
    let mut port_b = open_udp(&b, "10.1.0.2:5000", Some("b1"));
    let app = bind(&a, "10.200.0.1:0");
    let mut pool = HeapPool::default();

    let n = 8u32;
    for i in 0..n {
        app.send_to(&payload(i, 10 + 150 * i as usize), "10.200.0.2:9000")
            .unwrap();
    }
    // TUN rx: the application's packets.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut sdus: Vec<HeapBuf> = Vec::new();
    let mut out = Vec::new();
    while sdus.len() < n as usize && Instant::now() < deadline {
        out.clear();
        if tun.rx_burst(&mut pool, &mut out, 32) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        for b in out.drain(..) {
            if marker(b.data()).is_some() {
                sdus.push(b);
            } else {
                pool.free(b);
            }
        }
    }
    assert_eq!(sdus.len(), n as usize);
    let originals: Vec<Vec<u8>> = sdus.iter().map(|b| b.to_vec()).collect();

    // Wrap: MX trailer (draft-04 §4.2.1, default layout) + outer IPv4/UDP.
    let src = port_a.local_addr();
    let dst = port_b.local_addr();
    for (sn, b) in sdus.iter_mut().enumerate() {
        let trailer = MxTrailer {
            connection_id: Some(1),
            sequence_number: Some(sn as u16),
            ..MxTrailer::default()
        };
        add_trailer(b, &trailer, false).expect("add_trailer");
        assert!(b.prepend(28).is_some(), "headroom for the outer header");
        emit_outer(b.data_mut(), src, dst);
    }
    assert_eq!(port_a.tx_burst(&mut pool, &mut sdus), n as usize);

    // Peer: rx, remove the synthesized 28 bytes, strip the trailer.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got: Vec<HeapBuf> = Vec::new();
    while got.len() < n as usize && Instant::now() < deadline {
        if port_b.rx_burst(&mut pool, &mut got, 32) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(got.len(), n as usize);
    for (sn, mut b) in got.into_iter().enumerate() {
        let (s, d, ..) = parse_udp(b.data());
        assert_eq!((s, d), (src, dst));
        assert!(b.adj(28));
        let opts = PduOptions {
            header_optimization: false,
            trailer_fields: None,
        };
        let st = strip_trailer(&mut b, opts).expect("strip_trailer");
        let tr = st.trailer.expect("trailer");
        assert_eq!(tr.sequence_number, Some(sn as u16));
        assert_eq!(tr.connection_id, Some(1));
        assert_eq!(b.data(), &originals[sn][..], "original packet restored");
        pool.free(b);
    }
    assert_eq!(port_b.stats().rx_packets, u64::from(n));
}
