//! The runtime: worker threads running the convergence engine over ports, a slow-path thread
//! for path monitoring and control PDUs, and a handle to watch and change it live.
//!
//! ```text
//!              command rings (handle, slow path -> worker; applied between bursts)
//!                  |                        |
//!   ports ---> [worker 0] <--handoff--> [worker 1] <--- ports        (SPSC ring per pair)
//!                  |  Output::Control       |
//!                  +--------> [slow path] <-+   PathMonitors, probes, keep-alives, ACKs
//!                  |                        |
//!                  +--> stats slots <-------+   snapshots every 100 ms, read by the handle
//! ```
//!
//! * A client belongs to one worker: `hash(anchor address) % workers` ([`directory`]). Packets
//!   that arrive elsewhere are handed to the owner over a single-producer/single-consumer ring
//!   (a crossbeam `ArrayQueue` per ordered pair of workers; full ring = counted drop). Outputs
//!   for a port another worker holds travel back the same way.
//! * Buffers come from a [`pool::Buffers`]: by default ([`Runtime::start_with`]) one bounded
//!   [`pool::SharedPool`] of `HeapBuf`s with a cache per worker; [`Runtime::start_on`] takes
//!   any other (with the `dpdk` feature, `ports::dpdk::DpdkBuffers`: mbufs, a mempool per NUMA
//!   socket, worker threads registered as EAL lcores).
//! * Configuration changes are [`worker::Command`]s on each worker's command ring, applied
//!   between bursts; the handle waits for the owner's answer where there is one.
//! * Statistics: [`stats`].
//! * Shutdown: the slow path stops, then every worker stops receiving, releases what its
//!   reorder buffers hold, and the workers exchange what is still in flight between them in
//!   barrier-separated rounds until a round moves nothing; then the threads are joined.

pub mod admin;
pub mod clock;
pub mod daemon;
pub mod directory;
pub mod mapping;
pub mod pool;
pub mod slowpath;
pub mod stats;
pub mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::queue::ArrayQueue;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use pipelines::engine::{ClientConfig, ClientId, Engine};
use pipelines::{HeapBuf, PacketBuf};

use crate::config::{self, Config, Role};
use crate::ports::Port;

use directory::{DirKey, Directory};
use pool::{Buffers, HeapBuffers};
use slowpath::{PathStatus, SlowCommand, SlowPath, SlowPathCounters};
use stats::{StatsSlot, WorkerSnapshot};
use worker::{Command, ControlEvent, Moved, Route, Worker};

pub use worker::LoopOptions;

/// Which delivery connections a delivery port serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSet {
    /// Every path (an N-MADP's delivery interface: the network routes by address).
    All,
    /// Only these delivery connection IDs (a C-MADP's socket on one access interface).
    Only(Vec<u8>),
}

impl PathSet {
    fn contains(&self, id: u8) -> bool {
        match self {
            PathSet::All => true,
            PathSet::Only(v) => v.contains(&id),
        }
    }
}

/// A delivery-side port and the paths it serves.
pub struct DeliveryPort<B: PacketBuf = HeapBuf> {
    pub port: Box<dyn Port<B>>,
    pub paths: PathSet,
}

/// The ports one worker owns.
pub struct WorkerPorts<B: PacketBuf = HeapBuf> {
    /// Anchor side (plain IP). A worker without one hands anchor output to one that has.
    pub anchor: Option<Box<dyn Port<B>>>,
    pub delivery: Vec<DeliveryPort<B>>,
}

impl<B: PacketBuf> Default for WorkerPorts<B> {
    fn default() -> Self {
        WorkerPorts {
            anchor: None,
            delivery: Vec::new(),
        }
    }
}

/// Ports of every worker; the number of workers is `workers.len()`.
pub struct RuntimePorts<B: PacketBuf = HeapBuf> {
    pub workers: Vec<WorkerPorts<B>>,
}

impl<B: PacketBuf> Default for RuntimePorts<B> {
    fn default() -> Self {
        RuntimePorts {
            workers: Vec::new(),
        }
    }
}

/// A device behind one or more ports whose own counters the admin socket can read
/// (`nmadpctl ports`): e.g. a DPDK ethdev (`rte_eth_stats`, xstats). Read from the admin
/// thread, never from a worker.
pub trait PortDevice: Send + Sync {
    /// The device's name (e.g. `net_ring0`, `0000:3b:00.0`).
    fn name(&self) -> String;
    /// The device's counters, every queue together.
    fn device_stats(&self) -> Result<crate::ports::PortStats, String>;
    /// Extended statistics by name.
    fn xstats(&self) -> Result<Vec<(String, u64)>, String>;
}

