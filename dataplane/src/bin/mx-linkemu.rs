//! `mx-linkemu`: the testbed's netem replacement. Bridges two interfaces A and B over AF_PACKET
//! (raw Ethernet frames, both directions) through one `pipelines::sim::link::EmulatedLink` per
//! direction (rate, delay, jitter, loss, burst loss, reorder, duplicate, queue limit, up/down,
//! seeded), and takes changes at run time on a Unix control socket.
//!
//! ```text
//! mx-linkemu -a veth1 -b veth2 --delay-ms 20 --jitter-ms 2 --loss 0.02 --rate-mbit 50 --seed 1 \
//!            --b-to-a-rate-mbit 10 --control /run/linkemu.sock
//! ```
//!
//! Control protocol (one command per line, one JSON line answered per command):
//! `set [a2b|b2a|both] key=value ...`, `down [dir]`, `up [dir]`, `stats`, `quit`.
//! Keys are the flag names with `_`: `delay_ms jitter_ms loss rate_mbit queue_limit_bytes
//! reorder reorder_gap_ms duplicate burst_loss_len burst_loss_rate down_policy`.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use dataplane::ports::af_packet::{AfPacketConfig, AfPacketPort, L2Mode};
use dataplane::ports::{BufPool, Port, PortStats, BURST};
use pipelines::sim::link::{DownPolicy, EmulatedLink, GilbertElliott, LinkConfig, LinkStats};
use pipelines::HeapBuf;
use serde_json::{json, Value};

/// Longest sleep between two passes: the poll timeout is the time to the next scheduled
/// departure, capped here (brief: "capped at 1 ms").
const MAX_SLEEP_NS: u64 = 1_000_000;
/// Receive bursts per direction per pass, so one busy side cannot starve the other.
const MAX_RX_BURSTS: usize = 16;
/// Control connections served at once.
const MAX_CLIENTS: usize = 16;
/// Longest control line.
const MAX_LINE: usize = 4096;
/// Frame buffer: a 1500-byte MTU frame plus headroom, with room for 9000-byte jumbo frames.
const BUF_CAPACITY: usize = 9216 + 64;

