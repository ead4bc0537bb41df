//! Printing decoded PDUs: the JSON of `WIRE.md` and a compact text form for people.

use std::fmt::Write as _;

use pipelines::wire::mx_control::{type_name, ControlMessage, ControlPdu};
use pipelines::wire::mx_trailer::{flags, MxTrailer};
use pipelines::Direction;
use serde_json::{json, Map, Value};

use super::model::{protocol_name, DecodeError, Decoded, Layers};

fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Downlink => "downlink",
        Direction::Uplink => "uplink",
    }
}

fn trailer_json(t: &MxTrailer) -> Value {
    json!({
        "length": t.buffer_len(),
        "flags": t.flags(),
        "next_header": t.next_header,
        "connection_id": t.connection_id,
        "traffic_class": t.traffic_class,
        "sequence_number": t.sequence_number,
        "first_sdu_length": t.first_sdu_length,
        "fragment": t.fragment_control.filter(|fc| !fc.is_whole())
            .map(|fc| json!({"offset": fc.offset, "more": fc.more})),
    })
}

fn control_json(c: &ControlPdu) -> Value {
    match &c.message {
        ControlMessage::KeepAlive { sequence_number } => json!({
            "type": "keep-alive", "cid": c.cid, "sequence_number": sequence_number,
        }),
        ControlMessage::ProbeReq(r) => json!({
            "type": "probe-req",
            "cid": c.cid,
            "sequence_number": r.sequence_number,
            "ack_requested": r.ack_requested,
            "active_phase": r.active_phase,
            "reverse_cid": r.encoded_reverse_cid(),
            "padding_length": r.padding_len,
        }),
        ControlMessage::ProbeAck { ack_number } => json!({
            "type": "probe-ack", "cid": c.cid, "sequence_number": ack_number,
        }),
        ControlMessage::Unsupported { msg_type, body_len } => json!({
            "type": "unsupported",
            "type_code": msg_type,
            "type_name": type_name(*msg_type),
            "cid": c.cid,
            "body_length": body_len,
        }),
    }
}

/// The `WIRE.md` object for one PDU (absent layers are `null`), plus `packet`/`timestamp` for
/// captures and `gre` for GRE PDUs.
pub fn json(d: &Decoded, number: Option<usize>, timestamp: Option<f64>) -> String {
    let mut m = Map::new();
    if let Some(n) = number {
        m.insert("packet".into(), json!(n));
    }
    if let Some(t) = timestamp {
        m.insert("timestamp".into(), json!(t));
    }
    m.insert("direction".into(), json!(direction_str(d.direction)));
    m.insert(
        "outer".into(),
        d.outer.as_ref().map_or(Value::Null, |o| {
            json!({
                "src": o.src.to_string(),
                "dst": o.dst.to_string(),
                "protocol": o.protocol,
                "udp_src": o.udp_src,
                "udp_dst": o.udp_dst,
                "checksum_ok": o.ip_checksum_ok,
                "udp_checksum_ok": o.udp_checksum_ok,
            })
        }),
    );
    if let Some(g) = &d.gre {
        m.insert(
            "gre".into(),
            json!({
                "protocol_type": g.repr.protocol_type,
                "key": g.repr.key,
                "anchor_connection_id": g.anchor_connection_id,
                "sequence_number": g.repr.sequence_number,
                "checksum_ok": g.checksum_ok,
                "header_length": g.header_length,
            }),
        );
    }
    m.insert(
        "ip".into(),
        d.ip.as_ref().map_or(Value::Null, |ip| {
            json!({
                "version": ip.version,
                "src": ip.src.to_string(),
                "dst": ip.dst.to_string(),
                "protocol": ip.protocol,
                "total_length": ip.total_length,
                "header_length": ip.header_length,
                "checksum_ok": ip.checksum_ok,
            })
        }),
    );
    m.insert(
        "trailer".into(),
        d.trailer.as_ref().map_or(Value::Null, trailer_json),
    );
    m.insert(
        "sdus".into(),
        d.sdus.as_ref().map_or(Value::Null, |sdus| {
            Value::Array(
                sdus.iter()
                    .map(|s| {
                        json!({
                            "length": s.span.len,
                            "protocol": s.span.protocol,
                            "sequence_number": s.span.sequence_number,
                            "offset": s.span.offset,
                        })
                    })
                    .collect(),
            )
        }),
    );
    if let Some(n) = d.fragment_data_length {
        m.insert("fragment_data_length".into(), json!(n));
    }
    m.insert(
        "control".into(),
        d.control.as_ref().map_or(Value::Null, control_json),
    );
    Value::Object(m).to_string()
}

