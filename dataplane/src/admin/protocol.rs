//! The admin socket protocol: JSON lines. The client writes one [`Request`] object per line; the
//! server answers each with one [`Response`] object per line, in order.
//!
//! ```text
//! -> {"cmd":"steering.set","client":"alice","tc":null,"mode":"duplicate"}
//! <- {"ok":true,"data":{"client":"alice","default":"duplicate","traffic_classes":[...]}}
//! -> {"cmd":"clients.show","client":"nobody"}
//! <- {"ok":false,"error":"no client named \"nobody\""}
//! ```
//!
//! `data` is typed per command (see [`Request`]); the server never answers without `ok`.

use std::fmt;

use hdrhistogram::Histogram;
use pipelines::drop::DropReason;
use pipelines::flow::path_monitor::PathState;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{Adaptation, Client, DeliveryConnection, SteeringMode};

/// Version of this protocol, in [`Status::protocol`]. Bumped on incompatible changes; new
/// fields and commands are compatible (clients ignore what they do not know).
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the server reads (without its newline); longer lines get an error
/// response and are discarded.
pub const MAX_LINE: usize = 1 << 20;

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", deny_unknown_fields)]
pub enum Request {
    /// -> [`Status`]
    #[serde(rename = "status")]
    Status,
    /// -> `Vec<`[`ClientInfo`]`>`
    #[serde(rename = "clients.list")]
    ClientsList,
    /// -> [`ClientInfo`]
    #[serde(rename = "clients.show")]
    ClientsShow { client: String },
    /// A `[[client]]` table in configuration file syntax. -> [`ClientInfo`] of the new client.
    #[serde(rename = "clients.add")]
    ClientsAdd { toml: String },
    /// -> `{"removed": NAME}`
    #[serde(rename = "clients.remove")]
    ClientsRemove { client: String },
    /// All paths, or one client's. -> `Vec<`[`PathInfo`]`>`
    #[serde(rename = "paths.list")]
    PathsList {
        #[serde(default)]
        client: Option<String>,
    },
    /// -> [`SteeringInfo`]
    #[serde(rename = "steering.show")]
    SteeringShow { client: String },
    /// The client's default mode (`tc` null) or one traffic class's. -> [`SteeringInfo`] after
    /// the change.
    #[serde(rename = "steering.set")]
    SteeringSet {
        client: String,
        #[serde(default)]
        tc: Option<u8>,
        mode: SteeringMode,
    },
    /// -> `Vec<`[`CounterRow`]`>`, one row per worker, client or path (optionally one
    /// client's only).
    #[serde(rename = "counters")]
    Counters {
        scope: CounterScope,
        #[serde(default)]
        client: Option<String>,
    },
    /// -> `Vec<`[`LatencyInfo`]`>`
    #[serde(rename = "latency")]
    Latency,
    /// -> a string: Prometheus text exposition format 0.0.4.
    #[serde(rename = "metrics")]
    Metrics,
    /// Every port's counters (per worker) and the devices' own (e.g. DPDK `rte_eth_stats`),
    /// with extended statistics when `xstats`. -> [`PortsInfo`]
    #[serde(rename = "ports")]
    Ports {
        #[serde(default)]
        xstats: bool,
    },
    /// Stops the daemon (after answering). -> `null`
    #[serde(rename = "shutdown")]
    Shutdown,
}

impl Request {
    /// The `cmd` string.
    pub fn cmd(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::ClientsList => "clients.list",
            Request::ClientsShow { .. } => "clients.show",
            Request::ClientsAdd { .. } => "clients.add",
            Request::ClientsRemove { .. } => "clients.remove",
            Request::PathsList { .. } => "paths.list",
            Request::SteeringShow { .. } => "steering.show",
            Request::SteeringSet { .. } => "steering.set",
            Request::Counters { .. } => "counters",
            Request::Latency => "latency",
            Request::Metrics => "metrics",
            Request::Ports { .. } => "ports",
            Request::Shutdown => "shutdown",
        }
    }
}

/// One response line: `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Response {
        Response {
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    pub fn err(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            data: None,
            error: Some(message.into()),
        }
    }

    /// The response as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|e| {
            // Only a non-string map key or a failing Serialize impl can get here.
            format!(
                r#"{{"ok":false,"error":{}}}"#,
                serde_json::Value::String(format!("cannot encode response: {e}"))
            )
        });
        s.push('\n');
        s
    }
}

