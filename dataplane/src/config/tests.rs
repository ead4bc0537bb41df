//! Tests of the configuration: examples load, every error class with its exact position.

use super::*;
use proptest::prelude::*;

/// Line numbers matter: the tests below name them.
const BASE: &str = r#"[node]
role = "n-madp"

[ports.anchor]
kind = "af-packet"
iface = "eth1"

[ports.delivery]
kind = "af-packet"
iface = "eth2"

[control]
address = "192.0.2.1:8888"

[[client]]
name = "alice"
anchor_address = "10.0.0.2"

[[client.anchor]]
connection_id = 1

[[client.delivery]]
id = 0
local = "192.0.2.1:10021"
mtu = 1500
"#;

/// `BASE` with `from` replaced by `to` (which must be there).
fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

fn err(text: &str) -> String {
    match Config::parse(text, "bad.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn ok(text: &str) -> Config {
    Config::parse(text, "good.toml").unwrap_or_else(|e| panic!("rejected: {e}\n{text}"))
}

/// A second client and a second delivery, for duplicate checks.
fn two_deliveries(second: &str) -> String {
    format!("{BASE}\n[[client.delivery]]\n{second}\n")
}

fn example(name: &str) -> String {
    format!(
        "{}/../deploy/examples/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

// ---- examples and round trip ------------------------------------------------------------------

#[test]
fn examples_load_and_round_trip() {
    for name in ["nmadp", "cmadp", "minimal"] {
        let cfg = Config::load_with(example(name), &HostInfo::unchecked())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = Config::parse(&cfg.to_toml(), "to_toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg, again, "{name} does not round-trip");
    }
}

#[test]
fn nmadp_example_values() {
    let c = Config::load_with(example("nmadp"), &HostInfo::unchecked()).unwrap();
    assert_eq!(c.node.role, Role::NMadp);
    assert_eq!(c.node.cores, vec![2, 3]);
    assert_eq!(c.clients.len(), 2);
    let alice = c.client_by_anchor("10.0.0.2".parse().unwrap()).unwrap();
    assert_eq!(alice.steering, SteeringMode::Weighted);
    assert_eq!(alice.traffic_classes[0].rule.protocol, Some(17));
    assert_eq!(
        alice.traffic_classes[0].rule.remote_port,
        Some(PortRange {
            first: 5060,
            last: 5061
        })
    );
    assert_eq!(alice.traffic_classes[0].steering, SteeringMode::Duplicate);
    let wifi = &alice.deliveries[0];
    assert_eq!(
        wifi.local,
        Some(Endpoint::Udp("192.0.2.1:10021".parse().unwrap()))
    );
    assert_eq!(wifi.remote, None);
    // nh added to ["cid","tc","sn","fsl","fc"]: 0x80|0x40|0x20|0x10|0x08|0x04.
    assert_eq!(wifi.trailer.downlink, TrailerFields(0xfc));
    let bob = &c.clients[1];
    assert!(bob.anchor_address.is_ipv6());
    assert_eq!(bob.deliveries[1].adaptation, Adaptation::UdpOptimized);
    let cm = Config::load_with(example("cmadp"), &HostInfo::unchecked()).unwrap();
    assert_eq!(
        cm.ports.anchor,
        Port::Tun {
            iface: "mx0".into(),
            mtu: 1400
        }
    );
}

#[test]
fn minimal_gets_defaults() {
    let c = ok(BASE);
    assert_eq!(c.node.admin_socket, PathBuf::from("/run/nmadp/admin.sock"));
    assert_eq!(c.node.workers, 1);
    assert_eq!(c.defaults.steering, SteeringMode::ActiveStandby);
    assert_eq!(c.defaults.reorder.window, 1024);
    assert_eq!(c.defaults.reorder.timeout, ReorderTimeout::Adaptive);
    let d = &c.clients[0].deliveries[0];
    assert_eq!(d.name, "dc0");
    // Weight unset (0): weighted steering follows the paths' rates, else equal shares.
    assert_eq!((d.priority, d.weight), (0, 0));
    assert_eq!(d.trailer.uplink, TrailerFields(0x80 | 0x40 | 0x20 | 0x10));
    // RFC 768 zero UDP checksum over IPv4 by default; computing it is a per-path option.
    assert!(!d.udp_checksum);
    let on = ok(&with("mtu = 1500", "mtu = 1500\nudp_checksum = true"));
    assert!(on.clients[0].deliveries[0].udp_checksum);
    // No shaper unless asked for.
    assert_eq!(d.shape, None);
}

#[test]
fn shape_needs_a_rate_and_takes_percent_and_queue() {
    let c = ok(&with(
        "mtu = 1500",
        "mtu = 1500\nrate_mbps = 50\nshape = true",
    ));
    assert_eq!(
        c.clients[0].deliveries[0].shape,
        Some(Shape {
            percent: 98,
            queue_ms: 400
        })
    );
    let c = ok(&with(
        "mtu = 1500",
        "mtu = 1500\nrate_mbps = 50\nshape = true\nshape_percent = 90\nshape_queue_ms = 80",
    ));
    assert_eq!(
        c.clients[0].deliveries[0].shape,
        Some(Shape {
            percent: 90,
            queue_ms: 80
        })
    );
    // No rate on an N-MADP: measured (the shaper follows the path's capacity estimate); a
    // C-MADP cannot measure.
    let c = ok(&with("mtu = 1500", "mtu = 1500\nshape = true"));
    assert_eq!(c.clients[0].deliveries[0].rate_mbps, None);
    assert!(c.clients[0].deliveries[0].shape.is_some());
    let cm = with("role = \"n-madp\"", "role = \"c-madp\"")
        .replace(
            "local = \"192.0.2.1:10021\"",
            "remote = \"192.0.2.1:10021\"",
        )
        .replace("mtu = 1500", "mtu = 1500\nshape = true");
    let e = err(&cm);
    assert!(
        e.contains("shape") && e.contains("needs `rate_mbps` on a C-MADP"),
        "{e}"
    );
    let e = err(&with(
        "mtu = 1500",
        "mtu = 1500\nrate_mbps = 5\nshape_percent = 90",
    ));
    assert!(e.contains("need `shape = true`"), "{e}");
    let e = err(&with(
        "mtu = 1500",
        "mtu = 1500\nrate_mbps = 5\nshape = true\nshape_percent = 0",
    ));
    assert!(e.contains("shape_percent") && e.contains("1..=100"), "{e}");
}

#[test]
fn trailer_flags_match_wire_md() {
    let bits: Vec<u8> = TrailerField::ALL.iter().map(|f| f.flag()).collect();
    assert_eq!(bits, vec![0x80, 0x40, 0x20, 0x10, 0x08, 0x04]);
}

#[test]
fn wire_md_next_header_must_be_present_without_header_optimization() {
    let t = with(
        "mtu = 1500",
        "trailer.downlink = [\"sn\"]\ntrailer.uplink = [\"sn\"]",
    );
    let d = &ok(&t).clients[0].deliveries[0];
    assert_eq!(d.trailer.downlink, TrailerFields(0x80 | 0x10));
    let t = with(
        "mtu = 1500",
        "adaptation = \"udp-optimized\"\ntrailer.downlink = [\"sn\"]\ntrailer.uplink = [\"sn\"]",
    );
    let d = &ok(&t).clients[0].deliveries[0];
    assert_eq!(d.trailer.downlink, TrailerFields(0x10));
}

// ---- syntax, type and unknown-field errors ----------------------------------------------------

#[test]
fn syntax_error_names_line_and_table() {
    assert_eq!(
        err(&with("name = \"alice\"", "name = alice")),
        "bad.toml:16:8: field `client[0].name`: syntax error: invalid string; expected `\"`, `'`"
    );
}

#[test]
fn unknown_field_points_at_the_key() {
    assert_eq!(
        err(&with("mtu = 1500", "mtux = 1500")),
        "bad.toml:25:1: field `client[0].delivery[0].mtux`: unknown field `mtux`, expected one of \
         `id`, `name`, `iface`, `adaptation`, `local`, `remote`, `mtu`, `priority`, `weight`, \
         `rate_mbps`, `udp_checksum`, `shape`, `shape_percent`, `shape_queue_ms`, `trailer`"
    );
    assert_eq!(
        err(&with("[control]", "[control]\nport = 1")),
        "bad.toml:13:1: field `control.port`: unknown field `port`, expected `address`"
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    assert_eq!(
        err(&with("mtu = 1500", "mtu = \"1500\"")),
        "bad.toml:25:7: field `client[0].delivery[0].mtu`: invalid type: string \"1500\", expected an integer"
    );
}

#[test]
fn unknown_enum_value() {
    assert_eq!(
        err(&with(
            "kind = \"af-packet\"\niface = \"eth1\"",
            "kind = \"pcap\""
        )),
        "bad.toml:5:8: field `ports.anchor.kind`: unknown variant `pcap`, expected one of `ring`, \
         `af-packet`, `af-xdp`, `tun`, `udp`, `dpdk`"
    );
    let e = err(&with("mtu = 1500", "trailer.uplink = [\"sn\", \"seq\"]"));
    assert!(
        e.starts_with("bad.toml:25:25: field `client[0].delivery[0].trailer.uplink[1]`: unknown variant `seq`"),
        "{e}"
    );
}

#[test]
fn bad_address_syntax() {
    assert_eq!(
        err(&with("\"10.0.0.2\"", "\"10.0.0.300\"")),
        "bad.toml:17:18: field `client[0].anchor_address`: invalid IP address syntax"
    );
}

#[test]
fn missing_required_field() {
    let e = err(&with("anchor_address = \"10.0.0.2\"\n", ""));
    assert!(
        e.starts_with("bad.toml:15:1: field `client[0]`: missing field `anchor_address`"),
        "{e}"
    );
}

#[test]
fn unreadable_file() {
    let e = Config::load("/nonexistent/nmadp.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/nonexistent/nmadp.toml: cannot read: "),
        "{e}"
    );
}

// ---- semantic errors --------------------------------------------------------------------------

#[test]
fn mtu_range_ipv4_and_ipv6() {
    assert_eq!(
        err(&with("mtu = 1500", "mtu = 100")),
        "bad.toml:25:7: field `client[0].delivery[0].mtu`: must be in 576..=9216 for an IPv4 delivery connection, got 100"
    );
    let v6 =
        with("\"192.0.2.1:10021\"", "\"[2001:db8::1]:10021\"").replace("mtu = 1500", "mtu = 1000");
    assert_eq!(
        err(&v6),
        "bad.toml:25:7: field `client[0].delivery[0].mtu`: must be in 1280..=9216 for an IPv6 delivery connection, got 1000"
    );
    ok(&v6.replace("mtu = 1000", "mtu = 1280"));
}

#[test]
fn duplicate_delivery_ids() {
    assert_eq!(
        err(&two_deliveries("id = 0\nlocal = \"192.0.2.1:10020\"")),
        "bad.toml:28:6: field `client[0].delivery[1].id`: duplicate delivery id 0 (also delivery[0])"
    );
}

#[test]
fn duplicate_client_names_and_anchor_addresses() {
    let second = "\n[[client]]\nname = \"alice\"\nanchor_address = \"10.0.0.2\"\n[[client.anchor]]\nconnection_id = 1\n[[client.delivery]]\nid = 0\nlocal = \"192.0.2.1:10021\"\n";
    assert_eq!(
        err(&format!("{BASE}{second}")),
        "bad.toml:28:8: field `client[1].name`: duplicate client name \"alice\" (also client[0])\n\
         bad.toml:29:18: field `client[1].anchor_address`: duplicate anchor address 10.0.0.2 (also client[0]): clients are found by it"
    );
}

#[test]
fn connection_id_range_depends_on_convergence() {
    assert_eq!(
        err(&with("connection_id = 1", "connection_id = 256")),
        "bad.toml:20:17: field `client[0].anchor[0].connection_id`: must be in 0..=255 (the trailer's Connection ID is one octet, draft-04 §4.2.1), got 256"
    );
    let gre = with("connection_id = 1", "connection_id = 65535").replace(
        "anchor_address = \"10.0.0.2\"",
        "anchor_address = \"10.0.0.2\"\nconvergence = \"gre\"",
    );
    assert!(err(&gre).starts_with(
        "bad.toml:21:17: field `client[0].anchor[0].connection_id`: must be in 0..=65534"
    ));
    ok(&gre.replace("65535", "65534"));
}

#[test]
fn ipsec_and_dtls_are_recognised_but_not_supported() {
    for a in ["ipsec", "dtls"] {
        assert_eq!(
            err(&with("mtu = 1500", &format!("adaptation = \"{a}\""))),
            format!("bad.toml:25:14: field `client[0].delivery[0].adaptation`: \"{a}\" is not supported by this build (use udp, udp-optimized, client-nat or pass-through)")
        );
    }
}

#[test]
fn trailer_field_listed_twice() {
    assert_eq!(
        err(&with("mtu = 1500", "trailer.downlink = [\"sn\", \"sn\"]")),
        "bad.toml:25:27: field `client[0].delivery[0].trailer.downlink[1]`: `sn` is listed twice"
    );
}

#[test]
fn trailer_must_carry_cid_with_several_anchors() {
    let t = with(
        "connection_id = 1",
        "connection_id = 1\n[[client.anchor]]\nconnection_id = 2",
    )
    .replace("mtu = 1500", "trailer.uplink = [\"sn\"]");
    let e = err(&t);
    assert!(
        e.starts_with(
            "bad.toml:27:18: field `client[0].delivery[0].trailer.uplink`: must include \"cid\""
        ),
        "{e}"
    );
}

#[test]
fn weighted_steering_needs_sn_and_positive_weights() {
    let t = two_deliveries("id = 1\nlocal = \"192.0.2.1:10020\"\nweight = 0")
        .replace(
            "anchor_address = \"10.0.0.2\"",
            "anchor_address = \"10.0.0.2\"\nsteering = \"weighted\"",
        )
        .replace("mtu = 1500", "trailer.downlink = [\"cid\"]");
    assert_eq!(
        err(&t),
        "bad.toml:26:20: field `client[0].delivery[0].trailer.downlink`: must include \"sn\": steering = \"weighted\" sends one flow over several delivery connections and the receiver reorders by SN (draft-04 §4.2.1)\n\
         bad.toml:31:10: field `client[0].delivery[1].weight`: must be in 1..=65535, got 0"
    );
}

#[test]
fn active_standby_priorities_strict_order() {
    assert_eq!(
        err(&two_deliveries("id = 1\nlocal = \"192.0.2.1:10020\"\npriority = 0").replace("mtu = 1500", "priority = 0")),
        "bad.toml:30:12: field `client[0].delivery[1].priority`: priority 0 is also delivery[0]'s: steering = \"active-standby\" needs a strict order"
    );
    let e = err(&two_deliveries(
        "id = 1\nlocal = \"192.0.2.1:10020\"\npriority = 0",
    ));
    assert!(e.starts_with("bad.toml:22:1: field `client[0].delivery[0].priority`: steering = \"active-standby\" orders"), "{e}");
    // None set: file order.
    let c = ok(&two_deliveries("id = 1\nlocal = \"192.0.2.1:10020\""));
    assert_eq!(c.clients[0].deliveries[1].priority, 1);
    // Ties do not matter where priority is unused.
    ok(
        &two_deliveries("id = 1\nlocal = \"192.0.2.1:10020\"\npriority = 0")
            .replace("mtu = 1500", "priority = 0")
            .replace("[defaults]", "")
            .replace(
                "[[client]]",
                "[defaults]\nsteering = \"per-flow\"\n\n[[client]]",
            ),
    );
}

#[test]
fn port_kind_keys() {
    assert_eq!(
        err(&with("iface = \"eth2\"", "")),
        "bad.toml:8:1: field `ports.delivery.iface`: is required for kind = \"af-packet\""
    );
    assert_eq!(
        err(&with("iface = \"eth2\"", "iface = \"eth2\"\npci = \"0000:3b:00.0\"")),
        "bad.toml:11:7: field `ports.delivery.pci`: does not apply to kind = \"af-packet\" (it takes: iface, queues, gateway_mac)"
    );
    assert_eq!(
        err(&with("kind = \"af-packet\"\niface = \"eth1\"", "kind = \"udp\"")),
        "bad.toml:5:8: field `ports.anchor.kind`: \"udp\" is a delivery-side port; the anchor side takes ring, af-packet, af-xdp, tun or dpdk"
    );
    assert_eq!(
        err(&with("iface = \"eth1\"", "iface = \"a-very-long-interface\"")),
        "bad.toml:6:9: field `ports.anchor.iface`: \"a-very-long-interface\" is not an interface name (1..=15 characters, no '/' or spaces)"
    );
    let ring = ok(&with(
        "kind = \"af-packet\"\niface = \"eth1\"",
        "kind = \"ring\"\ncapacity = 4096",
    ));
    assert_eq!(
        ring.ports.anchor,
        Port::Ring {
            name: "anchor".into(),
            capacity: 4096
        }
    );
    assert!(err(&with(
        "kind = \"af-packet\"\niface = \"eth1\"",
        "kind = \"ring\"\ncapacity = 1000"
    ))
    .starts_with("bad.toml:6:12: field `ports.anchor.capacity`: must be a power of two"));
}

#[cfg(not(feature = "dpdk"))]
#[test]
fn dpdk_not_in_this_build() {
    let e = err(&with(
        "kind = \"af-packet\"\niface = \"eth1\"",
        "kind = \"dpdk\"\npci = \"0000:3b:00.0\"",
    ));
    assert_eq!(e, "bad.toml:5:8: field `ports.anchor.kind`: \"dpdk\" is not supported by this build (rebuild with `--features dpdk`)");
}

#[test]
fn cores_duplicated_count_and_host() {
    let t = with(
        "role = \"n-madp\"",
        "role = \"n-madp\"\nworkers = 2\ncores = [1, 1]\nslow_path_core = 1",
    );
    assert_eq!(
        err(&t),
        "bad.toml:4:13: field `node.cores[1]`: core 1 is listed twice\n\
         bad.toml:5:18: field `node.slow_path_core`: core 1 is also a worker core (node.cores)"
    );
    let t = with(
        "role = \"n-madp\"",
        "role = \"n-madp\"\nworkers = 2\ncores = [1, 7]",
    );
    let host = HostInfo {
        online_cpus: Some(vec![0, 1, 2, 3]),
    };
    let e = Config::parse_with(&t, "bad.toml", &host)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "bad.toml:4:13: field `node.cores[1]`: core 7 is not online on this host"
    );
    ok(&t); // no host check
    assert!(err(&with(
        "role = \"n-madp\"",
        "role = \"n-madp\"\ncores = [1, 2]"
    ))
    .starts_with("bad.toml:3:9: field `node.cores`: lists 2 cores for 1 workers"));
}

#[test]
fn reorder_and_reassembly_bounds() {
    let t = format!("{BASE}\n[defaults]\nreorder = {{ window = 40000, timeout_ms = \"soon\" }}\nreassembly = {{ timeout_ms = 0 }}\n");
    // `[defaults]` after `[[client.delivery]]` is legal TOML (a new top-level table).
    assert_eq!(
        err(&t),
        "bad.toml:28:22: field `defaults.reorder.window`: must be in 1..=32767, got 40000\n\
         bad.toml:28:42: field `defaults.reorder.timeout_ms`: must be \"adaptive\" or a number of milliseconds, got \"soon\"\n\
         bad.toml:29:29: field `defaults.reassembly.timeout_ms`: must be in 1..=60000, got 0"
    );
    let c = ok(&format!(
        "{BASE}\n[defaults]\nreorder = {{ timeout_ms = 50 }}\n"
    ));
    assert_eq!(c.clients[0].reorder.timeout, ReorderTimeout::FixedMs(50));
}

#[test]
fn endpoints_by_role_and_adaptation() {
    assert_eq!(
        err(&with("local = \"192.0.2.1:10021\"\n", "")),
        "bad.toml:22:1: field `client[0].delivery[0].local`: is required: the N-MADP's UDP tunnel endpoint for this delivery connection (WIRE.md: 10021 Wi-Fi, 10020 LTE)"
    );
    assert_eq!(
        err(&with("local = \"192.0.2.1:10021\"", "local = \"192.0.2.1\"")),
        "bad.toml:24:9: field `client[0].delivery[0].local`: \"192.0.2.1\" is not ip:port (e.g. \"192.0.2.1:10021\" or \"[2001:db8::1]:10021\"), as adaptation = \"udp\" needs"
    );
    let nat = ok(&with(
        "local = \"192.0.2.1:10021\"",
        "adaptation = \"client-nat\"\nremote = \"198.51.100.7\"",
    ));
    assert_eq!(
        nat.clients[0].deliveries[0].remote,
        Some(Endpoint::Ip("198.51.100.7".parse().unwrap()))
    );
    assert_eq!(
        err(&with("mtu = 1500", "remote = \"[2001:db8::7]:1\"")),
        "bad.toml:25:10: field `client[0].delivery[0].remote`: [2001:db8::7]:1 and local 192.0.2.1:10021 are of different address families"
    );
}

#[test]
fn cmadp_has_exactly_one_client() {
    let c = with("role = \"n-madp\"", "role = \"c-madp\"").replace(
        "local = \"192.0.2.1:10021\"",
        "remote = \"192.0.2.1:10021\"",
    );
    assert_eq!(
        ok(&c).node.admin_socket,
        PathBuf::from("/run/cmadp/admin.sock")
    );
    let none = c.split("[[client]]").next().unwrap().to_owned();
    assert_eq!(
        err(&none),
        "bad.toml:1:1: field `client`: a C-MADP configuration has exactly one [[client]] (itself), found 0"
    );
}

#[test]
fn traffic_class_rules() {
    let tc = |rule: &str| format!("{BASE}\n[[client.traffic_class]]\nid = 1\n{rule}\n");
    let c = ok(&tc("match = { dscp = [46, 34], protocol = \"tcp\", remote = \"203.0.113.0/24\", client_port = 443 }"));
    let r = &c.clients[0].traffic_classes[0];
    assert_eq!(r.anchor, 1);
    assert_eq!(r.rule.dscp, vec![46, 34]);
    assert!(r
        .rule
        .remote
        .unwrap()
        .contains("203.0.113.9".parse().unwrap()));
    assert!(!r
        .rule
        .remote
        .unwrap()
        .contains("203.0.114.9".parse().unwrap()));
    assert_eq!(
        r.rule.client_port,
        Some(PortRange {
            first: 443,
            last: 443
        })
    );
    assert_eq!(
        err(&tc("match = { dscp = [64], remote_port = 80 }\nanchor = 9")),
        "bad.toml:29:19: field `client[0].traffic_class[0].match.dscp[0]`: must be in 0..=63, got 64\n\
         bad.toml:29:38: field `client[0].traffic_class[0].match.remote_port`: ports need protocol = \"tcp\", \"udp\" or \"sctp\"\n\
         bad.toml:30:10: field `client[0].traffic_class[0].anchor`: no [[client.anchor]] with connection_id = 9"
    );
    assert_eq!(
        err(&tc("match = { remote = \"10.1.2.3/8\" }")),
        "bad.toml:29:20: field `client[0].traffic_class[0].match.remote`: \"10.1.2.3/8\" has host bits set (did you mean \"10.0.0.0/8\"?)"
    );
    assert_eq!(
        err(&tc("deliveries = [3]")),
        "bad.toml:29:15: field `client[0].traffic_class[0].deliveries[0]`: no [[client.delivery]] with id = 3"
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let t = with("mtu = 1500", "mtu = 99999\nweight = 0")
        .replace("connection_id = 1", "connection_id = 300");
    let e = Config::parse(&t, "bad.toml").unwrap_err();
    let lines: Vec<_> = e.diagnostics.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![20, 25, 26]);
    assert_eq!(
        e.first().unwrap().field,
        "client[0].anchor[0].connection_id"
    );
}

#[test]
fn line_index_counts_characters() {
    let text = "a\né = 1\n\nx";
    let li = error::LineIndex::new(text);
    assert_eq!(li.line_col(0), (1, 1));
    assert_eq!(li.line_col(2), (2, 1));
    assert_eq!(li.line_col(text.find('=').unwrap()), (2, 3));
    assert_eq!(li.line_col(text.len()), (4, 2));
    assert_eq!(li.line_col(text.len() + 10), (4, 2));
}

#[test]
fn cpu_list() {
    assert_eq!(
        parse_cpu_list("0-3,8,10-11"),
        Some(vec![0, 1, 2, 3, 8, 10, 11])
    );
    assert_eq!(parse_cpu_list("3-1"), None);
    assert_eq!(parse_cpu_list("x"), None);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let _ = Config::parse(&s, "p.toml");
    }

    #[test]
    fn mutated_base_never_panics(pos in 0usize..BASE.len(), junk in "[\\[\\]=\"{}, a-z0-9.\\n]{0,12}") {
        let mut t = BASE.to_owned();
        let pos = (0..=pos).rev().find(|p| t.is_char_boundary(*p)).unwrap_or(0);
        t.insert_str(pos, &junk);
        if let Err(e) = Config::parse(&t, "p.toml") {
            // Every diagnostic has a position inside the file.
            for d in &e.diagnostics {
                prop_assert!(d.line >= 1 && d.line <= t.lines().count() + 1, "{}", d);
            }
        }
    }
}

#[test]
fn gateway_mac_is_the_next_hop_of_af_packet_ports() {
    let c = ok(&with(
        "iface = \"eth2\"",
        "iface = \"eth2\"\ngateway_mac = \"02:71:00:00:00:01\"",
    ));
    match &c.ports.delivery {
        Port::AfPacket { gateway_mac, .. } => {
            assert_eq!(*gateway_mac, Some([0x02, 0x71, 0, 0, 0, 1]))
        }
        p => panic!("{p:?}"),
    }
    // Round trip through the file form.
    let again = Config::parse(&c.to_toml(), "again.toml").unwrap();
    assert_eq!(again.ports.delivery, c.ports.delivery);
    let e = err(&with(
        "iface = \"eth2\"",
        "iface = \"eth2\"\ngateway_mac = \"02:71:00:00:01\"",
    ));
    assert!(
        e.contains("ports.delivery.gateway_mac`: must be a MAC address"),
        "{e}"
    );
    let e = err(&with(
        "iface = \"eth2\"",
        "iface = \"eth2\"\ngateway_mac = \"02:71:00:00:00:0g\"",
    ));
    assert!(e.contains("gateway_mac"), "{e}");
}

#[test]
fn delay_compensation_and_its_bound_are_configurable() {
    let c = ok(BASE);
    assert!(c.defaults.delay_compensation);
    assert_eq!(c.defaults.max_delayed, 65_536);
    let t = with(
        "[[client]]",
        "[defaults]\ndelay_compensation = false\nmax_delayed = 100\n\n[[client]]",
    );
    let c = ok(&t);
    assert!(!c.defaults.delay_compensation);
    assert_eq!(c.defaults.max_delayed, 100);
    let e = err(&with(
        "[[client]]",
        "[defaults]\nmax_delayed = 2000000\n\n[[client]]",
    ));
    assert!(
        e.contains("field `defaults.max_delayed`: must be in 0..=1048576, got 2000000"),
        "{e}"
    );
}
