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
    let rate: f64 = r.flows.iter().filter(|(d, _)| *d == FlowDir::Down).map(|(_, f)| f.rate_bps()).sum();
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
