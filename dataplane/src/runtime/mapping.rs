//! The validated TOML configuration ([`crate::config::Config`]) mapped onto the engine's plain
//! values ([`pipelines::engine::EngineConfig`], [`ClientConfig`], [`DeliveryConfig`],
//! [`TcRule`]) and the path monitor's tuning.
//!
//! The configuration loader already checked everything it can see in the file; what only shows
//! here (the engine's own [`ClientConfig::validate`], features the engine does not offer yet) is
//! reported as a [`MappingError`] naming the client and, where it applies, the delivery
//! connection or traffic class.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use pipelines::engine::{
    Adaptation as EAdaptation, AnchorConnection as EAnchor, ClientConfig, ClientId,
    ConfigError as EConfigError, Convergence as EConvergence, DeliveryConfig, EngineConfig,
    ReorderTimeout as EReorderTimeout, Role as ERole, Shaper, TcRule,
};
use pipelines::flow::capacity::CapacityConfig;
use pipelines::flow::path_monitor::{PathMonitorConfig, OUTSTANDING};
use pipelines::flow::reassembly::ReassemblyConfig;
use pipelines::flow::reorder::{ReorderConfig, DEFAULT_TIMEOUT_NS};
use pipelines::flow::steering::{PathId, SteeringMode as ESteering};
use pipelines::flow::MS;
use pipelines::wire::mx_trailer::TrailerFields as ETrailerFields;

use crate::config::{
    Adaptation, Client, Config, Convergence, DeliveryConnection, Endpoint, ReorderTimeout, Role,
    SteeringMode, TrailerFields,
};

/// A configuration the engine cannot run, with the client (and delivery connection or traffic
/// class) it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub client: String,
    /// `delivery "wifi" (id 0)`, `traffic class 46`, or empty for the client as a whole.
    pub item: String,
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.item.is_empty() {
            write!(f, "client \"{}\": {}", self.client, self.message)
        } else {
            write!(
                f,
                "client \"{}\", {}: {}",
                self.client, self.item, self.message
            )
        }
    }
}

impl std::error::Error for MappingError {}

fn err(c: &Client, item: impl Into<String>, message: impl Into<String>) -> MappingError {
    MappingError {
        client: c.name.clone(),
        item: item.into(),
        message: message.into(),
    }
}

fn delivery_label(d: &DeliveryConnection) -> String {
    format!("delivery \"{}\" (id {})", d.name, d.id)
}

/// The engine's role.
pub fn role(r: Role) -> ERole {
    match r {
        Role::NMadp => ERole::NMadp,
        Role::CMadp => ERole::CMadp,
    }
}

/// The engine's steering mode of a configured one (same names, WIRE.md/config docs).
pub fn steering(m: SteeringMode) -> ESteering {
    match m {
        SteeringMode::Weighted => ESteering::Weighted,
        SteeringMode::Single => ESteering::Single,
        SteeringMode::ActiveStandby => ESteering::ActiveStandby,
        SteeringMode::DelayAware => ESteering::DelayAware,
        SteeringMode::Duplicate => ESteering::Duplicate,
        SteeringMode::PerFlow => ESteering::PerFlow,
    }
}

fn trailer(t: TrailerFields) -> ETrailerFields {
    // Same bit layout (WIRE.md "MX flags").
    ETrailerFields::new(t.0)
}

