//! Unit tests of the engine: one small N-MADP/C-MADP pair wired by hand.

use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::buf::{HeapBuf, HeapPool};
use crate::flow::MS;
use crate::mx;
use crate::sim::two_path::{parse_sdu, FlowDir, FlowSpec, TwoPathSim};
use crate::wire::mx_control::{ControlMessage, ProbeReq};
use crate::wire::mx_trailer::{flags, MxTrailer, TrailerFields};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const CONTROL: &str = "192.0.2.1:8888";
const N_WIFI: &str = "192.0.2.1:10021";
const C_WIFI: &str = "198.51.100.10:40001";
const ANCHOR: &str = "10.0.0.2";
const SERVER: &str = "8.8.4.4";

fn client(role: Role, convergence: Convergence, adaptation: Adaptation) -> ClientConfig {
    let (local, remote) = match role {
        Role::NMadp => (sa(N_WIFI), sa(C_WIFI)),
        Role::CMadp => (sa(C_WIFI), sa(N_WIFI)),
    };
    let mut d = DeliveryConfig::udp_tunnel(PathId(1), local, Some(remote));
    d.adaptation = adaptation;
    d.client_addr = Some(sa(C_WIFI).ip());
    if !matches!(adaptation, Adaptation::UdpTunnel { .. }) {
        d.remote = (convergence == Convergence::Gre).then(|| SocketAddr::new(remote.ip(), 0));
    }
    ClientConfig {
        id: ClientId(7),
        anchor_addr: ip(ANCHOR),
        anchors: vec![AnchorConnection { connection_id: 1 }],
        traffic_classes: vec![],
        steering: SteeringMode::ActiveStandby,
        convergence,
        deliveries: vec![d],
    }
}

fn engine(role: Role, convergence: Convergence, adaptation: Adaptation) -> Engine<HeapBuf> {
    let mut cfg = EngineConfig::new(role, sa(CONTROL));
    cfg.reorder_timeout = ReorderTimeout::Fixed;
    cfg.reorder.timeout_ns = 50 * MS;
    // These tests reorder packets of one path by hand (the path horizon would take a gap on a
    // single path for a loss at once); `path_horizon_*` below test it with two paths.
    cfg.reorder.path_horizon = false;
    let mut e = Engine::new(cfg);
    e.add_client(client(role, convergence, adaptation)).unwrap();
    e.set_path_usable(ClientId(7), PathId(1), true);
    e
}

fn pair(convergence: Convergence, adaptation: Adaptation) -> (Engine<HeapBuf>, Engine<HeapBuf>) {
    (
        engine(Role::NMadp, convergence, adaptation),
        engine(Role::CMadp, convergence, adaptation),
    )
}

fn down_sdu(pool: &mut HeapPool, counter: u64, size: usize) -> HeapBuf {
    let spec = FlowSpec::udp(1, FlowDir::Down, 1_000_000, size);
    TwoPathSim::make_sdu(
        pool,
        &spec,
        counter,
        SocketAddr::new(ip(SERVER), 53),
        SocketAddr::new(ip(ANCHOR), 5000),
    )
}

fn deliveries(out: &mut Vec<Output<HeapBuf>>) -> Vec<HeapBuf> {
    out.drain(..)
        .filter_map(|o| match o {
            Output::Delivery { pkt, .. } => Some(pkt),
            _ => None,
        })
        .collect()
}

fn anchors(out: &mut Vec<Output<HeapBuf>>) -> Vec<u64> {
    out.drain(..)
        .filter_map(|o| match o {
            Output::Anchor(pkt) => parse_sdu(pkt.data()).map(|(_, c, ok)| {
                assert!(ok, "checksums valid");
                c
            }),
            _ => None,
        })
        .collect()
}

