//! Floods stay within the configured memory caps: bogus first fragments (reassembly cap) and
//! sequence numbers far out of the window (reorder window), injected on a live session.

use std::net::SocketAddr;

use pipelines::buf::BufPool;
use pipelines::engine::adapt;
use pipelines::flow::reassembly::ReassemblyConfig;
use pipelines::flow::MS;
use pipelines::mx;
use pipelines::sim::two_path::{FlowDir, FlowSpec, SimConfig, TwoPathSim};
use pipelines::wire::mx_trailer::{FragmentControl, MxTrailer};
use pipelines::DropReason;

fn sim() -> TwoPathSim {
    let mut cfg = SimConfig::wifi_lte();
    cfg.slow_path = false;
    cfg.duration_ns = 300 * MS;
    cfg.reassembly = ReassemblyConfig {
        max_slots: 16,
        timeout_ns: 200 * MS,
        max_sdu_bytes: 4096,
        max_total_bytes: 8 * 1024,
    };
    cfg.flows = vec![FlowSpec::udp(1, FlowDir::Down, 5_000_000, 500)];
    TwoPathSim::new(cfg)
}

/// An MX PDU in a UDP tunnel from the N-MADP's Wi-Fi endpoint to the C-MADP's, carrying `sdu`
/// with `trailer`.
fn forged(s: &mut TwoPathSim, counter: u64, trailer: MxTrailer) -> pipelines::HeapBuf {
    let spec = FlowSpec::udp(99, FlowDir::Down, 1, 600);
    let src = SocketAddr::new(s.addr.server, 9);
    let dst = SocketAddr::new(s.addr.anchor, 9);
    let mut b = TwoPathSim::make_sdu(&mut s.pool, &spec, counter, src, dst);
    mx::add_trailer(&mut b, &trailer, false).unwrap();
    adapt::push_udp_ip(&mut b, s.addr.n_local[0], s.addr.c_local[0], 1).unwrap();
    b
}

#[test]
fn fragment_flood_stays_within_the_reassembly_memory_cap() {
    let mut s = sim();
    let mut out = Vec::new();
    let cap = s.cfg.reassembly.max_total_bytes;
    for i in 0..2000u64 {
        let t = MxTrailer {
            connection_id: Some(1),
            traffic_class: Some(0),
            sequence_number: Some(i as u16),
            fragment_control: Some(FragmentControl {
                more: true,
                offset: 0,
            }),
            ..MxTrailer::default()
        };
        let b = forged(&mut s, i, t);
        s.cmadp.from_delivery(b, i * 10_000, &mut s.pool, &mut out);
        assert!(s.cmadp.reassembly_bytes() <= cap);
    }
    assert!(out.is_empty(), "no fragment completes");
    let c = s.cmadp.counters();
    let refused =
        c.dropped(DropReason::ReassemblyMemoryFull) + c.dropped(DropReason::ReassemblyNoSlot);
    println!(
        "sim_floods fragments: held {} B (cap {cap}), refused {refused}, {:?}",
        s.cmadp.reassembly_bytes(),
        c.nonzero_drops().collect::<Vec<_>>()
    );
    assert!(refused > 1000);
    // The session still works afterwards.
    let r = s.run();
    let t = r.total(FlowDir::Down);
    assert_eq!((t.missing(), t.duplicates, t.out_of_order), (0, 0, 0));
}

#[test]
fn out_of_window_flood_stays_within_the_reorder_window() {
    let mut s = sim();
    let window = s.cfg.reorder.window;
    let mut out = Vec::new();
    let mut max_depth = 0;
    for i in 0..20_000u64 {
        // Jumps of ~window/2 around the SN space: every packet is far ahead or behind.
        let sn = (i as u16).wrapping_mul(2503);
        let t = MxTrailer {
            connection_id: Some(1),
            traffic_class: Some(0),
            sequence_number: Some(sn),
            ..MxTrailer::default()
        };
        let b = forged(&mut s, i, t);
        s.cmadp.from_delivery(b, i * 1000, &mut s.pool, &mut out);
        max_depth = max_depth.max(s.cmadp.reorder_depth());
        assert!(s.cmadp.reorder_depth() <= window);
        for o in out.drain(..) {
            if let pipelines::engine::Output::Anchor(b) = o {
                s.pool.free(b);
            }
        }
    }
    let st = s.cmadp.client_counters(s.client).unwrap().reorder;
    println!(
        "sim_floods out-of-window: max depth {max_depth} (window {window}), window advances {}, late {}",
        st.window_advances, st.late
    );
    assert!(st.window_advances > 0);
}
