//! From text to a validated [`Config`]: syntax (toml_edit), types (serde), then semantics.
//! Semantic checks collect every problem with its field path; [`Locator`] turns paths into
//! file:line:column.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use toml_edit::ImDocument;

use super::error::{one_line, ConfigError, LineIndex, Locator, Path, Problems};
use super::file::*;
use super::*;

const IFNAMSIZ: usize = 16;

pub(crate) fn parse(text: &str, file: &str, host: &HostInfo) -> Result<Config, ConfigError> {
    let doc = match ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let loc = Locator {
                file,
                lines: LineIndex::new(text),
                doc: None,
            };
            let off = e.span().map_or(0, |s| s.start);
            let path = syntax_context(text, off);
            let d = loc.at_offset(
                off,
                &path,
                format!("syntax error: {}", one_line(e.message())),
            );
            return Err(ConfigError {
                diagnostics: vec![d],
            });
        }
    };
    let loc = Locator {
        file,
        lines: LineIndex::new(text),
        doc: Some(&doc),
    };
    let raw: File = toml::from_str(text).map_err(|e| ConfigError {
        diagnostics: vec![loc.at_span(e.span(), e.message())],
    })?;
    let mut p = Problems::default();
    let cfg = build(&raw, host, &mut p);
    if p.0.is_empty() {
        return Ok(cfg);
    }
    let mut diagnostics: Vec<_> =
        p.0.into_iter()
            .map(|(path, m)| loc.at_path(&path, m))
            .collect();
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Err(ConfigError { diagnostics })
}

/// For a syntax error (no document to walk): the table the error is in, from the last
/// `[header]` / `[[header]]` before it, plus the key on the error's line if there is one.
fn syntax_context(text: &str, offset: usize) -> Path {
    let upto = text.get(..offset).unwrap_or(text);
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut current = Path::root();
    for line in upto.lines() {
        let t = line.trim();
        let (name, array) = if let Some(r) = t.strip_prefix("[[") {
            (r.split("]]").next().unwrap_or(""), true)
        } else if let Some(r) = t.strip_prefix('[') {
            (r.split(']').next().unwrap_or(""), false)
        } else {
            continue;
        };
        let name = name.trim().to_owned();
        if array {
            let n = counts.entry(name.clone()).or_insert(0);
            *n += 1;
            // A new `[[client]]` starts the counts of `[[client.delivery]]` afresh.
            let prefix = format!("{name}.");
            counts.retain(|k, _| !k.starts_with(&prefix));
        }
        let mut path = Path::root();
        let mut full = String::new();
        for part in name.split('.') {
            if !full.is_empty() {
                full.push('.');
            }
            full.push_str(part.trim());
            path = path.key(part.trim());
            if let Some(n) = counts.get(&full) {
                path = path.idx(n.saturating_sub(1));
            }
        }
        current = path;
    }
    let line_start = upto.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..).unwrap_or("");
    let line = line.lines().next().unwrap_or("");
    if let Some((k, _)) = line.split_once('=') {
        let k = k.trim();
        if !k.is_empty() && !k.starts_with('[') && !k.starts_with('#') {
            return current.key(k);
        }
    }
    current
}

// ---------------------------------------------------------------------------------------------
// Small checkers. Each pushes a problem and returns a usable value, so that checking continues
// and the operator sees every problem at once.

fn ranged(p: &mut Problems, path: Path, v: Option<i64>, default: i64, lo: i64, hi: i64) -> i64 {
    match v {
        None => default,
        Some(v) if (lo..=hi).contains(&v) => v,
        Some(v) => {
            p.push(path, format!("must be in {lo}..={hi}, got {v}"));
            default.clamp(lo, hi)
        }
    }
}

fn iface_name(p: &mut Problems, path: Path, name: &Option<String>) {
    if let Some(n) = name {
        if n.is_empty() || n.len() >= IFNAMSIZ || n.contains('/') || n.contains(char::is_whitespace)
        {
            p.push(
                path,
                format!("\"{n}\" is not an interface name (1..=15 characters, no '/' or spaces)"),
            );
        }
    }
}

fn non_empty(p: &mut Problems, path: Path, s: &str) {
    if s.trim().is_empty() {
        p.push(path, "must not be empty");
    }
}

// ---------------------------------------------------------------------------------------------

fn build(f: &File, host: &HostInfo, p: &mut Problems) -> Config {
    let root = Path::root();
    let node = node(p, &root.key("node"), &f.node, host);
    let ports = Ports {
        anchor: port(
            p,
            &root.key("ports").key("anchor"),
            &f.ports.anchor,
            "anchor",
        ),
        delivery: port(
            p,
            &root.key("ports").key("delivery"),
            &f.ports.delivery,
            "delivery",
        ),
    };
    let control = control(p, &root.key("control"), &f.control, node.role);
    let defaults = defaults(p, &root.key("defaults"), &f.defaults);
    let dpdk = f.dpdk.as_ref().map(|d| {
        let at = root.key("dpdk");
        let def = Dpdk::default();
        let eal_args = d.eal_args.clone().unwrap_or_default();
        for (i, a) in eal_args.iter().enumerate() {
            if a.contains('\0') {
                p.push(at.key("eal_args").idx(i), "contains a NUL byte");
            }
        }
        Dpdk {
            eal_args,
            mbufs: ranged(p, at.key("mbufs"), d.mbufs, def.mbufs.into(), 1023, 1 << 24) as u32,
            mbuf_cache: ranged(
                p,
                at.key("mbuf_cache"),
                d.mbuf_cache,
                def.mbuf_cache.into(),
                0,
                512,
            ) as u32,
        }
    });
    let mut clients = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut anchors: HashMap<IpAddr, usize> = HashMap::new();
    for (i, c) in f.clients.iter().enumerate() {
        let cp = root.key("client").idx(i);
        if let Some(first) = names.insert(&c.name, i) {
            p.push(
                cp.key("name"),
                format!(
                    "duplicate client name \"{}\" (also client[{first}])",
                    c.name
                ),
            );
        }
        if let Some(first) = anchors.insert(c.anchor_address, i) {
            p.push(
                cp.key("anchor_address"),
                format!(
                    "duplicate anchor address {} (also client[{first}]): clients are found by it",
                    c.anchor_address
                ),
            );
        }
        clients.push(client(p, &cp, c, &defaults, node.role));
    }
    if node.role == Role::CMadp && f.clients.len() != 1 {
        let at = if f.clients.is_empty() {
            root.key("client")
        } else {
            root.key("client").idx(1)
        };
        p.push(
            at,
            format!(
                "a C-MADP configuration has exactly one [[client]] (itself), found {}",
                f.clients.len()
            ),
        );
    }
    Config {
        node,
        ports,
        control,
        defaults,
        dpdk,
        clients,
    }
}