#[test]
fn s4_2_downlink_sdu_round_trips_over_every_adaptation() {
    for (conv, ad) in [
        (
            Convergence::Trailer,
            Adaptation::UdpTunnel {
                header_optimization: false,
            },
        ),
        (
            Convergence::Trailer,
            Adaptation::UdpTunnel {
                header_optimization: true,
            },
        ),
        (Convergence::Trailer, Adaptation::ClientNat),
        (Convergence::Trailer, Adaptation::PassThrough),
        (
            Convergence::Gre,
            Adaptation::UdpTunnel {
                header_optimization: false,
            },
        ),
        (Convergence::Gre, Adaptation::PassThrough),
    ] {
        let (mut n, mut c) = pair(conv, ad);
        let mut pool = HeapPool::default();
        let mut out = Vec::new();
        let sdu = down_sdu(&mut pool, 5, 300);
        let original = sdu.to_vec();
        n.from_anchor(sdu, 0, &mut pool, &mut out);
        let pdus = deliveries(&mut out);
        assert_eq!(pdus.len(), 1, "{conv:?} {ad:?}");
        for p in pdus {
            c.from_delivery(p, MS, &mut pool, &mut out);
        }
        let got: Vec<Vec<u8>> = out
            .drain(..)
            .filter_map(|o| match o {
                Output::Anchor(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            vec![original],
            "{conv:?} {ad:?}: SDU restored byte for byte"
        );
        assert_eq!(c.counters().total_drops(), 0);
    }
}

#[test]
fn s4_1_udp_tunnel_outer_header_uses_path_endpoints_and_incrementing_ident() {
    let (mut n, _) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    for i in 0..2 {
        let s = down_sdu(&mut pool, i, 100);
        n.from_anchor(s, 0, &mut pool, &mut out);
    }
    let pdus = deliveries(&mut out);
    let idents: Vec<u16> = pdus
        .iter()
        .map(|p| {
            let v4 = crate::wire::ipv4::Packet::new_checked(p.data()).unwrap();
            assert!(v4.verify_checksum());
            assert_eq!(IpAddr::from(v4.src_addr()), sa(N_WIFI).ip());
            assert_eq!(IpAddr::from(v4.dst_addr()), sa(C_WIFI).ip());
            assert_eq!(v4.hop_limit(), 64);
            let u = crate::wire::udp::Packet::new_checked(&p.data()[20..]).unwrap();
            assert_eq!((u.src_port(), u.dst_port()), (10021, 40001));
            assert!(u.verify_checksum(&sa(N_WIFI).ip(), &sa(C_WIFI).ip()));
            v4.ident()
        })
        .collect();
    assert_eq!(idents[1], idents[0].wrapping_add(1));
}

#[test]
fn s4_1_udp_checksum_is_off_by_default_can_be_enabled_per_path_and_the_peer_accepts_zero() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let (cid, wifi) = (n.client_ids()[0], PathId(1));
    // Off by default (DeliveryConfig::udp_checksum): the first PDU goes out with 0.
    assert!(!n.set_udp_checksum(cid, PathId(99), false));
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    let s = down_sdu(&mut pool, 0, 100);
    n.from_anchor(s, 0, &mut pool, &mut out);
    let mut pdus = deliveries(&mut out);
    assert_eq!(pdus.len(), 1);
    let p = pdus.remove(0);
    assert!(crate::wire::ipv4::Packet::new_checked(p.data())
        .unwrap()
        .verify_checksum());
    assert_eq!(&p.data()[26..28], &[0, 0], "RFC 768: zero = no checksum");
    // Re-enabled: a real checksum again.
    assert!(n.set_udp_checksum(cid, wifi, true));
    let s = down_sdu(&mut pool, 1, 100);
    n.from_anchor(s, 0, &mut pool, &mut out);
    let q = deliveries(&mut out).remove(0);
    assert_ne!(&q.data()[26..28], &[0, 0]);
    // The receiver accepts the zero-checksum PDU, then the checksummed one.
    c.from_delivery(p, 0, &mut pool, &mut out);
    assert_eq!(anchors(&mut out), vec![0]);
    c.from_delivery(q, 0, &mut pool, &mut out);
    assert_eq!(anchors(&mut out), vec![1]);
}

#[test]
fn s4_2_1_sn_continues_per_connection_and_tc_and_trailer_has_negotiated_fields_only() {
    let mut cfg = client(Role::NMadp, Convergence::Trailer, Adaptation::PassThrough);
    cfg.deliveries[0].trailer_tx = TrailerFields::new(flags::SEQUENCE_NUMBER);
    let mut n = Engine::<HeapBuf>::new(EngineConfig::new(Role::NMadp, sa(CONTROL)));
    n.add_client(cfg).unwrap();
    n.set_path_usable(ClientId(7), PathId(1), true);
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    for i in 0..3 {
        let s = down_sdu(&mut pool, i, 100);
        n.from_anchor(s, 0, &mut pool, &mut out);
    }
    let sns: Vec<Option<u16>> = deliveries(&mut out)
        .iter()
        .map(|p| {
            let t = MxTrailer::parse(p.data()).unwrap();
            assert_eq!(t.connection_id, None, "CID not negotiated");
            assert_eq!(t.next_header, Some(17), "NH always in the default layout");
            t.sequence_number
        })
        .collect();
    assert_eq!(sns, vec![Some(0), Some(1), Some(2)]);
}

#[test]
fn s5_control_pdus_round_trip_between_roles() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    let req = ControlPdu {
        cid: 1,
        message: ControlMessage::ProbeReq(ProbeReq {
            sequence_number: 9,
            ack_requested: true,
            ..ProbeReq::default()
        }),
    };
    let b = n
        .build_control(ClientId(7), PathId(1), &req, &mut pool)
        .unwrap();
    c.from_delivery(b, 0, &mut pool, &mut out);
    match out.pop() {
        Some(Output::Control {
            client,
            path,
            peer,
            pdu,
        }) => {
            assert_eq!(
                (client, path, peer, pdu),
                (Some(ClientId(7)), Some(PathId(1)), sa(CONTROL), req)
            );
        }
        o => panic!("{o:?}"),
    }
    let ack = ControlPdu {
        cid: 1,
        message: ControlMessage::ProbeAck { ack_number: 9 },
    };
    let b = c
        .build_control(ClientId(7), PathId(1), &ack, &mut pool)
        .unwrap();
    n.from_delivery(b, 0, &mut pool, &mut out);
    match out.pop() {
        Some(Output::Control {
            client,
            path,
            peer,
            pdu,
        }) => {
            assert_eq!(
                (client, path, peer, pdu),
                (Some(ClientId(7)), Some(PathId(1)), sa(C_WIFI), ack)
            );
        }
        o => panic!("{o:?}"),
    }
    // draft-04 §5.2: only the N-MADP sends REQs.
    assert!(c
        .build_control(ClientId(7), PathId(1), &req, &mut pool)
        .is_none());
    assert_eq!(c.counters().dropped(DropReason::MxControlInvalid), 1);
}

#[test]
fn drops_free_the_buffer_and_count_one_reason() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::new(16, 0, 128, 2176);
    let mut out = Vec::new();
    // Malformed, unknown client, not a delivery packet, no path.
    let mut junk = pool.alloc().unwrap();
    junk.extend_from_slice(&[0x45, 0, 0]);
    n.from_anchor(junk, 0, &mut pool, &mut out);
    let mut stranger = down_sdu(&mut pool, 0, 100);
    stranger.data_mut()[19] = 99; // another destination
    crate::wire::ipv4::Packet::new_unchecked(stranger.data_mut()).fill_checksum();
    n.from_anchor(stranger, 0, &mut pool, &mut out);
    let plain = down_sdu(&mut pool, 0, 100);
    c.from_delivery(plain, 0, &mut pool, &mut out);
    n.set_path_usable(ClientId(7), PathId(1), false);
    let s = down_sdu(&mut pool, 1, 100);
    n.from_anchor(s, 0, &mut pool, &mut out);
    assert!(out.is_empty());
    assert_eq!(n.counters().dropped(DropReason::Truncated), 1);
    assert_eq!(n.counters().dropped(DropReason::UnknownClient), 1);
    assert_eq!(n.counters().dropped(DropReason::NoPath), 1);
    assert_eq!(c.counters().dropped(DropReason::UnknownDeliveryPacket), 1);
    assert_eq!(n.client_counters(ClientId(7)).unwrap().no_path, 1);
    assert_eq!(
        pool.available(),
        pool.allocated(),
        "every buffer back in the pool"
    );
}