/// Which counters `counters` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CounterScope {
    Workers,
    Clients,
    Paths,
}

impl CounterScope {
    pub fn as_str(self) -> &'static str {
        match self {
            CounterScope::Workers => "workers",
            CounterScope::Clients => "clients",
            CounterScope::Paths => "paths",
        }
    }
}

/// The stable name of a steering mode (the configuration file's spelling).
pub fn mode_name(m: SteeringMode) -> &'static str {
    match m {
        SteeringMode::Weighted => "weighted",
        SteeringMode::Single => "single",
        SteeringMode::ActiveStandby => "active-standby",
        SteeringMode::DelayAware => "delay-aware",
        SteeringMode::Duplicate => "duplicate",
        SteeringMode::PerFlow => "per-flow",
    }
}

/// Parses a steering mode name (`weighted`, `single`, `active-standby`, `delay-aware`,
/// `duplicate`, `per-flow`).
pub fn parse_mode(s: &str) -> Result<SteeringMode, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        format!("unknown steering mode \"{s}\" (expected single, active-standby, weighted, delay-aware, duplicate or per-flow)")
    })
}

/// The configuration file's name of an adaptation.
pub fn adaptation_name(a: Adaptation) -> &'static str {
    match a {
        Adaptation::Udp => "udp",
        Adaptation::UdpOptimized => "udp-optimized",
        Adaptation::ClientNat => "client-nat",
        Adaptation::PassThrough => "pass-through",
    }
}

impl SteeringInfo {
    /// The configured steering of `c`.
    pub fn from_client(c: &Client) -> SteeringInfo {
        SteeringInfo {
            client: c.name.clone(),
            default: c.steering,
            traffic_classes: c
                .traffic_classes
                .iter()
                .map(|t| TcSteering {
                    tc: t.id,
                    anchor: t.anchor,
                    mode: t.steering,
                    deliveries: t.deliveries.clone(),
                })
                .collect(),
        }
    }
}

impl PathInfo {
    /// The configured part of a path; the monitor's part (state, RTT, loss, rates) starts as a
    /// path that has not answered a probe yet (draft-04 §5.2 initialization phase).
    pub fn from_config(client: &str, d: &DeliveryConnection) -> PathInfo {
        PathInfo {
            client: client.to_owned(),
            id: d.id,
            name: d.name.clone(),
            state: PathStateName::Probing,
            srtt_ms: None,
            rttvar_ms: 0.0,
            min_rtt_ms: None,
            loss: 0.0,
            tx_rate_bps: 0,
            rx_rate_bps: 0,
            local: d.local.map(|e| e.to_string()),
            remote: d.remote.map(|e| e.to_string()),
            adaptation: adaptation_name(d.adaptation).to_owned(),
            mtu: d.mtu,
            weight: d.weight,
            priority: d.priority,
            shape_rate_bps: d.shape.map(|_| d.configured_shape_bps().unwrap_or(0)),
            shape_measured: d.shape.is_some() && d.rate_mbps.is_none(),
        }
    }
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Daemon version (crate version).
    pub version: String,
    /// [`PROTOCOL_VERSION`] of the daemon.
    pub protocol: u32,
    /// `n-madp` or `c-madp`.
    pub role: String,
    #[serde(default)]
    pub node_name: Option<String>,
    pub uptime_s: u64,
    pub workers: u16,
    pub clients: u64,
    pub paths: u64,
    /// Paths in state `active`.
    pub paths_up: u64,
    /// Packets per second over the last measurement interval, all workers.
    pub rx_pps: f64,
    pub tx_pps: f64,
    /// Totals since start, all workers.
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Sum of every drop counter.
    pub drops: u64,
}

/// The path monitor's state of a delivery connection (`pipelines::flow::path_monitor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathStateName {
    Probing,
    Active,
    Suspect,
    Down,
}

impl PathStateName {
    pub fn as_str(self) -> &'static str {
        match self {
            PathStateName::Probing => "probing",
            PathStateName::Active => "active",
            PathStateName::Suspect => "suspect",
            PathStateName::Down => "down",
        }
    }

    /// Every state, for exporting one gauge per state.
    pub const ALL: [PathStateName; 4] = [
        PathStateName::Probing,
        PathStateName::Active,
        PathStateName::Suspect,
        PathStateName::Down,
    ];
}

