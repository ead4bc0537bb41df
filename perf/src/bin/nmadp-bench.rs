//! Same-process DPDK benchmark of the N-MADP engine (issue "Kernel bypass", item 4).
//!
//! One process, one EAL (initialised once, unique `--file-prefix`), two `net_null` vdevs: the
//! worker receives null mbufs of the given size from `net_null0` and transmits to `net_null1`
//! (created with `no-rx=1`, so that it only frees). Everything runs on the main lcore (pinned
//! by the EAL, `-l <lcore>`). Modes:
//!
//! * `io`: rx_burst -> tx_burst through the same `DpdkPort` wrappers, nothing else (the
//!   same-process baseline to compare with `dpdk-testpmd --forward-mode=io`).
//! * `downlink`: the generator stamps a downlink SDU template onto each received mbuf, then the
//!   N-MADP engine runs `from_anchor_burst` (classify, number, steer, trailer, outer IPv4/UDP)
//!   and the outputs are transmitted.
//! * `uplink`, `uplink-reorder`: the generator stamps an uplink MX PDU (in order, or reordered
//!   in pairs), the engine runs `from_delivery_burst` (outer checks, tunnel lookup, trailer strip,
//!   per-flow reorder) and the released SDUs are transmitted.
//!
//! The stamping (a few header writes per packet) is counted in the engine modes' time: the
//! figures understate the engine alone. Output: one JSON object on stdout.
//!
//! `--workers N` runs N such workers at once, each on its own core (`--lcores`, default `lcore`,
//! `lcore + 1`, ...) with its own vdev pair and engine and `clients / N` of the clients (as the
//! runtime's workers own disjoint clients); the figures are their sum. Every figure includes
//! `busy_cycles_per_packet`: TSC cycles of the bursts that received packets, per packet (the
//! unit of `dpdk-testpmd --record-core-cycles`).
//!
//! Example: `nmadp-bench --mode downlink --size 64 --clients 1000 --duration 5 --lcore 1`
//! (EAL memory flags from `--eal-mem` or `NMADP_EAL_MEM`, e.g. `$(deploy/dpdk-env.sh)`; default
//! `--no-huge -m 512`).

use std::time::{Duration, Instant};

use dataplane::ports::dpdk::{DpdkPort, DpdkPortConfig, Eal, Mbuf, MbufPool, Mempool};
use dataplane::ports::Port;
use hdrhistogram::Histogram;
use perf::gen::{plan, DownlinkGen, SizeMix, UplinkGen, UplinkOrder};
use pipelines::engine::{Engine, Output};
use pipelines::flow::steering::SteeringMode;
use pipelines::PacketBuf;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Io,
    Downlink,
    Uplink,
    UplinkReorder,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "io" => Mode::Io,
            "downlink" => Mode::Downlink,
            "uplink" => Mode::Uplink,
            "uplink-reorder" => Mode::UplinkReorder,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Io => "io",
            Mode::Downlink => "downlink",
            Mode::Uplink => "uplink",
            Mode::UplinkReorder => "uplink-reorder",
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    mode: Mode,
    size: SizeMix,
    clients: u32,
    flows: u32,
    duration: f64,
    lcore: u32,
    burst: usize,
    mtu: u16,
    mbufs: u32,
    poll_us: u64,
    seed: u64,
    eal_mem: String,
    setup_limit: f64,
    tag: String,
    udp_checksum: bool,
    workers: usize,
    /// Cores of the workers (default: `lcore`, `lcore + 1`, ...).
    lcores: Vec<u32>,
}