/// Engine-wide settings from `[control]` and `[defaults]`.
///
/// The engine keeps one reorder configuration and one reassembler per worker: per-client
/// `reorder`/`reassembly` overrides that differ from `[defaults]` are reported by
/// [`client_warnings`] and not applied. The adaptive timeout's clamp is the engine's (WIRE.md
/// 10 ms..1 s); `timeout_min_ms`/`timeout_max_ms` are not applied either.
pub fn engine_config(cfg: &Config, seed: u64) -> EngineConfig {
    let d = &cfg.defaults;
    let mut e = EngineConfig::new(role(cfg.node.role), cfg.control.address);
    let (timeout_ns, mode) = match d.reorder.timeout {
        // The adaptive rule (WIRE.md: 2 × (max OWD − min OWD)) needs per-path OWD estimates,
        // which only the N-MADP has (it probes, draft-04 §5.2; draft-04 has no keep-alive ACK
        // and the C-MADP cannot time the N-MADP's probe REQs). A C-MADP therefore uses the
        // fixed WIRE.md default (100 ms) unless `reorder.timeout_ms` gives a number: set it
        // above the expected one-way-delay spread of the access links.
        ReorderTimeout::Adaptive if cfg.node.role == crate::config::Role::CMadp => {
            (DEFAULT_TIMEOUT_NS, EReorderTimeout::Fixed)
        }
        ReorderTimeout::Adaptive => (DEFAULT_TIMEOUT_NS, EReorderTimeout::Adaptive),
        ReorderTimeout::FixedMs(ms) => (u64::from(ms) * MS, EReorderTimeout::Fixed),
    };
    e.reorder = ReorderConfig {
        window: usize::from(d.reorder.window),
        timeout_ns,
        deliver_late: d.reorder.deliver_late,
        resync_after: u32::from(d.reorder.resync_after),
        path_horizon: d.reorder.path_horizon,
    };
    e.reorder_timeout = mode;
    e.delay_compensation = d.delay_compensation;
    e.max_delayed = d.max_delayed as usize;
    let max_sdu = usize::from(d.reassembly.max_sdu_bytes);
    let slots = usize::from(d.reassembly.slots).max(1);
    e.reassembly = ReassemblyConfig {
        max_slots: slots,
        timeout_ns: u64::from(d.reassembly.timeout_ms) * MS,
        max_sdu_bytes: max_sdu,
        // Every slot may hold a full SDU, capped at 16 MiB per worker.
        max_total_bytes: slots.saturating_mul(max_sdu).min(16 << 20),
    };
    e.seed = seed;
    e
}

/// Per-client settings the engine cannot honour individually (it has one reorder
/// configuration and one reassembler per worker), as human-readable warnings.
pub fn client_warnings(cfg: &Config, c: &Client) -> Vec<String> {
    let mut w = Vec::new();
    if c.reorder != cfg.defaults.reorder {
        w.push(format!(
            "client \"{}\": a per-client reorder setting is not supported yet; [defaults].reorder applies",
            c.name
        ));
    }
    if c.reassembly != cfg.defaults.reassembly {
        w.push(format!(
            "client \"{}\": a per-client reassembly setting is not supported yet; [defaults].reassembly applies",
            c.name
        ));
    }
    w
}

fn socket(e: Endpoint) -> SocketAddr {
    match e {
        Endpoint::Udp(s) => s,
        Endpoint::Ip(i) => SocketAddr::new(i, 0),
    }
}

