//! What `nmadp run`, `nmadp check-config` and `cmadp` do: load the configuration, build the
//! ports it names, start the runtime and the admin socket, and stop cleanly on SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::admin::AdminServer;
use crate::config::{self, Config, Endpoint, Port as PortCfg, Role};
use crate::ports::af_packet::{AfPacketConfig, AfPacketPort, Fanout, L2Mode};
use crate::ports::tun::{TunConfig, TunPort};
use crate::ports::udp_socket::{UdpSocketConfig, UdpSocketPort};

use super::{
    DeliveryPort, PathSet, Runtime, RuntimeHandle, RuntimeOptions, RuntimePorts, WorkerPorts,
};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Installs SIGINT and SIGTERM handlers that set a flag ([`stop_requested`]).
pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is fully initialised (zeroed, then handler and empty mask set).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether SIGINT or SIGTERM arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// `check-config`: a summary on success; the `FILE:LINE:COLUMN` errors otherwise.
pub fn check_config(path: &Path) -> Result<String, String> {
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
    // Mapping errors (what only the engine sees) too, with the client's name.
    let mut warnings = Vec::new();
    for (i, c) in cfg.clients.iter().enumerate() {
        let mut c2 = c.clone();
        if cfg.node.role == Role::CMadp {
            // cmadp fills kernel-chosen local endpoints in at start; check with a stand-in.
            for d in c2.deliveries.iter_mut() {
                if d.local.is_none()
                    || matches!(d.local, Some(Endpoint::Udp(s)) if s.port() == 0 || s.ip().is_unspecified())
                {
                    let ip = match d.remote.map(|r| r.ip()) {
                        Some(IpAddr::V6(_)) => "2001:db8::1".parse().unwrap(),
                        _ => IpAddr::from([192, 0, 2, 254]),
                    };
                    d.local = Some(Endpoint::Udp(SocketAddr::new(ip, 40000 + u16::from(d.id))));
                }
            }
        }
        super::mapping::client(&cfg, &c2, pipelines::engine::ClientId(i as u32))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        warnings.extend(super::mapping::client_warnings(&cfg, c));
    }
    let paths: usize = cfg.clients.iter().map(|c| c.deliveries.len()).sum();
    let mut s = format!(
        "{}: ok: {} ({}), {} worker(s), anchor {:?}, delivery {:?}, control {}, {} client(s), {} delivery connection(s)\n",
        path.display(),
        match cfg.node.role {
            Role::NMadp => "n-madp",
            Role::CMadp => "c-madp",
        },
        cfg.node.name.as_deref().unwrap_or("unnamed"),
        cfg.node.workers,
        cfg.ports.anchor.kind(),
        cfg.ports.delivery.kind(),
        cfg.control.address,
        cfg.clients.len(),
        paths
    );
    for c in &cfg.clients {
        s.push_str(&format!(
            "  client {} anchor {} steering {:?}: {}\n",
            c.name,
            c.anchor_address,
            c.steering,
            c.deliveries
                .iter()
                .map(|d| format!("{}#{}", d.name, d.id))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for w in warnings {
        s.push_str(&format!("  warning: {w}\n"));
    }
    Ok(s)
}

fn af_packet(
    iface: &str,
    gateway_mac: Option<[u8; 6]>,
    worker: usize,
    group: u16,
    workers: usize,
) -> Result<AfPacketPort, String> {
    let mut c = AfPacketConfig::new(
        iface,
        // IP packets in cooked mode to the next hop (`gateway_mac`); without one, to the
        // broadcast address, which only a peer that accepts broadcast-addressed unicast IP
        // forwards or delivers (Linux does neither for TCP or forwarding).
        L2Mode::Cooked {
            dst_mac: gateway_mac.unwrap_or([0xff; 6]),
        },
    );
    if workers > 1 {
        c.fanout = Some(Fanout::hash(group));
    }
    AfPacketPort::open(&c).map_err(|e| format!("af-packet {iface} (worker {worker}): {e}"))
}

fn anchor_port(
    cfg: &Config,
    w: usize,
    n: usize,
) -> Result<Option<Box<dyn crate::ports::Port<pipelines::HeapBuf>>>, String> {
    match &cfg.ports.anchor {
        PortCfg::AfPacket {
            iface, gateway_mac, ..
        } => Ok(Some(Box::new(af_packet(
            iface,
            *gateway_mac,
            w,
            0x4d41,
            n,
        )?))),
        PortCfg::Tun { iface, mtu } => {
            let tun = TunPort::open(&TunConfig {
                name: Some(iface.clone()),
                multi_queue: n > 1,
            })
            .map_err(|e| format!("tun {iface}: {e}"))?;
            if w == 0 {
                tun.set_mtu(u32::from(*mtu))
                    .map_err(|e| format!("tun {iface}: mtu: {e}"))?;
                tun.set_up().map_err(|e| format!("tun {iface}: up: {e}"))?;
            }
            Ok(Some(Box::new(tun)))
        }
        PortCfg::Ring { .. } => Err(
            "ports.anchor: ring ports exist only inside one process (tests, `nmadp demo`)".into(),
        ),
        PortCfg::AfXdp { .. } | PortCfg::Dpdk { .. } => Err(KERNEL_BYPASS_BOTH_SIDES.into()),
        PortCfg::Udp { .. } => Err("ports.anchor: udp is a delivery-side port".into()),
    }
}

/// UDP sockets for the delivery side: one per distinct local endpoint (N-MADP) or per delivery
/// connection (C-MADP, bound to its interface), all on worker 0 (a socket is not shared).
/// Fills kernel-chosen local endpoints into `cfg` (C-MADP).
fn udp_ports(cfg: &mut Config, iface: &Option<String>) -> Result<Vec<DeliveryPort>, String> {
    let mut out: Vec<(SocketAddr, Vec<u8>, UdpSocketPort)> = Vec::new();
    let role = cfg.node.role;
    for c in cfg.clients.iter_mut() {
        for d in c.deliveries.iter_mut() {
            let want = match d.local {
                Some(Endpoint::Udp(s)) => s,
                _ => {
                    let any: IpAddr = match d.remote.map(|r| r.ip()) {
                        Some(IpAddr::V6(_)) => "::".parse().unwrap(),
                        _ => "0.0.0.0".parse().unwrap(),
                    };
                    SocketAddr::new(any, 0)
                }
            };
            if let Some(e) = out.iter_mut().find(|e| e.0 == want && want.port() != 0) {
                if !e.1.contains(&d.id) {
                    e.1.push(d.id);
                }
                continue;
            }
            let dev = d.iface.clone().or_else(|| iface.clone());
            let port = UdpSocketPort::open(&UdpSocketConfig::new(want, dev.as_deref()))
                .map_err(|e| format!("udp socket {want} for {} {}: {e}", c.name, d.name))?;
            let mut bound = port.local_addr();
            if role == Role::CMadp && bound.ip().is_unspecified() {
                // The source the kernel picks towards the N-MADP for a socket bound to this
                // interface (the data socket is SO_BINDTODEVICE'd: without the binding, the
                // route lookup would give the default route's source, e.g. the Wi-Fi address
                // for the LTE path).
                if let Some(r) = d.remote {
                    let ip = source_towards(bound.ip(), r.ip(), dev.as_deref()).map_err(|e| {
                        format!(
                            "{} {}: cannot find the source address towards {r}{}: {e}",
                            c.name,
                            d.name,
                            dev.as_deref()
                                .map(|d| format!(" on {d}"))
                                .unwrap_or_default()
                        )
                    })?;
                    bound.set_ip(ip);
                }
                d.local = Some(Endpoint::Udp(bound));
            } else if role == Role::CMadp {
                d.local = Some(Endpoint::Udp(bound));
            }
            out.push((want, vec![d.id], port));
        }
    }
    Ok(out
        .into_iter()
        .map(|(_, ids, p)| DeliveryPort {
            port: Box::new(p),
            paths: PathSet::Only(ids),
        })
        .collect())
}

/// The source address a UDP socket bound to `any` (and to `device`, `SO_BINDTODEVICE`) uses
/// towards `remote`: `getsockname` after `connect` on a scratch socket with the same binding.
pub(crate) fn source_towards(
    any: IpAddr,
    remote: IpAddr,
    device: Option<&str>,
) -> std::io::Result<IpAddr> {
    use std::os::fd::AsRawFd;
    let s = UdpSocket::bind(SocketAddr::new(any, 0))?;
    if let Some(dev) = device {
        let name = dev.as_bytes();
        // SAFETY: the pointer and length describe `name`, valid for the call; the fd is open.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // Port 9 (discard): connect on UDP sends nothing, it only chooses the route and source.
    s.connect(SocketAddr::new(remote, 9))?;
    Ok(s.local_addr()?.ip())
}

#[cfg(feature = "dpdk")]
const KERNEL_BYPASS_BOTH_SIDES: &str = "ports: dpdk and af-xdp ports move mbufs: both sides must be dpdk or af-xdp (mixing them with af-packet, tun or udp ports is not supported)";
#[cfg(not(feature = "dpdk"))]
const KERNEL_BYPASS_BOTH_SIDES: &str = "ports: dpdk and af-xdp ports need a build with the `dpdk` feature (af-xdp runs through DPDK's net_af_xdp driver)";

/// Whether a port kind runs over DPDK (mbufs).
fn is_dpdk(p: &PortCfg) -> bool {
    matches!(p, PortCfg::AfXdp { .. } | PortCfg::Dpdk { .. })
}

/// Builds the ports `cfg` names and starts the runtime over them: heap buffers for kernel
/// ports ([`build_ports`], [`Runtime::start_with`]), mbufs when both sides are `dpdk` or
/// `af-xdp` ([`dpdk_run::start`]).
pub fn start_runtime(cfg: &mut Config, opts: RuntimeOptions) -> Result<RuntimeHandle, String> {
    if is_dpdk(&cfg.ports.anchor) || is_dpdk(&cfg.ports.delivery) {
        #[cfg(feature = "dpdk")]
        {
            if !(is_dpdk(&cfg.ports.anchor) && is_dpdk(&cfg.ports.delivery)) {
                return Err(KERNEL_BYPASS_BOTH_SIDES.into());
            }
            return dpdk_run::start(cfg, opts);
        }
        #[cfg(not(feature = "dpdk"))]
        return Err(KERNEL_BYPASS_BOTH_SIDES.into());
    }
    let ports = build_ports(cfg)?;
    Runtime::start_with(cfg.clone(), ports, opts).map_err(|e| e.to_string())
}

/// DPDK ports for the runtime (feature `dpdk`).
#[cfg(feature = "dpdk")]
pub mod dpdk_run {
    use std::sync::Arc;

    use crate::config::{Config, Port as PortCfg};
    use crate::ports::dpdk::{
        DpdkBuffers, DpdkDevice, DpdkPort, DpdkPortConfig, Eal, L2Mode, Mbuf,
    };
    use crate::runtime::{
        DeliveryPort, PathSet, Runtime, RuntimeHandle, RuntimeOptions, RuntimePorts, WorkerPorts,
    };

    /// Where `deploy/dpdk-env.sh` mounts hugepages.
    pub const HUGE_DIR: &str = "/run/nmadp/hugepages";

    /// `deploy/dpdk-env.sh`'s choice of memory flags, without changing the system: hugepages
    /// when `dir` is a mounted hugetlbfs with at least 128 free 2 MiB pages, else
    /// `--no-huge -m 512`.
    pub fn memory_flags(dir: &str) -> Vec<String> {
        let mounted = std::fs::read_to_string("/proc/mounts")
            .map(|m| m.lines().any(|l| l.contains(&format!(" {dir} hugetlbfs "))))
            .unwrap_or(false);
        let free = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("HugePages_Free:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        if mounted && free >= 128 {
            vec!["--in-memory".into(), "--huge-dir".into(), dir.into()]
        } else {
            vec!["--no-huge".into(), "-m".into(), "512".into()]
        }
    }

    /// The EAL arguments for `cfg`: `[dpdk] eal_args` when given, else `-l <slow_path_core or
    /// 0> --no-telemetry --file-prefix nmadp-<pid>` (`--no-pci` unless a device looks like a
    /// PCI address) and [`memory_flags`].
    pub fn eal_args(cfg: &Config) -> Vec<String> {
        if let Some(d) = cfg.dpdk.as_ref().filter(|d| !d.eal_args.is_empty()) {
            return d.eal_args.clone();
        }
        let core = cfg.node.slow_path_core.unwrap_or(0);
        let mut a: Vec<String> = vec![
            "-l".into(),
            core.to_string(),
            "--no-telemetry".into(),
            "--file-prefix".into(),
            format!("nmadp-{}", std::process::id()),
        ];
        let pci = [&cfg.ports.anchor, &cfg.ports.delivery]
            .iter()
            .any(|p| matches!(p, PortCfg::Dpdk { device, .. } if !device.starts_with("net_")));
        if !pci {
            a.push("--no-pci".into());
        }
        a.extend(memory_flags(HUGE_DIR));
        a
    }

    /// The device spec of a port: `(ethdev name, vdev arguments or None for a PCI device)`.
    /// `af-xdp` becomes DPDK's `net_af_xdp` vdev on the interface, one queue per worker.
    pub fn device_spec(
        p: &PortCfg,
        side: &str,
        workers: usize,
    ) -> Result<(String, Option<String>), String> {
        match p {
            PortCfg::AfXdp { iface, .. } => Ok((
                format!("net_af_xdp_{side}"),
                Some(format!("iface={iface},start_queue=0,queue_count={workers}")),
            )),
            PortCfg::Dpdk { device, .. } => {
                let (name, args) = device.split_once(',').unwrap_or((device.as_str(), ""));
                if name.starts_with("net_") {
                    Ok((name.to_string(), Some(args.to_string())))
                } else {
                    Ok((name.to_string(), None))
                }
            }
            _ => Err(format!("ports.{side}: not a DPDK port")),
        }
    }

    /// Opens one side's device with a queue pair per worker (RSS when several) and returns
    /// each worker's queue handle. IP packets inside, Ethernet on the wire: frames go out from
    /// the device's MAC to the port's `gateway_mac` (the next hop), or to the broadcast
    /// address when none is configured (peers must then accept broadcast-addressed unicast
    /// IP).
    pub fn open_side(
        eal: &'static Eal,
        p: &PortCfg,
        side: &str,
        workers: usize,
        buffers: &DpdkBuffers,
    ) -> Result<Vec<DpdkPort>, String> {
        let (name, vdev) = device_spec(p, side, workers)?;
        if let Some(args) = &vdev {
            // Already there when given with --vdev in eal_args.
            if !eal_has_port(&name) {
                eal.create_vdev(&name, args)
                    .map_err(|e| format!("ports.{side}: {e}"))?;
            }
        }
        let mut pc = DpdkPortConfig::new(&name);
        pc.queues = u16::try_from(workers).map_err(|_| "too many workers".to_string())?;
        if let PortCfg::Dpdk {
            rx_desc, tx_desc, ..
        } = p
        {
            pc.rx_desc = *rx_desc;
            pc.tx_desc = *tx_desc;
        }
        let pool = buffers.mempool_for_socket(-1).clone();
        let mut q0 = DpdkPort::open(eal, &pc, pool).map_err(|e| format!("ports.{side}: {e}"))?;
        let gateway_mac = match p {
            PortCfg::Dpdk { gateway_mac, .. } | PortCfg::AfXdp { gateway_mac, .. } => *gateway_mac,
            _ => None,
        };
        q0.set_mode(L2Mode::Ethernet {
            src_mac: q0.mac(),
            dst_mac: gateway_mac.unwrap_or([0xff; 6]),
        });
        let mut out = Vec::with_capacity(workers);
        for q in 1..pc.queues {
            out.push(q0.queue(q).map_err(|e| format!("ports.{side}: {e}"))?);
        }
        out.insert(0, q0);
        Ok(out)
    }

    fn eal_has_port(name: &str) -> bool {
        let Ok(n) = std::ffi::CString::new(name) else {
            return false;
        };
        let mut id = 0u16;
        // SAFETY: valid string and out-pointer.
        unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(n.as_ptr(), &mut id) == 0 }
    }

    /// Initialises the EAL (once per process, from a short-lived thread: `rte_eal_init` pins
    /// its caller to the main lcore).
    pub fn init_eal(cfg: &Config) -> Result<&'static Eal, String> {
        let args = eal_args(cfg);
        let a2 = args.clone();
        std::thread::spawn(move || Eal::init(&a2).map_err(|e| e.to_string()))
            .join()
            .map_err(|_| "EAL initialisation panicked".to_string())?
            .map_err(|e| format!("dpdk: EAL arguments {args:?}: {e}"))
    }

    /// Ports of both sides over mbufs, with their buffers and devices.
    pub fn build(
        cfg: &Config,
        eal: &'static Eal,
    ) -> Result<(RuntimePorts<Mbuf>, DpdkBuffers, Vec<DpdkDevice>), String> {
        let n = usize::from(cfg.node.workers.max(1));
        let d = cfg.dpdk.clone().unwrap_or_default();
        let buffers = DpdkBuffers::new(eal, "nmadp", n, &cfg.node.cores, d.mbufs, d.mbuf_cache)
            .map_err(|e| format!("dpdk: {e}"))?;
        let anchors = open_side(eal, &cfg.ports.anchor, "anchor", n, &buffers)?;
        let deliveries = open_side(eal, &cfg.ports.delivery, "delivery", n, &buffers)?;
        let devices = vec![anchors[0].device(), deliveries[0].device()];
        let workers = anchors
            .into_iter()
            .zip(deliveries)
            .map(|(a, d)| WorkerPorts {
                anchor: Some(Box::new(a) as Box<dyn crate::ports::Port<Mbuf>>),
                delivery: vec![DeliveryPort {
                    port: Box::new(d),
                    paths: PathSet::All,
                }],
            })
            .collect();
        Ok((RuntimePorts { workers }, buffers, devices))
    }

    /// Initialises the EAL, opens the ports and starts the runtime over them.
    pub fn start(cfg: &mut Config, opts: RuntimeOptions) -> Result<RuntimeHandle, String> {
        let eal = init_eal(cfg)?;
        let (ports, buffers, devices) = build(cfg, eal)?;
        let h = Runtime::start_on(cfg.clone(), ports, buffers, opts).map_err(|e| e.to_string())?;
        for d in devices {
            h.add_device(Arc::new(d));
        }
        Ok(h)
    }
}

/// Opens the ports `cfg` names for `cfg.node.workers` workers.
pub fn build_ports(cfg: &mut Config) -> Result<RuntimePorts, String> {
    let n = usize::from(cfg.node.workers.max(1));
    let mut workers: Vec<WorkerPorts> = (0..n).map(|_| WorkerPorts::default()).collect();
    let delivery = cfg.ports.delivery.clone();
    match &delivery {
        PortCfg::Udp { iface } => {
            workers[0].delivery = udp_ports(cfg, iface)?;
        }
        PortCfg::AfPacket {
            iface, gateway_mac, ..
        } => {
            for (w, wp) in workers.iter_mut().enumerate() {
                wp.delivery.push(DeliveryPort {
                    port: Box::new(af_packet(iface, *gateway_mac, w, 0x4d42, n)?),
                    paths: PathSet::All,
                });
            }
        }
        PortCfg::Ring { .. } => {
            return Err(
                "ports.delivery: ring ports exist only inside one process (tests, `nmadp demo`)"
                    .into(),
            )
        }
        PortCfg::Tun { .. } => return Err("ports.delivery: tun is an anchor-side port".into()),
        PortCfg::AfXdp { .. } | PortCfg::Dpdk { .. } => return Err(KERNEL_BYPASS_BOTH_SIDES.into()),
    }
    // A TUN anchor with one worker queue per worker only when several workers.
    for (w, wp) in workers.iter_mut().enumerate() {
        wp.anchor = anchor_port(cfg, w, n)?;
    }
    Ok(RuntimePorts { workers })
}

/// Options of [`run`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub busy_poll: bool,
    /// Do not open the admin socket.
    pub no_admin: bool,
    /// Overrides `node.admin_socket`.
    pub admin_socket: Option<std::path::PathBuf>,
}

/// Loads, starts and runs until SIGINT/SIGTERM (or the admin socket's `shutdown`), then
/// stops cleanly and prints the final counters. Returns the process exit code.
pub fn run(path: &Path, expect: Option<Role>, opts: &RunOptions) -> i32 {
    let mut cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if let Some(r) = expect {
        if cfg.node.role != r {
            eprintln!(
                "{}: node.role is {:?}, this program runs {:?}",
                path.display(),
                cfg.node.role,
                r
            );
            return 1;
        }
    }
    install_signal_handlers();
    let mut ropts = RuntimeOptions::default();
    ropts.loop_options.busy_poll = opts.busy_poll;
    let admin_path = opts
        .admin_socket
        .clone()
        .unwrap_or_else(|| cfg.node.admin_socket.clone());
    let handle = match start_runtime(&mut cfg, ropts) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return 1;
        }
    };
    for w in handle.warnings() {
        eprintln!("warning: {w}");
    }
    let admin = if opts.no_admin {
        None
    } else {
        match AdminServer::bind(&admin_path, Arc::new(handle.clone())) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("admin socket: {e} (continuing without it)");
                None
            }
        }
    };
    eprintln!(
        "running with {} worker(s); SIGINT or SIGTERM stops",
        handle.workers()
    );
    while !stop_requested() && !handle.shutdown_requested() {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("stopping");
    if let Some(a) = admin {
        a.shutdown();
    }
    let code = match handle.shutdown() {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("shutdown: {e}");
            2
        }
    };
    print_final(&handle);
    code
}

