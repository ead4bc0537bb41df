//! A path fails mid-stream: duplicate mode loses nothing, active-standby resumes on the other
//! path within the detection time, and a path taken out of steering while packets are in flight
//! on it loses nothing (lossless switching, draft-04 §4.2.1).

use pipelines::flow::steering::SteeringMode;
use pipelines::flow::MS;
use pipelines::sim::two_path::{Event, FlowDir, FlowSpec, SimConfig, TwoPathSim};

fn flows() -> Vec<FlowSpec> {
    let mut v = vec![
        FlowSpec::udp(1, FlowDir::Down, 8_000_000, 1000),
        FlowSpec::udp(2, FlowDir::Up, 4_000_000, 800),
    ];
    for f in &mut v {
        f.start_ns = 300 * MS;
    }
    v
}

#[test]
fn duplicate_mode_loses_nothing_when_a_path_goes_down() {
    let mut cfg = SimConfig::wifi_lte();
    cfg.steering = SteeringMode::Duplicate;
    cfg.duration_ns = 1500 * MS;
    cfg.flows = flows();
    cfg.events = vec![Event::Link {
        at: 800 * MS,
        path: 0,
        up: false,
    }];
    let r = TwoPathSim::new(cfg).run();
    println!("sim_failover duplicate: {}", r.summary());
    for dir in [FlowDir::Down, FlowDir::Up] {
        let t = r.total(dir);
        assert_eq!(
            (t.missing(), t.duplicates, t.out_of_order),
            (0, 0, 0),
            "{dir:?}"
        );
    }
    assert!(r.paths[0].nmadp.duplicates_sent + r.paths[1].nmadp.duplicates_sent > 0);
    assert!(
        r.cmadp.dropped(pipelines::DropReason::ReorderDuplicate) > 0,
        "receiver removed the copies"
    );
}

#[test]
fn active_standby_resumes_on_the_other_path_within_the_detection_time() {
    let mut cfg = SimConfig::wifi_lte();
    cfg.steering = SteeringMode::ActiveStandby;
    cfg.duration_ns = 2000 * MS;
    cfg.flows = flows();
    cfg.events = vec![Event::Link {
        at: 800 * MS,
        path: 0,
        up: false,
    }];
    let m = cfg.monitor;
    // A dead Active path is Suspect (out of steering) after about suspect_after probe intervals
    // plus the probe timeout, plus up to one interval of schedule phase; then the first packet
    // on LTE needs its one-way delay.
    let detection = m.probe_interval_ns * (u64::from(m.suspect_after) + 1) + m.probe_timeout_ns;
    let bound = detection + 60 * MS + 50 * MS;
    let r = TwoPathSim::new(cfg).run();
    let (_, down) = &r.flows[0];
    let (_, up) = &r.flows[1];
    println!(
        "sim_failover active-standby: disruption down {:.0} ms (bound {:.0} ms), up {:.0} ms; {}",
        down.max_gap_ns as f64 / 1e6,
        bound as f64 / 1e6,
        up.max_gap_ns as f64 / 1e6,
        r.summary()
    );
    assert!(
        down.max_gap_ns <= bound,
        "downlink resumed within the detection time"
    );
    assert!(
        up.max_gap_ns <= bound,
        "uplink resumed within the detection time"
    );
    assert!(down.max_gap_ns >= 100 * MS, "the outage is visible");
    for t in [down, up] {
        assert_eq!((t.duplicates, t.out_of_order), (0, 0));
        assert!(t.missing() > 0 && t.missing() < t.sent / 4);
    }
    assert!(
        r.paths[1].nmadp.tx_pdus > 0,
        "LTE carried the traffic after the switch"
    );
}

#[test]
fn lossless_switching_when_a_path_leaves_steering_with_packets_in_flight() {
    let mut cfg = SimConfig::wifi_lte();
    cfg.slow_path = false;
    cfg.steering = SteeringMode::ActiveStandby;
    cfg.duration_ns = 1500 * MS;
    cfg.flows = flows();
    // LTE (60 ms) carries the traffic, then Wi-Fi (20 ms) takes over and back: the faster
    // path's packets overtake the ones still in flight on the slower one.
    cfg.events = vec![
        Event::PathUsable {
            at: 0,
            path: 0,
            usable: false,
        },
        Event::PathUsable {
            at: 600 * MS,
            path: 0,
            usable: true,
        },
        Event::PathUsable {
            at: 1000 * MS,
            path: 1,
            usable: false,
        },
    ];
    let r = TwoPathSim::new(cfg).run();
    println!("sim_failover lossless switch: {}", r.summary());
    for dir in [FlowDir::Down, FlowDir::Up] {
        let t = r.total(dir);
        assert_eq!(
            (t.missing(), t.duplicates, t.out_of_order),
            (0, 0, 0),
            "{dir:?}"
        );
    }
    assert!(
        r.cmadp_client.reorder.reordered > 0,
        "the reorder buffer absorbed the overtaking"
    );
}
