//! A worker thread: run to completion over bursts (DESIGN.md "Data flow on a worker core").
//!
//! One iteration, with the clock read once at its start:
//!
//! 1. apply the commands waiting on the worker's command ring (between bursts, never within);
//! 2. `rx_burst` on the anchor port: packets of clients this worker owns go to
//!    `Engine::from_anchor_burst`, the others to the owner's handoff ring;
//! 3. `rx_burst` on each delivery port: the [`Directory`] finds the owner; the same split,
//!    with `Engine::from_delivery`;
//! 4. drain the handoff rings from every other worker (packets to process, or to transmit on a
//!    port this worker holds);
//! 5. `Engine::poll` when a reorder or reassembly deadline may have passed;
//! 6. route the engine's outputs: `Delivery` to the port serving the path (maybe on another
//!    worker: handoff), `Anchor` to the anchor port, `Control` to the slow-path ring;
//! 7. `tx_burst` on every port with something to send; record the iteration's residence time;
//! 8. every `publish_interval`, publish a statistics snapshot; when idle for `idle_spins`
//!    iterations, sleep `idle_sleep` (unless busy-polling).
//!
//! No lock, allocation or system call per packet: vectors are reused, rings are lock-free,
//! ports make one call per burst.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam::channel::Sender;
use hdrhistogram::Histogram;
use pipelines::engine::{ClientConfig, ClientId, DeliveryConfig, Engine, Output};
use pipelines::flow::steering::{PathId, SteeringMode};
use pipelines::flow::Instant;
use pipelines::wire::mx_control::ControlPdu;
use pipelines::PacketBuf;

use super::clock::now;
use super::directory::{DirKey, Directory};
use super::pool::{Buffers, WorkerBufPool};
use super::stats::{latency_histogram, LoopCounters, PortSnapshot, WorkerSnapshot};
use super::{Handoffs, Shared};
use crate::ports::{BufPool, Port, PortStats, BURST};

/// A packet moving between workers.
pub(crate) enum Moved<B> {
    /// An anchor-side packet for a client the receiver owns.
    FromAnchor(B),
    /// A delivery-side packet for a client the receiver owns.
    FromDelivery(B),
    /// A packet to send on the receiver's delivery port `n`.
    ToDelivery(u8, B),
    /// A packet to send on the receiver's anchor port.
    ToAnchor(B),
}

impl<B> Moved<B> {
    fn into_buf(self) -> B {
        match self {
            Moved::FromAnchor(b) | Moved::FromDelivery(b) | Moved::ToAnchor(b) => b,
            Moved::ToDelivery(_, b) => b,
        }
    }
}

/// A command for one worker, applied between bursts.
pub(crate) enum Command {
    AddClient {
        cfg: Box<ClientConfig>,
        reply: Sender<Result<(), String>>,
    },
    RemoveClient {
        id: ClientId,
        reply: Sender<bool>,
    },
    SetSteering {
        id: ClientId,
        tc: Option<u8>,
        mode: SteeringMode,
        reply: Sender<bool>,
    },
    SetPathUsable {
        id: ClientId,
        path: PathId,
        usable: bool,
    },
    SetPathEstimates {
        id: ClientId,
        path: PathId,
        owd_ns: u64,
        rate_bps: Option<u64>,
    },
    /// A measured capacity (`Engine::set_path_rate`).
    SetPathRate {
        id: ClientId,
        path: PathId,
        rate_bps: u64,
    },
    UpdateDelivery {
        id: ClientId,
        d: DeliveryConfig,
    },
    SendControl {
        id: ClientId,
        path: PathId,
        pdu: ControlPdu,
    },
    DirInsert {
        keys: Vec<DirKey>,
        owner: u16,
    },
    DirRemove {
        keys: Vec<DirKey>,
    },
    /// The client's peer restarted: release what its receive flows hold and start them over
    /// (`Engine::reset_rx_flows`).
    ResetRxFlows {
        id: ClientId,
    },
    /// Publish a snapshot now, then answer.
    Publish {
        reply: Sender<()>,
    },
    Shutdown,
}

/// A control PDU for the slow path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ControlEvent {
    pub at: Instant,
    pub client: Option<ClientId>,
    pub path: Option<PathId>,
    pub peer: SocketAddr,
    pub pdu: ControlPdu,
}

/// Where a packet for a path or for the anchor side goes from this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    None,
    Local(u8),
    Remote(u16, u8),
}

