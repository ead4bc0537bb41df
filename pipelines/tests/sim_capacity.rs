//! Shaped paths whose rates the N-MADP is not given: its capacity estimators find them from
//! the probes (pipelines::flow::capacity), weighted steering splits by the estimates, and the
//! access links' 50-ms queues stay short.

use pipelines::flow::steering::SteeringMode;
use pipelines::flow::MS;
use pipelines::sim::two_path::{FlowDir, FlowSpec, SimConfig, TwoPathSim};

#[test]
fn measured_rates_converge_on_the_links_and_weighted_splits_by_them() {
    let mut cfg = SimConfig::wifi_lte();
    cfg.steering = SteeringMode::Weighted;
    cfg.shape_percent = 98;
    cfg.measured_rates = true;
    for p in &mut cfg.paths {
        // No weights (the rates decide) and a 50-ms tail-drop queue on each link.
        p.weight = 0;
        let q = p.down.rate_bps / 8 / 20;
        p.down = p.down.with_queue_limit_bytes(q as usize);
    }
    cfg.duration_ns = 8000 * MS;
    // More than both links carry (100 Mbit/s offered on 50 + 20).
    cfg.flows = vec![FlowSpec::udp(1, FlowDir::Down, 100_000_000, 1400)];
    cfg.flows[0].start_ns = 300 * MS;
    let mut sim = TwoPathSim::new(cfg);
    let r = sim.run();
    println!("sim_capacity: {}", r.summary());
    let est = |name: &str| {
        let id = sim.cfg.paths.iter().find(|p| p.name == name).unwrap().id;
        let p = sim.n_sup.path(sim.client, id).unwrap();
        let c = p.capacity().expect("measured");
        assert!(!c.in_startup(), "{name}: {:?}", c.stats());
        c.rate_bps() as f64 / 1e6
    };
    let (wifi, lte) = (est("wifi"), est("lte"));
    println!("estimates: wifi {wifi:.1}, lte {lte:.1} Mbit/s");
    assert!(
        (44.0..=53.0).contains(&wifi),
        "wifi estimate {wifi:.1} of 50"
    );
    assert!((17.0..=21.5).contains(&lte), "lte estimate {lte:.1} of 20");
    assert!(r.n_supervision.rate_updates > 0);
    // The links carried what they could with few losses (the excess waited or was dropped in
    // the N-MADP's shapers; the losses are start-up's: a 1.5x step into a 50-ms queue, about
    // 1.8 % of what the links were sent in 8 s), and the split follows the estimates.
    let sent: u64 = r.paths.iter().map(|p| p.down.sent).sum();
    let lost = r.link_drops(FlowDir::Down);
    assert!(lost * 100 <= 3 * sent, "{lost} of {sent} lost on the links");
    let down = r.total(FlowDir::Down);
    let rate: f64 = r
        .flows
        .iter()
        .filter(|(d, _)| *d == FlowDir::Down)
        .map(|(_, f)| f.rate_bps())
        .sum();
    assert!(rate > 60e6, "delivered {:.1} Mbit/s", rate / 1e6);
    assert_eq!((down.duplicates, down.out_of_order), (0, 0));
}
