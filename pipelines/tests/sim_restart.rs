//! One side is killed mid-stream and started again with its sequence numbers from the start: the
//! other side's slow path (the `Supervisor` the runtime ships) notices the new sequence-number
//! space (a C-MADP's keep-alive SN reset; an N-MADP's probe SNs going back), resets that client's
//! receive flows, and traffic resumes within two probe intervals of the restart.

use pipelines::flow::steering::SteeringMode;
use pipelines::flow::MS;
use pipelines::sim::two_path::{Event, FlowDir, FlowSpec, SimConfig, SimReport, TwoPathSim};

const RESTART_AT: u64 = 1000 * MS;

fn run(nmadp: bool) -> (SimReport, SimConfig) {
    let mut cfg = SimConfig::wifi_lte();
    cfg.steering = SteeringMode::Weighted;
    cfg.duration_ns = 2000 * MS;
    cfg.flows = vec![
        FlowSpec::udp(1, FlowDir::Down, 8_000_000, 1000),
        FlowSpec::udp(2, FlowDir::Up, 4_000_000, 800),
    ];
    for f in &mut cfg.flows {
        f.start_ns = 300 * MS;
    }
    cfg.events = vec![Event::Restart {
        at: RESTART_AT,
        nmadp,
    }];
    let r = TwoPathSim::new(cfg.clone()).run();
    (r, cfg)
}

/// The longest a direction went without a delivery, and whether deliveries went on to the end.
fn check(r: &SimReport, cfg: &SimConfig, who: &str) {
    // Two probe intervals, plus the slowest path's one-way delay that a packet sent at the
    // restart takes to arrive.
    let slowest = cfg.paths.iter().map(|p| p.down.delay_ns).max().unwrap_or(0);
    let bound = 2 * cfg.monitor.probe_interval_ns + slowest;
    for dir in [FlowDir::Down, FlowDir::Up] {
        let t = r.total(dir);
        let f = r
            .flows
            .iter()
            .find(|(d, _)| *d == dir)
            .map(|(_, f)| f)
            .unwrap();
        println!(
            "sim_restart {who} {dir:?}: disruption {} ms (bound {} ms), lost {} of {}",
            t.max_gap_ns / MS,
            bound / MS,
            t.missing(),
            t.sent
        );
        assert!(
            t.max_gap_ns <= bound,
            "{who} restart, {dir:?}: {} ms without delivery (bound {} ms): {}",
            t.max_gap_ns / MS,
            bound / MS,
            r.summary()
        );
        // Delivery went on after the restart, to the end of the sources.
        assert!(
            f.last_rx >= cfg.duration_ns,
            "{dir:?} stopped at {} ms: {}",
            f.last_rx / MS,
            r.summary()
        );
        // What was lost is what the killed side held and what was in flight towards it:
        // well under the restart's disruption of traffic.
        assert!(
            t.missing() * 10 < t.sent,
            "{dir:?}: {} of {} lost: {}",
            t.missing(),
            t.sent,
            r.summary()
        );
    }
}

#[test]
fn a_restarted_cmadp_is_noticed_by_its_keepalives_and_traffic_resumes() {
    let (r, cfg) = run(false);
    println!("sim_restart cmadp: {}", r.summary());
    assert_eq!(r.n_supervision.peer_restarts, 1, "{:?}", r.n_supervision);
    assert_eq!(r.c_supervision.peer_restarts, 0);
    check(&r, &cfg, "cmadp");
}

#[test]
fn a_restarted_nmadp_is_noticed_by_its_probe_sns_and_traffic_resumes() {
    let (r, cfg) = run(true);
    println!("sim_restart nmadp: {}", r.summary());
    assert_eq!(r.c_supervision.peer_restarts, 1, "{:?}", r.c_supervision);
    assert_eq!(r.n_supervision.peer_restarts, 0);
    check(&r, &cfg, "nmadp");
}