/// Tuning of the worker loop.
#[derive(Debug, Clone, Copy)]
pub struct LoopOptions {
    /// Never sleep (a dedicated core); otherwise sleep `idle_sleep` after `idle_spins` empty
    /// iterations.
    pub busy_poll: bool,
    pub idle_spins: u32,
    pub idle_sleep: std::time::Duration,
    /// How often a snapshot is published.
    pub publish_interval_ns: u64,
    /// Largest interval between engine timer runs while packets are held.
    pub poll_granularity_ns: u64,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            busy_poll: false,
            idle_spins: 256,
            idle_sleep: std::time::Duration::from_micros(500),
            publish_interval_ns: 100 * pipelines::flow::MS,
            poll_granularity_ns: pipelines::flow::MS,
        }
    }
}

pub(crate) struct Worker<X: Buffers> {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub handoffs: Arc<Handoffs<X::Buf>>,
    pub buffers: Arc<X>,
    pub engine: Engine<X::Buf>,
    pub pool: X::Pool,
    pub anchor: Option<Box<dyn Port<X::Buf>>>,
    pub delivery: Vec<Box<dyn Port<X::Buf>>>,
    pub dir: Directory,
    pub opts: LoopOptions,
    rx: Vec<X::Buf>,
    mine: Vec<X::Buf>,
    /// Delivery-side packets of the current burst this worker owns.
    mine_delivery: Vec<X::Buf>,
    out: Vec<Output<X::Buf>>,
    atx: Vec<X::Buf>,
    dtx: Vec<Vec<X::Buf>>,
    lc: LoopCounters,
    hist: Histogram<u64>,
    /// Per packet, receive stamp to transmit ([`StatsSlot::packet_latency`]).
    pkt_hist: Histogram<u64>,
    /// The storage of the snapshot published before the last one, refilled in place by the
    /// next publish (no allocation per client every 100 ms).
    spare: WorkerSnapshot,
    next_poll: Instant,
    next_publish: Instant,
    /// Something was pushed to another worker's ring in this shutdown round.
    pushed: bool,
}

