//! Prometheus text exposition format 0.0.4 for `metrics` (and a strict checker of that format,
//! used by the tests and usable by anyone who scrapes us).
//!
//! Names are prefixed `nmadp_`; counters end in `_total`; labels are `worker`, `client`, `path`
//! (the delivery connection's name), `reason` (a `DropReason` label), `state`, `metric` and
//! `quantile`. Latency is a summary in seconds (quantiles from the hdrhistogram).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::protocol::{
    CounterRow, CounterScope, CounterSet, LatencyInfo, PathInfo, PathStateName, Sequencing, Status,
};
use super::AdminBackend;

/// Everything `metrics` exports.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub status: Option<Status>,
    pub workers: Vec<CounterRow>,
    pub clients: Vec<CounterRow>,
    pub paths: Vec<CounterRow>,
    pub path_info: Vec<PathInfo>,
    pub latency: Vec<LatencyInfo>,
}

/// Gathers a [`Snapshot`] from `b` and renders it (the default `AdminBackend::metrics`).
pub fn prometheus_from<B: AdminBackend + ?Sized>(b: &B) -> Result<String, String> {
    Ok(prometheus(&Snapshot {
        status: Some(b.status()?),
        workers: b.counters(CounterScope::Workers, None)?,
        clients: b.counters(CounterScope::Clients, None)?,
        paths: b.counters(CounterScope::Paths, None)?,
        path_info: b.paths_list(None)?,
        latency: b.latency()?,
    }))
}

/// One metric family being written: HELP and TYPE once, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => self.out.push_str(&float(v)),
        }
        self.out.push('\n');
    }
}

#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