/// Tuning beyond the configuration file.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub loop_options: LoopOptions,
    /// Buffers in the shared pool ([`Runtime::start_with`]'s `HeapBuf` pool only).
    pub pool_buffers: usize,
    /// Each handoff ring's capacity.
    pub handoff_capacity: usize,
    /// Each command ring's capacity.
    pub command_capacity: usize,
    /// Slow-path tick.
    pub slow_path_tick: Duration,
    /// Bound on joining the threads at shutdown.
    pub join_timeout: Duration,
    /// Seed of the engines' flow hash.
    pub seed: u64,
    /// Learnt endpoints kept per worker directory.
    pub directory_learned_cap: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            loop_options: LoopOptions::default(),
            pool_buffers: 16_384,
            handoff_capacity: 4096,
            command_capacity: 4096,
            slow_path_tick: Duration::from_millis(2),
            join_timeout: Duration::from_secs(10),
            seed: 0x6d61_6d73,
            directory_learned_cap: 65_536,
        }
    }
}

/// Why the runtime did not start, or a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeError {
    /// A client the engine cannot run (names the client and delivery).
    Mapping(mapping::MappingError),
    /// Anything else, described.
    Other(String),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Mapping(e) => write!(f, "{e}"),
            RuntimeError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for RuntimeError {}

impl From<mapping::MappingError> for RuntimeError {
    fn from(e: mapping::MappingError) -> Self {
        RuntimeError::Mapping(e)
    }
}

/// Per-worker transmit routes.
pub(crate) struct Routes {
    pub path: [Route; 256],
    pub anchor: Route,
}

/// The handoff rings between workers, `[from][to]` (workers only: the only part of the shared
/// state that holds buffers, so the only generic one).
pub(crate) type Handoffs<B> = Vec<Vec<ArrayQueue<Moved<B>>>>;

/// What workers, the slow path and the handle share.
pub(crate) struct Shared {
    pub workers: usize,
    pub commands: Vec<ArrayQueue<Command>>,
    pub control: Vec<ArrayQueue<ControlEvent>>,
    pub stats: Vec<StatsSlot>,
    pub routes: Vec<Routes>,
    pub barrier: Barrier,
    pub moved_in_round: AtomicBool,
    pub slow_commands: ArrayQueue<SlowCommand>,
    pub slow_stop: AtomicBool,
    pub paths: Mutex<Vec<PathStatus>>,
    pub slow_counters: Mutex<SlowPathCounters>,
}