impl<X: Buffers> Worker<X> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        handoffs: Arc<Handoffs<X::Buf>>,
        buffers: Arc<X>,
        engine: Engine<X::Buf>,
        anchor: Option<Box<dyn Port<X::Buf>>>,
        delivery: Vec<Box<dyn Port<X::Buf>>>,
        dir: Directory,
        opts: LoopOptions,
    ) -> Worker<X> {
        let n = delivery.len();
        let pool = buffers.worker_pool(id);
        Worker {
            id,
            shared,
            handoffs,
            buffers,
            engine,
            pool,
            anchor,
            delivery,
            dir,
            opts,
            rx: Vec::with_capacity(BURST),
            mine: Vec::with_capacity(BURST * 4),
            mine_delivery: Vec::with_capacity(BURST),
            out: Vec::with_capacity(BURST * 8),
            atx: Vec::with_capacity(BURST * 4),
            dtx: (0..n).map(|_| Vec::with_capacity(BURST * 4)).collect(),
            lc: LoopCounters::default(),
            hist: latency_histogram(),
            pkt_hist: latency_histogram(),
            spare: WorkerSnapshot::default(),
            next_poll: u64::MAX,
            next_publish: 0,
            pushed: false,
        }
    }

    /// The loop; returns after a `Shutdown` command and the shutdown rounds.
    pub fn run(mut self) {
        let mut idle = 0u32;
        loop {
            let t = now();
            self.lc.iterations += 1;
            let (did, stop) = self.commands(t);
            if stop {
                break;
            }
            let mut work = did;
            let moved = self.rx_anchor(t) + self.rx_delivery(t) + self.drain_handoffs(t);
            work |= moved > 0;
            if t >= self.next_poll {
                self.poll(t);
            }
            self.route();
            let sent = self.transmit();
            if moved > 0 || sent > 0 {
                let t2 = now();
                let _ = self
                    .hist
                    .record_n(t2.saturating_sub(t).max(1), (moved.max(sent)) as u64);
            }
            if t >= self.next_publish {
                self.publish(t, false);
                self.next_publish = t + self.opts.publish_interval_ns;
            }
            if work || sent > 0 {
                idle = 0;
            } else {
                idle = idle.saturating_add(1);
                if !self.opts.busy_poll && idle > self.opts.idle_spins {
                    self.lc.idle_sleeps += 1;
                    std::thread::sleep(self.opts.idle_sleep);
                }
            }
        }
        self.shutdown_rounds();
        self.publish(now(), true);
        // The ports (and their queues) go before the thread leaves the EAL.
        let (id, buffers) = (self.id, Arc::clone(&self.buffers));
        drop(self);
        buffers.thread_stop(id);
    }

    /// Shutdown: no more receiving; everything held (reorder buffers) is released and sent,
    /// packets in flight between workers included. Rounds separated by a barrier end when a
    /// round moved nothing between workers.
    fn shutdown_rounds(&mut self) {
        let shared = Arc::clone(&self.shared);
        let barrier = &shared.barrier;
        for _ in 0..1000 {
            self.pushed = false;
            let t = now();
            // Repeat locally until this worker's rings are empty.
            for _ in 0..1000 {
                let n = self.drain_handoffs(t);
                self.flush_engine();
                self.route();
                self.transmit();
                if n == 0 {
                    break;
                }
            }
            if self.pushed {
                self.shared.moved_in_round.store(true, Ordering::SeqCst);
            }
            barrier.wait();
            let any = self.shared.moved_in_round.load(Ordering::SeqCst);
            if barrier.wait().is_leader() {
                self.shared.moved_in_round.store(false, Ordering::SeqCst);
            }
            barrier.wait();
            if !any {
                break;
            }
        }
        // Anything left (a ring to a worker that could not take more) goes back to the pool.
        for from in 0..self.shared.workers {
            while let Some(m) = self.handoffs[from][self.id].pop() {
                self.pool.free(m.into_buf());
            }
        }
        self.pool.flush();
    }

    fn flush_engine(&mut self) {
        // Far in the future: every held SDU's timeout has passed; released in order.
        self.engine
            .poll(u64::MAX / 2, &mut self.pool, &mut self.out);
    }

    fn commands(&mut self, t: Instant) -> (bool, bool) {
        let mut did = false;
        // Bounded per iteration so a flood of commands cannot starve the ports.
        for _ in 0..64 {
            let Some(cmd) = self.shared.commands[self.id].pop() else {
                break;
            };
            did = true;
            self.lc.commands += 1;
            match cmd {
                Command::AddClient { cfg, reply } => {
                    let r = self.engine.add_client(*cfg).map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Command::RemoveClient { id, reply } => {
                    // Deliver what the client's reorder buffers hold before its state goes
                    // (only this client's: a poll far in the future would move every other
                    // flow's clock with it).
                    self.engine.flush_client(id, &mut self.out);
                    self.route();
                    let _ = reply.send(self.engine.remove_client(id, &mut self.pool));
                }
                Command::SetSteering {
                    id,
                    tc,
                    mode,
                    reply,
                } => {
                    let _ = reply.send(self.engine.set_steering(id, tc, mode));
                }
                Command::SetPathUsable { id, path, usable } => {
                    self.engine.set_path_usable(id, path, usable);
                }
                Command::ResetRxFlows { id } => {
                    self.engine.reset_rx_flows(id, &mut self.out);
                    self.route();
                }
                Command::SetPathEstimates {
                    id,
                    path,
                    owd_ns,
                    rate_bps,
                } => {
                    self.engine.set_path_estimates(id, path, owd_ns, rate_bps);
                }
                Command::SetPathRate { id, path, rate_bps } => {
                    self.engine.set_path_rate(id, path, rate_bps);
                }
                Command::UpdateDelivery { id, d } => {
                    let _ = self.engine.update_delivery(id, d);
                }
                Command::SendControl { id, path, pdu } => self.send_control(id, path, &pdu),
                Command::DirInsert { keys, owner } => self.dir.insert(&keys, owner),
                Command::DirRemove { keys } => self.dir.remove(&keys),
                Command::Publish { reply } => {
                    self.publish(t, false);
                    let _ = reply.send(());
                }
                Command::Shutdown => return (did, true),
            }
        }
        (did, false)
    }

    fn send_control(&mut self, id: ClientId, path: PathId, pdu: &ControlPdu) {
        // An N-MADP learns a client's endpoint from its first uplink PDU: until then there is
        // nobody to probe (not an engine drop).
        if self.engine.config().role == pipelines::engine::Role::NMadp
            && self.engine.path_remote(id, path).is_none()
        {
            self.lc.control_not_sent += 1;
            return;
        }
        match self.engine.build_control(id, path, pdu, &mut self.pool) {
            Some(pkt) => self.out.push(Output::Delivery {
                client: id,
                path,
                pkt,
            }),
            None => self.lc.control_not_sent += 1,
        }
    }

    fn handoff(&mut self, to: usize, m: Moved<X::Buf>) {
        match self.handoffs[self.id][to].push(m) {
            Ok(()) => {
                self.lc.handoffs_out += 1;
                self.pushed = true;
            }
            Err(m) => {
                self.lc.handoff_full += 1;
                self.pool.free(m.into_buf());
            }
        }
    }

    fn rx_anchor(&mut self, t: Instant) -> usize {
        let Some(port) = self.anchor.as_mut() else {
            return 0;
        };
        let n = port.rx_burst(&mut self.pool, &mut self.rx, BURST);
        if n == 0 {
            return 0;
        }
        stamp(&mut self.rx, t);
        self.lc.bursts += 1;
        self.lc.rx_packets += n as u64;
        let mut rx = std::mem::take(&mut self.rx);
        for pkt in rx.drain(..) {
            match self.dir.anchor_owner(pkt.data()) {
                Some(w) if w != self.id => self.handoff(w, Moved::FromAnchor(pkt)),
                _ => self.mine.push(pkt),
            }
        }
        self.rx = rx;
        self.send_mine(t);
        n
    }

    fn rx_delivery(&mut self, t: Instant) -> usize {
        let mut total = 0;
        for i in 0..self.delivery.len() {
            let n = self.delivery[i].rx_burst(&mut self.pool, &mut self.rx, BURST);
            if n == 0 {
                continue;
            }
            stamp(&mut self.rx, t);
            total += n;
            self.lc.bursts += 1;
            self.lc.rx_packets += n as u64;
            let mut rx = std::mem::take(&mut self.rx);
            let mut mine = std::mem::take(&mut self.mine_delivery);
            for pkt in rx.drain(..) {
                match self.dir.delivery_owner(pkt.data()) {
                    Some(w) if w != self.id => self.handoff(w, Moved::FromDelivery(pkt)),
                    _ => mine.push(pkt),
                }
            }
            // This worker's packets of the burst, in one engine call (its burst stage looks
            // up every packet's path first).
            self.engine
                .from_delivery_burst(&mut mine, t, &mut self.pool, &mut self.out);
            self.mine_delivery = mine;
            self.rx = rx;
        }
        if total > 0 {
            // New packets may be held for reordering: look at the timers soon.
            self.next_poll = self
                .next_poll
                .min(t.saturating_add(self.opts.poll_granularity_ns));
        }
        total
    }

    fn drain_handoffs(&mut self, t: Instant) -> usize {
        let mut total = 0;
        let mut got_delivery = false;
        for from in 0..self.shared.workers {
            if from == self.id {
                continue;
            }
            // At most a few bursts per ring per iteration.
            for _ in 0..BURST * 4 {
                let Some(m) = self.handoffs[from][self.id].pop() else {
                    break;
                };
                total += 1;
                match m {
                    Moved::FromAnchor(b) => self.mine.push(b),
                    Moved::FromDelivery(b) => {
                        got_delivery = true;
                        self.engine
                            .from_delivery(b, t, &mut self.pool, &mut self.out);
                    }
                    Moved::ToDelivery(i, b) => match self.dtx.get_mut(usize::from(i)) {
                        Some(v) => v.push(b),
                        None => {
                            self.lc.no_port += 1;
                            self.pool.free(b);
                        }
                    },
                    Moved::ToAnchor(b) => {
                        if self.anchor.is_some() {
                            self.atx.push(b);
                        } else {
                            self.lc.no_port += 1;
                            self.pool.free(b);
                        }
                    }
                }
            }
        }
        self.lc.handoffs_in += total as u64;
        self.send_mine(t);
        if got_delivery {
            self.next_poll = self
                .next_poll
                .min(t.saturating_add(self.opts.poll_granularity_ns));
        }
        total
    }

    /// The anchor-side packets of clients this worker owns (`mine`) through the engine.
    fn send_mine(&mut self, t: Instant) {
        if self.mine.is_empty() {
            return;
        }
        self.engine
            .from_anchor_burst(&mut self.mine, t, &mut self.pool, &mut self.out);
        // Delay compensation may hold PDUs back: poll when the first is due.
        if let Some(d) = self.engine.tx_deadline() {
            self.next_poll = self.next_poll.min(d);
        }
    }

    fn poll(&mut self, t: Instant) {
        self.lc.polls += 1;
        self.engine.poll(t, &mut self.pool, &mut self.out);
        // Recompute rarely (it walks every flow): at the deadline, or within the granularity
        // when new packets arrive.
        self.next_poll = self
            .engine
            .next_deadline()
            .unwrap_or(u64::MAX)
            .max(t.saturating_add(self.opts.poll_granularity_ns / 4));
    }

    fn route(&mut self) {
        let mut out = std::mem::take(&mut self.out);
        let shared = Arc::clone(&self.shared);
        let routes = &shared.routes[self.id];
        for o in out.drain(..) {
            match o {
                Output::Delivery { path, pkt, .. } => {
                    match routes
                        .path
                        .get(usize::from(path.0))
                        .copied()
                        .unwrap_or(Route::None)
                    {
                        Route::Local(i) => self.dtx[usize::from(i)].push(pkt),
                        Route::Remote(w, i) => {
                            self.handoff(usize::from(w), Moved::ToDelivery(i, pkt))
                        }
                        Route::None => {
                            self.lc.no_port += 1;
                            self.pool.free(pkt);
                        }
                    }
                }
                Output::Anchor(pkt) => match routes.anchor {
                    Route::Local(_) => self.atx.push(pkt),
                    Route::Remote(w, _) => self.handoff(usize::from(w), Moved::ToAnchor(pkt)),
                    Route::None => {
                        self.lc.no_port += 1;
                        self.pool.free(pkt);
                    }
                },
                Output::Control {
                    client,
                    path,
                    peer,
                    pdu,
                } => {
                    let ev = ControlEvent {
                        at: now(),
                        client,
                        path,
                        peer,
                        pdu,
                    };
                    if self.shared.control[self.id].push(ev).is_err() {
                        self.lc.control_ring_full += 1;
                    } else {
                        self.lc.control_to_slow_path += 1;
                    }
                }
            }
        }
        self.out = out;
    }

    fn transmit(&mut self) -> usize {
        let mut sent = 0;
        let mut t = None;
        if !self.atx.is_empty() {
            if let Some(p) = self.anchor.as_mut() {
                sent += self.atx.len();
                residence(&mut self.pkt_hist, &self.atx, *t.get_or_insert_with(now));
                p.tx_burst(&mut self.pool, &mut self.atx);
            }
        }
        for (i, q) in self.dtx.iter_mut().enumerate() {
            if !q.is_empty() {
                sent += q.len();
                residence(&mut self.pkt_hist, q, *t.get_or_insert_with(now));
                self.delivery[i].tx_burst(&mut self.pool, q);
            }
        }
        self.lc.tx_packets += sent as u64;
        sent
    }

    fn publish(&mut self, t: Instant, stopped: bool) {
        // Refill the spare snapshot in place, then swap it with the published one under the
        // lock: the vectors (ports, clients, each client's paths) are reused.
        let snap = &mut self.spare;
        let ports = self
            .anchor
            .iter()
            .map(|p| (p, "anchor"))
            .chain(self.delivery.iter().map(|p| (p, "delivery")));
        let mut n = 0;
        for (p, side) in ports {
            if n == snap.ports.len() {
                snap.ports.push(PortSnapshot {
                    name: String::new(),
                    side,
                    stats: PortStats::default(),
                });
            }
            let s = &mut snap.ports[n];
            if s.name != p.name() {
                s.name.clear();
                s.name.push_str(p.name());
            }
            s.side = side;
            s.stats = p.stats();
            n += 1;
        }
        snap.ports.truncate(n);
        self.engine.client_stats_into(&mut snap.clients);
        snap.worker = self.id as u16;
        snap.at = t;
        snap.loop_counters = self.lc;
        snap.engine.clone_from(self.engine.counters());
        snap.reorder_depth = self.engine.reorder_depth();
        snap.reassembly = *self.engine.reassembly_stats();
        snap.reassembly_bytes = self.engine.reassembly_bytes();
        snap.directory = self.dir.stats;
        snap.pool_cached = self.pool.cached();
        snap.stopped = stopped;
        let slot = &self.shared.stats[self.id];
        core::mem::swap(&mut *slot.snapshot.lock(), &mut self.spare);
        if !self.hist.is_empty() {
            let _ = slot.latency.lock().add(&self.hist);
            self.hist.reset();
        }
        if !self.pkt_hist.is_empty() {
            let _ = slot.packet_latency.lock().add(&self.pkt_hist);
            self.pkt_hist.reset();
        }
    }
}

/// Stamps a received burst with its receive time (per-packet residence, [`residence`]).
#[inline]
fn stamp<B: PacketBuf>(burst: &mut [B], t: Instant) {
    for b in burst {
        b.set_rx_stamp(t.max(1));
    }
}

/// Records each stamped packet's time from receive to `t` (about to be transmitted).
#[inline]
fn residence<B: PacketBuf>(h: &mut Histogram<u64>, burst: &[B], t: Instant) {
    for b in burst {
        let s = b.rx_stamp();
        if s != 0 {
            let _ = h.record(t.saturating_sub(s).max(1));
        }
    }
}