/// A float as the format wants it (Go `ParseFloat` syntax; `+Inf`, `-Inf`, `NaN`).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Label values: backslash, double quote and line feed are escaped (format 0.0.4).
pub fn escape_label(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// HELP text: backslash and line feed are escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The counter fields with their metric suffixes and help texts.
const COUNTER_FIELDS: [(&str, &str); 8] = [
    ("rx_packets_total", "Packets received."),
    ("rx_bytes_total", "Bytes received."),
    ("tx_packets_total", "Packets transmitted."),
    ("tx_bytes_total", "Bytes transmitted."),
    ("bursts_total", "Receive bursts processed."),
    (
        "handoffs_in_total",
        "Packets received from another worker or the slow path.",
    ),
    (
        "handoffs_out_total",
        "Packets handed to another worker or the slow path.",
    ),
    (
        "ring_full_drops_total",
        "Packets dropped because a handoff or transmit ring was full.",
    ),
];

/// Labels identifying a counter row in `scope`.
fn row_labels(scope: CounterScope, r: &CounterRow) -> Vec<(&'static str, String)> {
    match scope {
        CounterScope::Workers => vec![("worker", r.worker.unwrap_or(0).to_string())],
        CounterScope::Clients => vec![("client", r.client.clone().unwrap_or_default())],
        CounterScope::Paths => vec![
            ("client", r.client.clone().unwrap_or_default()),
            (
                "path",
                r.path_name
                    .clone()
                    .or_else(|| r.path.map(|p| p.to_string()))
                    .unwrap_or_default(),
            ),
        ],
    }
}

fn counter_families(out: &mut String, scope: CounterScope, rows: &[CounterRow]) {
    let prefix = match scope {
        CounterScope::Workers => "nmadp_worker_",
        CounterScope::Clients => "nmadp_client_",
        CounterScope::Paths => "nmadp_path_",
    };
    let per = scope.as_str().trim_end_matches('s');
    let labels: Vec<_> = rows.iter().map(|r| row_labels(scope, r)).collect();
    for (i, (suffix, help)) in COUNTER_FIELDS.iter().enumerate() {
        let name = format!("{prefix}{suffix}");
        let mut f = Family::new(out, &name, "counter", &format!("{help} Per {per}."));
        for (r, l) in rows.iter().zip(&labels) {
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let v = r.counters.fields()[i].1;
            f.sample(&name, &l, Value::Int(v));
        }
    }
    if scope != CounterScope::Paths {
        let fields = Sequencing::default().fields();
        for (i, (k, _)) in fields.iter().enumerate() {
            let gauge = *k == "max_depth";
            let name = if gauge {
                format!("{prefix}seq_{k}")
            } else {
                format!("{prefix}seq_{k}_total")
            };
            let help = if gauge {
                format!("Most packets one receive flow held at once. Per {per}.")
            } else {
                format!("Sequencing counter {k} (reorder buffers, delay line, steering; see `nmadpctl counters`). Per {per}.")
            };
            let kind = if gauge { "gauge" } else { "counter" };
            let mut f = Family::new(out, &name, kind, &help);
            for (r, l) in rows.iter().zip(&labels) {
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
                f.sample(&name, &l, Value::Int(r.counters.sequencing.fields()[i].1));
            }
        }
    }
    let name = format!("{prefix}drops_total");
    let mut f = Family::new(
        out,
        &name,
        "counter",
        &format!("Packets dropped, by reason. Per {per}."),
    );
    for (r, l) in rows.iter().zip(&labels) {
        for (reason, v) in &r.counters.drops.0 {
            let mut l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            l.push(("reason", reason));
            f.sample(&name, &l, Value::Int(*v));
        }
    }
}

/// Renders a snapshot as Prometheus text exposition format 0.0.4.
pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    if let Some(st) = &s.status {
        let mut f = Family::new(
            &mut out,
            "nmadp_build_info",
            "gauge",
            "Version and role of the daemon; always 1.",
        );
        f.sample(
            "nmadp_build_info",
            &[("version", &st.version), ("role", &st.role)],
            Value::Int(1),
        );
        let gauges: [(&str, &str, u64); 5] = [
            (
                "nmadp_uptime_seconds",
                "Seconds since the daemon started.",
                st.uptime_s,
            ),
            ("nmadp_workers", "Worker threads.", u64::from(st.workers)),
            ("nmadp_clients", "Configured clients.", st.clients),
            (
                "nmadp_paths",
                "Delivery connections of all clients.",
                st.paths,
            ),
            (
                "nmadp_paths_up",
                "Delivery connections in state active.",
                st.paths_up,
            ),
        ];
        for (name, help, v) in gauges {
            Family::new(&mut out, name, "gauge", help).sample(name, &[], Value::Int(v));
        }
    }
    counter_families(&mut out, CounterScope::Workers, &s.workers);
    counter_families(&mut out, CounterScope::Clients, &s.clients);
    counter_families(&mut out, CounterScope::Paths, &s.paths);

    // Path monitor state and estimates (gauges).
    let mut f = Family::new(
        &mut out,
        "nmadp_path_state",
        "gauge",
        "1 for the path's current state (probing, active, suspect, down), 0 for the others.",
    );
    for p in &s.path_info {
        for st in PathStateName::ALL {
            f.sample(
                "nmadp_path_state",
                &[
                    ("client", &p.client),
                    ("path", &p.name),
                    ("state", st.as_str()),
                ],
                Value::Int(u64::from(p.state == st)),
            );
        }
    }
    type Get = fn(&PathInfo) -> Option<f64>;
    let path_gauges: [(&str, &str, Get); 6] = [
        (
            "nmadp_path_srtt_seconds",
            "Smoothed round-trip time from probes (absent before the first probe ACK).",
            |p| p.srtt_ms.map(|v| v / 1e3),
        ),
        (
            "nmadp_path_rttvar_seconds",
            "Round-trip time variation from probes.",
            |p| Some(p.rttvar_ms / 1e3),
        ),
        (
            "nmadp_path_min_rtt_seconds",
            "Smallest round-trip time seen.",
            |p| p.min_rtt_ms.map(|v| v / 1e3),
        ),
        ("nmadp_path_loss_ratio", "Probe loss, 0 to 1.", |p| {
            Some(p.loss)
        }),
        ("nmadp_path_tx_bits_per_second", "Transmit rate.", |p| {
            Some(p.tx_rate_bps as f64)
        }),
        ("nmadp_path_rx_bits_per_second", "Receive rate.", |p| {
            Some(p.rx_rate_bps as f64)
        }),
    ];
    for (name, help, get) in path_gauges {
        let mut f = Family::new(&mut out, name, "gauge", help);
        for p in &s.path_info {
            if let Some(v) = get(p) {
                f.sample(
                    name,
                    &[("client", &p.client), ("path", &p.name)],
                    Value::Float(v),
                );
            }
        }
    }

    let name = "nmadp_latency_seconds";
    let mut f = Family::new(
        &mut out,
        name,
        "summary",
        "Processing latency by metric (from an HDR histogram), in seconds.",
    );
    for l in &s.latency {
        let w = l.worker.map(|w| w.to_string());
        let mut base: Vec<(&str, &str)> = vec![("metric", &l.metric)];
        if let Some(w) = &w {
            base.push(("worker", w));
        }
        // Quantile 1 is the histogram's maximum.
        let qs = LatencyInfo::QUANTILES.iter().map(|(_, q)| *q).chain(["1"]);
        for (q, v) in qs.zip(l.quantiles().into_iter().chain([l.max_us])) {
            let mut lab = base.clone();
            lab.push(("quantile", q));
            f.sample(name, &lab, Value::Float(v / 1e6));
        }
        let sum = l.mean_us * l.count as f64 / 1e6;
        f.sample(&format!("{name}_sum"), &base, Value::Float(sum));
        f.sample(&format!("{name}_count"), &base, Value::Int(l.count));
    }
    out
}

