//! Wi-Fi 50 Mbit/s 20 ms + LTE 20 Mbit/s 60 ms: weighted and delay-aware aggregation, random
//! loss, and the 200 000-packet SN-wrap run.

use pipelines::flow::steering::SteeringMode;
use pipelines::flow::MS;
use pipelines::sim::two_path::{FlowDir, FlowSpec, SimConfig, TwoPathSim};

fn aggregate(mode: SteeringMode) {
    let mut cfg = SimConfig::wifi_lte();
    cfg.steering = mode;
    cfg.duration_ns = 2000 * MS;
    // 70 Mbit/s offered downlink over two flows, 5 Mbit/s uplink.
    cfg.flows = vec![
        FlowSpec::udp(1, FlowDir::Down, 40_000_000, 1400),
        FlowSpec::udp(2, FlowDir::Down, 30_000_000, 1400),
        FlowSpec::udp(3, FlowDir::Up, 5_000_000, 1000),
    ];
    // Sources start once the paths are up (probing takes a few round trips).
    for f in &mut cfg.flows {
        f.start_ns = 300 * MS;
    }
    let mut sim = TwoPathSim::new(cfg);
    let r = sim.run();
    println!("sim_aggregation {mode}: {}", r.summary());
    let down = r.total(FlowDir::Down);
    assert_eq!(down.duplicates, 0);
    assert_eq!(down.out_of_order, 0);
    assert_eq!(r.link_drops(FlowDir::Down), 0, "no link loss configured");
    assert_eq!(down.missing(), 0, "every SDU delivered exactly once");
    let up = r.total(FlowDir::Up);
    assert_eq!((up.missing(), up.duplicates, up.out_of_order), (0, 0, 0));
    let rate: f64 = r
        .flows
        .iter()
        .filter(|(d, _)| *d == FlowDir::Down)
        .map(|(_, f)| f.rate_bps())
        .sum();
    assert!(rate > 50e6, "aggregate {rate} beats the faster link alone");
}

#[test]
fn weighted_split_delivers_everything_in_order_faster_than_wifi_alone() {
    aggregate(SteeringMode::Weighted);
}

#[test]
fn delay_aware_split_delivers_everything_in_order_faster_than_wifi_alone() {
    aggregate(SteeringMode::DelayAware);
}

#[test]
fn two_percent_loss_per_link_no_duplicates_order_kept_losses_only_where_links_lost() {
    let mut cfg = SimConfig::wifi_lte();
    for p in &mut cfg.paths {
        p.down = p.down.with_loss(0.02);
        p.up = p.up.with_loss(0.02);
    }
    cfg.duration_ns = 1500 * MS;
    cfg.flows = vec![
        FlowSpec::udp(1, FlowDir::Down, 30_000_000, 1200),
        FlowSpec::udp(2, FlowDir::Down, 10_000_000, 600),
        FlowSpec::udp(3, FlowDir::Up, 8_000_000, 900),
    ];
    for f in &mut cfg.flows {
        f.start_ns = 300 * MS;
    }
    let mut sim = TwoPathSim::new(cfg);
    let r = sim.run();
    println!("sim_loss: {}", r.summary());
    for dir in [FlowDir::Down, FlowDir::Up] {
        let t = r.total(dir);
        assert_eq!(t.duplicates, 0);
        assert_eq!(t.out_of_order, 0, "order preserved despite loss");
        // Every missing SDU was lost on a link (link drops also count probes, hence <=).
        assert!(
            t.missing() <= r.link_drops(dir),
            "{dir:?}: {} missing vs {} link drops",
            t.missing(),
            r.link_drops(dir)
        );
        assert!(t.missing() > 0, "2% loss must show");
        // Receiver accounting: skipped gaps = SDUs that never arrived.
        let client = if dir == FlowDir::Down {
            &r.cmadp_client
        } else {
            &r.nmadp_client
        };
        assert_eq!(
            client.reorder.gaps_skipped,
            t.missing(),
            "{dir:?}: reorder skipped exactly the lost SNs"
        );
        assert_eq!(client.reorder.delivered, t.delivered);
    }
}

#[test]
fn sn_wraps_several_times_over_200k_packets_without_loss_or_reordering() {
    let mut cfg = SimConfig::wifi_lte();
    cfg.duration_ns = 4_500 * MS;
    cfg.drain_ns = 500 * MS;
    cfg.steering = SteeringMode::Weighted;
    // 200 000 packets of 100 B at 50 000 packets/s split 5:2 over both paths.
    let mut f = FlowSpec::udp(1, FlowDir::Down, 40_000_000, 100);
    f.count = Some(200_000);
    f.start_ns = 200 * MS;
    let mut up = FlowSpec::udp(2, FlowDir::Up, 4_000_000, 100);
    up.count = Some(20_000);
    up.start_ns = 200 * MS;
    cfg.flows = vec![f, up];
    cfg.tick_ns = MS;
    let mut sim = TwoPathSim::new(cfg);
    let r = sim.run();
    println!("sim_sn_wrap: {}", r.summary());
    let (_, f) = &r.flows[0];
    assert_eq!(f.sent, 200_000);
    assert_eq!((f.delivered, f.duplicates, f.out_of_order), (200_000, 0, 0));
    assert!(
        r.paths.iter().all(|p| p.nmadp.tx_pdus > 20_000),
        "both paths carried the flow"
    );
    let up = r.total(FlowDir::Up);
    assert_eq!(
        (up.delivered, up.duplicates, up.out_of_order),
        (20_000, 0, 0)
    );
}
