//! `nmadp demo`: an N-MADP and a C-MADP in one process, with no root, no NIC and no
//! configuration file, joined by two emulated links ("wifi", "lte"), carrying downlink and
//! uplink traffic that an application-like sink checks for order, duplicates and loss.
//!
//! ```text
//!  traffic "internet"          N-MADP (runtime)            switch        link pumps          C-MADP (runtime)          traffic "client"
//!  gen down, sink up <-ring-> anchor | delivery <-ring-> trunk +-ring-> wifi (2 links) <-ring-> delivery:wifi | anchor <-ring-> gen up, sink down
//!                             worker + slow path               +-ring-> lte  (2 links) <-ring-> delivery:lte  | worker + slow path
//! ```
//!
//! Every box is a thread (each node: one worker thread and the slow-path thread of
//! [`crate::runtime`]); every arrow an in-memory ring port (`ports::ring`). The N-MADP has one
//! delivery port for all paths, like a NIC, and the switch forwards by the outer destination
//! address (the client's address on each access network); the C-MADP has one delivery port per
//! access interface (`PathSet::Only`), as with one UDP socket per interface.

pub mod config;
pub mod link_pump;
pub mod node;
pub mod report;
pub mod runtime_node;
pub mod switch;
pub mod traffic;

mod clock;

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use pipelines::sim::link::LinkConfig;
use pipelines::sim::two_path::FlowDir;
use pipelines::HeapBuf;

use crate::ports::ring::ring_pair;
use crate::ports::Port;
use crate::runtime::{DeliveryPort, PathSet};
use link_pump::{LinkCmd, LinkPump};
use node::DemoNode;
use report::{Report, Sample};
use runtime_node::RuntimeNode;
use switch::Switch;
use traffic::Traffic;

pub use clock::now_ns;

/// `nmadp demo` flags.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// How long traffic runs, seconds (the network then drains for well under a second).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Wi-Fi link rate, Mbit/s (each direction).
    #[arg(long, default_value_t = 50.0)]
    pub wifi_rate: f64,
    /// Wi-Fi one-way delay, ms.
    #[arg(long, default_value_t = 20.0)]
    pub wifi_delay: f64,
    /// Wi-Fi random loss, percent.
    #[arg(long, default_value_t = 0.0)]
    pub wifi_loss: f64,
    /// LTE link rate, Mbit/s (each direction).
    #[arg(long, default_value_t = 20.0)]
    pub lte_rate: f64,
    /// LTE one-way delay, ms.
    #[arg(long, default_value_t = 60.0)]
    pub lte_delay: f64,
    /// LTE random loss, percent.
    #[arg(long, default_value_t = 0.0)]
    pub lte_loss: f64,
    /// Steering mode of both nodes: weighted (split by link rate), delay-aware, active-standby,
    /// duplicate, per-flow, single.
    #[arg(long, default_value = "weighted")]
    pub steering: String,
    /// Downlink offered load, Mbit/s (two UDP flows and one TCP-like flow).
    #[arg(long, default_value_t = 60.0)]
    pub downlink_rate: f64,
    /// Uplink offered load, Mbit/s (one UDP and one TCP-like flow).
    #[arg(long, default_value_t = 10.0)]
    pub uplink_rate: f64,
    /// IP packet size of every flow, bytes.
    #[arg(long, default_value_t = 1400)]
    pub packet_size: usize,
    /// Seed of the link emulators' loss draws and of the engines.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the final summary as JSON on standard output (progress goes to standard error).
    #[arg(long)]
    pub json: bool,
    /// Take the Wi-Fi link down at this time (seconds from the start) to show failover.
    #[arg(long)]
    pub cut_wifi_at: Option<f64>,
    /// Progress interval, ms.
    #[arg(long, default_value_t = 500)]
    pub progress_ms: u64,
}

const MS: u64 = 1_000_000;

/// Longest wait for the paths to come up before traffic starts anyway.
const WARMUP_MAX_NS: u64 = 2_000 * MS;

fn link_cfg(rate_mbit: f64, delay_ms: f64, loss_pct: f64, seed: u64) -> LinkConfig {
    let rate_bps = (rate_mbit.max(0.0) * 1e6) as u64;
    // A bottleneck buffer of ~100 ms at the link rate (at least 64 KB), as a real access
    // network's queue; beyond it the link tail-drops.
    let queue = ((rate_bps / 8) / 10).max(64 * 1024) as usize;
    LinkConfig::default()
        .with_rate_bps(rate_bps)
        .with_delay_ns((delay_ms.max(0.0) * 1e6) as u64)
        .with_loss((loss_pct / 100.0).clamp(0.0, 1.0))
        .with_queue_limit_bytes(queue)
        .with_seed(seed)
}