fn node(p: &mut Problems, at: &Path, n: &FileNode, host: &HostInfo) -> Node {
    if let Some(name) = &n.name {
        non_empty(p, at.key("name"), name);
    }
    let admin_socket = match (&n.admin_socket, n.role) {
        (Some(s), _) => PathBuf::from(s),
        (None, Role::NMadp) => PathBuf::from("/run/nmadp/admin.sock"),
        (None, Role::CMadp) => PathBuf::from("/run/cmadp/admin.sock"),
    };
    if !admin_socket.is_absolute() {
        p.push(
            at.key("admin_socket"),
            format!(
                "must be an absolute path, got \"{}\"",
                admin_socket.display()
            ),
        );
    }
    let workers = ranged(p, at.key("workers"), n.workers, 1, 1, 256) as u16;
    let online = |c: u32| match &host.online_cpus {
        None => true,
        Some(cpus) => cpus.contains(&c),
    };
    let mut cores = Vec::new();
    if let Some(list) = &n.cores {
        for (i, &c) in list.iter().enumerate() {
            let c = ranged(p, at.key("cores").idx(i), Some(c), 0, 0, 4095) as u32;
            if cores.contains(&c) {
                p.push(at.key("cores").idx(i), format!("core {c} is listed twice"));
            } else if !online(c) {
                p.push(
                    at.key("cores").idx(i),
                    format!("core {c} is not online on this host"),
                );
            }
            cores.push(c);
        }
        if list.len() != usize::from(workers) {
            p.push(
                at.key("cores"),
                format!(
                    "lists {} cores for {workers} workers: give one core per worker, or omit `cores`",
                    list.len()
                ),
            );
        }
    }
    let slow_path_core = n.slow_path_core.map(|c| {
        let c = ranged(p, at.key("slow_path_core"), Some(c), 0, 0, 4095) as u32;
        if cores.contains(&c) {
            p.push(
                at.key("slow_path_core"),
                format!("core {c} is also a worker core (node.cores)"),
            );
        } else if !online(c) {
            p.push(
                at.key("slow_path_core"),
                format!("core {c} is not online on this host"),
            );
        }
        c
    });
    Node {
        role: n.role,
        name: n.name.clone(),
        admin_socket,
        workers,
        cores,
        slow_path_core,
    }
}

fn kind_name(k: PortKind) -> &'static str {
    match k {
        PortKind::Ring => "ring",
        PortKind::AfPacket => "af-packet",
        PortKind::AfXdp => "af-xdp",
        PortKind::Tun => "tun",
        PortKind::Udp => "udp",
        PortKind::Dpdk => "dpdk",
    }
}

/// Keys each port kind takes, and which of them are required.
fn port_keys(k: PortKind) -> (&'static [&'static str], &'static [&'static str]) {
    match k {
        PortKind::Ring => (&["name", "capacity"], &[]),
        PortKind::AfPacket | PortKind::AfXdp => (&["iface", "queues", "gateway_mac"], &["iface"]),
        PortKind::Tun => (&["iface", "mtu"], &["iface"]),
        PortKind::Udp => (&["iface"], &[]),
        // `device` or `pci` (checked below).
        PortKind::Dpdk => (
            &[
                "device",
                "pci",
                "queues",
                "rx_desc",
                "tx_desc",
                "gateway_mac",
            ],
            &[],
        ),
    }
}

fn port(p: &mut Problems, at: &Path, f: &FilePort, side: &str) -> Port {
    let kind = f.kind;
    let kn = kind_name(kind);
    let present = [
        ("name", f.name.is_some()),
        ("capacity", f.capacity.is_some()),
        ("iface", f.iface.is_some()),
        ("queues", f.queues.is_some()),
        ("mtu", f.mtu.is_some()),
        ("pci", f.pci.is_some()),
        ("device", f.device.is_some()),
        ("rx_desc", f.rx_desc.is_some()),
        ("tx_desc", f.tx_desc.is_some()),
        ("gateway_mac", f.gateway_mac.is_some()),
    ];
    let (allowed, required) = port_keys(kind);
    for (key, is) in present {
        if is && !allowed.contains(&key) {
            p.push(
                at.key(key),
                format!(
                    "does not apply to kind = \"{kn}\" (it takes: {})",
                    allowed.join(", ")
                ),
            );
        }
    }
    for key in required {
        if !present.iter().any(|(k, is)| k == key && *is) {
            p.push(at.key(key), format!("is required for kind = \"{kn}\""));
        }
    }
    match (side, kind) {
        ("anchor", PortKind::Udp) => p.push(
            at.key("kind"),
            "\"udp\" is a delivery-side port; the anchor side takes ring, af-packet, af-xdp, tun or dpdk",
        ),
        ("delivery", PortKind::Tun) => p.push(
            at.key("kind"),
            "\"tun\" is an anchor-side port; the delivery side takes ring, af-packet, af-xdp, udp or dpdk",
        ),
        (_, PortKind::Dpdk) if !cfg!(feature = "dpdk") => p.push(
            at.key("kind"),
            "\"dpdk\" is not supported by this build (rebuild with `--features dpdk`)",
        ),
        _ => {}
    }
    iface_name(p, at.key("iface"), &f.iface);
    let queues = ranged(p, at.key("queues"), f.queues, 1, 1, 64) as u16;
    let iface = f.iface.clone().unwrap_or_default();
    let gateway_mac = f.gateway_mac.as_deref().and_then(|m| {
        let mac = parse_mac(m);
        if mac.is_none() {
            p.push(
                at.key("gateway_mac"),
                format!("must be a MAC address such as \"02:00:00:00:00:01\", got \"{m}\""),
            );
        }
        mac
    });
    match kind {
        PortKind::Ring => {
            let capacity = ranged(p, at.key("capacity"), f.capacity, 1024, 64, 1 << 20) as u32;
            if !capacity.is_power_of_two() {
                p.push(
                    at.key("capacity"),
                    format!("must be a power of two, got {capacity}"),
                );
            }
            let name = f.name.clone().unwrap_or_else(|| side.to_owned());
            non_empty(p, at.key("name"), &name);
            Port::Ring { name, capacity }
        }
        PortKind::AfPacket => Port::AfPacket {
            iface,
            queues,
            gateway_mac,
        },
        PortKind::AfXdp => Port::AfXdp {
            iface,
            queues,
            gateway_mac,
        },
        PortKind::Tun => Port::Tun {
            iface,
            mtu: ranged(p, at.key("mtu"), f.mtu, 1500, 576, 9216) as u16,
        },
        PortKind::Udp => Port::Udp {
            iface: f.iface.clone(),
        },
        PortKind::Dpdk => {
            let device = match (&f.device, &f.pci) {
                (Some(d), None) => {
                    non_empty(p, at.key("device"), d);
                    d.clone()
                }
                (None, Some(d)) => {
                    non_empty(p, at.key("pci"), d);
                    d.clone()
                }
                (Some(_), Some(_)) => {
                    p.push(at.key("pci"), "give `device` or `pci`, not both");
                    String::new()
                }
                (None, None) => {
                    p.push(
                        at.key("device"),
                        "is required for kind = \"dpdk\" (a vdev spec such as \"net_af_packet0,iface=eth1\", or a PCI address)",
                    );
                    String::new()
                }
            };
            Port::Dpdk {
                device,
                queues,
                rx_desc: ranged(p, at.key("rx_desc"), f.rx_desc, 1024, 64, 4096) as u16,
                tx_desc: ranged(p, at.key("tx_desc"), f.tx_desc, 1024, 64, 4096) as u16,
                gateway_mac,
            }
        }
    }
}