macro_rules! link_flags {
    ($name:ident, $p:literal, $heading:literal) => {
        #[derive(clap::Args, Debug, Clone, Default)]
        #[command(next_help_heading = $heading)]
        struct $name {
            /// One-way delay, ms.
            #[arg(long = concat!($p, "delay-ms"), id = concat!($p, "delay-ms"), value_name = "MS")]
            delay_ms: Option<f64>,
            /// Jitter, ms: delay is uniform in [delay - jitter, delay + jitter]; FIFO kept
            /// unless --reorder.
            #[arg(long = concat!($p, "jitter-ms"), id = concat!($p, "jitter-ms"), value_name = "MS")]
            jitter_ms: Option<f64>,
            /// i.i.d. loss probability, 0..1.
            #[arg(long = concat!($p, "loss"), id = concat!($p, "loss"), value_name = "P")]
            loss: Option<f64>,
            /// Rate in Mbit/s (0 = unlimited).
            #[arg(long = concat!($p, "rate-mbit"), id = concat!($p, "rate-mbit"), value_name = "MBIT")]
            rate_mbit: Option<f64>,
            /// Tail-drop limit of the rate queue in bytes (0 = unlimited).
            #[arg(long = concat!($p, "queue-limit-bytes"), id = concat!($p, "queue-limit-bytes"), value_name = "BYTES")]
            queue_limit_bytes: Option<u64>,
            /// Reorder probability, 0..1 (a reordered packet skips the delay, as in netem).
            #[arg(long = concat!($p, "reorder"), id = concat!($p, "reorder"), value_name = "P")]
            reorder: Option<f64>,
            /// How much earlier than the delay a reordered packet arrives, ms (default: all of it).
            #[arg(long = concat!($p, "reorder-gap-ms"), id = concat!($p, "reorder-gap-ms"), value_name = "MS")]
            reorder_gap_ms: Option<f64>,
            /// Duplication probability, 0..1.
            #[arg(long = concat!($p, "duplicate"), id = concat!($p, "duplicate"), value_name = "P")]
            duplicate: Option<f64>,
            /// Mean burst length of Gilbert-Elliott loss, packets (with --burst-loss-rate).
            #[arg(long = concat!($p, "burst-loss-len"), id = concat!($p, "burst-loss-len"), value_name = "PKTS")]
            burst_loss_len: Option<f64>,
            /// Long-run loss rate of Gilbert-Elliott loss, 0..1 (0 = off).
            #[arg(long = concat!($p, "burst-loss-rate"), id = concat!($p, "burst-loss-rate"), value_name = "P")]
            burst_loss_rate: Option<f64>,
            /// What going down does to packets in flight: drop | deliver.
            #[arg(long = concat!($p, "down-policy"), id = concat!($p, "down-policy"), value_name = "POLICY")]
            down_policy: Option<String>,
            /// Seed of this direction's random generator.
            #[arg(long = concat!($p, "seed"), id = concat!($p, "seed"), value_name = "N")]
            seed: Option<u64>,
        }

        impl $name {
            fn params(&self) -> Result<LinkParams, String> {
                Ok(LinkParams {
                    delay_ms: self.delay_ms,
                    jitter_ms: self.jitter_ms,
                    loss: self.loss,
                    rate_mbit: self.rate_mbit,
                    queue_limit_bytes: self.queue_limit_bytes,
                    reorder: self.reorder,
                    reorder_gap_ms: self.reorder_gap_ms,
                    duplicate: self.duplicate,
                    burst_loss_len: self.burst_loss_len,
                    burst_loss_rate: self.burst_loss_rate,
                    down_policy: self.down_policy.as_deref().map(parse_policy).transpose()?,
                    seed: self.seed,
                })
            }
        }
    };
}

link_flags!(BothFlags, "", "Link (both directions)");
link_flags!(AbFlags, "a-to-b-", "Overrides for A -> B");
link_flags!(BaFlags, "b-to-a-", "Overrides for B -> A");

/// Bridge two interfaces through an emulated link (netem replacement).
#[derive(Parser, Debug)]
#[command(name = "mx-linkemu", version)]
struct Cli {
    /// Interface A.
    #[arg(short = 'a', long = "iface-a", value_name = "IF")]
    iface_a: String,
    /// Interface B.
    #[arg(short = 'b', long = "iface-b", value_name = "IF")]
    iface_b: String,
    /// Unix control socket path (line commands: set/up/down/stats/quit).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Do not put the interfaces in promiscuous mode (then only frames the NIC accepts are
    /// bridged).
    #[arg(long)]
    no_promisc: bool,
    /// Packets in flight per direction beyond which new ones are dropped (memory bound).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    max_in_flight: usize,
    /// Start with the link down (both directions).
    #[arg(long)]
    start_down: bool,
    #[command(flatten)]
    both: BothFlags,
    #[command(flatten)]
    ab: AbFlags,
    #[command(flatten)]
    ba: BaFlags,
}

/// Link settings as given by flags or a `set` command; `None` leaves a setting unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct LinkParams {
    delay_ms: Option<f64>,
    jitter_ms: Option<f64>,
    loss: Option<f64>,
    rate_mbit: Option<f64>,
    queue_limit_bytes: Option<u64>,
    reorder: Option<f64>,
    reorder_gap_ms: Option<f64>,
    duplicate: Option<f64>,
    burst_loss_len: Option<f64>,
    burst_loss_rate: Option<f64>,
    down_policy: Option<DownPolicy>,
    seed: Option<u64>,
}

fn parse_policy(s: &str) -> Result<DownPolicy, String> {
    match s {
        "drop" => Ok(DownPolicy::DropInFlight),
        "deliver" => Ok(DownPolicy::DeliverInFlight),
        _ => Err(format!("down_policy must be drop or deliver, not {s:?}")),
    }
}