#[test]
fn s4_2_1_reorder_releases_in_order_and_times_out_gaps() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    for i in 0..4 {
        let s = down_sdu(&mut pool, i, 100);
        n.from_anchor(s, 0, &mut pool, &mut out);
    }
    let mut pdus = deliveries(&mut out);
    let third = pdus.remove(2);
    let _lost_second = pdus.remove(1);
    c.from_delivery(pdus.remove(0), MS, &mut pool, &mut out); // SN 0
    c.from_delivery(pdus.remove(0), MS, &mut pool, &mut out); // SN 3: held
    c.from_delivery(third, 2 * MS, &mut pool, &mut out); // SN 2: held
    assert_eq!(anchors(&mut out), vec![0]);
    assert_eq!(c.next_deadline(), Some(MS + 50 * MS));
    c.poll(50 * MS, &mut pool, &mut out);
    assert!(out.is_empty());
    c.poll(51 * MS, &mut pool, &mut out);
    assert_eq!(
        anchors(&mut out),
        vec![2, 3],
        "SN 1 given up after the timeout"
    );
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn duplicates_are_dropped_and_their_buffers_returned() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::new(64, 0, 128, 2176);
    let mut out = Vec::new();
    let s = down_sdu(&mut pool, 0, 100);
    n.from_anchor(s, 0, &mut pool, &mut out);
    let pdu = deliveries(&mut out).remove(0);
    let copy = HeapBuf::from_slice(pdu.data());
    c.from_delivery(pdu, 0, &mut pool, &mut out);
    let mut copy2 = pool.alloc().unwrap();
    copy2.extend_from_slice(copy.data());
    c.from_delivery(copy2, 0, &mut pool, &mut out);
    assert_eq!(anchors(&mut out), vec![0]);
    assert_eq!(c.counters().dropped(DropReason::ReorderDuplicate), 1);
}

fn tunnel_from(pdu: &HeapBuf, from: SocketAddr) -> HeapBuf {
    // Re-wrap the inner MX PDU of `pdu` (N-MADP -> C-MADP... here C -> N) with another source.
    let inner = &pdu.data()[28..];
    let mut b = HeapBuf::from_slice(inner);
    adapt::push_udp_ip(&mut b, from, sa(N_WIFI), 1).unwrap();
    b
}

#[test]
fn nat_rebinding_only_for_session_pdus_with_a_plausible_sn() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    let spec = FlowSpec::udp(1, FlowDir::Up, 1_000_000, 200);
    let up = |c: &mut Engine<HeapBuf>, pool: &mut HeapPool, out: &mut Vec<Output<HeapBuf>>, i| {
        let s = TwoPathSim::make_sdu(
            pool,
            &spec,
            i,
            SocketAddr::new(ip(ANCHOR), 5000),
            SocketAddr::new(ip(SERVER), 53),
        );
        c.from_anchor(s, 0, pool, out);
        deliveries(out).remove(0)
    };
    let p0 = up(&mut c, &mut pool, &mut out, 0);
    n.from_delivery(p0, 0, &mut pool, &mut out);
    assert_eq!(anchors(&mut out), vec![0]);
    // The client's NAT rebinds: same session, new public endpoint.
    let moved = sa("198.51.100.99:50000");
    let p1 = up(&mut c, &mut pool, &mut out, 1);
    n.from_delivery(tunnel_from(&p1, moved), MS, &mut pool, &mut out);
    assert_eq!(anchors(&mut out), vec![1]);
    assert_eq!(n.path_remote(ClientId(7), PathId(1)), Some(moved));
    assert_eq!(n.client_counters(ClientId(7)).unwrap().rebinds, 1);
    // A stranger replaying an old-looking SN far outside the window cannot steal the path.
    let stale = {
        let mut b = HeapBuf::from_slice(&p1.data()[28..]);
        // Rewrite the trailer SN (layout: ... SN(2) TC(1) CID(1) NH(1) flags(1)).
        let l = b.len();
        b.data_mut()[l - 6..l - 4].copy_from_slice(&30_000u16.to_be_bytes());
        adapt::push_udp_ip(&mut b, sa("203.0.113.66:1234"), sa(N_WIFI), 1).unwrap();
        b
    };
    n.from_delivery(stale, 2 * MS, &mut pool, &mut out);
    assert!(anchors(&mut out).is_empty());
    assert_eq!(n.path_remote(ClientId(7), PathId(1)), Some(moved));
    assert_eq!(n.counters().dropped(DropReason::UnknownPeer), 1);
    // Not the client's anchor address at all: unknown peer too.
    let mut b = HeapBuf::from_slice(&down_sdu(&mut pool, 3, 100).to_vec());
    adapt::push_udp_ip(&mut b, sa("203.0.113.66:1234"), sa(N_WIFI), 1).unwrap();
    n.from_delivery(b, 3 * MS, &mut pool, &mut out);
    assert_eq!(n.counters().dropped(DropReason::UnknownPeer), 2);
}

#[test]
fn s4_4_gre_sdu_too_big_is_dropped_not_fragmented() {
    let (mut n, _) = pair(
        Convergence::Gre,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    let s = down_sdu(&mut pool, 0, 1500 - 28 - 12 + 1);
    n.from_anchor(s, 0, &mut pool, &mut out);
    assert!(out.is_empty());
    assert_eq!(n.counters().dropped(DropReason::TooBigForGre), 1);
    let s = down_sdu(&mut pool, 1, 1500 - 28 - 12);
    n.from_anchor(s, 0, &mut pool, &mut out);
    let p = deliveries(&mut out);
    assert_eq!(p[0].len(), 1500, "exactly the MTU");
}

#[test]
fn s4_4_1_gre_key_carries_the_anchor_connection_id() {
    let (mut n, _) = pair(Convergence::Gre, Adaptation::PassThrough);
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    let s = down_sdu(&mut pool, 0, 100);
    n.from_anchor(s, 0, &mut pool, &mut out);
    let p = deliveries(&mut out).remove(0);
    assert_eq!(p.data()[9], 47, "outer protocol GRE");
    let g = crate::wire::gre::Packet::new_checked(&p.data()[20..]).unwrap();
    let r = crate::wire::gre::Repr::parse(&g).unwrap();
    assert_eq!(
        (r.anchor_connection_id(), r.sequence_number),
        (Some(1), Some(0))
    );
}

#[test]
fn remove_client_returns_held_buffers() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::new(64, 0, 128, 2176);
    let mut out = Vec::new();
    for i in 0..3 {
        let s = down_sdu(&mut pool, i, 100);
        n.from_anchor(s, 0, &mut pool, &mut out);
    }
    let mut pdus = deliveries(&mut out);
    let third = pdus.remove(2);
    c.from_delivery(pdus.remove(0), 0, &mut pool, &mut out);
    c.from_delivery(third, 0, &mut pool, &mut out);
    assert_eq!(c.reorder_depth(), 1, "SN 2 waits for SN 1");
    for o in out.drain(..) {
        if let Output::Anchor(b) = o {
            pool.free(b);
        }
    }
    drop(pdus);
    assert!(c.remove_client(ClientId(7), &mut pool));
    assert_eq!(c.reorder_depth(), 0);
    assert!(c.client_ids().is_empty());
    assert!(!c.remove_client(ClientId(7), &mut pool));
    assert_eq!(
        pool.available() + 1,
        pool.allocated(),
        "all but the dropped SN 1 PDU returned"
    );
}