fn control(p: &mut Problems, at: &Path, c: &FileControl, role: Role) -> Control {
    if c.address.port() == 0 {
        p.push(
            at.key("address"),
            "port must not be 0 (WIRE.md reference: 8888)",
        );
    }
    if role == Role::CMadp && c.address.ip().is_unspecified() {
        p.push(
            at.key("address"),
            "a C-MADP sends control PDUs here: give the N-MADP's address, not an unspecified one",
        );
    }
    Control { address: c.address }
}

const DEFAULT_TRAILER: u8 =
    TrailerFields::NH | TrailerFields::CID | TrailerFields::TC | TrailerFields::SN;

fn trailer_list(p: &mut Problems, at: Path, list: &[TrailerField]) -> TrailerFields {
    let mut mask = 0u8;
    for (i, f) in list.iter().enumerate() {
        if mask & f.flag() != 0 {
            p.push(at.idx(i), format!("`{}` is listed twice", field_name(*f)));
        }
        mask |= f.flag();
    }
    TrailerFields(mask)
}

fn field_name(f: TrailerField) -> &'static str {
    match f {
        TrailerField::Nh => "nh",
        TrailerField::Cid => "cid",
        TrailerField::Tc => "tc",
        TrailerField::Sn => "sn",
        TrailerField::Fsl => "fsl",
        TrailerField::Fc => "fc",
    }
}

fn trailer(
    p: &mut Problems,
    at: &Path,
    t: Option<&FileTrailer>,
    base: TrailerConfig,
) -> TrailerConfig {
    let Some(t) = t else { return base };
    TrailerConfig {
        downlink: t
            .downlink
            .as_deref()
            .map_or(base.downlink, |l| trailer_list(p, at.key("downlink"), l)),
        uplink: t
            .uplink
            .as_deref()
            .map_or(base.uplink, |l| trailer_list(p, at.key("uplink"), l)),
    }
}

fn reorder(p: &mut Problems, at: &Path, r: Option<&FileReorder>, base: Reorder) -> Reorder {
    let Some(r) = r else { return base };
    // WIRE.md: SNs compare modulo 2^16 with a half-range window.
    let window = ranged(p, at.key("window"), r.window, base.window.into(), 1, 32767) as u16;
    let timeout = match &r.timeout_ms {
        None => base.timeout,
        Some(StrOrInt::Str(s)) if s == "adaptive" => ReorderTimeout::Adaptive,
        Some(StrOrInt::Str(s)) => {
            p.push(
                at.key("timeout_ms"),
                format!("must be \"adaptive\" or a number of milliseconds, got \"{s}\""),
            );
            base.timeout
        }
        Some(StrOrInt::Int(v)) => {
            ReorderTimeout::FixedMs(ranged(p, at.key("timeout_ms"), Some(*v), 50, 1, 60_000) as u32)
        }
    };
    let min = ranged(
        p,
        at.key("timeout_min_ms"),
        r.timeout_min_ms,
        base.timeout_min_ms.into(),
        1,
        60_000,
    ) as u32;
    let max = ranged(
        p,
        at.key("timeout_max_ms"),
        r.timeout_max_ms,
        base.timeout_max_ms.into(),
        1,
        60_000,
    ) as u32;
    if min > max {
        p.push(
            at.key("timeout_max_ms"),
            format!("must be at least timeout_min_ms ({min}), got {max}"),
        );
    }
    let resync_after = ranged(
        p,
        at.key("resync_after"),
        r.resync_after,
        base.resync_after.into(),
        0,
        4096,
    ) as u16;
    Reorder {
        window,
        timeout,
        timeout_min_ms: min,
        timeout_max_ms: max,
        deliver_late: r.deliver_late.unwrap_or(base.deliver_late),
        resync_after,
        path_horizon: r.path_horizon.unwrap_or(base.path_horizon),
    }
}

fn reassembly(
    p: &mut Problems,
    at: &Path,
    r: Option<&FileReassembly>,
    base: Reassembly,
) -> Reassembly {
    let Some(r) = r else { return base };
    Reassembly {
        slots: ranged(p, at.key("slots"), r.slots, base.slots.into(), 1, 65535) as u16,
        timeout_ms: ranged(
            p,
            at.key("timeout_ms"),
            r.timeout_ms,
            base.timeout_ms.into(),
            1,
            60_000,
        ) as u32,
        max_sdu_bytes: ranged(
            p,
            at.key("max_sdu_bytes"),
            r.max_sdu_bytes,
            base.max_sdu_bytes.into(),
            576,
            65535,
        ) as u16,
    }
}

fn adaptation(p: &mut Problems, at: Path, a: AdaptationName) -> Adaptation {
    match a {
        AdaptationName::Udp => Adaptation::Udp,
        AdaptationName::UdpOptimized => Adaptation::UdpOptimized,
        AdaptationName::ClientNat => Adaptation::ClientNat,
        AdaptationName::PassThrough => Adaptation::PassThrough,
        AdaptationName::Ipsec | AdaptationName::Dtls => {
            let n = if a == AdaptationName::Ipsec {
                "ipsec"
            } else {
                "dtls"
            };
            p.push(at, format!("\"{n}\" is not supported by this build (use udp, udp-optimized, client-nat or pass-through)"));
            Adaptation::Udp
        }
    }
}