impl From<PathState> for PathStateName {
    fn from(s: PathState) -> Self {
        match s {
            PathState::Probing => PathStateName::Probing,
            PathState::Active => PathStateName::Active,
            PathState::Suspect => PathStateName::Suspect,
            PathState::Down => PathStateName::Down,
        }
    }
}

/// One delivery connection of one client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathInfo {
    pub client: String,
    /// Delivery connection ID (draft-04 §5 CID).
    pub id: u8,
    pub name: String,
    pub state: PathStateName,
    /// Smoothed RTT; `None` before the first probe ACK.
    pub srtt_ms: Option<f64>,
    pub rttvar_ms: f64,
    pub min_rtt_ms: Option<f64>,
    /// Probe loss, 0..=1.
    pub loss: f64,
    pub tx_rate_bps: u64,
    pub rx_rate_bps: u64,
    /// Endpoints as text (`ip:port` or `ip`); `None`: not known yet (learned remote) or chosen
    /// by the kernel.
    pub local: Option<String>,
    pub remote: Option<String>,
    /// `udp`, `udp-optimized`, `client-nat` or `pass-through`.
    pub adaptation: String,
    pub mtu: u16,
    pub weight: u16,
    pub priority: u8,
    /// What this side's shaper sends at (`shape = true`): its share of `rate_mbps`, or the
    /// measured capacity (`shape_measured`) of a path without one; `None`: not shaped.
    #[serde(default)]
    pub shape_rate_bps: Option<u64>,
    #[serde(default)]
    pub shape_measured: bool,
}

/// A client's steering: its default mode and each traffic class's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringInfo {
    pub client: String,
    pub default: SteeringMode,
    pub traffic_classes: Vec<TcSteering>,
}

/// One traffic class's steering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcSteering {
    /// Traffic Class ID (draft-04 §4.2.1).
    pub tc: u8,
    /// Connection ID of its anchor connection.
    pub anchor: u16,
    pub mode: SteeringMode,
    /// Delivery connection ids the class may use; `None`: all.
    #[serde(default)]
    pub deliveries: Option<Vec<u8>>,
}

/// One client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub name: String,
    pub anchor_address: String,
    pub steering: SteeringInfo,
    pub paths: Vec<PathInfo>,
    pub counters: CounterSet,
}

/// Drop counters, one per [`DropReason`], serialised as a JSON object `{label: count}` in
/// counter order. Built with [`DropCounts::from_array`] every reason is present, zeros
/// included; decoding keeps whatever labels the daemon sent, in its order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DropCounts(pub Vec<(String, u64)>);

impl DropCounts {
    /// Every reason, from a counter array indexed by `DropReason as usize`.
    pub fn from_array(counts: &[u64; DropReason::COUNT]) -> DropCounts {
        DropCounts(
            DropReason::ALL
                .iter()
                .map(|r| (r.as_str().to_owned(), counts[*r as usize]))
                .collect(),
        )
    }

    /// Every reason at zero.
    pub fn zero() -> DropCounts {
        DropCounts::from_array(&[0; DropReason::COUNT])
    }

    pub fn get(&self, label: &str) -> Option<u64> {
        self.0.iter().find(|(l, _)| l == label).map(|(_, c)| *c)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, (_, c)| a.saturating_add(*c))
    }

    /// Adds `other` label by label (labels missing here are appended).
    pub fn add(&mut self, other: &DropCounts) {
        for (l, c) in &other.0 {
            match self.0.iter_mut().find(|(m, _)| m == l) {
                Some((_, mine)) => *mine = mine.saturating_add(*c),
                None => self.0.push((l.clone(), *c)),
            }
        }
    }
}