fn check_args(a: &DemoArgs) -> Result<(), String> {
    let finite = [
        ("--duration", a.duration),
        ("--wifi-rate", a.wifi_rate),
        ("--wifi-delay", a.wifi_delay),
        ("--wifi-loss", a.wifi_loss),
        ("--lte-rate", a.lte_rate),
        ("--lte-delay", a.lte_delay),
        ("--lte-loss", a.lte_loss),
        ("--downlink-rate", a.downlink_rate),
        ("--uplink-rate", a.uplink_rate),
    ];
    for (n, v) in finite {
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{n} must be a non-negative number, got {v}"));
        }
    }
    if a.duration <= 0.0 || a.duration > 3600.0 {
        return Err(format!(
            "--duration must be in (0, 3600] seconds, got {}",
            a.duration
        ));
    }
    for (n, v) in [("--wifi-loss", a.wifi_loss), ("--lte-loss", a.lte_loss)] {
        if v > 100.0 {
            return Err(format!("{n} is a percentage (0..=100), got {v}"));
        }
    }
    if !(64..=1472).contains(&a.packet_size) {
        return Err(format!(
            "--packet-size must be in 64..=1472 bytes (the SDU plus the UDP tunnel and trailer must fit a 1500-byte MTU), got {}",
            a.packet_size
        ));
    }
    if a.progress_ms == 0 {
        return Err("--progress-ms must be > 0".into());
    }
    Ok(())
}