#[test]
fn add_client_rejects_duplicates_and_update_delivery_changes_mtu() {
    let mut n = engine(
        Role::NMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let c = client(
        Role::NMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    assert_eq!(
        n.add_client(c.clone()),
        Err(ConfigError::DuplicateClient(ClientId(7)))
    );
    let mut other = c.clone();
    other.id = ClientId(8);
    assert_eq!(
        n.add_client(other.clone()),
        Err(ConfigError::DuplicateAnchorAddress(ClientId(7)))
    );
    other.anchor_addr = ip("10.0.0.3");
    assert_eq!(
        n.add_client(other),
        Err(ConfigError::DuplicateEndpoint(PathId(1)))
    );
    let mut d = c.deliveries[0];
    d.mtu = 600;
    n.update_delivery(ClientId(7), d).unwrap();
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    let s = down_sdu(&mut pool, 0, 600);
    n.from_anchor(s, 0, &mut pool, &mut out);
    // 600 B does not fit 600 - 28: fragmented (or dropped while fragmentation is unavailable).
    let pdus = deliveries(&mut out);
    assert!(pdus.iter().all(|p| p.len() <= 600));
    assert_eq!(n.client_ids(), vec![ClientId(7)]);
}

#[test]
fn adaptive_reorder_timeout_follows_owd_spread() {
    let mut cfg = client(
        Role::CMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut d2 = cfg.deliveries[0];
    d2.id = PathId(2);
    d2.local = sa("203.0.113.10:40002");
    cfg.deliveries.push(d2);
    let mut e = Engine::<HeapBuf>::new(EngineConfig::new(Role::CMadp, sa(CONTROL)));
    e.add_client(cfg).unwrap();
    for p in [PathId(1), PathId(2)] {
        e.set_path_usable(ClientId(7), p, true);
    }
    e.set_path_estimates(ClientId(7), PathId(1), 20 * MS, None);
    e.set_path_estimates(ClientId(7), PathId(2), 80 * MS, None);
    assert_eq!(
        e.reorder_timeout(ClientId(7)),
        Some(120 * MS),
        "WIRE.md: 2 x (max - min)"
    );
    e.set_path_usable(ClientId(7), PathId(2), false);
    assert_eq!(
        e.reorder_timeout(ClientId(7)),
        Some(10 * MS),
        "clamped to 10 ms"
    );
    let _ = e.set_steering(ClientId(7), None, SteeringMode::Weighted);
    assert!(!e.set_steering(ClientId(7), Some(9), SteeringMode::Weighted));
}

#[test]
fn too_many_receive_flows_are_refused() {
    let mut n = engine(
        Role::NMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut c_cfg = EngineConfig::new(Role::CMadp, sa(CONTROL));
    c_cfg.max_rx_flows_per_client = 2;
    let mut c = Engine::<HeapBuf>::new(c_cfg);
    let mut cc = client(
        Role::CMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    cc.deliveries[0].trailer_rx = TrailerFields::new(flags::SEQUENCE_NUMBER);
    c.add_client(cc).unwrap();
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    let mut c_out = Vec::new();
    for tc in 0..4u8 {
        let s = down_sdu(&mut pool, u64::from(tc), 100);
        n.from_anchor(s, 0, &mut pool, &mut out);
        let mut p = deliveries(&mut out).remove(0);
        // Patch the TC byte (trailer: ... TC CID NH flags).
        let l = p.len();
        p.data_mut()[l - 4] = tc;
        let inner_len = l - 28;
        let mut b = HeapBuf::from_slice(&p.data()[28..28 + inner_len]);
        adapt::push_udp_ip(&mut b, sa(N_WIFI), sa(C_WIFI), 1).unwrap();
        c.from_delivery(b, 0, &mut pool, &mut c_out);
    }
    // Flow TC 1 starts at SN 1 and waits for SN 0 (set_initial) until its reorder timeout.
    c.poll(u64::MAX / 2, &mut pool, &mut c_out);
    assert_eq!(anchors(&mut c_out).len(), 2);
    assert_eq!(c.counters().dropped(DropReason::TooManyFlows), 2);
    let _ = mx::PROTOCOL_MX;
}

/// An N-MADP whose client has two usable UDP-tunnel paths (1 and 2) in weighted mode.
fn two_path_nmadp() -> Engine<HeapBuf> {
    two_path_nmadp_with(EngineConfig::new(Role::NMadp, sa(CONTROL)))
}

fn two_path_nmadp_with(engine: EngineConfig) -> Engine<HeapBuf> {
    let mut cfg = client(
        Role::NMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    cfg.steering = SteeringMode::Weighted;
    let mut d2 = cfg.deliveries[0];
    d2.id = PathId(2);
    d2.local = sa("192.0.2.1:10022");
    d2.remote = Some(sa("203.0.113.10:40002"));
    d2.client_addr = Some(ip("203.0.113.10"));
    cfg.deliveries.push(d2);
    let mut e = Engine::<HeapBuf>::new(engine);
    e.add_client(cfg).unwrap();
    for p in [PathId(1), PathId(2)] {
        e.set_path_usable(ClientId(7), p, true);
    }
    e
}

fn paths_used(e: &mut Engine<HeapBuf>, pool: &mut HeapPool, from: u64, n: u64) -> [usize; 2] {
    let mut out = Vec::new();
    for i in from..from + n {
        let s = down_sdu(pool, i, 100);
        e.from_anchor(s, 0, pool, &mut out);
    }
    let used = deliveries_per_path(&out);
    for o in out.drain(..) {
        if let Output::Delivery { pkt, .. } = o {
            pool.free(pkt);
        }
    }
    used
}

#[test]
fn set_path_weight_changes_only_the_steering_weight() {
    let mut e = two_path_nmadp();
    let mut pool = HeapPool::default();
    assert!(e.set_path_weight(ClientId(7), PathId(1), 1));
    assert!(e.set_path_weight(ClientId(7), PathId(2), 3));
    assert_eq!(paths_used(&mut e, &mut pool, 0, 8), [2, 6]);
    assert!(e.set_path_weight(ClientId(7), PathId(1), 0));
    assert_eq!(paths_used(&mut e, &mut pool, 8, 8), [0, 8]);
    // New estimates rebuild the steering parameters but keep the weight set here.
    assert!(e.set_path_estimates(ClientId(7), PathId(1), 5 * MS, Some(1_000_000)));
    assert_eq!(paths_used(&mut e, &mut pool, 16, 8), [0, 8]);
    // Usability is untouched: path 2 stays usable, path 1 too (it just has weight 0).
    let before = e.path_counters(ClientId(7), PathId(2)).unwrap();
    assert!(e.set_path_weight(ClientId(7), PathId(2), 0));
    assert_eq!(
        paths_used(&mut e, &mut pool, 24, 4),
        [2, 2],
        "every weight 0: equal split"
    );
    assert_eq!(
        e.path_counters(ClientId(7), PathId(2)).unwrap().tx_pdus,
        before.tx_pdus + 2
    );
    assert!(!e.set_path_weight(ClientId(7), PathId(9), 1));
    assert!(!e.set_path_weight(ClientId(8), PathId(1), 1));
}

#[test]
fn flush_releases_held_packets_in_order_and_drops_incomplete_sdus() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    for i in 0..5 {
        let s = down_sdu(&mut pool, i, 100);
        n.from_anchor(s, 0, &mut pool, &mut out);
    }
    let mut pdus = deliveries(&mut out);
    let fourth = pdus.remove(4);
    let third = pdus.remove(2);
    c.from_delivery(pdus.remove(0), MS, &mut pool, &mut out); // SN 0
    c.from_delivery(pdus.remove(1), MS, &mut pool, &mut out); // SN 3: held
    c.from_delivery(third, MS, &mut pool, &mut out); // SN 2: held
    assert_eq!(anchors(&mut out), vec![0]);
    // One fragment of a larger SDU: an incomplete reassembly.
    let mut d = client(
        Role::NMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    )
    .deliveries[0];
    d.mtu = 600;
    n.update_delivery(ClientId(7), d).unwrap();
    let big = down_sdu(&mut pool, 9, 1000);
    n.from_anchor(big, 0, &mut pool, &mut out);
    let mut frags = deliveries(&mut out);
    assert!(frags.len() >= 2, "fragmented");
    c.from_delivery(frags.remove(0), MS, &mut pool, &mut out);
    assert!(c.reassembly_bytes() > 0);

    c.flush(&mut pool, &mut out);
    assert_eq!(anchors(&mut out), vec![2, 3], "in order, SN 1 skipped");
    assert_eq!(c.reorder_depth(), 0);
    assert_eq!(c.reassembly_bytes(), 0);
    assert_eq!(c.next_deadline(), None);
    assert_eq!(c.counters().dropped(DropReason::ReassemblyTimeout), 1);
    let k = c.client_counters(ClientId(7)).unwrap();
    assert_eq!(k.reorder.gaps_skipped, 1);
    assert_eq!(k.rx_sdus, 3);
    // The flow's clock did not jump: SN 4 right after is in order, released at once.
    c.from_delivery(fourth, 2 * MS, &mut pool, &mut out);
    assert_eq!(anchors(&mut out), vec![4]);
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn flush_client_releases_only_that_clients_reorder_buffers() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    for i in 0..3 {
        let s = down_sdu(&mut pool, i, 100);
        n.from_anchor(s, 0, &mut pool, &mut out);
    }
    let mut pdus = deliveries(&mut out);
    c.from_delivery(pdus.remove(2), MS, &mut pool, &mut out); // SN 2: held
    assert!(out.is_empty());
    assert!(!c.flush_client(ClientId(8), &mut out));
    assert!(out.is_empty());
    assert!(c.flush_client(ClientId(7), &mut out));
    assert_eq!(anchors(&mut out), vec![2]);
    assert_eq!(c.reorder_depth(), 0);
}

#[test]
fn client_drops_count_attributed_drops_only() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::new(64, 0, 128, 2176);
    let mut out = Vec::new();
    let s = down_sdu(&mut pool, 0, 100);
    n.from_anchor(s, 0, &mut pool, &mut out);
    let pdu = deliveries(&mut out).remove(0);
    let copy = HeapBuf::from_slice(pdu.data());
    c.from_delivery(pdu, 0, &mut pool, &mut out);
    c.from_delivery(copy, 0, &mut pool, &mut out); // duplicate: the client's
    let plain = down_sdu(&mut pool, 1, 100);
    c.from_delivery(plain, 0, &mut pool, &mut out); // not a delivery packet: nobody's
    let _ = anchors(&mut out);
    let d = c.client_drops(ClientId(7)).unwrap();
    assert_eq!(d[DropReason::ReorderDuplicate as usize], 1);
    assert_eq!(d[DropReason::UnknownDeliveryPacket as usize], 0);
    assert_eq!(d.iter().sum::<u64>(), 1);
    assert_eq!(c.counters().dropped(DropReason::UnknownDeliveryPacket), 1);
    assert_eq!(c.counters().dropped(DropReason::ReorderDuplicate), 1);

    // Anchor side: a packet for the client with no usable path is the client's.
    n.set_path_usable(ClientId(7), PathId(1), false);
    let s = down_sdu(&mut pool, 2, 100);
    n.from_anchor(s, 0, &mut pool, &mut out);
    let d = n.client_drops(ClientId(7)).unwrap();
    assert_eq!(d[DropReason::NoPath as usize], 1);
    assert_eq!(n.client_drops(ClientId(8)), None);
}

#[test]
fn poll_visits_only_clients_holding_packets_and_they_leave_the_list() {
    let (mut n, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    let mut pdus = Vec::new();
    for i in 0..3 {
        let s = down_sdu(&mut pool, i, 100);
        n.from_anchor(s, 0, &mut pool, &mut out);
        pdus.extend(deliveries(&mut out));
    }
    assert!(c.held.is_empty());
    // SN 0 in order: nothing held, the client is not listed.
    c.from_delivery(pdus.remove(0), 0, &mut pool, &mut out);
    assert!(c.held.is_empty());
    // SN 2 before 1: held, listed once however many packets it holds.
    c.from_delivery(pdus.remove(1), MS, &mut pool, &mut out);
    assert_eq!(c.held.len(), 1);
    assert_eq!(c.next_deadline(), Some(MS + 50 * MS));
    // SN 1 releases 2: the list empties at the next poll.
    c.from_delivery(pdus.remove(0), 2 * MS, &mut pool, &mut out);
    assert_eq!(anchors(&mut out), vec![0, 1, 2]);
    c.poll(3 * MS, &mut pool, &mut out);
    assert!(c.held.is_empty());
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn delay_compensation_holds_the_faster_path_back_by_the_owd_difference() {
    let mut e = two_path_nmadp();
    let mut pool = HeapPool::default();
    // Path 1 is 40 ms faster one way than path 2.
    assert!(e.set_path_estimates(ClientId(7), PathId(1), 20 * MS, None));
    assert!(e.set_path_estimates(ClientId(7), PathId(2), 60 * MS, None));
    let mut out = Vec::new();
    for i in 0..8 {
        let s = down_sdu(&mut pool, i, 100);
        e.from_anchor(s, 0, &mut pool, &mut out);
    }
    let now_on = |out: &Vec<Output<HeapBuf>>, id: u8| {
        out.iter()
            .filter(|o| matches!(o, Output::Delivery { path, .. } if path.0 == id))
            .count()
    };
    // Weighted 1:1: path 2's half goes at once, path 1's waits 40 ms.
    assert_eq!((now_on(&out, 1), now_on(&out, 2)), (0, 4));
    assert_eq!(e.tx_deadline(), Some(40 * MS));
    assert_eq!(e.next_deadline(), Some(40 * MS));
    out.clear();
    e.poll(40 * MS - 1, &mut pool, &mut out);
    assert!(out.is_empty(), "not before its time");
    e.poll(40 * MS, &mut pool, &mut out);
    assert_eq!(now_on(&out, 1), 4);
    // Released in the order they were steered (their SNs ascend).
    let sns: Vec<u16> = deliveries(&mut out)
        .iter()
        .map(|p| {
            MxTrailer::parse(p.data())
                .ok()
                .and_then(|t| t.sequence_number)
                .unwrap_or(u16::MAX)
        })
        .collect();
    assert!(sns.windows(2).all(|w| w[0] < w[1]), "in order: {sns:?}");
    assert_eq!(e.counters().delayed, 4);
    assert_eq!(e.tx_deadline(), None);
    // Another mode: no hold.
    assert!(e.set_steering(ClientId(7), None, SteeringMode::ActiveStandby));
    let s = down_sdu(&mut pool, 100, 100);
    e.from_anchor(s, 50 * MS, &mut pool, &mut out);
    assert_eq!(now_on(&out, 1), 1);
    assert_eq!(e.tx_deadline(), None);
}

/// Delay-aware steering with compensation: the faster path is held to the slower one's delay
/// and steering models it with that delay, so it splits by queueing (both paths carry data)
/// instead of putting everything on the faster path, whose TCP minimum RTT would then be far
/// below the aggregate's (the BBR collapse of weighted steering, perf/RESULTS.md).
#[test]
fn delay_aware_with_compensation_splits_by_queueing_at_the_slowest_delay() {
    let run = |compensation: bool| {
        let mut cfg = EngineConfig::new(Role::NMadp, sa(CONTROL));
        cfg.delay_compensation = compensation;
        let mut e = two_path_nmadp_with(cfg);
        assert!(e.set_steering(ClientId(7), None, SteeringMode::DelayAware));
        let mut pool = HeapPool::default();
        // Equal rates (10 Mbit/s), path 1 40 ms faster one way.
        assert!(e.set_path_estimates(ClientId(7), PathId(1), 20 * MS, Some(10_000_000)));
        assert!(e.set_path_estimates(ClientId(7), PathId(2), 60 * MS, Some(10_000_000)));
        let mut out = Vec::new();
        for i in 0..8 {
            let s = down_sdu(&mut pool, i, 1000);
            e.from_anchor(s, 0, &mut pool, &mut out);
        }
        let now = deliveries_per_path(&out);
        out.clear();
        e.poll(40 * MS, &mut pool, &mut out);
        (now, deliveries_per_path(&out), e.tx_deadline())
    };
    // Off: 8 kB is 6.4 ms of queue at 10 Mbit/s, far below the 40 ms difference: all on path 1.
    assert_eq!(run(false), ([8, 0], [0, 0], None));
    // On: both paths model 60 ms; they alternate, path 1's half waits its 40 ms hold.
    assert_eq!(run(true), ([0, 4], [4, 0], None));
}

fn deliveries_per_path(out: &[Output<HeapBuf>]) -> [usize; 2] {
    let mut n = [0; 2];
    for o in out {
        if let Output::Delivery { path, .. } = o {
            n[usize::from(path.0) - 1] += 1;
        }
    }
    n
}

#[test]
fn delay_compensation_can_be_turned_off() {
    let mut cfg = EngineConfig::new(Role::NMadp, sa(CONTROL));
    cfg.delay_compensation = false;
    let mut e = two_path_nmadp_with(cfg);
    let mut pool = HeapPool::default();
    for (p, owd) in [(PathId(1), 20 * MS), (PathId(2), 60 * MS)] {
        e.set_path_estimates(ClientId(7), p, owd, None);
    }
    assert_eq!(
        paths_used(&mut e, &mut pool, 0, 8),
        [4, 4],
        "nothing held back"
    );
    assert_eq!(e.tx_deadline(), None);
}

/// N-MADP clients that share the local endpoint (every client's Wi-Fi path ends at 10021),
/// each with its own remote.
fn many_clients(n: u32) -> Engine<HeapBuf> {
    let mut e = Engine::new(EngineConfig::new(Role::NMadp, sa(CONTROL)));
    for i in 0..n {
        let mut c = client(
            Role::NMadp,
            Convergence::Trailer,
            Adaptation::UdpTunnel {
                header_optimization: false,
            },
        );
        c.id = ClientId(100 + i);
        c.anchor_addr = IpAddr::from([10, 1, (i >> 8) as u8, i as u8]);
        c.deliveries[0].remote = Some(SocketAddr::from(([198, 51, 100, 10], 20_000 + i as u16)));
        c.deliveries[0].client_addr = None;
        e.add_client(c).unwrap();
    }
    e
}

#[test]
fn rebind_and_removal_move_only_their_own_index_keys() {
    let mut e = many_clients(3);
    let local = sa(N_WIFI);
    let r = |i: u16| SocketAddr::from(([198, 51, 100, 10], 20_000 + i));
    assert_eq!(
        e.udp_locals.get(&local),
        Some(&3),
        "three paths share the local endpoint"
    );
    for i in 0..3 {
        assert_eq!(
            e.by_udp.get(&(local, r(i))).map(index::PathRef::get),
            Some((i as usize, 0))
        );
        assert_eq!(
            e.by_remote.get(&r(i)).map(index::PathRef::get),
            Some((i as usize, 0))
        );
    }
    // Client 1's endpoint moves (NAT rebinding): its old key goes, the new one comes, the
    // others stay.
    let moved = sa("203.0.113.99:5555");
    e.rebind(1, 0, moved);
    assert_eq!(e.by_udp.get(&(local, r(1))), None);
    assert_eq!(e.by_remote.get(&r(1)), None);
    assert_eq!(
        e.by_udp.get(&(local, moved)).map(index::PathRef::get),
        Some((1, 0))
    );
    assert_eq!(
        e.by_remote.get(&moved).map(index::PathRef::get),
        Some((1, 0))
    );
    assert_eq!(e.by_udp.len(), 3);
    assert_eq!(e.udp_locals.get(&local), Some(&3));
    // Removing client 0 takes only its keys; the shared local endpoint stays known.
    let mut pool = HeapPool::default();
    assert!(e.remove_client(ClientId(100), &mut pool));
    assert_eq!(e.by_udp.get(&(local, r(0))), None);
    assert_eq!(e.by_udp.len(), 2);
    assert_eq!(e.by_remote.len(), 2);
    assert_eq!(e.udp_locals.get(&local), Some(&2));
    for id in [101, 102] {
        assert!(e.remove_client(ClientId(id), &mut pool));
    }
    assert!(e.udp_locals.is_empty() && e.by_udp.is_empty() && e.by_remote.is_empty());
}

#[test]
fn control_pdus_find_their_client_by_the_remote_endpoint() {
    let mut e = many_clients(50);
    let mut c = engine(
        Role::CMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    let ka = ControlPdu {
        cid: 1,
        message: ControlMessage::KeepAlive { sequence_number: 3 },
    };
    let pkt = c
        .build_control(ClientId(7), PathId(1), &ka, &mut pool)
        .unwrap();
    // As if client 123's C-MADP had sent it (its remote endpoint), to the control address.
    let from = SocketAddr::from(([198, 51, 100, 10], 20_023));
    let mut b = HeapBuf::from_slice(&pkt.data()[28..]);
    adapt::push_udp_ip(&mut b, from, sa(CONTROL), 1).unwrap();
    e.from_delivery(b, 0, &mut pool, &mut out);
    pool.free(pkt);
    match out.as_slice() {
        [Output::Control { client, path, .. }] => {
            assert_eq!((*client, *path), (Some(ClientId(123)), Some(PathId(1))));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_add_client_does_not_lose_a_slot() {
    let mut e = many_clients(2);
    let mut dup = client(
        Role::NMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    dup.id = ClientId(999);
    dup.anchor_addr = ip("10.9.9.9");
    dup.deliveries[0].client_addr = None;
    // Client 100's endpoint: refused.
    dup.deliveries[0].remote = Some(SocketAddr::from(([198, 51, 100, 10], 20_000)));
    assert_eq!(
        e.add_client(dup.clone()),
        Err(ConfigError::DuplicateEndpoint(PathId(1)))
    );
    let mut pool = HeapPool::default();
    assert!(e.remove_client(ClientId(101), &mut pool));
    assert_eq!(e.free_slots, vec![1]);
    dup.deliveries[0].remote = Some(sa("198.51.100.10:30000"));
    e.add_client(dup).unwrap();
    assert!(e.free_slots.is_empty(), "the freed slot is reused");
    assert_eq!(e.clients.len(), 2);
}

fn up_sdu(pool: &mut HeapPool, counter: u64, size: usize) -> HeapBuf {
    let spec = FlowSpec::udp(2, FlowDir::Up, 1_000_000, size);
    TwoPathSim::make_sdu(
        pool,
        &spec,
        counter,
        SocketAddr::new(ip(ANCHOR), 5000),
        SocketAddr::new(ip(SERVER), 53),
    )
}

#[test]
fn a_delivery_burst_gives_what_the_packets_one_by_one_give() {
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    // The same uplink PDUs (a rebinding to another endpoint half-way, then a stray packet
    // and a truncated one) into two fresh N-MADPs: one burst vs one packet at a time.
    let (_, mut c) = pair(
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    let mut sdus: Vec<HeapBuf> = (0..12).map(|i| up_sdu(&mut pool, i, 200)).collect();
    c.from_anchor_burst(&mut sdus, 0, &mut pool, &mut out);
    let pdus = deliveries(&mut out);
    assert_eq!(pdus.len(), 12);
    let moved = sa("198.51.100.10:40999");
    let mut burst: Vec<HeapBuf> = pdus
        .iter()
        .enumerate()
        .map(|(i, p)| tunnel_from(p, if i < 6 { sa(C_WIFI) } else { moved }))
        .collect();
    burst.push(tunnel_from(&pdus[0], sa("203.0.113.5:1")));
    burst.push(HeapBuf::from_slice(&pdus[1].data()[..10]));
    let run = |burst_mode: bool, pool: &mut HeapPool| {
        let mut n = engine(
            Role::NMadp,
            Convergence::Trailer,
            Adaptation::UdpTunnel {
                header_optimization: false,
            },
        );
        let mut pkts: Vec<HeapBuf> = burst
            .iter()
            .map(|b| HeapBuf::from_slice(b.data()))
            .collect();
        let mut out = Vec::new();
        if burst_mode {
            n.from_delivery_burst(&mut pkts, MS, pool, &mut out);
        } else {
            for p in pkts.drain(..) {
                n.from_delivery(p, MS, pool, &mut out);
            }
        }
        let got: Vec<Vec<u8>> = out
            .drain(..)
            .map(|o| match o {
                Output::Anchor(b) => b.data().to_vec(),
                other => panic!("{other:?}"),
            })
            .collect();
        let c = n.client_counters(ClientId(7)).unwrap();
        (got, n.counters().clone(), c.rebinds)
    };
    let (a, ca, ra) = run(true, &mut pool);
    let (b, cb, rb) = run(false, &mut pool);
    assert_eq!(a.len(), 12, "every PDU of the session delivered");
    assert_eq!(a, b);
    assert!(ra >= 1, "the session moved to the new endpoint");
    assert_eq!((ra, ca.delivery_rx), (rb, cb.delivery_rx));
    assert_eq!(
        ca.nonzero_drops().collect::<Vec<_>>(),
        cb.nonzero_drops().collect::<Vec<_>>()
    );
    for p in pdus {
        pool.free(p);
    }
}

#[test]
fn peeking_udp_endpoints_never_panics_and_reads_v4_and_v6() {
    let mut b = HeapBuf::from_slice(&[0u8; 8]);
    adapt::push_udp_ip(&mut b, sa("198.51.100.10:40001"), sa(N_WIFI), 1).unwrap();
    assert_eq!(
        super::rx::peek_udp_endpoints(b.data()),
        Some((sa("198.51.100.10:40001"), sa(N_WIFI)))
    );
    let mut b6 = HeapBuf::from_slice(&[0u8; 8]);
    adapt::push_udp_ip(&mut b6, sa("[2001:db8::1]:5"), sa("[2001:db8::2]:6"), 1).unwrap();
    assert_eq!(
        super::rx::peek_udp_endpoints(b6.data()),
        Some((sa("[2001:db8::1]:5"), sa("[2001:db8::2]:6")))
    );
    for n in 0..b.len() {
        let _ = super::rx::peek_udp_endpoints(&b.data()[..n]);
        let _ = super::rx::peek_udp_endpoints(&b6.data()[..n.min(b6.len())]);
    }
    assert_eq!(super::rx::peek_udp_endpoints(&[0x45, 0, 0]), None);
    assert_eq!(
        super::rx::peek_udp_endpoints(&[0x41; 40]),
        None,
        "IHL below 5"
    );
}

/// A shaped path paces its PDUs at its rate: the first leaves at once, each next one when its
/// predecessors have left at 8 Mbit/s, in order; one that would wait past the bound is dropped
/// and counted; an idle shaper sends at once again.
#[test]
fn shaper_paces_a_burst_at_the_path_rate_and_drops_past_its_queue_bound() {
    let mut cfg = client(
        Role::NMadp,
        Convergence::Trailer,
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
    );
    // 8 Mbit/s: one byte per microsecond.
    cfg.deliveries[0].shaper = Some(Shaper {
        rate_bps: 8_000_000,
        queue_ns: 10 * MS,
    });
    let mut e = Engine::<HeapBuf>::new(EngineConfig::new(Role::NMadp, sa(CONTROL)));
    e.add_client(cfg).unwrap();
    e.set_path_usable(ClientId(7), PathId(1), true);
    let mut pool = HeapPool::default();
    let mut out = Vec::new();
    for i in 0..20 {
        let s = down_sdu(&mut pool, i, 1000);
        e.from_anchor(s, 0, &mut pool, &mut out);
    }
    let first = deliveries(&mut out);
    assert_eq!(first.len(), 1, "an idle shaper sends at once");
    let tx = first[0].len() as u64 * 1000; // ns at one byte per µs
                                           // The k-th next PDU leaves at k × tx; those with k × tx beyond 10 ms are dropped.
    let queued = (10 * MS / tx) as usize;
    let dropped = 19 - queued;
    assert!(
        queued >= 5 && dropped >= 5,
        "queued {queued}, dropped {dropped}"
    );
    assert_eq!(
        e.counters().drops[DropReason::ShaperQueueFull as usize],
        dropped as u64
    );
    assert_eq!(
        e.client_drops(ClientId(7)).unwrap()[DropReason::ShaperQueueFull as usize],
        dropped as u64
    );
    assert_eq!(
        e.path_counters(ClientId(7), PathId(1)).unwrap().shaped,
        queued as u64
    );
    assert_eq!(e.tx_deadline(), Some(tx));
    // Each leaves at its turn, not before, in the order it was given.
    let mut sns = Vec::new();
    for k in 1..=queued as u64 {
        e.poll(k * tx - 1, &mut pool, &mut out);
        assert!(out.is_empty(), "PDU {k} not before {} ns", k * tx);
        e.poll(k * tx, &mut pool, &mut out);
        let d = deliveries(&mut out);
        assert_eq!(d.len(), 1, "PDU {k} at its turn");
        sns.push(
            MxTrailer::parse(d[0].data())
                .unwrap()
                .sequence_number
                .unwrap(),
        );
    }
    assert!(sns.windows(2).all(|w| w[0] < w[1]), "in order: {sns:?}");
    assert_eq!(e.tx_deadline(), None);
    // Idle again: at once.
    let t = 100 * MS;
    let s = down_sdu(&mut pool, 99, 1000);
    e.from_anchor(s, t, &mut pool, &mut out);
    assert_eq!(deliveries(&mut out).len(), 1);
    // Taking the shaper off the path (a new configuration) sends the next burst at once.
    let mut d = DeliveryConfig::udp_tunnel(PathId(1), sa(N_WIFI), Some(sa(C_WIFI)));
    d.client_addr = Some(sa(C_WIFI).ip());
    e.update_delivery(ClientId(7), d).unwrap();
    for i in 100..110 {
        let s = down_sdu(&mut pool, i, 1000);
        e.from_anchor(s, t, &mut pool, &mut out);
    }
    assert_eq!(deliveries(&mut out).len(), 10);
    assert_eq!(e.shaping_paths, 0);
}

#[test]
fn clients_configured_alike_share_their_delivery_configuration() {
    let mut e = Engine::<HeapBuf>::new(EngineConfig::new(Role::NMadp, sa(CONTROL)));
    let mut pool = HeapPool::default();
    for i in 0..100u32 {
        let mut c = client(
            Role::NMadp,
            Convergence::Trailer,
            Adaptation::UdpTunnel {
                header_optimization: false,
            },
        );
        c.id = ClientId(i);
        c.anchor_addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0100 + i));
        c.deliveries[0].remote = Some(SocketAddr::new(ip("198.51.100.10"), 1000 + i as u16));
        e.add_client(c).unwrap();
    }
    assert_eq!(
        e.shared_delivery_configs(),
        1,
        "the remotes differ, nothing else"
    );
    // A live weight or rate is the path's own; a configuration change makes a second one.
    assert!(e.set_path_weight(ClientId(3), PathId(1), 9));
    assert_eq!(e.shared_delivery_configs(), 1);
    assert!(e.set_udp_checksum(ClientId(3), PathId(1), true));
    assert_eq!(e.shared_delivery_configs(), 2);
    // The endpoint in use is still each client's own.
    assert_eq!(
        e.path_remote(ClientId(42), PathId(1)),
        Some(SocketAddr::new(ip("198.51.100.10"), 1042))
    );
    assert!(e.remove_client(ClientId(3), &mut pool));
    assert_eq!(e.shared_delivery_configs(), 1, "its own went with it");
    for i in 0..100u32 {
        e.remove_client(ClientId(i), &mut pool);
    }
    assert_eq!(e.shared_delivery_configs(), 0);
}