/// A malformed packet of a capture, as a JSON line.
pub fn json_error(e: &DecodeError, number: usize) -> String {
    json!({
        "packet": number,
        "error": {
            "layer": e.layer,
            "reason": e.error.reason.as_str(),
            "field": e.error.field,
            "offset": e.error.offset,
            "message": e.to_string(),
        }
    })
    .to_string()
}

fn flag_names(f: u8) -> String {
    let names = [
        (flags::NEXT_HEADER, "NH"),
        (flags::CONNECTION_ID, "CID"),
        (flags::TRAFFIC_CLASS, "TC"),
        (flags::SEQUENCE_NUMBER, "SN"),
        (flags::FIRST_SDU_LENGTH, "FSL"),
        (flags::FRAGMENT_CONTROL, "FC"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

fn ok(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "ok",
        Some(false) => "BAD",
        None => "none",
    }
}

/// The text form: one header line, then one line per layer.
pub fn text(d: &Decoded, number: Option<usize>, timestamp: Option<f64>, len: usize) -> String {
    let mut s = String::new();
    let what = match d.layers {
        Layers::Data => "MX data PDU",
        Layers::Control => "MX control PDU",
        Layers::Gre => "GRE convergence PDU",
        Layers::NotMams => "not MAMS",
    };
    if let Some(n) = number {
        let _ = write!(s, "#{n} ");
    }
    if let Some(t) = timestamp {
        let _ = write!(s, "{t:.6} ");
    }
    let _ = write!(s, "{} {what}, {len} bytes", direction_str(d.direction));
    if d.header_optimization {
        s.push_str(" (header optimization)");
    }
    s.push('\n');
    if let Some(o) = &d.outer {
        let _ = write!(
            s,
            "  outer IPv{} {} > {}  {}",
            o.version,
            o.src,
            o.dst,
            protocol_name(o.protocol)
        );
        if let (Some(sp), Some(dp)) = (o.udp_src, o.udp_dst) {
            let _ = write!(s, " {sp} > {dp}  udp checksum {}", ok(o.udp_checksum_ok));
        }
        if o.ip_checksum_ok.is_some() {
            let _ = write!(s, "  ip checksum {}", ok(o.ip_checksum_ok));
        }
        s.push('\n');
    }
    if let Some(g) = &d.gre {
        let _ = write!(s, "  GRE  protocol 0x{:04x}", g.repr.protocol_type);
        match g.repr.key {
            Some(k) => {
                let _ = write!(s, "  key 0x{k:08x}");
                match g.anchor_connection_id {
                    Some(c) => {
                        let _ = write!(s, " (anchor connection {c})");
                    }
                    None => s.push_str(" (no anchor connection)"),
                }
            }
            None => s.push_str("  no key"),
        }
        if let Some(sn) = g.repr.sequence_number {
            let _ = write!(s, "  seq {sn}");
        }
        if g.checksum_ok.is_some() {
            let _ = write!(s, "  checksum {}", ok(g.checksum_ok));
        }
        s.push('\n');
    }
    if let Some(ip) = &d.ip {
        let _ = write!(
            s,
            "  IPv{} {} > {}  proto {} ({})  len {}  hlim {}",
            ip.version,
            ip.src,
            ip.dst,
            ip.protocol,
            protocol_name(ip.protocol),
            ip.total_length,
            ip.hop_limit
        );
        if ip.checksum_ok.is_some() {
            let _ = write!(s, "  checksum {}", ok(ip.checksum_ok));
        }
        s.push('\n');
    }
    if let Some(t) = &d.trailer {
        let _ = write!(
            s,
            "  MX trailer {} bytes  flags 0x{:02x} [{}]",
            t.buffer_len(),
            t.flags(),
            flag_names(t.flags())
        );
        if let Some(nh) = t.next_header {
            let _ = write!(s, "  next-header {nh} ({})", protocol_name(nh));
        }
        if let Some(c) = t.connection_id {
            let _ = write!(s, "  cid {c}");
        }
        if let Some(tc) = t.traffic_class {
            let _ = write!(s, "  tc {tc}");
        }
        if let Some(sn) = t.sequence_number {
            let _ = write!(s, "  sn {sn}");
        }
        if let Some(fsl) = t.first_sdu_length {
            let _ = write!(s, "  fsl {fsl}");
        }
        if let Some(fc) = t.fragment_control {
            if fc.is_whole() {
                s.push_str("  fc 0 (whole SDU)");
            } else {
                let _ = write!(
                    s,
                    "  fragment offset {} {}",
                    fc.offset,
                    if fc.more { "MF" } else { "last" }
                );
            }
        }
        s.push('\n');
    } else if d.layers == Layers::Data {
        s.push_str("  no MX trailer\n");
    }
    if let Some(n) = d.fragment_data_length {
        let _ = writeln!(s, "  fragment data {n} bytes (IP header + piece)");
    }
    if let Some(sdus) = &d.sdus {
        let k = sdus.len();
        for (i, sdu) in sdus.iter().enumerate() {
            let _ = write!(
                s,
                "  SDU {}/{}  {} bytes  {}",
                i + 1,
                k,
                sdu.span.len,
                protocol_name(sdu.span.protocol)
            );
            if sdu.span.protocol != 0 && protocol_name(sdu.span.protocol) == "?" {
                let _ = write!(s, " {}", sdu.span.protocol);
            }
            if let Some(sn) = sdu.span.sequence_number {
                let _ = write!(s, "  sn {sn}");
            }
            match (sdu.src, sdu.dst, sdu.ports) {
                (Some(a), Some(b), Some((sp, dp))) => {
                    let _ = write!(s, "  {a}:{sp} > {b}:{dp}");
                }
                (Some(a), Some(b), None) => {
                    let _ = write!(s, "  {a} > {b}");
                }
                _ => {}
            }
            s.push('\n');
        }
    }
    if let Some(c) = &d.control {
        let _ = write!(s, "  cid {}  ", c.cid);
        match &c.message {
            ControlMessage::KeepAlive { sequence_number } => {
                let _ = write!(s, "keep-alive  sn {sequence_number}");
            }
            ControlMessage::ProbeReq(r) => {
                let _ = write!(
                    s,
                    "probe REQ  sn {}  {}  {} phase",
                    r.sequence_number,
                    if r.ack_requested {
                        "ACK requested"
                    } else {
                        "no ACK"
                    },
                    if r.active_phase {
                        "active"
                    } else {
                        "initialization"
                    }
                );
                if let Some(rc) = r.encoded_reverse_cid() {
                    let _ = write!(s, "  R-CID {rc}");
                }
                let _ = write!(s, "  padding {}", r.padding_len);
            }
            ControlMessage::ProbeAck { ack_number } => {
                let _ = write!(s, "probe ACK  acknowledges sn {ack_number}");
            }
            ControlMessage::Unsupported { msg_type, body_len } => {
                let _ = write!(
                    s,
                    "type {msg_type} ({}): unsupported, {body_len} bytes of message",
                    type_name(*msg_type)
                );
            }
        }
        s.push('\n');
    }
    s
}

/// An error message with a hex excerpt pointing at the offending byte.
pub fn error(e: &DecodeError, bytes: &[u8], at: &str) -> String {
    let mut s = format!("error{at}: {e}\n");
    if bytes.is_empty() {
        s.push_str("  (empty input)\n");
        return s;
    }
    let off = e.error.offset.min(bytes.len().saturating_sub(1));
    let line = off / 16;
    let first = line.saturating_sub(1);
    let last = (line + 1).min((bytes.len() - 1) / 16);
    for l in first..=last {
        let start = l * 16;
        let end = (start + 16).min(bytes.len());
        let hex: Vec<String> = bytes[start..end]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let _ = writeln!(s, "  {start:04x}  {}", hex.join(" "));
        if l == line {
            let col = 8 + (off - start) * 3;
            let _ = writeln!(s, "{}^^ byte {}", " ".repeat(col), e.error.offset);
        }
    }
    if e.error.offset >= bytes.len() {
        let _ = writeln!(
            s,
            "  (offset {} is past the end of the {}-byte input)",
            e.error.offset,
            bytes.len()
        );
    }
    s
}