fn defaults(p: &mut Problems, at: &Path, d: &FileDefaults) -> Defaults {
    let base_reorder = Reorder {
        window: 1024,
        timeout: ReorderTimeout::Adaptive,
        timeout_min_ms: 10,
        timeout_max_ms: 1000,
        deliver_late: true,
        resync_after: 16,
        path_horizon: true,
    };
    let base_reassembly = Reassembly {
        slots: 64,
        timeout_ms: 100,
        max_sdu_bytes: 9216,
    };
    let pr = d.probe.clone().unwrap_or_default();
    let pa = at.key("probe");
    let mut probe = Probe {
        interval_ms: ranged(
            p,
            pa.key("interval_ms"),
            pr.interval_ms,
            1000,
            10,
            3_600_000,
        ) as u32,
        keepalive_ms: ranged(
            p,
            pa.key("keepalive_ms"),
            pr.keepalive_ms,
            1000,
            10,
            3_600_000,
        ) as u32,
        dead_after: ranged(p, pa.key("dead_after"), pr.dead_after, 3, 1, 255) as u8,
        timeout_ms: 0,
    };
    probe.timeout_ms = probe_timeout(p, pa.key("timeout_ms"), pr.timeout_ms, probe.interval_ms);
    Defaults {
        convergence: d.convergence.unwrap_or(Convergence::Trailer),
        steering: d.steering.unwrap_or(SteeringMode::ActiveStandby),
        adaptation: d
            .adaptation
            .map_or(Adaptation::Udp, |a| adaptation(p, at.key("adaptation"), a)),
        mtu: ranged(p, at.key("mtu"), d.mtu, 1500, 576, 9216) as u16,
        trailer: trailer(
            p,
            &at.key("trailer"),
            d.trailer.as_ref(),
            TrailerConfig {
                downlink: TrailerFields(DEFAULT_TRAILER),
                uplink: TrailerFields(DEFAULT_TRAILER),
            },
        ),
        reorder: reorder(p, &at.key("reorder"), d.reorder.as_ref(), base_reorder),
        reassembly: reassembly(
            p,
            &at.key("reassembly"),
            d.reassembly.as_ref(),
            base_reassembly,
        ),
        probe,
        delay_compensation: d.delay_compensation.unwrap_or(true),
        max_delayed: ranged(
            p,
            at.key("max_delayed"),
            d.max_delayed,
            65_536,
            0,
            1_048_576,
        ) as u32,
    }
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`) -> bytes.
pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn format_mac(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// `probe.timeout_ms`: given, or `max(2 × interval, 1000 ms)`; never 32 intervals or more (the
/// path monitor remembers 32 probes: an older unanswered one counts as lost anyway).
fn probe_timeout(p: &mut Problems, at: Path, given: Option<i64>, interval_ms: u32) -> u32 {
    let cap = interval_ms.saturating_mul(31).max(1);
    match given {
        None => interval_ms.saturating_mul(2).max(1000).min(cap),
        Some(_) => {
            let v = ranged(p, at.clone(), given, 1000, 1, 3_600_000) as u32;
            if v > cap {
                p.push(
                    at,
                    format!("must be below 32 probe intervals ({cap} ms with interval_ms = {interval_ms}): older probes are forgotten, got {v}"),
                );
            }
            v.min(cap)
        }
    }
}

fn protocol_number(name: &str) -> Option<u8> {
    Some(match name {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "esp" => 50,
        "icmpv6" => 58,
        "sctp" => 132,
        _ => return None,
    })
}

fn port_range(p: &mut Problems, at: Path, v: &StrOrInt) -> Option<PortRange> {
    let bad = |p: &mut Problems| {
        p.push(
            at.clone(),
            "must be a port (5060) or an inclusive range (\"5060-5061\") within 0..=65535",
        );
        None
    };
    let (a, b) = match v {
        StrOrInt::Int(n) => (*n, *n),
        StrOrInt::Str(s) => {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => return bad(p),
            }
        }
    };
    match (u16::try_from(a), u16::try_from(b)) {
        (Ok(first), Ok(last)) if first <= last => Some(PortRange { first, last }),
        _ => bad(p),
    }
}

fn cidr(p: &mut Problems, at: Path, s: &str) -> Option<Cidr> {
    let (a, len) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
    let Ok(addr) = a.trim().parse::<IpAddr>() else {
        p.push(
            at,
            format!(
                "\"{s}\" is not an address prefix (e.g. \"203.0.113.0/24\" or \"2001:db8::/32\")"
            ),
        );
        return None;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len.map(|l| l.trim().parse::<u8>()) {
        None => max,
        Some(Ok(l)) if l <= max => l,
        Some(_) => {
            p.push(at, format!("\"{s}\": prefix length must be in 0..={max}"));
            return None;
        }
    };
    let c = Cidr { addr, prefix_len };
    // A prefix with host bits set is almost always a typo for a different prefix.
    if !c.contains(addr) || masked(c) != addr {
        p.push(
            at,
            format!(
                "\"{s}\" has host bits set (did you mean \"{}/{prefix_len}\"?)",
                masked(c)
            ),
        );
    }
    Some(c)
}

fn masked(c: Cidr) -> IpAddr {
    match c.addr {
        IpAddr::V4(a) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(c.prefix_len))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(c.prefix_len))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn traffic_class(
    p: &mut Problems,
    at: &Path,
    t: &FileTrafficClass,
    client: &Client,
) -> TrafficClass {
    let id = ranged(p, at.key("id"), Some(t.id), 0, 0, 255) as u8;
    let anchor = match t.anchor {
        None => client.anchors.first().map_or(0, |a| a.connection_id),
        Some(a) => {
            if !client
                .anchors
                .iter()
                .any(|x| i64::from(x.connection_id) == a)
            {
                p.push(
                    at.key("anchor"),
                    format!("no [[client.anchor]] with connection_id = {a}"),
                );
            }
            u16::try_from(a).unwrap_or(0)
        }
    };
    let m = &t.rule;
    let mp = at.key("match");
    let mut dscp = Vec::new();
    for (i, d) in m.dscp.iter().flatten().enumerate() {
        // RFC 2474: DSCP is the upper six bits of the TOS / traffic class octet.
        dscp.push(ranged(p, mp.key("dscp").idx(i), Some(*d), 0, 0, 63) as u8);
    }
    let protocol = match &m.protocol {
        None => None,
        Some(StrOrInt::Int(n)) => Some(ranged(p, mp.key("protocol"), Some(*n), 0, 0, 255) as u8),
        Some(StrOrInt::Str(s)) => {
            let n = protocol_number(s);
            if n.is_none() {
                p.push(mp.key("protocol"), format!("unknown protocol \"{s}\" (tcp, udp, sctp, icmp, icmpv6, gre, esp, or a number)"));
            }
            n
        }
    };
    let remote = m
        .remote
        .as_deref()
        .and_then(|s| cidr(p, mp.key("remote"), s));
    let remote_port = m
        .remote_port
        .as_ref()
        .and_then(|v| port_range(p, mp.key("remote_port"), v));
    let client_port = m
        .client_port
        .as_ref()
        .and_then(|v| port_range(p, mp.key("client_port"), v));
    for (key, given) in [
        ("remote_port", &m.remote_port),
        ("client_port", &m.client_port),
    ] {
        if given.is_some() && !matches!(protocol, Some(6 | 17 | 132)) {
            p.push(
                mp.key(key),
                "ports need protocol = \"tcp\", \"udp\" or \"sctp\"",
            );
        }
    }
    let deliveries = t.deliveries.as_ref().map(|list| {
        let mut out: Vec<u8> = Vec::new();
        if list.is_empty() {
            p.push(
                at.key("deliveries"),
                "must not be empty (omit it to allow every delivery connection)",
            );
        }
        for (i, &d) in list.iter().enumerate() {
            let dp = at.key("deliveries").idx(i);
            if !client.deliveries.iter().any(|x| i64::from(x.id) == d) {
                p.push(dp, format!("no [[client.delivery]] with id = {d}"));
            } else if out.iter().any(|x| i64::from(*x) == d) {
                p.push(dp, format!("delivery {d} is listed twice"));
            } else {
                out.push(d as u8);
            }
        }
        out
    });
    TrafficClass {
        id,
        anchor,
        rule: Match {
            dscp,
            protocol,
            remote,
            remote_port,
            client_port,
        },
        steering: t.steering.unwrap_or(client.steering),
        deliveries,
    }
}

fn endpoint(p: &mut Problems, at: Path, s: &str, adaptation: Adaptation) -> Option<Endpoint> {
    if adaptation.is_udp() {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(Endpoint::Udp(a)),
            Err(_) => {
                p.push(at, format!("\"{s}\" is not ip:port (e.g. \"192.0.2.1:10021\" or \"[2001:db8::1]:10021\"), as adaptation = \"udp\" needs"));
                None
            }
        }
    } else {
        match s.parse::<IpAddr>() {
            Ok(a) => Some(Endpoint::Ip(a)),
            Err(_) => {
                p.push(
                    at,
                    format!(
                        "\"{s}\" is not an IP address (client-nat and pass-through take no port)"
                    ),
                );
                None
            }
        }
    }
}

fn delivery(
    p: &mut Problems,
    at: &Path,
    d: &FileDelivery,
    index: usize,
    defaults: &Defaults,
    client: &Client,
    role: Role,
) -> DeliveryConnection {
    let id = ranged(p, at.key("id"), Some(d.id), 0, 0, 255) as u8;
    let name = d.name.clone().unwrap_or_else(|| format!("dc{id}"));
    non_empty(p, at.key("name"), &name);
    iface_name(p, at.key("iface"), &d.iface);
    let adaptation = d.adaptation.map_or(defaults.adaptation, |a| {
        adaptation(p, at.key("adaptation"), a)
    });
    let local = d
        .local
        .as_deref()
        .and_then(|s| endpoint(p, at.key("local"), s, adaptation));
    let remote = d
        .remote
        .as_deref()
        .and_then(|s| endpoint(p, at.key("remote"), s, adaptation));
    // Which endpoint must be known in advance depends on who starts talking.
    match (role, adaptation.is_udp()) {
        (Role::NMadp, true) if d.local.is_none() => p.push(
            at.key("local"),
            "is required: the N-MADP's UDP tunnel endpoint for this delivery connection (WIRE.md: 10021 Wi-Fi, 10020 LTE)",
        ),
        (Role::NMadp, false) if d.remote.is_none() => p.push(
            at.key("remote"),
            "is required: the client's address on this access network",
        ),
        (Role::CMadp, true) if d.remote.is_none() => p.push(
            at.key("remote"),
            "is required: the N-MADP's UDP tunnel endpoint for this delivery connection",
        ),
        _ => {}
    }
    for (key, e) in [("local", local), ("remote", remote)] {
        if let Some(Endpoint::Udp(s)) = e {
            let needs_port = (key == "local") == (role == Role::NMadp);
            if needs_port && s.port() == 0 {
                p.push(at.key(key), "port must not be 0");
            }
        }
    }
    if let (Some(l), Some(r)) = (local, remote) {
        if l.ip().is_ipv4() != r.ip().is_ipv4() {
            p.push(
                at.key("remote"),
                format!("{r} and local {l} are of different address families"),
            );
        }
    }
    // The MTU is of the delivery path, so it follows the endpoints' family (or the anchor's).
    let v6 = remote
        .or(local)
        .map_or(client.anchor_address.is_ipv6(), |e| e.ip().is_ipv6());
    let mtu = match d.mtu {
        None => i64::from(defaults.mtu),
        Some(m) => m,
    };
    // RFC 791 (576 every host accepts) / RFC 8200 §5 (1280 minimum link MTU).
    let (lo, fam) = if v6 { (1280, "IPv6") } else { (576, "IPv4") };
    let mtu = if (lo..=9216).contains(&mtu) {
        mtu as u16
    } else {
        let at = if d.mtu.is_some() {
            at.key("mtu")
        } else {
            Path::root().key("defaults").key("mtu")
        };
        p.push(
            at,
            format!("must be in {lo}..=9216 for an {fam} delivery connection, got {mtu}"),
        );
        1500
    };
    let trailer = if client.convergence == Convergence::Gre {
        if d.trailer.is_some() {
            p.push(at.key("trailer"), "applies only with convergence = \"trailer\" (GRE carries its own key and sequence number, draft-04 §4.4)");
        }
        TrailerConfig {
            downlink: TrailerFields(0),
            uplink: TrailerFields(0),
        }
    } else {
        let mut t = trailer(p, &at.key("trailer"), d.trailer.as_ref(), defaults.trailer);
        // AMBIGUITY: WIRE.md "IP header rules": without header optimization the PDU's protocol
        // becomes 114 and Next Header "MUST then be present". We add NH rather than reject a
        // list without it: the adaptation implies it, and the running config shows it.
        if adaptation != Adaptation::UdpOptimized {
            t.downlink.0 |= TrailerFields::NH;
            t.uplink.0 |= TrailerFields::NH;
        }
        t
    };
    let priority = ranged(
        p,
        at.key("priority"),
        d.priority,
        index.min(255) as i64,
        0,
        255,
    ) as u8;
    // Unset (0 inside): weighted and per-flow steering follow the paths' rates (configured
    // `rate_mbps`), or split equally when a rate is missing too. Set, it is 1..=65535.
    let weight = match d.weight {
        None => 0,
        Some(w) => ranged(p, at.key("weight"), Some(w), 1, 1, 65535) as u16,
    };
    let rate_mbps = d
        .rate_mbps
        .map(|r| ranged(p, at.key("rate_mbps"), Some(r), 1, 1, 1_000_000) as u32);
    let percent = ranged(
        p,
        at.key("shape_percent"),
        d.shape_percent,
        Shape::DEFAULT_PERCENT.into(),
        1,
        100,
    ) as u8;
    let queue_ms = ranged(
        p,
        at.key("shape_queue_ms"),
        d.shape_queue_ms,
        Shape::DEFAULT_QUEUE_MS.into(),
        1,
        10_000,
    ) as u32;
    let shape = match d.shape {
        // Without a rate the N-MADP measures the path's capacity (probes); the C-MADP cannot
        // (only the N-MADP probes, draft-04 §5.2).
        Some(true) if rate_mbps.is_none() && role == Role::CMadp => {
            p.push(
                at.key("shape"),
                "needs `rate_mbps` on a C-MADP (only the N-MADP measures a path's capacity)"
                    .to_string(),
            );
            None
        }
        Some(true) => Some(Shape { percent, queue_ms }),
        _ => {
            if d.shape_percent.is_some() || d.shape_queue_ms.is_some() {
                p.push(
                    at.key("shape"),
                    "`shape_percent` and `shape_queue_ms` need `shape = true`".to_string(),
                );
            }
            None
        }
    };
    DeliveryConnection {
        id,
        name,
        iface: d.iface.clone(),
        adaptation,
        local,
        remote,
        mtu,
        trailer,
        priority,
        weight,
        rate_mbps,
        udp_checksum: d.udp_checksum.unwrap_or(false),
        shape,
    }
}

fn client(p: &mut Problems, at: &Path, c: &FileClient, defaults: &Defaults, role: Role) -> Client {
    non_empty(p, at.key("name"), &c.name);
    let a = c.anchor_address;
    if a.is_unspecified() || a.is_multicast() {
        p.push(
            at.key("anchor_address"),
            format!("{a} cannot be a client's anchor address"),
        );
    }
    let mut out = Client {
        name: c.name.clone(),
        anchor_address: a,
        steering: c.steering.unwrap_or(defaults.steering),
        convergence: c.convergence.unwrap_or(defaults.convergence),
        reorder: reorder(p, &at.key("reorder"), c.reorder.as_ref(), defaults.reorder),
        reassembly: reassembly(
            p,
            &at.key("reassembly"),
            c.reassembly.as_ref(),
            defaults.reassembly,
        ),
        anchors: Vec::new(),
        traffic_classes: Vec::new(),
        deliveries: Vec::new(),
    };
    // Anchor connections: draft-04 §4.2.1 (one-octet Connection ID), §4.4.1 (GRE key low 16
    // bits, 0xFFFF meaning "none specified").
    if c.anchors.is_empty() {
        p.push(
            at.key("anchor"),
            "a client needs at least one [[client.anchor]]",
        );
    }
    let (hi, why) = match out.convergence {
        Convergence::Trailer => (
            255,
            "the trailer's Connection ID is one octet, draft-04 §4.2.1",
        ),
        Convergence::Gre => (
            65534,
            "the GRE key's low 16 bits, 0xFFFF meaning none, draft-04 §4.4.1",
        ),
    };
    for (i, an) in c.anchors.iter().enumerate() {
        let ap = at.key("anchor").idx(i);
        let id = an.connection_id;
        if !(0..=hi).contains(&id) {
            p.push(
                ap.key("connection_id"),
                format!("must be in 0..={hi} ({why}), got {id}"),
            );
        } else if out.anchors.iter().any(|x| i64::from(x.connection_id) == id) {
            p.push(
                ap.key("connection_id"),
                format!("duplicate connection_id {id}"),
            );
        }
        if let Some(n) = &an.name {
            non_empty(p, ap.key("name"), n);
        }
        out.anchors.push(AnchorConnection {
            connection_id: u16::try_from(id).unwrap_or(0),
            name: an.name.clone(),
        });
    }
    // Delivery connections.
    if c.deliveries.is_empty() {
        p.push(
            at.key("delivery"),
            "a client needs at least one [[client.delivery]]",
        );
    }
    for (i, d) in c.deliveries.iter().enumerate() {
        let dp = at.key("delivery").idx(i);
        let dc = delivery(p, &dp, d, i, defaults, &out, role);
        if let Some(j) = out.deliveries.iter().position(|x| x.id == dc.id) {
            p.push(
                dp.key("id"),
                format!("duplicate delivery id {} (also delivery[{j}])", dc.id),
            );
        }
        // (A defaulted name repeats only with a repeated id, already reported.)
        if let Some(j) = out
            .deliveries
            .iter()
            .position(|x| x.name == dc.name && x.id != dc.id)
        {
            p.push(
                dp.key("name"),
                format!(
                    "duplicate delivery name \"{}\" (also delivery[{j}])",
                    dc.name
                ),
            );
        }
        // Without `remote`, an uplink PDU is matched to its delivery connection by the local
        // endpoint it arrived on; two connections cannot share one.
        if role == Role::NMadp
            && dc.adaptation.is_udp()
            && dc.remote.is_none()
            && dc.local.is_some()
        {
            if let Some(j) = out
                .deliveries
                .iter()
                .position(|x| x.remote.is_none() && x.local == dc.local)
            {
                p.push(dp.key("local"), format!("same local endpoint as delivery[{j}] and no `remote`: uplink PDUs could not be told apart"));
            }
        }
        out.deliveries.push(dc);
    }
    // Traffic classes.
    for (i, t) in c.traffic_classes.iter().enumerate() {
        let tp = at.key("traffic_class").idx(i);
        let tc = traffic_class(p, &tp, t, &out);
        if let Some(j) = out.traffic_classes.iter().position(|x| x.id == tc.id) {
            p.push(
                tp.key("id"),
                format!(
                    "duplicate traffic class id {} (also traffic_class[{j}])",
                    tc.id
                ),
            );
        }
        out.traffic_classes.push(tc);
    }
    check_steering(p, at, c, &out);
    out
}

/// Checks that depend on the steering modes in use.
fn check_steering(p: &mut Problems, at: &Path, c: &FileClient, out: &Client) {
    let modes: Vec<SteeringMode> = std::iter::once(out.steering)
        .chain(out.traffic_classes.iter().map(|t| t.steering))
        .collect();
    if let Some(m) = modes.iter().find(|m| m.uses_priority()) {
        let set = c.deliveries.iter().filter(|d| d.priority.is_some()).count();
        if set != 0 && set != c.deliveries.len() {
            let i = c
                .deliveries
                .iter()
                .position(|d| d.priority.is_none())
                .unwrap_or(0);
            p.push(
                at.key("delivery").idx(i).key("priority"),
                format!("steering = \"{}\" orders delivery connections by priority: set it on all of them, or on none (file order)", mode_name(*m)),
            );
        } else {
            for (i, d) in out.deliveries.iter().enumerate() {
                if let Some(j) = out.deliveries[..i]
                    .iter()
                    .position(|x| x.priority == d.priority)
                {
                    p.push(
                        at.key("delivery").idx(i).key("priority"),
                        format!("priority {} is also delivery[{j}]'s: steering = \"{}\" needs a strict order", d.priority, mode_name(*m)),
                    );
                }
            }
        }
    }
    if out.convergence != Convergence::Trailer {
        return;
    }
    for (i, d) in out.deliveries.iter().enumerate() {
        let dp = at.key("delivery").idx(i);
        for (dir, mask) in [
            ("downlink", d.trailer.downlink),
            ("uplink", d.trailer.uplink),
        ] {
            let tp = if c.deliveries[i].trailer.as_ref().is_some_and(|t| {
                if dir == "downlink" {
                    t.downlink.is_some()
                } else {
                    t.uplink.is_some()
                }
            }) {
                dp.key("trailer").key(dir)
            } else {
                Path::root().key("defaults").key("trailer").key(dir)
            };
            if out.anchors.len() > 1 && !mask.contains(TrailerField::Cid) {
                p.push(tp.clone(), format!("must include \"cid\": client \"{}\" has {} anchor connections (draft-04 §4.2.1)", out.name, out.anchors.len()));
            }
            if out.deliveries.len() > 1 {
                if let Some(m) = modes.iter().find(|m| m.needs_sequence_numbers()) {
                    if !mask.contains(TrailerField::Sn) {
                        p.push(tp, format!("must include \"sn\": steering = \"{}\" sends one flow over several delivery connections and the receiver reorders by SN (draft-04 §4.2.1)", mode_name(*m)));
                    }
                }
            }
        }
    }
}

fn mode_name(m: SteeringMode) -> &'static str {
    match m {
        SteeringMode::Weighted => "weighted",
        SteeringMode::Single => "single",
        SteeringMode::ActiveStandby => "active-standby",
        SteeringMode::DelayAware => "delay-aware",
        SteeringMode::Duplicate => "duplicate",
        SteeringMode::PerFlow => "per-flow",
    }
}

// ---------------------------------------------------------------------------------------------
// Back to the file form, every default written out.

fn file_trailer(t: TrailerConfig) -> FileTrailer {
    FileTrailer {
        downlink: Some(t.downlink.fields()),
        uplink: Some(t.uplink.fields()),
    }
}

fn file_reorder(r: Reorder) -> FileReorder {
    FileReorder {
        window: Some(r.window.into()),
        timeout_ms: Some(match r.timeout {
            ReorderTimeout::Adaptive => StrOrInt::Str("adaptive".into()),
            ReorderTimeout::FixedMs(ms) => StrOrInt::Int(ms.into()),
        }),
        timeout_min_ms: Some(r.timeout_min_ms.into()),
        timeout_max_ms: Some(r.timeout_max_ms.into()),
        deliver_late: Some(r.deliver_late),
        resync_after: Some(r.resync_after.into()),
        path_horizon: Some(r.path_horizon),
    }
}

fn file_reassembly(r: Reassembly) -> FileReassembly {
    FileReassembly {
        slots: Some(r.slots.into()),
        timeout_ms: Some(r.timeout_ms.into()),
        max_sdu_bytes: Some(r.max_sdu_bytes.into()),
    }
}

fn file_adaptation(a: Adaptation) -> AdaptationName {
    match a {
        Adaptation::Udp => AdaptationName::Udp,
        Adaptation::UdpOptimized => AdaptationName::UdpOptimized,
        Adaptation::ClientNat => AdaptationName::ClientNat,
        Adaptation::PassThrough => AdaptationName::PassThrough,
    }
}

fn file_port(port: &Port) -> FilePort {
    let mut f = FilePort {
        kind: port.kind(),
        name: None,
        capacity: None,
        iface: None,
        queues: None,
        mtu: None,
        pci: None,
        device: None,
        rx_desc: None,
        tx_desc: None,
        gateway_mac: None,
    };
    match port {
        Port::Ring { name, capacity } => {
            f.name = Some(name.clone());
            f.capacity = Some((*capacity).into());
        }
        Port::AfPacket {
            iface,
            queues,
            gateway_mac,
        }
        | Port::AfXdp {
            iface,
            queues,
            gateway_mac,
        } => {
            f.iface = Some(iface.clone());
            f.queues = Some((*queues).into());
            f.gateway_mac = gateway_mac.map(format_mac);
        }
        Port::Tun { iface, mtu } => {
            f.iface = Some(iface.clone());
            f.mtu = Some((*mtu).into());
        }
        Port::Udp { iface } => f.iface = iface.clone(),
        Port::Dpdk {
            device,
            queues,
            rx_desc,
            tx_desc,
            gateway_mac,
        } => {
            f.gateway_mac = gateway_mac.map(format_mac);
            f.device = Some(device.clone());
            f.queues = Some((*queues).into());
            f.rx_desc = Some((*rx_desc).into());
            f.tx_desc = Some((*tx_desc).into());
        }
    }
    f
}

pub(crate) fn to_file(c: &Config) -> File {
    let d = &c.defaults;
    File {
        node: FileNode {
            role: c.node.role,
            name: c.node.name.clone(),
            admin_socket: Some(c.node.admin_socket.display().to_string()),
            workers: Some(c.node.workers.into()),
            cores: (!c.node.cores.is_empty())
                .then(|| c.node.cores.iter().map(|&x| x.into()).collect()),
            slow_path_core: c.node.slow_path_core.map(Into::into),
        },
        ports: FilePorts {
            anchor: file_port(&c.ports.anchor),
            delivery: file_port(&c.ports.delivery),
        },
        control: FileControl {
            address: c.control.address,
        },
        defaults: FileDefaults {
            convergence: Some(d.convergence),
            steering: Some(d.steering),
            adaptation: Some(file_adaptation(d.adaptation)),
            mtu: Some(d.mtu.into()),
            trailer: Some(file_trailer(d.trailer)),
            reorder: Some(file_reorder(d.reorder)),
            reassembly: Some(file_reassembly(d.reassembly)),
            delay_compensation: Some(d.delay_compensation),
            max_delayed: Some(d.max_delayed.into()),
            probe: Some(FileProbe {
                interval_ms: Some(d.probe.interval_ms.into()),
                keepalive_ms: Some(d.probe.keepalive_ms.into()),
                dead_after: Some(d.probe.dead_after.into()),
                timeout_ms: Some(d.probe.timeout_ms.into()),
            }),
        },
        dpdk: c.dpdk.as_ref().map(|d| FileDpdk {
            eal_args: Some(d.eal_args.clone()),
            mbufs: Some(d.mbufs.into()),
            mbuf_cache: Some(d.mbuf_cache.into()),
        }),
        clients: c.clients.iter().map(file_client).collect(),
    }
}

fn file_client(c: &Client) -> FileClient {
    FileClient {
        name: c.name.clone(),
        anchor_address: c.anchor_address,
        steering: Some(c.steering),
        convergence: Some(c.convergence),
        reorder: Some(file_reorder(c.reorder)),
        reassembly: Some(file_reassembly(c.reassembly)),
        anchors: c
            .anchors
            .iter()
            .map(|a| FileAnchor {
                connection_id: a.connection_id.into(),
                name: a.name.clone(),
            })
            .collect(),
        traffic_classes: c
            .traffic_classes
            .iter()
            .map(|t| FileTrafficClass {
                id: t.id.into(),
                anchor: Some(t.anchor.into()),
                rule: FileMatch {
                    dscp: (!t.rule.dscp.is_empty())
                        .then(|| t.rule.dscp.iter().map(|&x| x.into()).collect()),
                    protocol: t.rule.protocol.map(|n| StrOrInt::Int(n.into())),
                    remote: t
                        .rule
                        .remote
                        .map(|r| format!("{}/{}", r.addr, r.prefix_len)),
                    remote_port: t.rule.remote_port.map(file_range),
                    client_port: t.rule.client_port.map(file_range),
                },
                steering: Some(t.steering),
                deliveries: t
                    .deliveries
                    .as_ref()
                    .map(|v| v.iter().map(|&x| x.into()).collect()),
            })
            .collect(),
        deliveries: c
            .deliveries
            .iter()
            .map(|d| FileDelivery {
                id: d.id.into(),
                name: Some(d.name.clone()),
                iface: d.iface.clone(),
                adaptation: Some(file_adaptation(d.adaptation)),
                local: d.local.map(|e| e.to_string()),
                remote: d.remote.map(|e| e.to_string()),
                mtu: Some(d.mtu.into()),
                priority: Some(d.priority.into()),
                weight: (d.weight > 0).then(|| d.weight.into()),
                rate_mbps: d.rate_mbps.map(Into::into),
                udp_checksum: d.udp_checksum.then_some(true),
                shape: d.shape.map(|_| true),
                shape_percent: d.shape.map(|s| s.percent.into()),
                shape_queue_ms: d.shape.map(|s| s.queue_ms.into()),
                trailer: (c.convergence == Convergence::Trailer).then(|| file_trailer(d.trailer)),
            })
            .collect(),
    }
}

fn file_range(r: PortRange) -> StrOrInt {
    if r.first == r.last {
        StrOrInt::Int(r.first.into())
    } else {
        StrOrInt::Str(format!("{}-{}", r.first, r.last))
    }
}

/// One `[[client]]` table on its own (admin socket `clients add`), checked by the same code as
/// a client of a whole file, with the running configuration's defaults and role, and against its
/// clients for duplicate names and anchor addresses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientOnly {
    #[serde(default, rename = "client")]
    clients: Vec<FileClient>,
}

pub(crate) fn parse_client(text: &str, file: &str, base: &Config) -> Result<Client, ConfigError> {
    let doc = ImDocument::parse(text).map_err(|e| {
        let loc = Locator {
            file,
            lines: LineIndex::new(text),
            doc: None,
        };
        let off = e.span().map_or(0, |s| s.start);
        let d = loc.at_offset(
            off,
            &syntax_context(text, off),
            format!("syntax error: {}", one_line(e.message())),
        );
        ConfigError {
            diagnostics: vec![d],
        }
    })?;
    let loc = Locator {
        file,
        lines: LineIndex::new(text),
        doc: Some(&doc),
    };
    let raw: ClientOnly = toml::from_str(text).map_err(|e| ConfigError {
        diagnostics: vec![loc.at_span(e.span(), e.message())],
    })?;
    let at = Path::root().key("client");
    let mut p = Problems::default();
    let [c] = raw.clients.as_slice() else {
        return Err(ConfigError {
            diagnostics: vec![loc.at_path(
                &at,
                format!(
                    "expected exactly one [[client]] table, found {}",
                    raw.clients.len()
                ),
            )],
        });
    };
    let cp = at.idx(0);
    if let Some(o) = base.clients.iter().find(|o| o.name == c.name) {
        p.push(
            cp.key("name"),
            format!("a client named \"{}\" already exists", o.name),
        );
    }
    if let Some(o) = base
        .clients
        .iter()
        .find(|o| o.anchor_address == c.anchor_address)
    {
        p.push(
            cp.key("anchor_address"),
            format!(
                "anchor address {} is already client \"{}\"'s: clients are found by it",
                c.anchor_address, o.name
            ),
        );
    }
    let out = client(&mut p, &cp, c, &base.defaults, base.node.role);
    if p.0.is_empty() {
        return Ok(out);
    }
    let mut diagnostics: Vec<_> =
        p.0.into_iter()
            .map(|(path, m)| loc.at_path(&path, m))
            .collect();
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Err(ConfigError { diagnostics })
}