/// Runs the demo; returns the process exit code (0: the application saw no reordering and no
/// duplicates; 1: it did; 2: bad arguments or start-up failure).
pub fn run(args: &DemoArgs) -> i32 {
    if let Err(e) = check_args(args) {
        eprintln!("nmadp demo: {e}");
        return 2;
    }
    match run_inner(args) {
        Ok(r) => {
            let ok = r.application_ok();
            if args.json {
                println!("{}", r.to_json());
            } else {
                print!("{}", r.table());
            }
            if ok {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("nmadp demo: {e}");
            2
        }
    }
}

fn run_inner(args: &DemoArgs) -> Result<Report, String> {
    let addrs = config::Addresses::default();
    let rate_mbps = [
        args.wifi_rate.round().max(1.0) as u32,
        args.lte_rate.round().max(1.0) as u32,
    ];
    let params = config::Params {
        steering: args.steering.clone(),
        rate_mbps,
        // The runtime declares a probe lost after min(interval, 500 ms) (runtime::mapping::
        // monitor_config): the interval must exceed the worst RTT, both delays plus a full
        // ~100 ms bottleneck queue each way.
        probe_interval_ms: (2.0 * args.wifi_delay.max(args.lte_delay) + 200.0).clamp(200.0, 1000.0)
            as u32,
        workers: 1,
        tag: std::process::id().to_string(),
    };
    let (ncfg, ccfg) = config::build(&addrs, &params).map_err(|e| e.to_string())?;

    // Ports. The N-MADP has one delivery port for every path (like a NIC; the switch forwards by
    // the client's address on each access network); the C-MADP one per access interface.
    const CAP: usize = 4096;
    let (n_anchor, n_app) = ring_pair::<HeapBuf>("n-anchor", "internet", CAP);
    let (c_anchor, c_app) = ring_pair::<HeapBuf>("c-anchor", "client-app", CAP);
    let (n_delivery, n_trunk) = ring_pair::<HeapBuf>("n-delivery", "switch-n", CAP);
    let names = ["wifi", "lte"];
    let cfgs = [
        (args.wifi_rate, args.wifi_delay, args.wifi_loss),
        (args.lte_rate, args.lte_delay, args.lte_loss),
    ];
    let mut n_branches: Vec<Box<dyn Port<HeapBuf>>> = Vec::new();
    let mut c_deliveries = Vec::new();
    let mut pumps = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (nb, pa) = ring_pair::<HeapBuf>(&format!("switch-n:{name}"), &format!("{name}:n"), CAP);
        let (pb, cd) =
            ring_pair::<HeapBuf>(&format!("{name}:c"), &format!("c-delivery:{name}"), CAP);
        n_branches.push(Box::new(nb));
        c_deliveries.push(DeliveryPort {
            port: Box::new(cd),
            paths: PathSet::Only(vec![i as u8]),
        });
        let (r, d, l) = cfgs[i];
        let seed = args.seed.wrapping_mul(16).wrapping_add(i as u64 * 2);
        pumps.push(
            LinkPump::start(
                name,
                Box::new(pa),
                Box::new(pb),
                link_cfg(r, d, l, seed),
                link_cfg(r, d, l, seed + 1),
            )
            .map_err(|e| e.to_string())?,
        );
    }
    let client_ips: Vec<_> = addrs.c_local.iter().map(|s| s.ip()).collect();
    let mut sw_n = Switch::start(
        "n",
        Box::new(n_trunk),
        n_branches,
        switch::Match::Dst,
        client_ips,
    )
    .map_err(|e| e.to_string())?;

    // Nodes: the real runtime (worker + slow-path threads) for both.
    let mut nmadp: Box<dyn DemoNode> = Box::new(RuntimeNode::start(
        ncfg,
        Box::new(n_anchor),
        vec![DeliveryPort {
            port: Box::new(n_delivery),
            paths: PathSet::All,
        }],
        args.seed,
    )?);
    let mut cmadp: Box<dyn DemoNode> = Box::new(RuntimeNode::start(
        ccfg,
        Box::new(c_anchor),
        c_deliveries,
        args.seed.wrapping_add(1),
    )?);

    // Traffic.
    let flows = traffic::demo_flows(
        (args.downlink_rate * 1e6) as u64,
        (args.uplink_rate * 1e6) as u64,
        args.packet_size,
    );
    let down: Vec<_> = flows
        .iter()
        .copied()
        .filter(|f| f.dir == FlowDir::Down)
        .collect();
    let up: Vec<_> = flows
        .iter()
        .copied()
        .filter(|f| f.dir == FlowDir::Up)
        .collect();
    let progress_to_stderr = args.json;
    let tty = if progress_to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let mut report = Report::new(args, &flows, [nmadp.describe(), cmadp.describe()]);
    let banner = report.banner();
    emit(progress_to_stderr, &banner);
    // Let the paths finish their initialization phase (draft-04 §5.2: the N-MADP probes each
    // path before using it) before the applications start, as a client would attach first.
    let t0 = now_ns();
    while now_ns() - t0 < WARMUP_MAX_NS
        && !(nmadp.view().all_paths_ready() && cmadp.view().all_paths_ready())
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    report.warmup_ns = now_ns() - t0;
    emit(
        progress_to_stderr,
        &format!(
            "  paths {} after {:.0} ms; traffic starts",
            if nmadp.view().all_paths_ready() {
                "up"
            } else {
                "NOT all up"
            },
            report.warmup_ns as f64 / 1e6
        ),
    );
    let start = now_ns();
    let mut internet = Traffic::start(
        "internet",
        Box::new(n_app),
        down.clone(),
        up.clone(),
        addrs.anchor,
        addrs.server,
    )
    .map_err(|e| e.to_string())?;
    let mut client = Traffic::start(
        "client",
        Box::new(c_app),
        up,
        down,
        addrs.anchor,
        addrs.server,
    )
    .map_err(|e| e.to_string())?;

    let dur_ns = (args.duration * 1e9) as u64;
    let max_delay_ms = args.wifi_delay.max(args.lte_delay);
    let drain_ns = ((2.0 * max_delay_ms + 400.0) * 1e6).min(2e9) as u64;
    let cut_ns = args.cut_wifi_at.map(|s| (s.max(0.0) * 1e9) as u64);
    let mut cut_done = false;
    let tick = args.progress_ms * MS;
    let mut next_tick = start + tick;
    let mut stopped_sending = false;
    let mut prev: Option<Sample> = None;
    loop {
        let now = now_ns();
        let t = now - start;
        if let (Some(c), false) = (cut_ns, cut_done) {
            if t >= c {
                pumps[0].command(LinkCmd::Up(false));
                cut_done = true;
                report.cut_at_ns = Some(t);
                emit(
                    progress_to_stderr,
                    &format!("--- wifi link cut at {:.2} s ---", t as f64 / 1e9),
                );
            }
        }
        if !stopped_sending && t >= dur_ns {
            internet.stop_sending();
            client.stop_sending();
            stopped_sending = true;
            report.sending_ns = t;
        }
        if now >= next_tick {
            next_tick += tick;
            let s = Sample::take(
                t,
                &pumps,
                &internet.stats(),
                &client.stats(),
                &nmadp.view(),
                &cmadp.view(),
            );
            let line = report::progress_line(prev.as_ref(), &s, tty);
            emit(progress_to_stderr, &line);
            report.samples.push(s.clone());
            prev = Some(s);
        }
        if t >= dur_ns + drain_ns {
            break;
        }
        let wake = next_tick
            .min(start + dur_ns + drain_ns)
            .min(cut_ns.filter(|_| !cut_done).map_or(u64::MAX, |c| start + c))
            .min(if stopped_sending {
                u64::MAX
            } else {
                start + dur_ns
            });
        std::thread::sleep(Duration::from_nanos(
            wake.saturating_sub(now_ns()).clamp(100_000, 50 * MS),
        ));
    }
    // Stop in flow order: sources are already quiet; stop sinks last so nothing in flight is
    // miscounted as lost by a stopped receiver.
    nmadp.stop();
    cmadp.stop();
    sw_n.stop();
    for p in &mut pumps {
        p.stop();
    }
    internet.stop();
    client.stop();
    report.elapsed_ns = now_ns() - start;
    report.finish(
        &pumps,
        &internet.stats(),
        &client.stats(),
        &nmadp.view(),
        &cmadp.view(),
        sw_n.unroutable(),
    );
    Ok(report)
}

fn emit(to_stderr: bool, line: &str) {
    if to_stderr {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}
