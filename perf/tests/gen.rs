//! The generator's packets parse correctly with `pipelines` (correctness only, no speed):
//! downlink SDUs are valid IPv4/UDP with good IP checksums, uplink PDUs decode with
//! `MxPdu::parse` after the outer 28 bytes with the SN pattern requested, the payload is never
//! written, and an N-MADP engine accepts both without a drop.

use std::collections::HashMap;
use std::net::IpAddr;

use perf::gen::{plan, DownlinkGen, SizeMix, UplinkGen, UplinkOrder, OUTER_LEN};
use pipelines::buf::HeapPool;
use pipelines::engine::{Engine, Output};
use pipelines::flow::steering::SteeringMode;
use pipelines::mx::{MxPdu, PduOptions};
use pipelines::wire::mx_trailer::{flags, TrailerFields};
use pipelines::wire::{ipv4, udp};
use pipelines::{HeapBuf, PacketBuf};

const SIZES: [SizeMix; 4] = [
    SizeMix::Fixed(64),
    SizeMix::Fixed(512),
    SizeMix::Fixed(1500),
    SizeMix::Imix,
];

/// A buffer whose bytes (and tailroom) hold a recognisable pattern, longer than any packet.
fn patterned() -> HeapBuf {
    let pat: Vec<u8> = (0..1600u32).map(|i| (i * 7 + 3) as u8).collect();
    HeapBuf::with_room(&pat, 128, 512)
}

fn pattern_at(i: usize) -> u8 {
    (i as u32 * 7 + 3) as u8
}

fn rx_fields() -> PduOptions {
    PduOptions {
        header_optimization: false,
        trailer_fields: Some(TrailerFields::new(
            flags::NEXT_HEADER
                | flags::CONNECTION_ID
                | flags::TRAFFIC_CLASS
                | flags::SEQUENCE_NUMBER,
        )),
    }
}

#[test]
fn downlink_sdus_are_valid_ipv4_udp_to_anchor_addresses() {
    for size in SIZES {
        let clients = 50;
        let mut g = DownlinkGen::new(clients, 4, size, 7);
        let mut tuples = std::collections::HashSet::new();
        for i in 0..240u64 {
            let mut b = patterned();
            assert!(g.fill(&mut b));
            let d = b.data();
            assert_eq!(d.len(), size.len_at(i), "{size:?}");
            let ip = ipv4::Packet::new_checked(d).expect("IPv4 header");
            assert!(ip.verify_checksum(), "IP checksum, {size:?} #{i}");
            assert_eq!(ip.total_len(), d.len());
            assert_eq!(ip.next_header(), ipv4::PROTOCOL_UDP);
            let c = plan::client_of_anchor(ip.dst_addr()).expect("anchor address");
            assert!(c < clients);
            let u = udp::Packet::new_checked(&d[20..]).expect("UDP header");
            assert_eq!(usize::from(u.len()), d.len() - 20);
            assert!(u.verify_checksum(&IpAddr::V4(ip.src_addr()), &IpAddr::V4(ip.dst_addr())));
            tuples.insert((ip.src_addr(), ip.dst_addr(), u.src_port(), u.dst_port()));
            // The payload was not touched.
            assert!(d[28..]
                .iter()
                .enumerate()
                .all(|(k, &x)| x == pattern_at(28 + k)));
        }
        assert!(tuples.len() > 100, "many 5-tuples: {}", tuples.len());
    }
}

/// Per client, the SNs in arrival order, checking every PDU on the way.
fn uplink_sns(order: UplinkOrder, size: SizeMix, n: usize) -> HashMap<u32, Vec<u16>> {
    let clients = 20;
    let mut g = UplinkGen::new(clients, size, order, 11);
    let mut seen: HashMap<u32, Vec<u16>> = HashMap::new();
    for i in 0..n as u64 {
        let mut b = patterned();
        assert!(g.fill(&mut b));
        let d = b.data();
        assert_eq!(d.len(), size.len_at(i).max(g.min_len()));
        let outer = ipv4::Packet::new_checked(d).expect("outer IPv4");
        assert!(outer.verify_checksum());
        assert_eq!(outer.total_len(), d.len());
        assert_eq!(outer.next_header(), ipv4::PROTOCOL_UDP);
        assert_eq!(outer.dst_addr(), plan::NMADP_IP);
        let u = udp::Packet::new_checked(&d[20..]).expect("outer UDP");
        assert_eq!(u.checksum(), 0);
        assert!([plan::nmadp_local(0).port(), plan::nmadp_local(1).port()].contains(&u.dst_port()));
        let pdu = MxPdu::parse(&d[OUTER_LEN..], rx_fields()).expect("MX PDU");
        assert!(pdu.ip.verify_checksum_if_v4(), "inner IP checksum");
        assert_eq!(pdu.sdu_count, 1);
        assert_eq!(pdu.first_protocol, ipv4::PROTOCOL_UDP);
        let t = pdu.trailer.expect("trailer");
        assert_eq!(t.connection_id, Some(plan::CID));
        assert_eq!(t.traffic_class, Some(plan::TC));
        let c = match pdu.ip.src_addr() {
            IpAddr::V4(a) => plan::client_of_anchor(a).expect("anchor source"),
            IpAddr::V6(_) => panic!("IPv6"),
        };
        assert!(c < clients);
        // The outer source is the client's C-MADP endpoint on the path it came by.
        let p = (u.src_port() - 40000) as u8;
        assert_eq!(plan::client_remote(c, p).ip(), &outer.src_addr());
        // Inner UDP payload untouched (between the inner headers and the trailer).
        let end = d.len() - g.trailer_len();
        assert!((OUTER_LEN + 28..end).all(|k| d[k] == pattern_at(k)));
        seen.entry(c)
            .or_default()
            .push(t.sequence_number.expect("SN"));
    }
    seen
}