const USAGE: &str =
    "nmadp-bench [--mode io|downlink|uplink|uplink-reorder] [--size 64|512|1500|imix] \
[--clients N] [--flows PER_CLIENT] [--duration SECONDS] [--lcore CORE] [--burst N] [--mtu BYTES] \
[--mbufs N] [--poll-us US] [--seed N] [--eal-mem 'FLAGS'] [--setup-limit SECONDS] [--tag LABEL] \
[--udp-checksum on|off] [--workers N] [--lcores A,B,...]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        mode: Mode::Downlink,
        size: SizeMix::Fixed(64),
        clients: 1000,
        flows: 8,
        duration: 5.0,
        lcore: 1,
        burst: 32,
        mtu: 1600,
        mbufs: 16383,
        poll_us: 10_000,
        seed: 0x5eed,
        eal_mem: std::env::var("NMADP_EAL_MEM").unwrap_or_else(|_| "--no-huge -m 512".into()),
        setup_limit: 120.0,
        tag: String::new(),
        // The product's default (DeliveryConfig::udp_checksum): 0 over IPv4.
        udp_checksum: false,
        workers: 1,
        lcores: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "-h" || k == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{k} needs a value\n{USAGE}"))?;
        let bad = |_| format!("bad value {v:?} for {k}");
        let badf = |_| format!("bad value {v:?} for {k}");
        match k.as_str() {
            "--mode" => a.mode = Mode::parse(&v).ok_or(format!("bad mode {v:?}"))?,
            "--size" => a.size = SizeMix::parse(&v).ok_or(format!("bad size {v:?}"))?,
            "--clients" => a.clients = v.parse().map_err(bad)?,
            "--flows" => a.flows = v.parse().map_err(bad)?,
            "--duration" => a.duration = v.parse().map_err(badf)?,
            "--lcore" => a.lcore = v.parse().map_err(bad)?,
            "--burst" => a.burst = v.parse().map_err(bad)?,
            "--mtu" => a.mtu = v.parse().map_err(bad)?,
            "--mbufs" => a.mbufs = v.parse().map_err(bad)?,
            "--poll-us" => a.poll_us = v.parse().map_err(bad)?,
            "--seed" => a.seed = v.parse().map_err(bad)?,
            "--eal-mem" => a.eal_mem = v,
            "--tag" => a.tag = v,
            "--udp-checksum" => {
                a.udp_checksum = match v.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("bad value {v:?} for {k}")),
                }
            }
            "--setup-limit" => a.setup_limit = v.parse().map_err(badf)?,
            "--workers" => a.workers = v.parse().map_err(bad)?,
            "--lcores" => {
                a.lcores = v
                    .split(',')
                    .map(|x| x.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
            _ => return Err(format!("unknown option {k}\n{USAGE}")),
        }
    }
    if a.workers == 0 || a.workers > 16 {
        return Err("--workers must be 1..=16".into());
    }
    if a.clients == 0 || a.clients > plan::MAX_CLIENTS {
        return Err(format!("--clients must be 1..={}", plan::MAX_CLIENTS));
    }
    Ok(a)
}

/// Resident set size of this process, bytes (`/proc/self/statm`).
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page
}

#[inline]
fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// TSC ticks per nanosecond, measured over 50 ms.
fn tsc_per_ns() -> f64 {
    let (t0, i0) = (tsc(), Instant::now());
    std::thread::sleep(Duration::from_millis(50));
    let (t1, e) = (tsc(), i0.elapsed());
    (t1 - t0) as f64 / e.as_nanos() as f64
}

/// Per-burst state of the worker loop.
struct Work<'g> {
    burst: Vec<Mbuf>,
    out: Vec<Output<Mbuf>>,
    txv: Vec<Mbuf>,
    down: &'g mut DownlinkGen,
    up: &'g mut UplinkGen,
    rx_pkts: u64,
    rx_bytes: u64,
    tx_pkts: u64,
    tx_bytes: u64,
    fill_fail: u64,
}