impl Serialize for DropCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (l, c) in &self.0 {
            m.serialize_entry(l, c)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for DropCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DropCounts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of drop reason -> count")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<DropCounts, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, u64>()? {
                    out.push((k, v));
                }
                Ok(DropCounts(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Counters of one worker, client or path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CounterSet {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Receive bursts processed (workers).
    #[serde(default)]
    pub bursts: u64,
    /// Packets handed to / received from another worker or the slow path.
    #[serde(default)]
    pub handoffs_in: u64,
    #[serde(default)]
    pub handoffs_out: u64,
    /// Packets dropped because a handoff or transmit ring was full.
    #[serde(default)]
    pub ring_full: u64,
    pub drops: DropCounts,
    /// Receive-side sequencing (reordering, equalisation) and steering counters: per client,
    /// and per worker summed over its clients; zero for paths.
    #[serde(default)]
    pub sequencing: Sequencing,
}

/// What the reorder buffers, the delay-compensation line and steering did: the counters an
/// operator reads to tell reordering, loss and give-ups apart (`counters clients`, `clients
/// show`, `nmadp_client_seq_*` metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Sequencing {
    /// SDUs released by the reorder buffers (in order on arrival + after a wait).
    pub delivered: u64,
    pub in_order: u64,
    pub reordered: u64,
    /// Dropped: SN already delivered or already held.
    pub duplicates: u64,
    /// Arrived after their SN had been given up on (dropped, or released out of order with
    /// `deliver_late`, then also counted in `late_delivered`).
    pub late: u64,
    pub late_delivered: u64,
    /// Missing SNs given up on (timeout, window advance, path horizon or flush).
    pub gaps_skipped: u64,
    /// Reorder timeouts that released held packets.
    pub timeouts: u64,
    /// Gaps skipped because every live path had delivered past them (before a timeout).
    pub horizon_skips: u64,
    /// A packet too far ahead moved the window.
    pub window_advances: u64,
    /// Flows re-synchronised to a restarted sender.
    pub resyncs: u64,
    /// In-order SDUs held for delay equalisation.
    pub equalized: u64,
    /// Receive flows reset because the peer restarted.
    pub rx_resets: u64,
    /// SDUs without a sequence number (not reordered).
    pub unsequenced: u64,
    /// SDUs dropped because steering had no usable path.
    pub no_path: u64,
    /// Peer endpoints learnt or changed (NAT rebinding).
    pub rebinds: u64,
    /// PDUs that waited out a delay-compensation hold (workers).
    pub delayed: u64,
    /// PDUs sent at once because the delay-compensation line was full (workers).
    pub delay_overflow: u64,
    /// Gauge: the most packets one flow held at once.
    pub max_depth: u64,
}

impl Sequencing {
    /// The counters with their names, in display order (`max_depth`, a gauge, last).
    pub fn fields(&self) -> [(&'static str, u64); 19] {
        [
            ("delivered", self.delivered),
            ("in_order", self.in_order),
            ("reordered", self.reordered),
            ("duplicates", self.duplicates),
            ("late", self.late),
            ("late_delivered", self.late_delivered),
            ("gaps_skipped", self.gaps_skipped),
            ("timeouts", self.timeouts),
            ("horizon_skips", self.horizon_skips),
            ("window_advances", self.window_advances),
            ("resyncs", self.resyncs),
            ("equalized", self.equalized),
            ("rx_resets", self.rx_resets),
            ("unsequenced", self.unsequenced),
            ("no_path", self.no_path),
            ("rebinds", self.rebinds),
            ("delayed", self.delayed),
            ("delay_overflow", self.delay_overflow),
            ("max_depth", self.max_depth),
        ]
    }

    /// Adds `o` counter by counter (saturating); `max_depth` takes the larger.
    pub fn add(&mut self, o: &Sequencing) {
        let a = |x: &mut u64, y: u64| *x = x.saturating_add(y);
        a(&mut self.delivered, o.delivered);
        a(&mut self.in_order, o.in_order);
        a(&mut self.reordered, o.reordered);
        a(&mut self.duplicates, o.duplicates);
        a(&mut self.late, o.late);
        a(&mut self.late_delivered, o.late_delivered);
        a(&mut self.gaps_skipped, o.gaps_skipped);
        a(&mut self.timeouts, o.timeouts);
        a(&mut self.horizon_skips, o.horizon_skips);
        a(&mut self.window_advances, o.window_advances);
        a(&mut self.resyncs, o.resyncs);
        a(&mut self.equalized, o.equalized);
        a(&mut self.rx_resets, o.rx_resets);
        a(&mut self.unsequenced, o.unsequenced);
        a(&mut self.no_path, o.no_path);
        a(&mut self.rebinds, o.rebinds);
        a(&mut self.delayed, o.delayed);
        a(&mut self.delay_overflow, o.delay_overflow);
        self.max_depth = self.max_depth.max(o.max_depth);
    }
}

impl CounterSet {
    /// All zero, every drop reason present.
    pub fn zero() -> CounterSet {
        CounterSet {
            drops: DropCounts::zero(),
            ..CounterSet::default()
        }
    }

    /// Adds `other` field by field (saturating).
    pub fn add(&mut self, other: &CounterSet) {
        self.rx_packets = self.rx_packets.saturating_add(other.rx_packets);
        self.rx_bytes = self.rx_bytes.saturating_add(other.rx_bytes);
        self.tx_packets = self.tx_packets.saturating_add(other.tx_packets);
        self.tx_bytes = self.tx_bytes.saturating_add(other.tx_bytes);
        self.bursts = self.bursts.saturating_add(other.bursts);
        self.handoffs_in = self.handoffs_in.saturating_add(other.handoffs_in);
        self.handoffs_out = self.handoffs_out.saturating_add(other.handoffs_out);
        self.ring_full = self.ring_full.saturating_add(other.ring_full);
        self.drops.add(&other.drops);
        self.sequencing.add(&other.sequencing);
    }

    /// The numeric fields other than drops, with their names, in display order.
    pub fn fields(&self) -> [(&'static str, u64); 8] {
        [
            ("rx_packets", self.rx_packets),
            ("rx_bytes", self.rx_bytes),
            ("tx_packets", self.tx_packets),
            ("tx_bytes", self.tx_bytes),
            ("bursts", self.bursts),
            ("handoffs_in", self.handoffs_in),
            ("handoffs_out", self.handoffs_out),
            ("ring_full", self.ring_full),
        ]
    }
}

/// One row of `counters`: which worker, client or path, and its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Delivery connection ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_name: Option<String>,
    pub counters: CounterSet,
}

/// One port as a worker counts it (every kind of port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRow {
    pub worker: u16,
    pub name: String,
    /// `anchor` or `delivery`.
    pub side: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nobuf: u64,
}

/// A device's own counters (all its queues), e.g. a DPDK ethdev's `rte_eth_stats`:
/// `rx_missed` is `imissed` (dropped by the device for lack of room), `rx_nobuf` is
/// `rx_nombuf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRow {
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nobuf: u64,
    /// Extended statistics (`name`, value), when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xstats: Vec<(String, u64)>,
    /// Why the counters could not be read (e.g. the device is closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Answer to `ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortsInfo {
    pub ports: Vec<PortRow>,
    pub devices: Vec<DeviceRow>,
}