#[test]
fn uplink_pdus_decode_in_order() {
    for size in SIZES {
        for (c, sns) in uplink_sns(UplinkOrder::InOrder, size, 400) {
            let want: Vec<u16> = (0..sns.len() as u16).collect();
            assert_eq!(sns, want, "client {c}, {size:?}");
        }
    }
}

#[test]
fn uplink_pdus_decode_swapped_in_pairs() {
    for size in SIZES {
        for (c, sns) in uplink_sns(UplinkOrder::PairSwapped, size, 401) {
            // 0, then 2 1, 4 3, ... (the last pair may be cut by the end of the run).
            let mut want = vec![0u16];
            let mut k = 1u16;
            while want.len() < sns.len() {
                want.push(k + 1);
                want.push(k);
                k += 2;
            }
            want.truncate(sns.len());
            assert_eq!(sns, want, "client {c}, {size:?}");
        }
    }
}

/// Extension used above: inner IPv4 header checksum.
trait V4Checksum {
    fn verify_checksum_if_v4(&self) -> bool;
}

impl V4Checksum for pipelines::wire::ip::IpPacket<'_> {
    fn verify_checksum_if_v4(&self) -> bool {
        match self {
            pipelines::wire::ip::IpPacket::V4(p) => p.verify_checksum(),
            pipelines::wire::ip::IpPacket::V6(_) => true,
        }
    }
}

fn engine(clients: u32) -> Engine<HeapBuf> {
    let mut e = Engine::new(plan::engine_config());
    plan::add_clients(&mut e, clients, SteeringMode::Weighted, 1600).expect("clients");
    e
}

#[test]
fn engine_takes_downlink_without_drops() {
    let mut e = engine(30);
    let mut pool = HeapPool::new(256, 64, 128, 2176);
    let mut g = DownlinkGen::new(30, 4, SizeMix::Imix, 3);
    let mut burst = Vec::new();
    let mut out = Vec::new();
    let mut delivered = 0;
    for _ in 0..20 {
        for _ in 0..32 {
            let mut b = HeapBuf::default();
            assert!(g.fill(&mut b));
            burst.push(b);
        }
        e.from_anchor_burst(&mut burst, 0, &mut pool, &mut out);
        for o in out.drain(..) {
            match o {
                Output::Delivery { client, path, pkt } => {
                    let ip = ipv4::Packet::new_checked(pkt.data()).unwrap();
                    let want = plan::client_remote(client.0, path.0);
                    assert_eq!(ip.dst_addr(), *want.ip());
                    delivered += 1;
                }
                o => panic!("unexpected {o:?}"),
            }
        }
    }
    assert_eq!(e.counters().total_drops(), 0);
    assert_eq!(delivered, 640);
}

#[test]
fn engine_reorders_swapped_uplink_without_drops() {
    let clients = 25;
    let mut e = engine(clients);
    let mut pool = HeapPool::new(256, 64, 128, 2176);
    let mut g = UplinkGen::new(clients, SizeMix::Fixed(512), UplinkOrder::PairSwapped, 5);
    let mut out = Vec::new();
    let mut per_client: HashMap<IpAddr, u32> = HashMap::new();
    let n = 1001;
    for _ in 0..n {
        let mut b = HeapBuf::default();
        assert!(g.fill(&mut b));
        e.from_delivery(b, 0, &mut pool, &mut out);
    }
    // A pair cut by the end of the run waits in its reorder buffer until the timeout.
    e.poll(10_000_000_000, &mut pool, &mut out);
    for o in out.drain(..) {
        match o {
            Output::Anchor(pkt) => {
                let ip = ipv4::Packet::new_checked(pkt.data()).unwrap();
                assert!(ip.verify_checksum());
                assert_eq!(ip.next_header(), ipv4::PROTOCOL_UDP);
                *per_client.entry(IpAddr::V4(ip.src_addr())).or_default() += 1;
            }
            o => panic!("unexpected {o:?}"),
        }
    }
    assert_eq!(e.counters().total_drops(), 0, "{:?}", e.counters());
    assert_eq!(per_client.values().sum::<u32>(), n);
}
