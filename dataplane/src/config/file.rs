//! The configuration file as written: serde types that mirror the TOML one to one.
//!
//! Every struct denies unknown fields, so a typo is an error and not a silently ignored key.
//! Numbers are read as `i64` (TOML's integer type) and range-checked in `validate`, so that an
//! out-of-range value gets a message with the allowed range instead of serde's "expected u16".
//! These types are also what [`super::Config::to_toml`] serialises, so they round-trip.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{Convergence, PortKind, Role, SteeringMode, TrailerField};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub node: FileNode,
    pub ports: FilePorts,
    pub control: FileControl,
    #[serde(default, skip_serializing_if = "FileDefaults::is_empty")]
    pub defaults: FileDefaults,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpdk: Option<FileDpdk>,
    #[serde(default, rename = "client", skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<FileClient>,
}

/// `[dpdk]`: the EAL and the mbuf pools (ports of kind `dpdk` or `af-xdp`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDpdk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eal_args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbufs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbuf_cache: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileNode {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_socket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_path_core: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePorts {
    pub anchor: FilePort,
    pub delivery: FilePort,
}

/// One port; which keys apply depends on `kind` (checked in `validate`, see `PORT_KEYS`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePort {
    pub kind: PortKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_desc: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_desc: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_mac: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileControl {
    pub address: SocketAddr,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convergence: Option<Convergence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steering: Option<SteeringMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptation: Option<AdaptationName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailer: Option<FileTrailer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<FileReorder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassembly: Option<FileReassembly>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<FileProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_compensation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delayed: Option<i64>,
}

impl FileDefaults {
    fn is_empty(&self) -> bool {
        self.convergence.is_none()
            && self.steering.is_none()
            && self.adaptation.is_none()
            && self.mtu.is_none()
            && self.trailer.is_none()
            && self.reorder.is_none()
            && self.reassembly.is_none()
            && self.probe.is_none()
            && self.delay_compensation.is_none()
            && self.max_delayed.is_none()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTrailer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downlink: Option<Vec<TrailerField>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<Vec<TrailerField>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileReorder {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<StrOrInt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_min_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_max_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_late: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_horizon: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileReassembly {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sdu_bytes: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileClient {
    pub name: String,
    pub anchor_address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steering: Option<SteeringMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convergence: Option<Convergence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<FileReorder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassembly: Option<FileReassembly>,
    #[serde(default, rename = "anchor", skip_serializing_if = "Vec::is_empty")]
    pub anchors: Vec<FileAnchor>,
    #[serde(
        default,
        rename = "traffic_class",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub traffic_classes: Vec<FileTrafficClass>,
    #[serde(default, rename = "delivery", skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<FileDelivery>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAnchor {
    pub connection_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTrafficClass {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<i64>,
    #[serde(default, rename = "match")]
    pub rule: FileMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steering: Option<SteeringMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dscp: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<StrOrInt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<StrOrInt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<StrOrInt>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDelivery {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptation: Option<AdaptationName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_mbps: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_checksum: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_percent: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_queue_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailer: Option<FileTrailer>,
}

/// Every adaptation name the file may contain, including those this build rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AdaptationName {
    #[serde(rename = "udp")]
    Udp,
    #[serde(rename = "udp-optimized")]
    UdpOptimized,
    #[serde(rename = "client-nat")]
    ClientNat,
    #[serde(rename = "pass-through")]
    PassThrough,
    #[serde(rename = "ipsec")]
    Ipsec,
    #[serde(rename = "dtls")]
    Dtls,
}

/// A value that may be written as a string or an integer (`timeout_ms = "adaptive" | 50`,
/// `protocol = "udp" | 17`, `remote_port = "5060-5061" | 5060`). A hand-written visitor rather
/// than `#[serde(untagged)]`, whose error ("did not match any variant") names nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrOrInt {
    Str(String),
    Int(i64),
}

impl Serialize for StrOrInt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StrOrInt::Str(v) => s.serialize_str(v),
            StrOrInt::Int(v) => s.serialize_i64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for StrOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StrOrInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrInt, E> {
                Ok(StrOrInt::Str(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrInt, E> {
                Ok(StrOrInt::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrInt, E> {
                i64::try_from(v)
                    .map(StrOrInt::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
        }
        d.deserialize_any(V)
    }
}