/// Latency percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyInfo {
    /// What was measured, e.g. `burst` (one loop iteration, rx to last tx), `packet` (each
    /// packet from its receive to its transmit, reorder and equalisation waits included) or
    /// `slow_path`.
    pub metric: String,
    /// `None`: all workers merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u16>,
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl LatencyInfo {
    /// Quantile levels reported, with their field names and Prometheus `quantile` labels.
    pub const QUANTILES: [(f64, &'static str); 4] =
        [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999")];

    /// Percentiles of `h`, whose values are nanoseconds.
    pub fn from_histogram(metric: &str, worker: Option<u16>, h: &Histogram<u64>) -> LatencyInfo {
        let us = |ns: u64| ns as f64 / 1000.0;
        let empty = h.is_empty();
        let q = |x: f64| {
            if empty {
                0.0
            } else {
                us(h.value_at_quantile(x))
            }
        };
        LatencyInfo {
            metric: metric.to_owned(),
            worker,
            count: h.len(),
            min_us: if empty { 0.0 } else { us(h.min()) },
            mean_us: if empty { 0.0 } else { h.mean() / 1000.0 },
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if empty { 0.0 } else { us(h.max()) },
        }
    }

    /// The quantile values in [`Self::QUANTILES`] order.
    pub fn quantiles(&self) -> [f64; 4] {
        [self.p50_us, self.p90_us, self.p99_us, self.p999_us]
    }
}

/// `clients.remove` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub removed: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(s: &str) -> Result<Request, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn every_request_shape_from_the_issue_parses() {
        assert_eq!(req(r#"{"cmd":"status"}"#).unwrap(), Request::Status);
        assert_eq!(
            req(r#"{"cmd":"clients.show","client":"alice"}"#).unwrap(),
            Request::ClientsShow {
                client: "alice".into()
            }
        );
        assert_eq!(
            req(r#"{"cmd":"paths.list","client":null}"#).unwrap(),
            Request::PathsList { client: None }
        );
        assert_eq!(
            req(r#"{"cmd":"paths.list"}"#).unwrap(),
            Request::PathsList { client: None }
        );
        assert_eq!(
            req(r#"{"cmd":"steering.set","client":"alice","tc":1,"mode":"duplicate"}"#).unwrap(),
            Request::SteeringSet {
                client: "alice".into(),
                tc: Some(1),
                mode: SteeringMode::Duplicate
            }
        );
        assert_eq!(
            req(r#"{"cmd":"counters","scope":"paths","client":null}"#).unwrap(),
            Request::Counters {
                scope: CounterScope::Paths,
                client: None
            }
        );
    }

    #[test]
    fn requests_round_trip_and_cmd_matches_the_tag() {
        let all = [
            Request::Status,
            Request::ClientsList,
            Request::ClientsShow { client: "a".into() },
            Request::ClientsAdd { toml: "x".into() },
            Request::ClientsRemove { client: "a".into() },
            Request::PathsList {
                client: Some("a".into()),
            },
            Request::SteeringShow { client: "a".into() },
            Request::SteeringSet {
                client: "a".into(),
                tc: None,
                mode: SteeringMode::PerFlow,
            },
            Request::Counters {
                scope: CounterScope::Workers,
                client: None,
            },
            Request::Latency,
            Request::Metrics,
            Request::Ports { xstats: true },
            Request::Shutdown,
        ];
        for r in all {
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!(v["cmd"], json!(r.cmd()));
            assert_eq!(serde_json::from_value::<Request>(v).unwrap(), r);
        }
    }

    #[test]
    fn unknown_commands_fields_and_modes_are_rejected() {
        assert!(req(r#"{"cmd":"reboot"}"#).is_err());
        assert!(req(r#"{"cmd":"paths.list","clinet":"alice"}"#).is_err());
        assert!(req(r#"{"cmd":"steering.set","client":"a","mode":"fastest"}"#).is_err());
        assert!(req(r#"{"cmd":"steering.set","client":"a","tc":256,"mode":"single"}"#).is_err());
        assert!(req(r#"{"client":"a"}"#).is_err());
        assert!(req("[1,2]").is_err());
    }

    #[test]
    fn drop_counts_carry_every_reason_in_order_and_round_trip() {
        let mut a = [0u64; DropReason::COUNT];
        a[DropReason::NoPath as usize] = 7;
        let d = DropCounts::from_array(&a);
        let v = serde_json::to_value(&d).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), DropReason::COUNT);
        for (i, (k, _)) in obj.iter().enumerate() {
            assert_eq!(k, DropReason::ALL[i].as_str());
        }
        assert_eq!(obj["no_path"], json!(7));
        assert_eq!(serde_json::from_value::<DropCounts>(v).unwrap(), d);
        assert_eq!(d.total(), 7);
    }

    #[test]
    fn mode_names_match_the_config_file_and_parse_back() {
        for m in pipelines::flow::steering::SteeringMode::ALL {
            let ours = parse_mode(m.as_str()).unwrap();
            assert_eq!(mode_name(ours), m.as_str());
        }
        assert!(parse_mode("fastest").is_err());
    }

    #[test]
    fn latency_from_histogram_in_microseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for i in 1..=1000u64 {
            h.record(i * 1000).unwrap(); // 1..=1000 µs
        }
        let l = LatencyInfo::from_histogram("burst", Some(0), &h);
        assert_eq!(l.count, 1000);
        assert!((l.p50_us - 500.0).abs() < 1.0, "{}", l.p50_us);
        assert!((l.p99_us - 990.0).abs() < 1.0, "{}", l.p99_us);
        assert!((l.max_us - 1000.0).abs() < 1.0, "{}", l.max_us);
        let e = LatencyInfo::from_histogram("burst", None, &Histogram::<u64>::new(3).unwrap());
        assert_eq!((e.count, e.max_us), (0, 0.0));
    }

    #[test]
    fn response_lines_are_single_lines() {
        let r = Response::ok(json!({"a": "x\ny"}));
        let l = r.to_line();
        assert_eq!(l.matches('\n').count(), 1);
        assert!(l.ends_with('\n'));
        let back: Response = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(back, r);
    }
}