/// Final counters, one line per worker and per port.
pub fn print_final(handle: &RuntimeHandle) {
    for s in handle.snapshots() {
        let l = s.loop_counters;
        println!(
            "worker {}: rx {} tx {} bursts {} handoffs in {} out {} ring-full {} drops {} reorder-held {}",
            s.worker,
            l.rx_packets,
            l.tx_packets,
            l.bursts,
            l.handoffs_in,
            l.handoffs_out,
            l.handoff_full + l.control_ring_full,
            s.engine.total_drops(),
            s.reorder_depth
        );
        for (r, n) in s.engine.nonzero_drops() {
            println!("  drop {}: {n}", r.as_str());
        }
        for p in &s.ports {
            println!(
                "  port {} ({}): rx {} tx {} rx-dropped {} tx-dropped {}",
                p.name,
                p.side,
                p.stats.rx_packets,
                p.stats.tx_packets,
                p.stats.rx_dropped,
                p.stats.tx_dropped
            );
        }
    }
    let h = handle.latency_histogram();
    if !h.is_empty() {
        println!(
            "latency (burst residence): p50 {} ns, p99 {} ns, max {} ns, {} samples",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max(),
            h.len()
        );
    }
}

/// For `config` users that only need the role name.
pub fn role_name(r: config::Role) -> &'static str {
    match r {
        config::Role::NMadp => "n-madp",
        config::Role::CMadp => "c-madp",
    }
}