impl Shared {
    /// Pushes a command, retrying while the ring is full for at most `wait`.
    pub fn push_command(&self, worker: usize, cmd: Command, wait: Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        let mut cmd = cmd;
        loop {
            match self.commands[worker].push(cmd) {
                Ok(()) => return true,
                Err(c) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    cmd = c;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
}

/// One client as the handle knows it.
#[derive(Debug, Clone)]
pub(crate) struct ClientEntry {
    pub id: ClientId,
    pub owner: usize,
    pub cfg: config::Client,
    pub keys: Vec<DirKey>,
}

pub(crate) struct Inner {
    pub shared: Arc<Shared>,
    pub config: Mutex<Config>,
    pub clients: Mutex<BTreeMap<String, ClientEntry>>,
    pub next_id: Mutex<u32>,
    pub threads: Mutex<Vec<(String, JoinHandle<()>)>>,
    pub started: std::time::Instant,
    pub stopped: AtomicBool,
    pub shutdown_requested: AtomicBool,
    pub opts: RuntimeOptions,
    pub warnings: Vec<String>,
    pub rate: Mutex<(std::time::Instant, u64, u64)>,
    pub final_snapshots: Mutex<Option<Vec<WorkerSnapshot>>>,
    pub devices: Mutex<Vec<Arc<dyn PortDevice>>>,
}

/// The running runtime. Cheap to clone; every clone controls the same threads.
#[derive(Clone)]
pub struct RuntimeHandle {
    pub(crate) inner: Arc<Inner>,
}

/// The runtime's entry point.
pub struct Runtime;

/// Directory keys of a client's configured endpoints: what identifies its delivery-side
/// packets on this side (N-MADP: the client's endpoints; C-MADP: ours) and its anchor address
/// (pass-through).
fn dir_keys(role: Role, c: &ClientConfig) -> Vec<DirKey> {
    let mut keys = vec![DirKey::Ip(c.anchor_addr)];
    for d in &c.deliveries {
        match (role, d.adaptation) {
            (Role::NMadp, pipelines::engine::Adaptation::UdpTunnel { .. }) => {
                if let Some(r) = d.remote {
                    keys.push(DirKey::Socket(r));
                }
            }
            (Role::NMadp, _) => {
                if let Some(ip) = d.peer_ip() {
                    keys.push(DirKey::Ip(ip));
                }
            }
            (Role::CMadp, pipelines::engine::Adaptation::UdpTunnel { .. }) => {
                keys.push(DirKey::Socket(d.local));
            }
            (Role::CMadp, _) => {
                keys.push(DirKey::Ip(d.client_addr.unwrap_or(d.local.ip())));
            }
        }
    }
    keys
}

fn compute_routes<B: PacketBuf>(ports: &[WorkerPorts<B>]) -> Vec<Routes> {
    let n = ports.len();
    (0..n)
        .map(|w| {
            let mut path = [Route::None; 256];
            for (id, slot) in path.iter_mut().enumerate() {
                let id = id as u8;
                let local = ports[w]
                    .delivery
                    .iter()
                    .position(|d| d.paths.contains(id))
                    .map(|i| Route::Local(i as u8));
                *slot = local.unwrap_or_else(|| {
                    (0..n)
                        .find_map(|o| {
                            ports[o]
                                .delivery
                                .iter()
                                .position(|d| d.paths.contains(id))
                                .map(|i| Route::Remote(o as u16, i as u8))
                        })
                        .unwrap_or(Route::None)
                });
            }
            let anchor = if ports[w].anchor.is_some() {
                Route::Local(0)
            } else {
                (0..n)
                    .find(|&o| ports[o].anchor.is_some())
                    .map_or(Route::None, |o| Route::Remote(o as u16, 0))
            };
            Routes { path, anchor }
        })
        .collect()
}

impl Runtime {
    /// Starts with default [`RuntimeOptions`].
    pub fn start(cfg: Config, ports: RuntimePorts) -> Result<RuntimeHandle, RuntimeError> {
        Self::start_with(cfg, ports, RuntimeOptions::default())
    }

    /// Starts over `HeapBuf`s from a bounded shared pool of `opts.pool_buffers` (see
    /// [`Runtime::start_on`]).
    pub fn start_with(
        cfg: Config,
        ports: RuntimePorts,
        opts: RuntimeOptions,
    ) -> Result<RuntimeHandle, RuntimeError> {
        let buffers = HeapBuffers::with_limit(opts.pool_buffers);
        Self::start_on(cfg, ports, buffers, opts)
    }

    /// Maps every client, starts one thread per worker (pinned to `node.cores[i]` when given;
    /// then [`Buffers::thread_start`] runs on it) and the slow path (pinned to
    /// `node.slow_path_core`), and adds the configured clients. Buffers come from `buffers`.
    pub fn start_on<X: Buffers>(
        cfg: Config,
        ports: RuntimePorts<X::Buf>,
        buffers: X,
        opts: RuntimeOptions,
    ) -> Result<RuntimeHandle, RuntimeError> {
        let n = ports.workers.len();
        if n == 0 {
            return Err(RuntimeError::Other("no worker ports given".into()));
        }
        if n > 256 {
            return Err(RuntimeError::Other("at most 256 workers".into()));
        }
        if ports.workers.iter().any(|w| w.delivery.len() > 255) {
            return Err(RuntimeError::Other(
                "at most 255 delivery ports per worker".into(),
            ));
        }
        // Map every client first: nothing starts when one is refused.
        let mut mapped = Vec::with_capacity(cfg.clients.len());
        let mut warnings = Vec::new();
        for (i, c) in cfg.clients.iter().enumerate() {
            mapped.push(mapping::client(&cfg, c, ClientId(i as u32))?);
            warnings.extend(mapping::client_warnings(&cfg, c));
        }
        let ecfg = mapping::engine_config(&cfg, opts.seed);
        let role = cfg.node.role;
        let routes = compute_routes(&ports.workers);
        let handoffs: Arc<Handoffs<X::Buf>> = Arc::new(
            (0..n)
                .map(|_| {
                    (0..n)
                        .map(|_| ArrayQueue::new(opts.handoff_capacity.max(1)))
                        .collect()
                })
                .collect(),
        );
        let buffers = Arc::new(buffers);
        let shared = Arc::new(Shared {
            workers: n,
            commands: (0..n)
                .map(|_| ArrayQueue::new(opts.command_capacity.max(16)))
                .collect(),
            control: (0..n).map(|_| ArrayQueue::new(4096)).collect(),
            stats: (0..n).map(|w| StatsSlot::new(w as u16)).collect(),
            routes,
            barrier: Barrier::new(n),
            moved_in_round: AtomicBool::new(false),
            slow_commands: ArrayQueue::new(opts.command_capacity.max(16)),
            slow_stop: AtomicBool::new(false),
            paths: Mutex::new(Vec::new()),
            slow_counters: Mutex::new(SlowPathCounters::default()),
        });
        let mut threads = Vec::new();
        let cores = cfg.node.cores.clone();
        let (started_tx, started_rx) = crossbeam::channel::bounded::<Result<(), String>>(n);
        for (w, wp) in ports.workers.into_iter().enumerate() {
            let mut engine = Engine::new(ecfg.clone());
            // Room for this worker's share of the configured clients (no rehash while they
            // are added).
            let max_paths = mapped.iter().map(|c| c.deliveries.len()).max().unwrap_or(0);
            engine.reserve_clients(mapped.len().div_ceil(n), max_paths);
            let dir = Directory::new(n, role == Role::NMadp, opts.directory_learned_cap);
            let worker = Worker::<X>::new(
                w,
                shared.clone(),
                handoffs.clone(),
                buffers.clone(),
                engine,
                wp.anchor,
                wp.delivery.into_iter().map(|d| d.port).collect(),
                dir,
                opts.loop_options,
            );
            let core = cores.get(w).copied();
            let name = format!("worker{w}");
            let bufs = buffers.clone();
            let started = started_tx.clone();
            let h = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    if let Some(c) = core {
                        if let Err(e) = clock::pin_to_core(c) {
                            eprintln!("worker{w}: cannot pin to core {c}: {e}");
                        }
                    }
                    // Pinned first: an EAL registration keeps the thread's affinity.
                    let _ =
                        started.send(bufs.thread_start(w).map_err(|e| format!("worker{w}: {e}")));
                    drop(started);
                    worker.run();
                })
                .map_err(|e| RuntimeError::Other(format!("cannot start worker {w}: {e}")))?;
            threads.push((name, h));
        }
        drop(started_tx);
        for _ in 0..n {
            match started_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warnings.push(e),
                Err(_) => {
                    warnings.push("a worker did not report its start in time".into());
                    break;
                }
            }
        }
        let mon = mapping::monitor_config(&cfg);
        let keepalive_ns = u64::from(cfg.defaults.probe.keepalive_ms) * pipelines::flow::MS;
        let slow = SlowPath::new(
            shared.clone(),
            mapping::role(role),
            mon,
            keepalive_ns,
            opts.slow_path_tick,
        );
        let slow_core = cfg.node.slow_path_core;
        let h = std::thread::Builder::new()
            .name("slow-path".into())
            .spawn(move || {
                if let Some(c) = slow_core {
                    if let Err(e) = clock::pin_to_core(c) {
                        eprintln!("slow path: cannot pin to core {c}: {e}");
                    }
                }
                slow.run();
            })
            .map_err(|e| RuntimeError::Other(format!("cannot start the slow path: {e}")))?;
        threads.push(("slow-path".into(), h));

        let clients_cfg = cfg.clients.clone();
        let handle = RuntimeHandle {
            inner: Arc::new(Inner {
                shared,
                config: Mutex::new(Config {
                    clients: Vec::new(),
                    ..cfg
                }),
                clients: Mutex::new(BTreeMap::new()),
                next_id: Mutex::new(0),
                threads: Mutex::new(threads),
                started: std::time::Instant::now(),
                stopped: AtomicBool::new(false),
                shutdown_requested: AtomicBool::new(false),
                opts,
                warnings,
                rate: Mutex::new((std::time::Instant::now(), 0, 0)),
                final_snapshots: Mutex::new(None),
                devices: Mutex::new(Vec::new()),
            }),
        };
        for c in clients_cfg {
            if let Err(e) = handle.add_client(c) {
                let _ = handle.shutdown();
                return Err(RuntimeError::Other(e));
            }
        }
        Ok(handle)
    }
}

