//! End to end over every convergence and adaptation: GRE (in UDP and over IP), UDP tunnel with
//! header optimization, client NAT (inner checksums verified at the sink), pass-through, IPv6.

use pipelines::engine::{Adaptation, Convergence};
use pipelines::flow::MS;
use pipelines::sim::two_path::{FlowDir, FlowSpec, SimConfig, SimReport, TwoPathSim};
use pipelines::wire::ipv4::PROTOCOL_TCP;
use pipelines::wire::mx_trailer::{flags, TrailerFields};

fn run(name: &str, f: impl FnOnce(&mut SimConfig)) -> SimReport {
    let mut cfg = SimConfig::wifi_lte();
    cfg.duration_ns = 1000 * MS;
    let mut tcp = FlowSpec::udp(2, FlowDir::Down, 6_000_000, 700);
    tcp.protocol = PROTOCOL_TCP;
    cfg.flows = vec![
        FlowSpec::udp(1, FlowDir::Down, 20_000_000, 1300),
        tcp,
        FlowSpec::udp(3, FlowDir::Up, 6_000_000, 1100),
    ];
    for f in &mut cfg.flows {
        f.start_ns = 300 * MS;
    }
    f(&mut cfg);
    let per_flow = cfg.steering == pipelines::flow::steering::SteeringMode::PerFlow;
    let r = TwoPathSim::new(cfg).run();
    println!("sim_adaptations {name}: {}", r.summary());
    for dir in [FlowDir::Down, FlowDir::Up] {
        let t = r.total(dir);
        assert!(t.sent > 100, "{name} {dir:?}: traffic flowed");
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
    let used = |f: fn(&pipelines::sim::two_path::PathReport) -> u64| {
        r.paths.iter().filter(|p| f(p) > 0).count()
    };
    let min = if per_flow { 1 } else { 2 };
    assert!(
        used(|p| p.nmadp.tx_pdus) >= min && used(|p| p.cmadp.tx_pdus) >= min,
        "{name}: paths used"
    );
    assert!(
        used(|p| p.nmadp.tx_pdus + p.cmadp.tx_pdus) == 2,
        "{name}: both paths used"
    );
    assert_eq!(
        r.nmadp.total_drops() + r.cmadp.total_drops(),
        0,
        "{name}: no drops"
    );
    r
}

#[test]
fn s4_4_gre_in_udp_end_to_end() {
    run("gre-udp", |c| c.convergence = Convergence::Gre);
}

#[test]
fn s4_4_gre_over_ip_end_to_end() {
    run("gre-ip", |c| {
        c.convergence = Convergence::Gre;
        c.adaptation = Adaptation::PassThrough;
    });
}

#[test]
fn s4_2_1_header_optimization_end_to_end() {
    let r = run("header-optimization", |c| {
        c.adaptation = Adaptation::UdpTunnel {
            header_optimization: true,
        };
    });
    // Header optimization leaves the inner IP header unchanged: PDU bytes = SDU + trailer
    // (CID, TC, SN, flags = 5) + outer IPv4/UDP (28).
    let p = &r.paths[0];
    assert!(p.nmadp.tx_bytes > 0);
}

#[test]
fn s4_2_1_header_optimization_without_any_trailer_end_to_end() {
    run("header-optimization-no-trailer", |c| {
        c.adaptation = Adaptation::UdpTunnel {
            header_optimization: true,
        };
        c.trailer = TrailerFields::NONE;
        // Without SNs nothing can be reordered: keep every flow on one path.
        c.steering = pipelines::flow::steering::SteeringMode::PerFlow;
        c.flows.retain(|f| f.id != 2);
        c.flows.push(FlowSpec {
            start_ns: 300 * MS,
            ..FlowSpec::udp(4, FlowDir::Down, 1_000_000, 200)
        });
        c.flows.push(FlowSpec {
            start_ns: 300 * MS,
            ..FlowSpec::udp(5, FlowDir::Up, 1_000_000, 300)
        });
        c.flows.push(FlowSpec {
            start_ns: 300 * MS,
            ..FlowSpec::udp(6, FlowDir::Up, 1_000_000, 300)
        });
        c.flows.push(FlowSpec {
            start_ns: 300 * MS,
            ..FlowSpec::udp(7, FlowDir::Down, 1_000_000, 300)
        });
    });
}

#[test]
fn s4_1_client_nat_end_to_end_with_inner_checksums_verified() {
    run("client-nat", |c| c.adaptation = Adaptation::ClientNat);
}

#[test]
fn s4_1_pass_through_end_to_end() {
    run("pass-through", |c| {
        c.adaptation = Adaptation::PassThrough;
        c.trailer = TrailerFields::new(flags::TRAFFIC_CLASS | flags::SEQUENCE_NUMBER);
    });
}

#[test]
fn ipv6_anchor_addresses_end_to_end() {
    run("ipv6-udp-tunnel", |c| c.ipv6 = true);
    run("ipv6-client-nat", |c| {
        c.ipv6 = true;
        c.adaptation = Adaptation::ClientNat;
    });
    run("ipv6-gre", |c| {
        c.ipv6 = true;
        c.convergence = Convergence::Gre;
    });
}