fn prob(name: &str, v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{name} must be in [0, 1], got {v}"))
    }
}

fn ms_to_ns(name: &str, v: f64) -> Result<u64, String> {
    // 1e7 ms (~2.8 h) is far beyond any useful delay and keeps the product exact in u64.
    if v.is_finite() && (0.0..=1e7).contains(&v) {
        Ok((v * 1e6).round() as u64)
    } else {
        Err(format!("{name} must be in [0, 1e7] ms, got {v}"))
    }
}

impl LinkParams {
    /// `b`'s settings where given, else `self`'s.
    fn overlay(self, b: LinkParams) -> LinkParams {
        LinkParams {
            delay_ms: b.delay_ms.or(self.delay_ms),
            jitter_ms: b.jitter_ms.or(self.jitter_ms),
            loss: b.loss.or(self.loss),
            rate_mbit: b.rate_mbit.or(self.rate_mbit),
            queue_limit_bytes: b.queue_limit_bytes.or(self.queue_limit_bytes),
            reorder: b.reorder.or(self.reorder),
            reorder_gap_ms: b.reorder_gap_ms.or(self.reorder_gap_ms),
            duplicate: b.duplicate.or(self.duplicate),
            burst_loss_len: b.burst_loss_len.or(self.burst_loss_len),
            burst_loss_rate: b.burst_loss_rate.or(self.burst_loss_rate),
            down_policy: b.down_policy.or(self.down_policy),
            seed: b.seed.or(self.seed),
        }
    }

    /// The configuration `cfg` with these settings applied, or why they are invalid (then
    /// nothing is applied).
    fn apply(&self, cfg: &LinkConfig) -> Result<LinkConfig, String> {
        let mut c = *cfg;
        if let Some(v) = self.delay_ms {
            c.delay_ns = ms_to_ns("delay_ms", v)?;
        }
        if let Some(v) = self.jitter_ms {
            c.jitter_ns = ms_to_ns("jitter_ms", v)?;
        }
        if let Some(v) = self.loss {
            c.loss = prob("loss", v)?;
        }
        if let Some(v) = self.rate_mbit {
            if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
                return Err(format!("rate_mbit must be in [0, 1e6], got {v}"));
            }
            c.rate_bps = (v * 1e6).round() as u64;
        }
        if let Some(v) = self.queue_limit_bytes {
            c.queue_limit_bytes = if v == 0 {
                usize::MAX
            } else {
                usize::try_from(v).unwrap_or(usize::MAX)
            };
        }
        if let Some(v) = self.reorder {
            c.reorder = prob("reorder", v)?;
        }
        if let Some(v) = self.reorder_gap_ms {
            c.reorder_gap_ns = ms_to_ns("reorder_gap_ms", v)?;
        }
        if let Some(v) = self.duplicate {
            c.duplicate = prob("duplicate", v)?;
        }
        if self.burst_loss_len.is_some() || self.burst_loss_rate.is_some() {
            let len = self
                .burst_loss_len
                .or(c.burst_loss.map(|g| g.mean_burst_len()))
                .unwrap_or(1.0);
            let rate = self
                .burst_loss_rate
                .or(c.burst_loss.map(|g| g.stationary_loss()))
                .unwrap_or(0.0);
            if !(len.is_finite() && len >= 1.0) {
                return Err(format!("burst_loss_len must be >= 1, got {len}"));
            }
            // Below 1: the model's stationary loss needs P(Bad) < 1.
            if !(0.0..1.0).contains(&rate) {
                return Err(format!("burst_loss_rate must be in [0, 1), got {rate}"));
            }
            c.burst_loss = (rate > 0.0).then(|| GilbertElliott::from_bursts(len, rate));
        }
        if let Some(p) = self.down_policy {
            c.down_policy = p;
        }
        if let Some(s) = self.seed {
            c.seed = s;
        }
        Ok(c)
    }
}