/// What [`check_exposition`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpositionSummary {
    /// Metric families (names with a TYPE line).
    pub families: usize,
    pub samples: usize,
}

fn valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && !s.starts_with("__")
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        // Rust accepts "inf"/"nan" spellings Go does not: reject anything alphabetic but e/E.
        s if s
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            None
        }
        s => s.parse().ok(),
    }
}

/// Parses `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
#[allow(clippy::type_complexity)]
fn parse_labels(s: &str) -> Result<(Vec<(String, String)>, &str), String> {
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = rest[..eq].trim();
        if !valid_label_name(name) {
            return Err(format!("invalid label name `{name}`"));
        }
        rest = rest[eq + 1..].trim_start();
        rest = rest.strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("invalid escape in label value: {other:?}")),
                },
                Some((_, '\n')) => return Err("raw line feed in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.iter().any(|(n, _): &(String, String)| n == name) {
            return Err(format!("label `{name}` repeated"));
        }
        labels.push((name.to_owned(), value));
        rest = rest[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// Checks `text` against the text exposition format 0.0.4 and our conventions: lines end in
/// `\n`; HELP/TYPE at most once per family and TYPE before its samples; valid metric and label
/// names and escapes; parseable values; a family's samples contiguous; no repeated series;
/// summary samples are `x{quantile}`, `x_sum`, `x_count`, histogram ones `x_bucket{le}`,
/// `x_sum`, `x_count`; counters end in `_total` and are not negative; every metric is
/// prefixed `nmadp_` and has HELP and TYPE.
pub fn check_exposition(text: &str) -> Result<ExpositionSummary, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line does not end with a line feed".into());
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series: HashSet<String> = HashSet::new();
    let mut sum = ExpositionSummary::default();
    for (n, line) in text.split_terminator('\n').enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let mut parts = c.trim_start().splitn(3, ' ');
            let kw = parts.next().unwrap_or("");
            if kw != "HELP" && kw != "TYPE" {
                continue; // a comment
            }
            let name = parts.next().unwrap_or("");
            if !valid_metric_name(name) {
                return Err(err(format!("invalid metric name `{name}`")));
            }
            let arg = parts.next().unwrap_or("");
            if finished.contains(name) || current.as_deref() == Some(name) {
                return Err(err(format!("{kw} for `{name}` after its samples")));
            }
            if kw == "HELP" {
                if !helps.insert(name.to_owned()) {
                    return Err(err(format!("second HELP for `{name}`")));
                }
                let mut it = arg.chars();
                while let Some(ch) = it.next() {
                    if ch == '\\' && !matches!(it.next(), Some('\\' | 'n')) {
                        return Err(err("invalid escape in HELP".into()));
                    }
                }
            } else {
                if !matches!(
                    arg,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(err(format!("unknown type `{arg}`")));
                }
                if types.insert(name.to_owned(), arg.to_owned()).is_some() {
                    return Err(err(format!("second TYPE for `{name}`")));
                }
            }
            continue;
        }
        // A sample: name, optional labels, value, optional timestamp.
        let name_end = line
            .find(['{', ' ', '\t'])
            .ok_or_else(|| err("sample without a value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(err(format!("invalid metric name `{name}`")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .ok_or_else(|| err("sample without a value".into()))?;
        let value = parse_value(value).ok_or_else(|| err(format!("invalid value `{value}`")))?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| err(format!("invalid timestamp `{ts}`")))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing text after the timestamp".into()));
        }
        // Which family the sample belongs to.
        let family = [
            ("_bucket", &["histogram"][..]),
            ("_sum", &["histogram", "summary"][..]),
            ("_count", &["histogram", "summary"][..]),
        ]
        .iter()
        .find_map(|(suf, kinds)| {
            let base = name.strip_suffix(suf)?;
            let k = types.get(base)?;
            kinds.contains(&k.as_str()).then(|| base.to_owned())
        })
        .unwrap_or_else(|| name.to_owned());
        let kind = types
            .get(&family)
            .ok_or_else(|| err(format!("sample of `{family}` before (or without) its TYPE")))?;
        if !helps.contains(&family) {
            return Err(err(format!("`{family}` has no HELP")));
        }
        if !family.starts_with("nmadp_") {
            return Err(err(format!("`{family}` is not prefixed nmadp_")));
        }
        match kind.as_str() {
            "counter" => {
                if !family.ends_with("_total") {
                    return Err(err(format!("counter `{family}` does not end in _total")));
                }
                if value.is_nan() || value < 0.0 {
                    return Err(err("negative counter".into()));
                }
            }
            "summary" if name == family => {
                let q = labels.iter().find(|(k, _)| k == "quantile");
                match q.and_then(|(_, v)| parse_value(v)) {
                    Some(q) if (0.0..=1.0).contains(&q) => {}
                    _ => return Err(err("summary sample without a quantile in 0..=1".into())),
                }
            }
            "histogram" if name == family => {
                return Err(err(
                    "histogram sample must be _bucket, _sum or _count".into()
                ));
            }
            "histogram" if name.ends_with("_bucket") && !labels.iter().any(|(k, _)| k == "le") => {
                return Err(err("histogram bucket without le".into()));
            }
            _ => {}
        }
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(err(format!("samples of `{family}` are not contiguous")));
            }
            if let Some(prev) = current.replace(family.clone()) {
                finished.insert(prev);
            }
        }
        let mut key_labels = labels.clone();
        key_labels.sort();
        let key = format!("{name}{key_labels:?}");
        if !series.insert(key) {
            return Err(err("repeated series".into()));
        }
        sum.samples += 1;
    }
    sum.families = types.len();
    Ok(sum)
}