/// What a worker answered, waited for at most `wait`.
fn wait_reply<T>(rx: crossbeam::channel::Receiver<T>, wait: Duration) -> Result<T, String> {
    rx.recv_timeout(wait)
        .map_err(|_| "the worker did not answer in time".to_string())
}

const REPLY_WAIT: Duration = Duration::from_secs(5);

impl RuntimeHandle {
    /// Warnings from mapping the configuration (settings accepted but not applied).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.inner.shared.workers
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.inner.config.lock().node.role
    }

    /// The running configuration (clients included).
    pub fn config(&self) -> Config {
        let mut c = self.inner.config.lock().clone();
        c.clients = self
            .inner
            .clients
            .lock()
            .values()
            .map(|e| e.cfg.clone())
            .collect();
        c
    }

    /// The worker owning client `name`.
    pub fn owner(&self, name: &str) -> Option<usize> {
        self.inner.clients.lock().get(name).map(|e| e.owner)
    }

    /// Whether shutdown was asked for through the admin socket.
    pub fn shutdown_requested(&self) -> bool {
        self.inner.shutdown_requested.load(Ordering::Acquire)
    }

    /// Asks the owner of `name`'s process to stop (see [`RuntimeHandle::shutdown_requested`]).
    pub fn request_shutdown(&self) {
        self.inner.shutdown_requested.store(true, Ordering::Release);
    }

    fn ensure_running(&self) -> Result<(), String> {
        if self.inner.stopped.load(Ordering::Acquire) {
            Err("the runtime is stopped".into())
        } else {
            Ok(())
        }
    }

    /// Adds a client (validated like a configuration file's, e.g. with
    /// [`Config::parse_client`]): mapped, given to its owner, its endpoints to every worker's
    /// directory, its paths to the slow path.
    pub fn add_client(&self, c: config::Client) -> Result<(), String> {
        self.ensure_running()?;
        let shared = &self.inner.shared;
        let (role, control) = {
            let cfg = self.inner.config.lock();
            (cfg.node.role, cfg.control.address)
        };
        let mut clients = self.inner.clients.lock();
        if clients.contains_key(&c.name) {
            return Err(format!("a client named \"{}\" already exists", c.name));
        }
        if let Some(o) = clients
            .values()
            .find(|e| e.cfg.anchor_address == c.anchor_address)
        {
            return Err(format!(
                "client \"{}\" already has anchor address {}",
                o.cfg.name, c.anchor_address
            ));
        }
        let id = {
            let mut n = self.inner.next_id.lock();
            let id = ClientId(*n);
            *n += 1;
            id
        };
        let ecfg = mapping::client_with(role, control, &c, id).map_err(|e| e.to_string())?;
        let owner = directory::owner_of(c.anchor_address, shared.workers);
        let keys = dir_keys(role, &ecfg);
        let deliveries = ecfg
            .deliveries
            .iter()
            .map(|d| {
                let name = c
                    .deliveries
                    .iter()
                    .find(|x| x.id == d.id.0)
                    .map_or(String::new(), |x| x.name.clone());
                (*d, name)
            })
            .collect();
        let (tx, rx) = crossbeam::channel::bounded(1);
        if !shared.push_command(
            owner,
            Command::AddClient {
                cfg: Box::new(ecfg),
                reply: tx,
            },
            REPLY_WAIT,
        ) {
            return Err("the owner's command ring is full".into());
        }
        wait_reply(rx, REPLY_WAIT)?
            .map_err(|e| format!("client \"{}\" refused by the engine: {e}", c.name))?;
        for w in 0..shared.workers {
            shared.push_command(
                w,
                Command::DirInsert {
                    keys: keys.clone(),
                    owner: owner as u16,
                },
                REPLY_WAIT,
            );
        }
        let _ = shared.slow_commands.push(SlowCommand::AddClient {
            id,
            name: c.name.clone(),
            owner,
            deliveries,
        });
        clients.insert(
            c.name.clone(),
            ClientEntry {
                id,
                owner,
                cfg: c,
                keys,
            },
        );
        Ok(())
    }

    /// Removes a client: its reorder buffers are released first, then its state goes.
    pub fn remove_client(&self, name: &str) -> Result<(), String> {
        self.ensure_running()?;
        let shared = &self.inner.shared;
        let mut clients = self.inner.clients.lock();
        let Some(e) = clients.get(name).cloned() else {
            return Err(format!("no client named \"{name}\""));
        };
        let _ = shared
            .slow_commands
            .push(SlowCommand::RemoveClient { id: e.id });
        let (tx, rx) = crossbeam::channel::bounded(1);
        if !shared.push_command(
            e.owner,
            Command::RemoveClient {
                id: e.id,
                reply: tx,
            },
            REPLY_WAIT,
        ) {
            return Err("the owner's command ring is full".into());
        }
        wait_reply(rx, REPLY_WAIT)?;
        for w in 0..shared.workers {
            shared.push_command(
                w,
                Command::DirRemove {
                    keys: e.keys.clone(),
                },
                REPLY_WAIT,
            );
        }
        clients.remove(name);
        Ok(())
    }

    /// Changes the steering of a client's default (`tc` `None`) or of one traffic class.
    pub fn set_steering(
        &self,
        client: &str,
        tc: Option<u8>,
        mode: config::SteeringMode,
    ) -> Result<(), String> {
        self.ensure_running()?;
        let shared = &self.inner.shared;
        let mut clients = self.inner.clients.lock();
        let Some(e) = clients.get_mut(client) else {
            return Err(format!("no client named \"{client}\""));
        };
        let (tx, rx) = crossbeam::channel::bounded(1);
        if !shared.push_command(
            e.owner,
            Command::SetSteering {
                id: e.id,
                tc,
                mode: mapping::steering(mode),
                reply: tx,
            },
            REPLY_WAIT,
        ) {
            return Err("the owner's command ring is full".into());
        }
        if !wait_reply(rx, REPLY_WAIT)? {
            return Err(match tc {
                Some(t) => format!("client \"{client}\" has no traffic class {t}"),
                None => format!("no client named \"{client}\" on its worker"),
            });
        }
        match tc {
            None => {
                let old = e.cfg.steering;
                e.cfg.steering = mode;
                for t in e.cfg.traffic_classes.iter_mut() {
                    if t.steering == old {
                        t.steering = mode;
                    }
                }
            }
            Some(t) => {
                for c in e.cfg.traffic_classes.iter_mut().filter(|c| c.id == t) {
                    c.steering = mode;
                }
            }
        }
        Ok(())
    }

    /// Asks every worker for a fresh snapshot and waits (bounded) for them.
    pub fn refresh(&self) {
        if self.inner.stopped.load(Ordering::Acquire) {
            return;
        }
        let shared = &self.inner.shared;
        let mut waits = Vec::new();
        for w in 0..shared.workers {
            let (tx, rx) = crossbeam::channel::bounded(1);
            if shared.push_command(w, Command::Publish { reply: tx }, Duration::from_secs(1)) {
                waits.push(rx);
            }
        }
        for rx in waits {
            let _ = rx.recv_timeout(Duration::from_secs(2));
        }
    }

    /// The latest snapshot of every worker (final ones after shutdown).
    pub fn snapshots(&self) -> Vec<WorkerSnapshot> {
        if let Some(f) = self.inner.final_snapshots.lock().as_ref() {
            return f.clone();
        }
        self.inner
            .shared
            .stats
            .iter()
            .map(|s| s.snapshot.lock().clone())
            .collect()
    }

    /// Path states from the slow path.
    pub fn path_status(&self) -> Vec<PathStatus> {
        self.inner.shared.paths.lock().clone()
    }

    /// Slow-path counters.
    pub fn slow_path_counters(&self) -> SlowPathCounters {
        *self.inner.shared.slow_counters.lock()
    }

    /// Engine ID of a client.
    pub fn client_id(&self, name: &str) -> Option<ClientId> {
        self.inner.clients.lock().get(name).map(|e| e.id)
    }

    /// Names of the clients.
    pub fn client_names(&self) -> Vec<String> {
        self.inner.clients.lock().keys().cloned().collect()
    }

    /// The owner's latest counters of client `name`.
    pub fn client_counters(&self, name: &str) -> Option<pipelines::engine::ClientCounters> {
        let (id, owner) = {
            let c = self.inner.clients.lock();
            let e = c.get(name)?;
            (e.id, e.owner)
        };
        let snaps = self.snapshots();
        snaps.get(owner)?.client(id).map(|c| c.counters)
    }

    /// Every worker's latency histogram merged (ns).
    pub fn latency_histogram(&self) -> Histogram<u64> {
        self.merged(|s| &s.latency)
    }

    /// One worker's latency histogram (ns).
    pub fn worker_latency(&self, w: usize) -> Option<Histogram<u64>> {
        self.one(w, |s| &s.latency)
    }

    /// Every worker's per-packet residence histogram merged (ns, receive to transmit of each
    /// packet, reorder and equalisation waits included; `StatsSlot::packet_latency`).
    pub fn packet_latency_histogram(&self) -> Histogram<u64> {
        self.merged(|s| &s.packet_latency)
    }

    /// One worker's per-packet residence histogram (ns).
    pub fn worker_packet_latency(&self, w: usize) -> Option<Histogram<u64>> {
        self.one(w, |s| &s.packet_latency)
    }

    fn merged(&self, which: fn(&stats::StatsSlot) -> &Mutex<Histogram<u64>>) -> Histogram<u64> {
        let mut h = stats::latency_histogram();
        for s in &self.inner.shared.stats {
            let _ = h.add(&*which(s).lock());
        }
        h
    }

    fn one(
        &self,
        w: usize,
        which: fn(&stats::StatsSlot) -> &Mutex<Histogram<u64>>,
    ) -> Option<Histogram<u64>> {
        self.inner
            .shared
            .stats
            .get(w)
            .map(|s| which(s).lock().clone())
    }

    /// Stops everything: the slow path, then the workers (flushing their reorder buffers and
    /// the packets in flight between them), and joins every thread within the configured bound.
    /// Returns the final snapshots. Calling it twice is harmless.
    pub fn shutdown(&self) -> Result<Vec<WorkerSnapshot>, String> {
        if self.inner.stopped.swap(true, Ordering::AcqRel) {
            return Ok(self.snapshots());
        }
        let shared = &self.inner.shared;
        shared.slow_stop.store(true, Ordering::Release);
        for w in 0..shared.workers {
            shared.push_command(w, Command::Shutdown, Duration::from_secs(1));
        }
        let threads: Vec<_> = self.inner.threads.lock().drain(..).collect();
        let deadline = std::time::Instant::now() + self.inner.opts.join_timeout;
        let mut late = Vec::new();
        for (name, h) in threads {
            while !h.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if h.is_finished() {
                if h.join().is_err() {
                    late.push(format!("{name} panicked"));
                }
            } else {
                late.push(format!("{name} did not stop in time"));
            }
        }
        let snaps: Vec<WorkerSnapshot> = shared
            .stats
            .iter()
            .map(|s| s.snapshot.lock().clone())
            .collect();
        *self.inner.final_snapshots.lock() = Some(snaps.clone());
        if late.is_empty() {
            Ok(snaps)
        } else {
            Err(late.join("; "))
        }
    }

    /// Registers a device whose own counters `nmadpctl ports` shows (e.g. a DPDK ethdev the
    /// runtime's ports are queues of).
    pub fn add_device(&self, dev: Arc<dyn PortDevice>) {
        self.inner.devices.lock().push(dev);
    }

    /// The registered devices.
    pub fn devices(&self) -> Vec<Arc<dyn PortDevice>> {
        self.inner.devices.lock().clone()
    }

    /// Whether [`RuntimeHandle::shutdown`] ran.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire)
    }

    /// Totals of rx/tx packets over every port (for rates and final reports).
    pub fn port_totals(&self) -> (u64, u64) {
        let mut rx = 0;
        let mut tx = 0;
        for s in self.snapshots() {
            for p in &s.ports {
                rx += p.stats.rx_packets;
                tx += p.stats.tx_packets;
            }
        }
        (rx, tx)
    }

    /// The peer endpoint a path of `client` uses, as its owner last published it.
    pub fn path_remote(&self, client: &str, path: u8) -> Option<SocketAddr> {
        let (id, owner) = {
            let c = self.inner.clients.lock();
            let e = c.get(client)?;
            (e.id, e.owner)
        };
        let snaps = self.snapshots();
        snaps
            .get(owner)?
            .client(id)?
            .paths
            .iter()
            .find(|p| p.id.0 == path)?
            .remote
    }
}