/// Which directions a command applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dirs {
    AtoB,
    BtoA,
    Both,
}

impl Dirs {
    fn parse(s: &str) -> Option<Dirs> {
        match s {
            "a2b" | "a-to-b" | "ab" => Some(Dirs::AtoB),
            "b2a" | "b-to-a" | "ba" => Some(Dirs::BtoA),
            "both" => Some(Dirs::Both),
            _ => None,
        }
    }
    fn includes(self, d: usize) -> bool {
        matches!(
            (self, d),
            (Dirs::Both, _) | (Dirs::AtoB, 0) | (Dirs::BtoA, 1)
        )
    }
}

/// A parsed control command.
#[derive(Debug, Clone, PartialEq)]
enum Command {
    Set(Dirs, LinkParams),
    Up(Dirs, bool),
    Stats,
    Quit,
}

fn parse_command(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let verb = words.next().ok_or("empty command")?;
    let rest: Vec<&str> = words.collect();
    let (dirs, args) = match rest.first().and_then(|w| Dirs::parse(w)) {
        Some(d) => (d, &rest[1..]),
        None => (Dirs::Both, &rest[..]),
    };
    match verb {
        "stats" | "quit" | "exit" if !rest.is_empty() => Err(format!("{verb} takes no arguments")),
        "stats" => Ok(Command::Stats),
        "quit" | "exit" => Ok(Command::Quit),
        "up" | "down" if !args.is_empty() => Err(format!("unexpected argument {:?}", args[0])),
        "up" => Ok(Command::Up(dirs, true)),
        "down" => Ok(Command::Up(dirs, false)),
        "set" => {
            if args.is_empty() {
                return Err("set needs key=value".into());
            }
            let mut p = LinkParams::default();
            for kv in args {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("expected key=value, got {kv:?}"))?;
                let f = || {
                    v.parse::<f64>()
                        .map_err(|_| format!("{k}: not a number: {v:?}"))
                };
                match k {
                    "delay_ms" => p.delay_ms = Some(f()?),
                    "jitter_ms" => p.jitter_ms = Some(f()?),
                    "loss" => p.loss = Some(f()?),
                    "rate_mbit" => p.rate_mbit = Some(f()?),
                    "queue_limit_bytes" => {
                        p.queue_limit_bytes = Some(
                            v.parse()
                                .map_err(|_| format!("{k}: not an integer: {v:?}"))?,
                        )
                    }
                    "reorder" => p.reorder = Some(f()?),
                    "reorder_gap_ms" => p.reorder_gap_ms = Some(f()?),
                    "duplicate" => p.duplicate = Some(f()?),
                    "burst_loss_len" => p.burst_loss_len = Some(f()?),
                    "burst_loss_rate" => p.burst_loss_rate = Some(f()?),
                    "down_policy" => p.down_policy = Some(parse_policy(v)?),
                    "seed" => return Err("seed can only be set at start".into()),
                    _ => return Err(format!("unknown key {k:?}")),
                }
            }
            // Validate now so a bad command changes nothing.
            p.apply(&LinkConfig::default())?;
            Ok(Command::Set(dirs, p))
        }
        _ => Err(format!("unknown command {verb:?}")),
    }
}

/// A buffer source that never refuses (the emulated link drops packets internally, so buffers
/// do not all come back) and keeps a bounded free list for reuse.
struct GrowPool {
    free: Vec<HeapBuf>,
}

impl BufPool<HeapBuf> for GrowPool {
    fn alloc(&mut self) -> Option<HeapBuf> {
        Some(match self.free.pop() {
            Some(mut b) => {
                b.reset(0);
                b
            }
            None => HeapBuf::new(0, BUF_CAPACITY),
        })
    }
    fn free(&mut self, buf: HeapBuf) {
        if buf.capacity() == BUF_CAPACITY && self.free.len() < 4096 {
            self.free.push(buf);
        }
    }
}

