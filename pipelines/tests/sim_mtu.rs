//! Fragmentation when the path MTU is smaller than the SDU (draft-04 §4.2.2), concatenation of
//! small packets (§4.2.3), and both under client NAT and header optimization.

use pipelines::engine::Adaptation;
use pipelines::flow::MS;
use pipelines::sim::two_path::{FlowDir, FlowSpec, SimConfig, SimReport, SizeSpec, TwoPathSim};

fn check(name: &str, r: &SimReport) {
    println!("sim_mtu {name}: {}", r.summary());
    for dir in [FlowDir::Down, FlowDir::Up] {
        let t = r.total(dir);
        assert!(t.sent > 50, "{name}");
        assert_eq!(
            (
                t.missing(),
                t.duplicates,
                t.out_of_order,
                t.checksum_errors,
                t.malformed
            ),
            (0, 0, 0, 0, 0),
            "{name} {dir:?}"
        );
    }
}

fn fragmenting(adaptation: Adaptation, name: &str) {
    let mut cfg = SimConfig::wifi_lte();
    cfg.adaptation = adaptation;
    cfg.duration_ns = 800 * MS;
    // LTE has a 1000-byte MTU; SDUs of 600..1480 bytes.
    cfg.paths[1].mtu = 1000;
    let mut down = FlowSpec::udp(1, FlowDir::Down, 10_000_000, 1000);
    // Up to 1460 bytes: + 28 (IPv4/UDP) + 5 (trailer) still fits Wi-Fi's 1500.
    down.size = SizeSpec::Range(600, 1460);
    let mut up = FlowSpec::udp(2, FlowDir::Up, 4_000_000, 1000);
    up.size = SizeSpec::Range(900, 1400);
    cfg.flows = vec![down, up];
    for f in &mut cfg.flows {
        f.start_ns = 300 * MS;
    }
    let r = TwoPathSim::new(cfg).run();
    check(name, &r);
    let lte = &r.paths[1];
    assert!(
        lte.nmadp.tx_fragments > 0 && lte.cmadp.tx_fragments > 0,
        "{name}: LTE fragments"
    );
    assert_eq!(
        r.paths[0].nmadp.tx_fragments, 0,
        "{name}: Wi-Fi (MTU 1500) does not"
    );
    assert!(r.max_reassembly_bytes > 0);
}

#[test]
fn s4_2_2_fragmentation_when_the_path_mtu_is_smaller_than_the_sdu() {
    fragmenting(
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
        "fragment-udp",
    );
    fragmenting(
        Adaptation::UdpTunnel {
            header_optimization: true,
        },
        "fragment-udp-ho",
    );
    fragmenting(Adaptation::ClientNat, "fragment-nat");
}

fn voip(adaptation: Adaptation, concatenation: bool) -> SimReport {
    let mut cfg = SimConfig::wifi_lte();
    cfg.adaptation = adaptation;
    cfg.concatenation = concatenation;
    cfg.duration_ns = 800 * MS;
    cfg.tick_ns = 5 * MS;
    // Concatenation packs SDUs with consecutive SNs on one path (draft-04 §4.2.3): keep the
    // voice class on one path.
    cfg.steering = pipelines::flow::steering::SteeringMode::ActiveStandby;
    // 64-byte VoIP-like packets: 8 downlink and 4 uplink flows of 200 kbit/s each.
    cfg.flows = (0..12)
        .map(|i| {
            let dir = if i < 8 { FlowDir::Down } else { FlowDir::Up };
            let mut f = FlowSpec::udp(i, dir, 200_000, 64);
            f.start_ns = 300 * MS;
            f
        })
        .collect();
    TwoPathSim::new(cfg).run()
}

#[test]
fn s4_2_3_concatenation_of_small_packets_reduces_pdu_count() {
    for ad in [
        Adaptation::UdpTunnel {
            header_optimization: false,
        },
        Adaptation::UdpTunnel {
            header_optimization: true,
        },
        Adaptation::ClientNat,
    ] {
        let plain = voip(ad, false);
        let packed = voip(ad, true);
        check(&format!("voip-{ad:?}-plain"), &plain);
        check(&format!("voip-{ad:?}-concat"), &packed);
        let pdus = |r: &SimReport| {
            r.paths
                .iter()
                .map(|p| p.nmadp.tx_pdus + p.cmadp.tx_pdus)
                .sum::<u64>()
        };
        let concat = packed
            .paths
            .iter()
            .map(|p| p.nmadp.tx_concatenated + p.cmadp.tx_concatenated)
            .sum::<u64>();
        println!(
            "sim_mtu concatenation {ad:?}: {} PDUs without, {} with ({} concatenated)",
            pdus(&plain),
            pdus(&packed),
            concat
        );
        assert!(concat > 0);
        assert!(
            pdus(&packed) * 2 < pdus(&plain),
            "{ad:?}: at least halves the PDU count"
        );
    }
}