/// One delivery connection. `control` is the N-MADP's control endpoint (its IP is the
/// N-MADP's local address where the file gives none for a non-UDP adaptation).
pub fn delivery(
    role_: Role,
    control: SocketAddr,
    c: &Client,
    d: &DeliveryConnection,
) -> Result<DeliveryConfig, MappingError> {
    let adaptation = match d.adaptation {
        Adaptation::Udp => EAdaptation::UdpTunnel {
            header_optimization: false,
        },
        Adaptation::UdpOptimized => EAdaptation::UdpTunnel {
            header_optimization: true,
        },
        Adaptation::ClientNat => EAdaptation::ClientNat,
        Adaptation::PassThrough => EAdaptation::PassThrough,
    };
    let (local, remote, client_addr) = match role_ {
        Role::NMadp => {
            let local = match d.local {
                Some(e) => socket(e),
                // Validated: UDP adaptations name their local endpoint on an N-MADP.
                None => SocketAddr::new(control.ip(), 0),
            };
            match (d.adaptation, d.remote) {
                // Client NAT: the remote is the client's address on this access network.
                (Adaptation::ClientNat, Some(r)) => (local, None, Some(r.ip())),
                (_, r) => (local, r.map(socket), None),
            }
        }
        Role::CMadp => {
            let Some(l) = d.local else {
                return Err(err(
                    c,
                    delivery_label(d),
                    "the local endpoint is not known (cmadp fills it from the bound socket; \
                     give `local` when the delivery port is not a UDP socket)",
                ));
            };
            let local = socket(l);
            if d.adaptation.is_udp() && (local.port() == 0 || local.ip().is_unspecified()) {
                return Err(err(
                    c,
                    delivery_label(d),
                    format!("local endpoint {local} must be a concrete ip:port for the engine"),
                ));
            }
            let client_addr = (d.adaptation == Adaptation::ClientNat).then(|| local.ip());
            (local, d.remote.map(socket), client_addr)
        }
    };
    let (tx, rx) = match role_ {
        Role::NMadp => (d.trailer.downlink, d.trailer.uplink),
        Role::CMadp => (d.trailer.uplink, d.trailer.downlink),
    };
    Ok(DeliveryConfig {
        id: PathId(d.id),
        adaptation,
        local,
        remote,
        client_addr,
        mtu: d.mtu,
        trailer_tx: trailer(tx),
        trailer_rx: trailer(rx),
        priority: d.priority,
        weight: u32::from(d.weight),
        rate_bps: d.rate_mbps.map(|m| u64::from(m) * 1_000_000),
        // draft-04 §4.2.3: concatenation needs First SDU Length in the trailers we send.
        concatenation: tx.contains(crate::config::TrailerField::Fsl),
        udp_checksum: d.udp_checksum,
        // Without a rate (N-MADP only, validated), the shaper starts at the capacity
        // estimator's initial rate and follows its measurements (pipelines::flow::capacity).
        shaper: d.shape.map(|s| Shaper {
            rate_bps: d
                .configured_shape_bps()
                .unwrap_or(CapacityConfig::default().initial_bps),
            queue_ns: u64::from(s.queue_ms) * 1_000_000,
        }),
    })
}

fn engine_error(c: &Client, e: EConfigError) -> MappingError {
    let path = |id: PathId| {
        c.deliveries
            .iter()
            .find(|d| d.id == id.0)
            .map_or(format!("delivery id {}", id.0), delivery_label)
    };
    match e {
        EConfigError::TooManyPaths => err(
            c,
            "",
            format!(
                "more than {} delivery connections",
                pipelines::flow::steering::MAX_PATHS
            ),
        ),
        EConfigError::DuplicatePath(id)
        | EConfigError::BadClientAddress(id)
        | EConfigError::MtuTooSmall(id)
        | EConfigError::HeaderOptimizationWithGre(id)
        | EConfigError::AmbiguousSnScope(id)
        | EConfigError::DuplicateEndpoint(id) => {
            let msg = match e {
                EConfigError::DuplicatePath(_) => "duplicate delivery id".to_string(),
                EConfigError::BadClientAddress(_) => {
                    "client NAT needs the client's address on this network, of the anchor address's family".to_string()
                }
                EConfigError::MtuTooSmall(_) => {
                    "the MTU leaves no room for an SDU after the adaptation overhead".to_string()
                }
                EConfigError::HeaderOptimizationWithGre(_) => {
                    "udp-optimized cannot be used with GRE convergence".to_string()
                }
                EConfigError::AmbiguousSnScope(_) => {
                    "the trailer carries SN without TC (or CID) although the client has several traffic classes (or anchors): draft-04 §4.2.1 SNs are per connection and class".to_string()
                }
                _ => "another client already uses this endpoint".to_string(),
            };
            err(c, path(id), msg)
        }
        other => err(c, "", format!("refused by the engine: {other}")),
    }
}