/// CLOCK_MONOTONIC in ns.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: zero is a valid sigaction; the handler only stores to an atomic, which is
        // async-signal-safe; no SA_RESTART, so ppoll returns EINTR promptly.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// One direction: frames received on `ports[from]` go through `link` to `ports[1 - from]`.
struct Direction {
    link: EmulatedLink<HeapBuf>,
    /// Frames dropped because `max_in_flight` were already in the link.
    overflow: u64,
}

struct Emu {
    ports: [AfPacketPort; 2],
    dirs: [Direction; 2],
    pool: GrowPool,
    max_in_flight: usize,
    started: u64,
}

fn link_json(d: &Direction, now: u64) -> Value {
    let s: &LinkStats = d.link.stats();
    let c = d.link.config();
    json!({
        "up": d.link.is_up(),
        "sent": s.sent, "delivered": s.delivered, "dropped_loss": s.dropped_loss,
        "dropped_queue": s.dropped_queue, "dropped_down": s.dropped_down,
        "dropped_overflow": d.overflow, "duplicated": s.duplicated, "reordered": s.reordered,
        "bytes_sent": s.bytes_sent, "bytes_delivered": s.bytes_delivered,
        "max_queue_bytes": s.max_queue_bytes, "queue_bytes": d.link.queue_bytes(now),
        "in_flight": d.link.in_flight(),
        "config": {
            "delay_ms": c.delay_ns as f64 / 1e6, "jitter_ms": c.jitter_ns as f64 / 1e6,
            "loss": c.loss, "rate_mbit": c.rate_bps as f64 / 1e6,
            "queue_limit_bytes": if c.queue_limit_bytes == usize::MAX { 0 } else { c.queue_limit_bytes },
            "reorder": c.reorder, "duplicate": c.duplicate,
            "burst_loss_len": c.burst_loss.map(|g| g.mean_burst_len()),
            "burst_loss_rate": c.burst_loss.map(|g| g.stationary_loss()),
            "down_policy": match c.down_policy { DownPolicy::DropInFlight => "drop", DownPolicy::DeliverInFlight => "deliver" },
            "seed": c.seed,
        }
    })
}

fn port_json(p: &AfPacketPort) -> Value {
    let s: PortStats = p.stats();
    json!({
        "name": p.name(), "rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes,
        "tx_packets": s.tx_packets, "tx_bytes": s.tx_bytes, "rx_dropped": s.rx_dropped,
        "tx_dropped": s.tx_dropped, "rx_errors": s.rx_errors, "tx_errors": s.tx_errors,
        "rx_truncated": p.extra_stats().rx_truncated,
    })
}

impl Emu {
    fn stats_json(&self, now: u64) -> Value {
        json!({
            "ok": true,
            "uptime_ms": (now.saturating_sub(self.started)) / 1_000_000,
            "a_to_b": link_json(&self.dirs[0], now),
            "b_to_a": link_json(&self.dirs[1], now),
            "port_a": port_json(&self.ports[0]),
            "port_b": port_json(&self.ports[1]),
        })
    }

    /// Executes one control line; returns the answer and whether to close the connection.
    fn execute(&mut self, line: &str, now: u64) -> (Value, bool) {
        match parse_command(line) {
            Err(e) => (json!({"ok": false, "error": e}), false),
            Ok(Command::Stats) => (self.stats_json(now), false),
            Ok(Command::Quit) => (json!({"ok": true}), true),
            Ok(Command::Up(dirs, up)) => {
                for (i, d) in self.dirs.iter_mut().enumerate() {
                    if dirs.includes(i) {
                        d.link.set_up(up, now);
                    }
                }
                (json!({"ok": true}), false)
            }
            Ok(Command::Set(dirs, p)) => {
                for (i, d) in self.dirs.iter_mut().enumerate() {
                    if dirs.includes(i) {
                        // Validated by parse_command.
                        if let Ok(c) = p.apply(d.link.config()) {
                            d.link.set_config(c, now);
                        }
                    }
                }
                (json!({"ok": true}), false)
            }
        }
    }

