//! The two configurations the demo runs: an N-MADP with one client "demo" and a C-MADP that is
//! that client, each with two delivery connections "wifi" (id 0) and "lte" (id 1) over in-memory
//! ring ports. They are written as TOML and go through [`Config::parse`], the same validation
//! `nmadp run FILE` applies, so the demo cannot run a configuration a user could not write.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::{Config, ConfigError};

/// Addresses of the emulated network (documentation prefixes, RFC 5737).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The client's anchor address (what the internet sees).
    pub anchor: IpAddr,
    /// The far end of every flow (an internet server).
    pub server: IpAddr,
    /// The N-MADP's MX control endpoint (WIRE.md: UDP 8888).
    pub control: SocketAddr,
    /// N-MADP tunnel endpoint per path (wifi, lte).
    pub n_local: [SocketAddr; 2],
    /// C-MADP tunnel endpoint per path (wifi, lte); each access network gives the client its own
    /// address, which is what the N-MADP-side switch forwards on.
    pub c_local: [SocketAddr; 2],
}

impl Default for Addresses {
    fn default() -> Self {
        let n = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        Addresses {
            anchor: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            server: IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
            control: SocketAddr::new(n, 8888),
            n_local: [SocketAddr::new(n, 10021), SocketAddr::new(n, 10020)],
            c_local: [
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)), 40001),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)), 40002),
            ],
        }
    }
}

/// What the demo's flags decide in the configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Steering mode name as in the file (`weighted`, `delay-aware`, ...).
    pub steering: String,
    /// Expected rate per path (wifi, lte), Mbit/s: `rate_mbps` (delay-aware) and the weights
    /// (weighted), so that the split follows capacity.
    pub rate_mbps: [u32; 2],
    /// Probe period, ms.
    pub probe_interval_ms: u32,
    /// Worker threads per node.
    pub workers: u16,
    /// Unique tag for the admin socket paths (the demo needs no root, so not under /run).
    pub tag: String,
}

const PATH_NAMES: [&str; 2] = ["wifi", "lte"];

fn common(p: &Params) -> String {
    format!(
        r#"
[defaults]
steering = "{steering}"
adaptation = "udp"
mtu = 1500
trailer = {{ downlink = ["nh", "cid", "tc", "sn"], uplink = ["nh", "cid", "tc", "sn"] }}
reorder = {{ window = 4096, timeout_ms = "adaptive", timeout_min_ms = 10, timeout_max_ms = 400 }}
probe = {{ interval_ms = {probe}, keepalive_ms = {probe}, dead_after = 3 }}
"#,
        steering = p.steering,
        probe = p.probe_interval_ms,
    )
}

/// The `[[client.delivery]]` tables: wifi (id 0) and lte (id 1).
fn deliveries(local: &[SocketAddr; 2], remote: &[SocketAddr; 2], p: &Params) -> String {
    let mut s = String::new();
    for (i, name) in PATH_NAMES.iter().enumerate() {
        s += &format!(
            r#"
[[client.delivery]]
id = {i}
name = "{name}"
local = "{local}"
remote = "{remote}"
priority = {i}
weight = {weight}
rate_mbps = {rate}
"#,
            local = local[i],
            remote = remote[i],
            weight = p.rate_mbps[i].max(1),
            rate = p.rate_mbps[i].max(1),
        );
    }
    s
}

/// The N-MADP's configuration as TOML.
pub fn nmadp_toml(a: &Addresses, p: &Params) -> String {
    let mut s = format!(
        r#"# nmadp demo: N-MADP side (built in code, validated like a file)
[node]
role = "n-madp"
name = "demo-nmadp"
admin_socket = "/tmp/nmadp-demo-{tag}-n.sock"
workers = {workers}

[ports.anchor]
kind = "ring"
name = "n-anchor"
capacity = 4096

[ports.delivery]
kind = "ring"
name = "n-delivery"
capacity = 4096

[control]
address = "{control}"
{common}
[[client]]
name = "demo"
anchor_address = "{anchor}"

[[client.anchor]]
connection_id = 1
"#,
        tag = p.tag,
        workers = p.workers,
        control = a.control,
        common = common(p),
        anchor = a.anchor,
    );
    s += &deliveries(&a.n_local, &a.c_local, p);
    s
}

/// The C-MADP's configuration as TOML.
pub fn cmadp_toml(a: &Addresses, p: &Params) -> String {
    let mut s = format!(
        r#"# nmadp demo: C-MADP side (built in code, validated like a file)
[node]
role = "c-madp"
name = "demo-cmadp"
admin_socket = "/tmp/nmadp-demo-{tag}-c.sock"
workers = 1

[ports.anchor]
kind = "ring"
name = "c-anchor"
capacity = 4096

[ports.delivery]
kind = "ring"
name = "c-delivery"
capacity = 4096

[control]
address = "{control}"
{common}
[[client]]
name = "demo"
anchor_address = "{anchor}"

[[client.anchor]]
connection_id = 1
"#,
        tag = p.tag,
        control = a.control,
        common = common(p),
        anchor = a.anchor,
    );
    s += &deliveries(&a.c_local, &a.n_local, p);
    s
}

/// Both configurations, validated.
pub fn build(a: &Addresses, p: &Params) -> Result<(Config, Config), ConfigError> {
    let n = Config::parse(&nmadp_toml(a, p), "<demo n-madp>")?;
    let c = Config::parse(&cmadp_toml(a, p), "<demo c-madp>")?;
    Ok((n, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Role, SteeringMode};

    fn params(steering: &str) -> Params {
        Params {
            steering: steering.into(),
            rate_mbps: [50, 20],
            probe_interval_ms: 50,
            workers: 1,
            tag: "t".into(),
        }
    }

    #[test]
    fn demo_configs_validate_for_every_offered_steering_mode() {
        for m in [
            "weighted",
            "delay-aware",
            "active-standby",
            "duplicate",
            "per-flow",
        ] {
            let (n, c) =
                build(&Addresses::default(), &params(m)).unwrap_or_else(|e| panic!("{m}: {e}"));
            assert_eq!(n.node.role, Role::NMadp);
            assert_eq!(c.node.role, Role::CMadp);
            let names: Vec<_> = n.clients[0]
                .deliveries
                .iter()
                .map(|d| (d.id, d.name.clone()))
                .collect();
            assert_eq!(names, vec![(0, "wifi".to_string()), (1, "lte".to_string())]);
            assert_eq!(c.clients.len(), 1);
        }
        let (n, _) = build(&Addresses::default(), &params("delay-aware")).unwrap();
        assert_eq!(n.clients[0].steering, SteeringMode::DelayAware);
    }

    #[test]
    fn an_unknown_steering_mode_is_rejected_by_validation() {
        assert!(build(&Addresses::default(), &params("fastest")).is_err());
    }
}