/// One burst: rx, stamp, engine, tx. Not inlined, so that a profiler can count exactly the
/// steady state (`valgrind --tool=callgrind --toggle-collect='*step*'`). Returns `None` when
/// nothing was received, else the TSC ticks spent in `Engine::poll` (when `poll_now`).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn step(
    w: &mut Work<'_>,
    mode: Mode,
    burst: usize,
    now: u64,
    poll_now: bool,
    engine: &mut Engine<Mbuf>,
    pool: &mut MbufPool,
    rx: &mut DpdkPort,
    tx: &mut DpdkPort,
) -> Option<u64> {
    let got = rx.rx_burst(pool, &mut w.burst, burst);
    if got == 0 {
        return None;
    }
    w.rx_pkts += got as u64;
    match mode {
        Mode::Io => {
            for m in &w.burst {
                w.rx_bytes += m.len() as u64;
            }
            w.txv.append(&mut w.burst);
        }
        Mode::Downlink => {
            for m in w.burst.iter_mut() {
                if !w.down.fill(m) {
                    w.fill_fail += 1;
                }
                w.rx_bytes += m.len() as u64;
            }
            engine.from_anchor_burst(&mut w.burst, now, pool, &mut w.out);
        }
        Mode::Uplink | Mode::UplinkReorder => {
            for m in w.burst.iter_mut() {
                if !w.up.fill(m) {
                    w.fill_fail += 1;
                }
                w.rx_bytes += m.len() as u64;
            }
            engine.from_delivery_burst(&mut w.burst, now, pool, &mut w.out);
        }
    }
    let mut poll_ticks = 0;
    if poll_now {
        let p0 = tsc();
        engine.poll(now, pool, &mut w.out);
        poll_ticks = tsc() - p0;
    }
    for o in w.out.drain(..) {
        match o {
            Output::Delivery { pkt, .. } | Output::Anchor(pkt) => w.txv.push(pkt),
            Output::Control { .. } => {}
        }
    }
    for m in &w.txv {
        w.tx_bytes += m.len() as u64;
    }
    w.tx_pkts += tx.tx_burst(pool, &mut w.txv) as u64;
    Some(poll_ticks)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("nmadp-bench: {e}");
        std::process::exit(1);
    }
}

/// What one worker measured.
struct WorkerResult {
    added: u32,
    setup_s: f64,
    rss_clients: u64,
    elapsed: f64,
    rx_pkts: u64,
    rx_bytes: u64,
    tx_pkts: u64,
    tx_bytes: u64,
    txv_left: u64,
    fill_fail: u64,
    /// TSC ticks of the bursts that received packets (rx_burst start to tx_burst end).
    busy_ticks: u64,
    polls: u64,
    poll_ticks: u64,
    hist: Histogram<u64>,
    drops: serde_json::Map<String, serde_json::Value>,
    anchor_rx: u64,
    delivery_rx: u64,
    anchor_tx: u64,
    reorder_depth: usize,
    mbuf_alloc_failures: u64,
    rx_port: u64,
    tx_dropped: u64,
}