    /// Moves frames from the sockets into the links (bounded bursts).
    fn receive(&mut self, rx: &mut Vec<HeapBuf>) {
        for from in 0..2 {
            for _ in 0..MAX_RX_BURSTS {
                rx.clear();
                let n = self.ports[from].rx_burst(&mut self.pool, rx, BURST);
                let now = mono_ns();
                let d = &mut self.dirs[from];
                for p in rx.drain(..) {
                    if d.link.in_flight() >= self.max_in_flight {
                        d.overflow += 1;
                        self.pool.free(p);
                    } else {
                        let _ = d.link.send(p, now);
                    }
                }
                if n < BURST {
                    break;
                }
            }
        }
    }

    /// Sends everything whose arrival time has come.
    fn deliver(&mut self, tx: &mut Vec<HeapBuf>) {
        let now = mono_ns();
        for from in 0..2 {
            let to = 1 - from;
            // Bounded by what is in flight.
            while let Some(p) = self.dirs[from].link.poll(now) {
                tx.push(p);
                if tx.len() == BURST {
                    self.ports[to].tx_burst(&mut self.pool, tx);
                }
            }
            if !tx.is_empty() {
                self.ports[to].tx_burst(&mut self.pool, tx);
            }
        }
    }

    /// Nanoseconds until the next scheduled departure, capped at [`MAX_SLEEP_NS`].
    fn sleep_ns(&self, now: u64) -> u64 {
        self.dirs
            .iter()
            .filter_map(|d| d.link.next_arrival())
            .min()
            .map_or(MAX_SLEEP_NS, |t| t.saturating_sub(now).min(MAX_SLEEP_NS))
    }
}

fn serve_clients(emu: &mut Emu, clients: &mut Vec<Client>, ready: &[bool]) {
    let mut i = 0;
    while i < clients.len() {
        if !ready.get(i).copied().unwrap_or(false) {
            i += 1;
            continue;
        }
        let mut close = false;
        let mut chunk = [0u8; 1024];
        // Bounded: at most 16 reads per pass.
        for _ in 0..16 {
            match clients[i].stream.read(&mut chunk) {
                Ok(0) => {
                    close = true;
                    break;
                }
                Ok(n) => clients[i].buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    close = true;
                    break;
                }
            }
        }
        while let Some(pos) = clients[i].buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = clients[i].buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (answer, quit) = emu.execute(line, mono_ns());
            let mut out = answer.to_string();
            out.push('\n');
            if write_all_bounded(&mut clients[i].stream, out.as_bytes()).is_err() || quit {
                close = true;
                break;
            }
        }
        if clients[i].buf.len() > MAX_LINE {
            let _ = write_all_bounded(
                &mut clients[i].stream,
                b"{\"ok\":false,\"error\":\"line too long\"}\n",
            );
            close = true;
        }
        if close {
            clients.remove(i);
        } else {
            i += 1;
        }
    }
}