/// One client, with the engine ID chosen by the runtime.
pub fn client(cfg: &Config, c: &Client, id: ClientId) -> Result<ClientConfig, MappingError> {
    client_with(cfg.node.role, cfg.control.address, c, id)
}

/// [`client`] without a whole [`Config`].
pub fn client_with(
    role_: Role,
    control: SocketAddr,
    c: &Client,
    id: ClientId,
) -> Result<ClientConfig, MappingError> {
    let all_paths: Vec<u8> = c.deliveries.iter().map(|d| d.id).collect();
    let mut rules = Vec::with_capacity(c.traffic_classes.len());
    for t in &c.traffic_classes {
        if let Some(list) = &t.deliveries {
            if all_paths.iter().any(|p| !list.contains(p)) {
                return Err(err(
                    c,
                    format!("traffic class {}", t.id),
                    "`deliveries` restricted to a subset of the delivery connections is not supported by the engine yet",
                ));
            }
        }
        rules.push(TcRule {
            id: t.id,
            anchor: t.anchor,
            dscp: t.rule.dscp.clone(),
            protocol: t.rule.protocol,
            remote: t.rule.remote.map(|r| (r.addr, r.prefix_len)),
            remote_ports: t.rule.remote_port.map(|r| (r.first, r.last)),
            client_ports: t.rule.client_port.map(|r| (r.first, r.last)),
            // The loader resolves an absent class mode to the client's; a class that merely
            // inherits keeps following the client's default when it is changed live.
            steering: (t.steering != c.steering).then(|| steering(t.steering)),
        });
    }
    let mut deliveries = Vec::with_capacity(c.deliveries.len());
    for d in &c.deliveries {
        deliveries.push(delivery(role_, control, c, d)?);
    }
    let out = ClientConfig {
        id,
        anchor_addr: c.anchor_address,
        anchors: c
            .anchors
            .iter()
            .map(|a| EAnchor {
                connection_id: a.connection_id,
            })
            .collect(),
        traffic_classes: rules,
        steering: steering(c.steering),
        convergence: match c.convergence {
            Convergence::Trailer => EConvergence::Trailer,
            Convergence::Gre => EConvergence::Gre,
        },
        deliveries,
    };
    out.validate().map_err(|e| engine_error(c, e))?;
    Ok(out)
}

/// Path monitor tuning from `[defaults].probe` (draft-04 §5): probes every `interval_ms` while
/// a path carries data (at most every 100 ms before), a probe is lost after `timeout_ms`
/// (independent of the interval: an interval below the path RTT must not make every probe
/// "lost"), Down after `dead_after` losses in a row, Suspect after half of them, and an Active
/// path silent for `dead_after` keep-alive periods is Suspect (the fast failover signal: the
/// C-MADP's keep-alives and uplink data stop at once when a link dies).
pub fn monitor_config(cfg: &Config) -> PathMonitorConfig {
    let p = &cfg.defaults.probe;
    let interval = u64::from(p.interval_ms.max(1)) * MS;
    let dead_after = u32::from(p.dead_after.max(1));
    PathMonitorConfig {
        probe_interval_ns: interval,
        initial_probe_interval_ns: interval.min(100 * MS),
        // Validation keeps it below OUTSTANDING (32) intervals; clamp again for hand-built
        // configurations.
        probe_timeout_ns: (u64::from(p.timeout_ms.max(1)) * MS)
            .min(interval.saturating_mul(OUTSTANDING as u64 - 1)),
        loss_window: 20,
        suspect_after: dead_after.div_ceil(2),
        down_after: dead_after,
        up_after: 2,
        keepalive_timeout_ns: u64::from(p.keepalive_ms.max(1)) * MS * u64::from(dead_after),
        probe_padding: 0,
        reverse_cid: None,
        keep_suspect_usable: false,
        first_sequence_number: 0,
        // A live path shows a keep-alive every keepalive_ms: 1.5 of them without anything,
        // plus a probe past its RTO, is a dead path (failover in a few hundred ms rather than
        // dead_after keep-alive periods or the probe timeout).
        quick_silence_ns: u64::from(p.keepalive_ms.max(1)) * MS * 3 / 2,
    }
}