/// One worker: its own vdev pair (`net_null{2w}` -> `net_null{2w+1}`) and its own engine with
/// `clients` clients (every worker owns a disjoint set; the client ids may repeat across
/// engines, which never see each other). Starts measuring when every worker is ready.
fn worker(
    a: &Args,
    w: usize,
    clients: u32,
    eal: &'static Eal,
    mempool: std::sync::Arc<Mempool>,
    ready: &std::sync::Barrier,
) -> Result<WorkerResult, String> {
    let (rx_name, tx_name) = (
        format!("net_null{}", 2 * w),
        format!("net_null{}", 2 * w + 1),
    );
    let mut rx = DpdkPort::open(eal, &DpdkPortConfig::new(&rx_name), mempool.clone())
        .map_err(|e| format!("open {rx_name}: {e}"))?;
    let mut tx = DpdkPort::open(eal, &DpdkPortConfig::new(&tx_name), mempool.clone())
        .map_err(|e| format!("open {tx_name}: {e}"))?;
    let mut pool = MbufPool::new(mempool);

    // Engine and clients (not for io).
    let t_setup = Instant::now();
    let mut engine: Engine<Mbuf> = Engine::new(plan::engine_config());
    let mut added = 0u32;
    if a.mode != Mode::Io {
        engine.reserve_clients(clients as usize, usize::from(plan::PATHS));
        for i in 0..clients {
            engine
                .add_client(plan::client_config(i, SteeringMode::Weighted, a.mtu))
                .map_err(|e| format!("add_client {i}: {e:?}"))?;
            for p in 0..plan::PATHS {
                let (c, p) = (
                    pipelines::engine::ClientId(i),
                    pipelines::flow::steering::PathId(p),
                );
                engine.set_path_usable(c, p, true);
                engine.set_udp_checksum(c, p, a.udp_checksum);
            }
            added = i + 1;
            if added & 1023 == 0 && t_setup.elapsed().as_secs_f64() > a.setup_limit {
                break;
            }
        }
    }
    let setup_s = t_setup.elapsed().as_secs_f64();
    if added < clients && a.mode != Mode::Io {
        eprintln!(
            "nmadp-bench: worker {w}: setup limit {}s reached after {added} of {clients} \
             clients ({setup_s:.1}s); measuring with {added}",
            a.setup_limit
        );
    }
    let n = added.max(1);
    let mut down = DownlinkGen::new(n, a.flows, a.size, a.seed.wrapping_add(w as u64));
    let order = if a.mode == Mode::UplinkReorder {
        UplinkOrder::PairSwapped
    } else {
        UplinkOrder::InOrder
    };
    let mut up = UplinkGen::new(n, a.size, order, a.seed.wrapping_add(w as u64));

    let per_ns = tsc_per_ns();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).map_err(|e| e.to_string())?;
    let mut wk = Work {
        burst: Vec::with_capacity(a.burst),
        out: Vec::with_capacity(4 * a.burst),
        txv: Vec::with_capacity(4 * a.burst),
        down: &mut down,
        up: &mut up,
        rx_pkts: 0,
        rx_bytes: 0,
        tx_pkts: 0,
        tx_bytes: 0,
        fill_fail: 0,
    };
    let (mut polls, mut poll_ticks, mut busy_ticks) = (0u64, 0u64, 0u64);
    // Every worker's clients are in place (RSS is read by the caller after this).
    ready.wait();
    let rss_clients = rss();
    ready.wait();

    let start_tsc = tsc();
    let start = Instant::now();
    let end_tsc = start_tsc + (a.duration * 1e9 * per_ns) as u64;
    let poll_ticks_every = (a.poll_us as f64 * 1e3 * per_ns) as u64;
    let mut next_poll = start_tsc + poll_ticks_every;
    let mut iter = 0u64;
    loop {
        iter += 1;
        let t0 = tsc();
        if iter & 1023 == 0 && t0 >= end_tsc {
            break;
        }
        let now = ((t0 - start_tsc) as f64 / per_ns) as u64;
        let poll_now = a.mode != Mode::Io && t0 >= next_poll;
        let Some(c) = step(
            &mut wk,
            a.mode,
            a.burst,
            now,
            poll_now,
            &mut engine,
            &mut pool,
            &mut rx,
            &mut tx,
        ) else {
            continue;
        };
        if poll_now {
            poll_ticks += c;
            polls += 1;
            next_poll = t0 + poll_ticks_every;
        }
        let t1 = tsc();
        busy_ticks += t1 - t0;
        let _ = hist.record(((t1 - t0) as f64 / per_ns) as u64 + 1);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let c = engine.counters();
    let r = WorkerResult {
        added: if a.mode == Mode::Io { 0 } else { added },
        setup_s,
        rss_clients,
        elapsed,
        rx_pkts: wk.rx_pkts,
        rx_bytes: wk.rx_bytes,
        tx_pkts: wk.tx_pkts,
        tx_bytes: wk.tx_bytes,
        txv_left: wk.txv.len() as u64,
        fill_fail: wk.fill_fail,
        busy_ticks,
        polls,
        poll_ticks,
        hist,
        drops: c
            .nonzero_drops()
            .map(|(r, n)| (format!("{r:?}"), json!(n)))
            .collect(),
        anchor_rx: c.anchor_rx,
        delivery_rx: c.delivery_rx,
        anchor_tx: c.anchor_tx,
        reorder_depth: engine.reorder_depth(),
        mbuf_alloc_failures: pool.alloc_failures,
        rx_port: rx.stats().rx_packets,
        tx_dropped: tx.stats().tx_dropped,
    };
    drop(wk);
    // Every engine (and its reorder state) is kept until the RSS is read.
    ready.wait();
    if w == 0 {
        RSS_AFTER.store(rss(), std::sync::atomic::Ordering::Relaxed);
    }
    ready.wait();
    drop(engine);
    drop(pool);
    drop(rx);
    drop(tx);
    Ok(r)
}