/// Writes on a non-blocking stream, retrying for at most ~100 ms (answers are small).
fn write_all_bounded(s: &mut UnixStream, mut data: &[u8]) -> std::io::Result<()> {
    let deadline = mono_ns() + 100_000_000;
    while !data.is_empty() {
        match s.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                if mono_ns() > deadline {
                    return Err(ErrorKind::TimedOut.into());
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn build_configs(cli: &Cli) -> Result<[LinkConfig; 2], String> {
    let both = cli.both.params()?;
    let base = LinkConfig::default().with_up(!cli.start_down);
    let ab = both.overlay(cli.ab.params()?).apply(&base)?;
    let mut ba = both.overlay(cli.ba.params()?).apply(&base)?;
    if cli.ba.seed.is_none() {
        // Distinct streams per direction unless asked otherwise.
        ba.seed = ba.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    }
    Ok([ab, ba])
}

fn open_port(ifname: &str, promisc: bool) -> std::io::Result<AfPacketPort> {
    let mut cfg = AfPacketConfig::new(ifname, L2Mode::Raw);
    cfg.promiscuous = promisc;
    cfg.rcvbuf = Some(4 << 20);
    cfg.sndbuf = Some(4 << 20);
    AfPacketPort::open(&cfg)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfgs = match build_configs(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mx-linkemu: {e}");
            return ExitCode::from(2);
        }
    };
    let ports = match (
        open_port(&cli.iface_a, !cli.no_promisc),
        open_port(&cli.iface_b, !cli.no_promisc),
    ) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(e), _) => {
            eprintln!("mx-linkemu: cannot open {}: {e}", cli.iface_a);
            return ExitCode::FAILURE;
        }
        (_, Err(e)) => {
            eprintln!("mx-linkemu: cannot open {}: {e}", cli.iface_b);
            return ExitCode::FAILURE;
        }
    };
    let listener = match &cli.control {
        None => None,
        Some(path) => {
            // A stale socket from an earlier run would make bind fail.
            let _ = std::fs::remove_file(path);
            match UnixListener::bind(path).and_then(|l| l.set_nonblocking(true).map(|_| l)) {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("mx-linkemu: control socket {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    install_signal_handlers();
    let mut emu = Emu {
        ports,
        dirs: cfgs.map(|c| Direction {
            link: EmulatedLink::with_capacity(c, 4096),
            overflow: 0,
        }),
        pool: GrowPool { free: Vec::new() },
        max_in_flight: cli.max_in_flight,
        started: mono_ns(),
    };
    eprintln!(
        "mx-linkemu: bridging {} <-> {}{}",
        cli.iface_a,
        cli.iface_b,
        cli.control
            .as_ref()
            .map(|p| format!(", control {}", p.display()))
            .unwrap_or_default()
    );
    let mut clients: Vec<Client> = Vec::new();
    let mut rx = Vec::with_capacity(BURST);
    let mut tx = Vec::with_capacity(BURST);
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3 + MAX_CLIENTS);
    let mut ready: Vec<bool> = Vec::with_capacity(MAX_CLIENTS);
    // Runs until SIGINT/SIGTERM; each pass is bounded (bursts, in-flight, clients) and sleeps
    // at most MAX_SLEEP_NS.
    while !STOP.load(Ordering::SeqCst) {
        emu.receive(&mut rx);
        emu.deliver(&mut tx);
        fds.clear();
        for p in &emu.ports {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(l) = &listener {
            fds.push(libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for c in &clients {
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let wait = emu.sleep_ns(mono_ns());
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: wait as libc::c_long,
        };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds; `ts` is a valid timespec;
        // a null sigmask leaves the mask unchanged.
        let r = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if r <= 0 {
            continue;
        }
        if let Some(l) = &listener {
            if fds[2].revents != 0 {
                // Bounded by MAX_CLIENTS accepts.
                for _ in 0..MAX_CLIENTS {
                    match l.accept() {
                        Ok((s, _)) if clients.len() < MAX_CLIENTS => {
                            if s.set_nonblocking(true).is_ok() {
                                clients.push(Client {
                                    stream: s,
                                    buf: Vec::new(),
                                });
                            }
                        }
                        Ok(_) => {} // too many clients: the connection is closed at once
                        Err(_) => break,
                    }
                }
            }
            let base = 3;
            ready.clear();
            ready.extend(
                (0..clients.len()).map(|i| fds.get(base + i).is_some_and(|f| f.revents != 0)),
            );
            serve_clients(&mut emu, &mut clients, &ready);
        }
    }
    let now = mono_ns();
    println!("{}", emu.stats_json(now));
    if let Some(path) = &cli.control {
        let _ = std::fs::remove_file(path);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_set_both_directions_and_overrides_win() {
        let cli = Cli::try_parse_from([
            "mx-linkemu",
            "-a",
            "x",
            "-b",
            "y",
            "--delay-ms",
            "20",
            "--jitter-ms",
            "2",
            "--loss",
            "0.02",
            "--rate-mbit",
            "50",
            "--seed",
            "1",
            "--b-to-a-delay-ms",
            "5",
            "--a-to-b-loss",
            "0",
        ])
        .unwrap();
        let [ab, ba] = build_configs(&cli).unwrap();
        assert_eq!(ab.delay_ns, 20_000_000);
        assert_eq!(ba.delay_ns, 5_000_000);
        assert_eq!((ab.jitter_ns, ba.jitter_ns), (2_000_000, 2_000_000));
        assert_eq!((ab.loss, ba.loss), (0.0, 0.02));
        assert_eq!(ab.rate_bps, 50_000_000);
        assert_eq!(ab.seed, 1);
        assert_ne!(ba.seed, 1, "directions get distinct random streams");
        assert_eq!(ab.reorder, 0.0, "no reordering unless asked");
        assert!(ab.up && ba.up);
    }

    #[test]
    fn invalid_flags_are_rejected() {
        let cli =
            Cli::try_parse_from(["mx-linkemu", "-a", "x", "-b", "y", "--loss", "1.5"]).unwrap();
        assert!(build_configs(&cli).unwrap_err().contains("loss"));
        let cli =
            Cli::try_parse_from(["mx-linkemu", "-a", "x", "-b", "y", "--delay-ms=-1"]).unwrap();
        assert!(build_configs(&cli).is_err());
        assert!(Cli::try_parse_from(["mx-linkemu", "-a", "x"]).is_err());
    }

    #[test]
    fn control_set_parses_keys_and_directions() {
        let c = parse_command("set delay_ms=50 loss=0.05").unwrap();
        let Command::Set(Dirs::Both, p) = c else {
            panic!("{c:?}")
        };
        assert_eq!((p.delay_ms, p.loss), (Some(50.0), Some(0.05)));
        let cfg = p.apply(&LinkConfig::default()).unwrap();
        assert_eq!(cfg.delay_ns, 50_000_000);
        let c = parse_command("set b2a rate_mbit=10 queue_limit_bytes=30000").unwrap();
        assert!(matches!(c, Command::Set(Dirs::BtoA, _)));
        assert_eq!(
            parse_command("down").unwrap(),
            Command::Up(Dirs::Both, false)
        );
        assert_eq!(
            parse_command("up a2b").unwrap(),
            Command::Up(Dirs::AtoB, true)
        );
        assert_eq!(parse_command("stats").unwrap(), Command::Stats);
        assert_eq!(parse_command("quit").unwrap(), Command::Quit);
    }

    #[test]
    fn control_rejects_bad_commands_without_side_effects() {
        for bad in [
            "",
            "set",
            "set loss=2",
            "set loss=abc",
            "set nokey=1",
            "set delay_ms",
            "set seed=3",
            "frobnicate",
            "up sideways",
            "stats now",
            "set burst_loss_rate=1",
        ] {
            assert!(parse_command(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn burst_loss_params_build_gilbert_elliott_and_zero_clears_it() {
        let p = LinkParams {
            burst_loss_len: Some(5.0),
            burst_loss_rate: Some(0.03),
            ..Default::default()
        };
        let c = p.apply(&LinkConfig::default()).unwrap();
        let ge = c.burst_loss.unwrap();
        assert!((ge.mean_burst_len() - 5.0).abs() < 1e-9);
        assert!((ge.stationary_loss() - 0.03).abs() < 1e-9);
        let off = LinkParams {
            burst_loss_rate: Some(0.0),
            ..Default::default()
        };
        assert_eq!(off.apply(&c).unwrap().burst_loss, None);
    }

    #[test]
    fn queue_limit_zero_means_unlimited() {
        let p = LinkParams {
            queue_limit_bytes: Some(0),
            ..Default::default()
        };
        assert_eq!(
            p.apply(&LinkConfig::default()).unwrap().queue_limit_bytes,
            usize::MAX
        );
    }
}