/// Sums counter rows (for totals in status and tests).
pub fn total(rows: &[CounterRow]) -> CounterSet {
    let mut t = CounterSet::zero();
    for r in rows {
        t.add(&r.counters);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::protocol::DropCounts;
    use pipelines::drop::DropReason;

    fn snapshot() -> Snapshot {
        let mut a = [0u64; DropReason::COUNT];
        a[DropReason::Truncated as usize] = 2;
        let cs = CounterSet {
            rx_packets: 10,
            drops: DropCounts::from_array(&a),
            ..CounterSet::zero()
        };
        Snapshot {
            status: None,
            workers: vec![
                CounterRow {
                    worker: Some(0),
                    client: None,
                    path: None,
                    path_name: None,
                    counters: cs.clone(),
                },
                CounterRow {
                    worker: Some(1),
                    client: None,
                    path: None,
                    path_name: None,
                    counters: cs.clone(),
                },
            ],
            clients: vec![CounterRow {
                worker: None,
                client: Some("we\"ird\\na\nme".into()),
                path: None,
                path_name: None,
                counters: cs,
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn output_passes_the_checker_and_names_every_reason() {
        let text = prometheus(&snapshot());
        let s = check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(s.samples > 2 * DropReason::COUNT);
        for r in DropReason::ALL {
            assert!(text.contains(&format!(
                "nmadp_worker_drops_total{{worker=\"1\",reason=\"{}\"}} ",
                r.as_str()
            )));
        }
        assert!(text.contains(r#"client="we\"ird\\na\nme""#), "{text}");
    }

    #[test]
    fn checker_rejects_what_the_format_forbids() {
        let ok =
            "# HELP nmadp_x_total X.\n# TYPE nmadp_x_total counter\nnmadp_x_total{a=\"1\"} 3\n";
        assert!(check_exposition(ok).is_ok());
        let bad = [
            ok.trim_end(),                                            // no final LF
            &ok.replace("nmadp_x_total{", "nmadp_x_total{9a=\"1\","), // label name
            &ok.replace("} 3", "} three"),                            // value
            &ok.replace("} 3", "} -3"),                               // negative counter
            &ok.replace("\"1\"", "\"1\\t\""),                         // escape
            &ok.replace("counter", "countr"),                         // type
            &ok.replace("# TYPE nmadp_x_total counter\n", ""),        // no TYPE
            &ok.replace("# HELP nmadp_x_total X.\n", ""),             // no HELP
            &format!("{ok}nmadp_x_total{{a=\"1\"}} 4\n"),             // repeated series
            &ok.replace("nmadp_x_total", "nmadp_x"),                  // counter w/o _total
            &format!("{ok}# HELP nmadp_y Y.\n# TYPE nmadp_y gauge\nnmadp_y 1\nnmadp_x_total 1\n"), // not contiguous
            &format!("{ok}# TYPE nmadp_x_total counter\n"), // TYPE after samples
            "# HELP nmadp_s S.\n# TYPE nmadp_s summary\nnmadp_s 1\n", // no quantile
            "# HELP x X.\n# TYPE x gauge\nx 1\n",           // prefix
        ];
        for b in bad {
            assert!(check_exposition(b).is_err(), "accepted: {b:?}");
        }
    }

    #[test]
    fn floats_use_the_format_spelling() {
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(parse_value("inf"), None);
    }
}