fn run(a: &Args) -> Result<(), String> {
    let vdev_size = a.size.max_len();
    let lcores: Vec<u32> = (0..a.workers)
        .map(|w| a.lcores.get(w).copied().unwrap_or(a.lcore + w as u32))
        .collect();
    let mut eal_args: Vec<String> = vec![
        "-l".into(),
        lcores[0].to_string(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        "--log-level".into(),
        "lib.eal:warning".into(),
        "--file-prefix".into(),
        format!("nmadp-bench-{}", std::process::id()),
    ];
    for w in 0..a.workers {
        eal_args.extend([
            "--vdev".into(),
            format!("net_null{},size={vdev_size},copy=0", 2 * w),
            "--vdev".into(),
            format!("net_null{},no-rx=1", 2 * w + 1),
        ]);
    }
    eal_args.extend(a.eal_mem.split_whitespace().map(str::to_string));
    // rte_eal_init pins the calling (main) thread to the first lcore: worker 0 runs here, the
    // others on threads pinned to their cores and registered as (non-EAL) lcores.
    let eal = Eal::init(&eal_args).map_err(|e| format!("EAL init {eal_args:?}: {e}"))?;
    let mempool = Mempool::new(
        eal,
        "bench_pool",
        a.mbufs * a.workers as u32 + (a.workers as u32 - 1),
        256,
        2176,
        None,
    )
    .map_err(|e| format!("mempool: {e}"))?;
    let rss_before = rss();
    // Clients per worker: the total split evenly.
    let per_worker = a.clients.div_ceil(a.workers as u32);
    let ready = std::sync::Barrier::new(a.workers);
    let run_worker = |w: usize, mempool: std::sync::Arc<Mempool>| {
        let r = worker(a, w, per_worker, eal, mempool, &ready);
        if r.is_err() {
            // A worker fails before its first barrier: it still takes part in all four (clients
            // in place, measuring starts, measuring ended, RSS read) so that the others finish.
            for _ in 0..4 {
                ready.wait();
            }
        }
        r
    };
    let results: Vec<Result<WorkerResult, String>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (1..a.workers)
            .map(|w| {
                let (mempool, core, run_worker) = (mempool.clone(), lcores[w], &run_worker);
                sc.spawn(move || {
                    if let Err(e) = dataplane::runtime::clock::pin_to_core(core) {
                        eprintln!("nmadp-bench: cannot pin worker {w} to core {core}: {e}");
                    }
                    if let Err(e) = eal.register_thread() {
                        eprintln!("nmadp-bench: worker {w}: rte_thread_register: {e}");
                    }
                    run_worker(w, mempool)
                })
            })
            .collect();
        // Worker 0 on this thread, the EAL main lcore (pinned by rte_eal_init).
        let mut v = vec![run_worker(0, mempool.clone())];
        v.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into()))),
        );
        v
    });
    let rss_after = RSS_AFTER.load(std::sync::atomic::Ordering::Relaxed);
    let results: Vec<WorkerResult> = results.into_iter().collect::<Result<_, _>>()?;
    let rss_clients = results.iter().map(|r| r.rss_clients).max().unwrap_or(0);
    let tsc_hz = tsc_per_ns() * 1e9;

    let elapsed = results.iter().map(|r| r.elapsed).fold(0.0, f64::max);
    let sum = |f: fn(&WorkerResult) -> u64| results.iter().map(f).sum::<u64>();
    let (rx_pkts, rx_bytes, tx_pkts, tx_bytes) = (
        sum(|r| r.rx_pkts),
        sum(|r| r.rx_bytes),
        sum(|r| r.tx_pkts),
        sum(|r| r.tx_bytes),
    );
    let busy_ticks = sum(|r| r.busy_ticks);
    let secs = elapsed.max(1e-9);
    let mpps = rx_pkts as f64 / secs / 1e6;
    let gbps = rx_bytes as f64 * 8.0 / secs / 1e9;
    let sessions: u32 = results.iter().map(|r| r.added).sum();
    let setup_s = results.iter().map(|r| r.setup_s).fold(0.0, f64::max);
    let per_session = |after: u64| {
        if sessions == 0 {
            serde_json::Value::Null
        } else {
            json!((after.saturating_sub(rss_before)) as f64 / f64::from(sessions))
        }
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).map_err(|e| e.to_string())?;
    for r in &results {
        let _ = hist.add(&r.hist);
    }
    let q = |p: f64| hist.value_at_quantile(p);
    let mut drops = serde_json::Map::new();
    for r in &results {
        for (k, v) in &r.drops {
            let n = drops.get(k).and_then(|x| x.as_u64()).unwrap_or(0) + v.as_u64().unwrap_or(0);
            drops.insert(k.clone(), json!(n));
        }
    }
    let per_worker: Vec<serde_json::Value> = results
        .iter()
        .zip(&lcores)
        .map(|(r, core)| {
            json!({
                "lcore": core, "clients": r.added, "rx_pkts": r.rx_pkts,
                "mpps": r.rx_pkts as f64 / r.elapsed.max(1e-9) / 1e6,
                "busy_cycles_per_packet": r.busy_ticks as f64 / (r.rx_pkts.max(1)) as f64,
            })
        })
        .collect();
    let report = json!({
        "tag": a.tag,
        "mode": a.mode.name(),
        "size": a.size.label(),
        "mean_len": a.size.mean_len(),
        "clients_requested": a.clients,
        "clients": sessions,
        "flows_per_client": a.flows,
        "duration_s": elapsed,
        "workers": a.workers,
        "lcore": lcores[0],
        "lcores": lcores,
        "burst": a.burst,
        "mtu": a.mtu,
        "udp_checksum": a.udp_checksum,
        "eal_mem": a.eal_mem,
        "dpdk": eal.version(),
        "rx_pkts": rx_pkts,
        "tx_pkts": tx_pkts,
        "tx_pkts_offered": sum(|r| r.txv_left) + tx_pkts,
        "mpps": mpps,
        "gbps": gbps,
        "tx_mpps": tx_pkts as f64 / secs / 1e6,
        "tx_gbps": tx_bytes as f64 * 8.0 / secs / 1e9,
        "tsc_hz": tsc_hz,
        "busy_cycles": busy_ticks,
        "busy_cycles_per_packet": busy_ticks as f64 / (rx_pkts.max(1)) as f64,
        "per_worker": per_worker,
        "latency_ns": {
            "what": "per burst, rx_burst start to tx_burst end (bursts with >= 1 packet)",
            "p50": q(0.50), "p99": q(0.99), "p999": q(0.999), "max": hist.max(),
            "mean": hist.mean(), "bursts": hist.len(),
        },
        "fill_failures": sum(|r| r.fill_fail),
        "engine": {
            "anchor_rx": sum(|r| r.anchor_rx), "delivery_rx": sum(|r| r.delivery_rx),
            "anchor_tx": sum(|r| r.anchor_tx),
            "drops": drops,
            "reorder_depth": results.iter().map(|r| r.reorder_depth).sum::<usize>(),
        },
        "polls": sum(|r| r.polls),
        "poll_ms_total": sum(|r| r.poll_ticks) as f64 / (tsc_hz / 1e9) / 1e6,
        "setup_s": setup_s,
        "rss_before": rss_before,
        "rss_clients": rss_clients,
        "rss_after": rss_after,
        "bytes_per_session_config": per_session(rss_clients),
        "bytes_per_session_after_run": per_session(rss_after),
        "mbuf_alloc_failures": sum(|r| r.mbuf_alloc_failures),
        "rx_port": sum(|r| r.rx_port),
        "tx_dropped": sum(|r| r.tx_dropped),
    });
    println!("{report}");
    Ok(())
}

/// The RSS read while every worker still holds its state (after the run).
static RSS_AFTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