/// The address a packet of the anchor side is owned by: destination on an N-MADP, source on
/// a C-MADP (draft-04 §3).
pub fn anchor_key_is_destination(r: Role) -> bool {
    r == Role::NMadp
}

/// Whether `a` is usable as a concrete address (not unspecified).
pub fn concrete(a: IpAddr) -> bool {
    !a.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipelines::wire::mx_trailer::flags;

    const NMADP: &str = include_str!("../../../deploy/examples/nmadp.toml");
    const CMADP: &str = include_str!("../../../deploy/examples/cmadp.toml");

    #[test]
    fn example_nmadp_maps_every_client() {
        let cfg = Config::parse(NMADP, "nmadp.toml").unwrap();
        let e = engine_config(&cfg, 7);
        assert_eq!(e.role, ERole::NMadp);
        assert_eq!(e.control, "192.0.2.1:8888".parse().unwrap());
        assert_eq!(e.reorder.window, 1024);
        assert_eq!(e.reorder_timeout, EReorderTimeout::Adaptive);
        assert_eq!(e.reassembly.max_slots, 64);
        assert_eq!(e.reassembly.timeout_ns, 100 * MS);
        let alice = client(&cfg, &cfg.clients[0], ClientId(1)).unwrap();
        assert_eq!(alice.steering, ESteering::Weighted);
        let wifi = alice.deliveries[0];
        assert_eq!(wifi.local, "192.0.2.1:10021".parse().unwrap());
        assert_eq!(wifi.remote, None, "learned");
        assert!(wifi.trailer_tx.contains(flags::FIRST_SDU_LENGTH));
        assert!(wifi.concatenation);
        assert!(!wifi.trailer_rx.contains(flags::FIRST_SDU_LENGTH));
        assert_eq!(wifi.weight, 3);
        assert_eq!(wifi.rate_bps, Some(300_000_000));
        assert_eq!(alice.deliveries[1].mtu, 1400);
        let tc = &alice.traffic_classes[0];
        assert_eq!(tc.id, 46);
        assert_eq!(tc.dscp, vec![46]);
        assert_eq!(tc.protocol, Some(17));
        assert_eq!(tc.remote_ports, Some((5060, 5061)));
        assert_eq!(tc.steering, Some(ESteering::Duplicate));
        let bob = client(&cfg, &cfg.clients[1], ClientId(2)).unwrap();
        assert_eq!(
            bob.deliveries[1].adaptation,
            EAdaptation::UdpTunnel {
                header_optimization: true
            }
        );
        assert_eq!(
            bob.deliveries[0].remote,
            Some("[2001:db8:a::7]:10021".parse().unwrap())
        );
    }

    #[test]
    fn cmadp_needs_a_concrete_local_endpoint_and_swaps_directions() {
        let mut cfg = Config::parse(CMADP, "cmadp.toml").unwrap();
        let e = client(&cfg, &cfg.clients[0], ClientId(0)).unwrap_err();
        assert_eq!(e.client, "alice");
        assert!(e.item.contains("wifi"), "{e}");
        for (i, d) in cfg.clients[0].deliveries.iter_mut().enumerate() {
            d.local = Some(Endpoint::Udp(
                format!("198.51.100.{}:4000{i}", i + 2).parse().unwrap(),
            ));
            d.trailer.uplink = TrailerFields(TrailerFields::CID | TrailerFields::SN);
        }
        let c = client(&cfg, &cfg.clients[0], ClientId(0)).unwrap();
        assert_eq!(engine_config(&cfg, 0).role, ERole::CMadp);
        assert_eq!(
            c.deliveries[0].trailer_tx.bits(),
            flags::CONNECTION_ID | flags::SEQUENCE_NUMBER,
            "the C-MADP sends the uplink fields"
        );
        assert_eq!(
            c.deliveries[1].remote,
            Some("192.0.2.1:10020".parse().unwrap())
        );
    }

    #[test]
    fn engine_refusals_name_the_client_and_delivery() {
        let mut cfg = Config::parse(NMADP, "nmadp.toml").unwrap();
        // SN without TC while the client has two classes (0 and 46): draft-04 §4.2.1.
        cfg.clients[0].deliveries[1].trailer.uplink = TrailerFields(TrailerFields::SN);
        let e = client(&cfg, &cfg.clients[0], ClientId(1)).unwrap_err();
        assert_eq!(e.client, "alice");
        assert_eq!(e.item, "delivery \"lte\" (id 1)");
        assert!(e.to_string().contains("§4.2.1"), "{e}");
    }

    #[test]
    fn tc_delivery_subsets_are_refused() {
        let mut cfg = Config::parse(NMADP, "nmadp.toml").unwrap();
        cfg.clients[0].traffic_classes[0].deliveries = Some(vec![0]);
        let e = client(&cfg, &cfg.clients[0], ClientId(1)).unwrap_err();
        assert_eq!(e.item, "traffic class 46");
    }

    #[test]
    fn monitor_tuning_follows_probe_defaults() {
        let cfg = Config::parse(NMADP, "nmadp.toml").unwrap();
        let m = monitor_config(&cfg);
        assert_eq!(m.probe_interval_ns, 1000 * MS);
        assert_eq!(m.down_after, 3);
        assert_eq!(m.suspect_after, 2);
        assert!(
            m.probe_timeout_ns
                < pipelines::flow::path_monitor::OUTSTANDING as u64 * m.probe_interval_ns
        );
    }

    const PROBE_LINE: &str =
        "probe = { interval_ms = 1000, keepalive_ms = 1000, dead_after = 3, timeout_ms = 2000 }";

    #[test]
    fn probe_timeout_is_its_own_key_and_outlives_a_short_interval() {
        // Interval 100 ms below a 120 ms RTT: the default timeout is max(2 × 100, 1000) ms.
        let text = NMADP.replace(PROBE_LINE, "probe = { interval_ms = 100 }");
        assert!(text.contains("interval_ms = 100 }"));
        let cfg = Config::parse(&text, "n.toml").unwrap();
        let m = monitor_config(&cfg);
        assert_eq!(m.probe_interval_ns, 100 * MS);
        assert_eq!(m.probe_timeout_ns, 1000 * MS);
        let text = NMADP.replace(
            PROBE_LINE,
            "probe = { interval_ms = 100, timeout_ms = 400 }",
        );
        let m = monitor_config(&Config::parse(&text, "n.toml").unwrap());
        assert_eq!(m.probe_timeout_ns, 400 * MS);
        // Never 32 intervals or more (the monitor remembers 32 probes).
        let text = NMADP.replace(
            PROBE_LINE,
            "probe = { interval_ms = 10, timeout_ms = 5000 }",
        );
        let e = Config::parse(&text, "n.toml").unwrap_err().to_string();
        assert!(e.contains("timeout_ms"), "{e}");
    }

    #[test]
    fn cmadp_adaptive_reorder_timeout_is_the_fixed_default() {
        let cfg = Config::parse(CMADP, "c.toml").unwrap();
        assert_eq!(cfg.defaults.reorder.timeout, ReorderTimeout::Adaptive);
        let e = engine_config(&cfg, 1);
        assert_eq!(e.reorder_timeout, EReorderTimeout::Fixed);
        assert_eq!(e.reorder.timeout_ns, DEFAULT_TIMEOUT_NS);
        // The N-MADP keeps the adaptive rule (it has OWD estimates from its probes).
        let n = engine_config(&Config::parse(NMADP, "n.toml").unwrap(), 1);
        assert_eq!(n.reorder_timeout, EReorderTimeout::Adaptive);
    }
}
