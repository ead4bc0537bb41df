//! Human-readable output of `nmadpctl`: aligned tables (text left, numbers right), plain ASCII
//! so that `grep`/`awk` work on them. No table crate: a few dozen lines cover it.

use std::fmt::Write as _;

use super::protocol::{
    mode_name, ClientInfo, CounterRow, CounterScope, CounterSet, LatencyInfo, PathInfo,
    PathStateName, Status, SteeringInfo,
};

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table with a header row; columns separated by two spaces, no trailing blanks.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            header: columns.iter().map(|(h, _)| (*h).to_owned()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut w: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(width(c));
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = w[i] - width(c);
                match self.align[i] {
                    Align::Left => {
                        line.push_str(c);
                        line.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(c);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

use Align::{Left as L, Right as R};

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// `1234567` -> `1.23 Mb/s`.
pub fn rate(bps: u64) -> String {
    const UNITS: [(f64, &str); 3] = [(1e9, "Gb/s"), (1e6, "Mb/s"), (1e3, "kb/s")];
    let b = bps as f64;
    for (scale, unit) in UNITS {
        if b >= scale {
            return format!("{:.2} {unit}", b / scale);
        }
    }
    format!("{bps} b/s")
}

/// `status`.
pub fn status(s: &Status) -> String {
    let mut t = Table::new(&[("", L), ("", L)]);
    let rows: [(&str, String); 12] = [
        (
            "version",
            format!("{} (protocol {})", s.version, s.protocol),
        ),
        ("role", s.role.clone()),
        ("node", s.node_name.clone().unwrap_or_else(|| "-".into())),
        ("uptime", uptime(s.uptime_s)),
        ("workers", s.workers.to_string()),
        ("clients", s.clients.to_string()),
        ("paths up", format!("{}/{}", s.paths_up, s.paths)),
        ("rx", format!("{:.0} pkt/s", s.rx_pps)),
        ("tx", format!("{:.0} pkt/s", s.tx_pps)),
        ("rx packets", s.rx_packets.to_string()),
        ("tx packets", s.tx_packets.to_string()),
        ("drops", s.drops.to_string()),
    ];
    for (k, v) in rows {
        t.row(vec![format!("{k}:"), v]);
    }
    // No header line for a key/value list.
    t.render()
        .split_once('\n')
        .map_or(String::new(), |x| x.1.to_owned())
}

fn uptime(s: u64) -> String {
    let (d, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{sec:02}")
    } else {
        format!("{h:02}:{m:02}:{sec:02}")
    }
}

fn paths_up(paths: &[PathInfo]) -> String {
    let up = paths
        .iter()
        .filter(|p| p.state == PathStateName::Active)
        .count();
    format!("{up}/{}", paths.len())
}

/// `clients list`.
pub fn clients_list(clients: &[ClientInfo]) -> String {
    let mut t = Table::new(&[
        ("NAME", L),
        ("ANCHOR", L),
        ("STEERING", L),
        ("PATHS UP", R),
        ("RX PKTS", R),
        ("TX PKTS", R),
        ("DROPS", R),
    ]);
    for c in clients {
        t.row(vec![
            c.name.clone(),
            c.anchor_address.clone(),
            mode_name(c.steering.default).to_owned(),
            paths_up(&c.paths),
            c.counters.rx_packets.to_string(),
            c.counters.tx_packets.to_string(),
            c.counters.drops.total().to_string(),
        ]);
    }
    t.render()
}

/// `clients show`: the client, its steering, paths and counters (drop reasons that are not
/// zero; `counters clients` lists them all).
pub fn client_show(c: &ClientInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "client {} (anchor {})", c.name, c.anchor_address);
    out.push('\n');
    out.push_str(&steering(&c.steering));
    out.push('\n');
    out.push_str(&paths(&c.paths));
    out.push('\n');
    let mut t = Table::new(&[("COUNTER", L), ("VALUE", R)]);
    for (k, v) in c.counters.fields() {
        t.row(vec![k.to_owned(), v.to_string()]);
    }
    for (k, v) in c.counters.sequencing.fields() {
        t.row(vec![format!("seq {k}"), v.to_string()]);
    }
    for (k, v) in &c.counters.drops.0 {
        if *v != 0 {
            t.row(vec![format!("drop {k}"), v.to_string()]);
        }
    }
    out.push_str(&t.render());
    out
}

/// `paths`.
pub fn paths(ps: &[PathInfo]) -> String {
    let mut t = Table::new(&[
        ("CLIENT", L),
        ("ID", R),
        ("NAME", L),
        ("STATE", L),
        ("SRTT MS", R),
        ("RTTVAR MS", R),
        ("MIN RTT MS", R),
        ("LOSS %", R),
        ("TX RATE", R),
        ("RX RATE", R),
        ("LOCAL", L),
        ("REMOTE", L),
        ("ADAPTATION", L),
        ("MTU", R),
        ("WEIGHT", R),
        ("PRIO", R),
        ("SHAPER", R),
    ]);
    for p in ps {
        t.row(vec![
            p.client.clone(),
            p.id.to_string(),
            p.name.clone(),
            p.state.as_str().to_owned(),
            opt_ms(p.srtt_ms),
            format!("{:.2}", p.rttvar_ms),
            opt_ms(p.min_rtt_ms),
            format!("{:.2}", p.loss * 100.0),
            rate(p.tx_rate_bps),
            rate(p.rx_rate_bps),
            p.local.clone().unwrap_or_else(|| "-".into()),
            p.remote.clone().unwrap_or_else(|| "(learned)".into()),
            p.adaptation.clone(),
            p.mtu.to_string(),
            p.weight.to_string(),
            p.priority.to_string(),
            // "~": measured (the path has no rate_mbps); "-": not shaped.
            match (p.shape_rate_bps, p.shape_measured) {
                (None, _) => "-".into(),
                (Some(r), true) => format!("~{}", rate(r)),
                (Some(r), false) => rate(r),
            },
        ]);
    }
    t.render()
}

/// `steering show` / `steering set`.
pub fn steering(s: &SteeringInfo) -> String {
    let mut out = format!(
        "client {}: default steering {}\n",
        s.client,
        mode_name(s.default)
    );
    if !s.traffic_classes.is_empty() {
        let mut t = Table::new(&[("TC", R), ("ANCHOR", R), ("MODE", L), ("DELIVERIES", L)]);
        for tc in &s.traffic_classes {
            t.row(vec![
                tc.tc.to_string(),
                tc.anchor.to_string(),
                mode_name(tc.mode).to_owned(),
                tc.deliveries.as_ref().map_or_else(
                    || "all".to_owned(),
                    |d| {
                        d.iter()
                            .map(|x| x.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                ),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

/// The column heading of a counter row.
pub fn row_label(r: &CounterRow) -> String {
    match (&r.worker, &r.client, &r.path, &r.path_name) {
        (Some(w), _, _, _) => format!("worker {w}"),
        (None, Some(c), Some(_), Some(n)) => format!("{c}/{n}"),
        (None, Some(c), Some(p), None) => format!("{c}/{p}"),
        (None, Some(c), None, _) => c.clone(),
        _ => "?".to_owned(),
    }
}

/// `counters`: one row per counter and drop reason (every reason, zeros included), one column
/// per worker, client or path, and a total column.
pub fn counters(scope: CounterScope, rows: &[CounterRow]) -> String {
    let labels: Vec<String> = rows.iter().map(row_label).collect();
    let mut cols: Vec<(&str, Align)> = vec![("COUNTER", L)];
    cols.extend(labels.iter().map(|l| (l.as_str(), R)));
    cols.push(("TOTAL", R));
    let mut t = Table::new(&cols);
    let mut total = CounterSet::zero();
    for r in rows {
        total.add(&r.counters);
    }
    for (i, (k, v)) in total.fields().iter().enumerate() {
        let mut row = vec![(*k).to_owned()];
        row.extend(rows.iter().map(|r| r.counters.fields()[i].1.to_string()));
        row.push(v.to_string());
        t.row(row);
    }
    if scope != CounterScope::Paths {
        for (i, (k, v)) in total.sequencing.fields().iter().enumerate() {
            let mut row = vec![format!("seq {k}")];
            row.extend(
                rows.iter()
                    .map(|r| r.counters.sequencing.fields()[i].1.to_string()),
            );
            row.push(v.to_string());
            t.row(row);
        }
    }
    for (k, v) in &total.drops.0 {
        let mut row = vec![format!("drop {k}")];
        row.extend(
            rows.iter()
                .map(|r| r.counters.drops.get(k).unwrap_or(0).to_string()),
        );
        row.push(v.to_string());
        t.row(row);
    }
    let mut out = format!("counters per {}\n", scope.as_str().trim_end_matches('s'));
    out.push_str(&t.render());
    out
}

/// `ports` (and `ports --xstats`).
pub fn ports(p: &super::protocol::PortsInfo) -> String {
    let mut t = Table::new(&[
        ("WORKER", L),
        ("SIDE", L),
        ("PORT", L),
        ("RX PKTS", R),
        ("RX BYTES", R),
        ("TX PKTS", R),
        ("TX BYTES", R),
        ("RX DROP", R),
        ("TX DROP", R),
        ("RX ERR", R),
        ("TX ERR", R),
        ("NO BUF", R),
    ]);
    for r in &p.ports {
        t.row(vec![
            r.worker.to_string(),
            r.side.clone(),
            r.name.clone(),
            r.rx_packets.to_string(),
            r.rx_bytes.to_string(),
            r.tx_packets.to_string(),
            r.tx_bytes.to_string(),
            r.rx_dropped.to_string(),
            r.tx_dropped.to_string(),
            r.rx_errors.to_string(),
            r.tx_errors.to_string(),
            r.rx_nobuf.to_string(),
        ]);
    }
    let mut out = t.render();
    if p.devices.is_empty() {
        return out;
    }
    let mut d = Table::new(&[
        ("DEVICE", L),
        ("RX PKTS", R),
        ("RX BYTES", R),
        ("TX PKTS", R),
        ("TX BYTES", R),
        ("RX MISSED", R),
        ("RX ERR", R),
        ("TX ERR", R),
        ("NO MBUF", R),
    ]);
    for r in &p.devices {
        if let Some(e) = &r.error {
            d.row(vec![r.name.clone(), e.clone()]);
            continue;
        }
        d.row(vec![
            r.name.clone(),
            r.rx_packets.to_string(),
            r.rx_bytes.to_string(),
            r.tx_packets.to_string(),
            r.tx_bytes.to_string(),
            r.rx_missed.to_string(),
            r.rx_errors.to_string(),
            r.tx_errors.to_string(),
            r.rx_nobuf.to_string(),
        ]);
    }
    out.push_str("\ndevices\n");
    out.push_str(&d.render());
    for r in p.devices.iter().filter(|r| !r.xstats.is_empty()) {
        out.push_str(&format!("\nxstats {}\n", r.name));
        for (k, v) in &r.xstats {
            out.push_str(&format!("  {k:<40} {v}\n"));
        }
    }
    out
}

/// `latency`.
pub fn latency(ls: &[LatencyInfo]) -> String {
    let mut t = Table::new(&[
        ("METRIC", L),
        ("WORKER", L),
        ("COUNT", R),
        ("MIN US", R),
        ("MEAN US", R),
        ("P50 US", R),
        ("P90 US", R),
        ("P99 US", R),
        ("P99.9 US", R),
        ("MAX US", R),
    ]);
    for l in ls {
        t.row(vec![
            l.metric.clone(),
            l.worker.map_or_else(|| "all".into(), |w| w.to_string()),
            l.count.to_string(),
            format!("{:.1}", l.min_us),
            format!("{:.1}", l.mean_us),
            format!("{:.1}", l.p50_us),
            format!("{:.1}", l.p90_us),
            format!("{:.1}", l.p99_us),
            format!("{:.1}", l.p999_us),
            format!("{:.1}", l.max_us),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::protocol::DropCounts;
    use pipelines::drop::DropReason;

    #[test]
    fn table_columns_align_text_left_numbers_right() {
        let mut t = Table::new(&[("NAME", L), ("N", R)]);
        t.row(vec!["alice".into(), "7".into()]);
        t.row(vec!["bo".into(), "1234".into()]);
        assert_eq!(t.render(), "NAME      N\nalice     7\nbo     1234\n");
    }

    #[test]
    fn rates_use_si_units() {
        assert_eq!(rate(999), "999 b/s");
        assert_eq!(rate(1_500), "1.50 kb/s");
        assert_eq!(rate(12_340_000), "12.34 Mb/s");
        assert_eq!(rate(2_000_000_000), "2.00 Gb/s");
    }

    #[test]
    fn counters_table_lists_every_drop_reason_with_totals() {
        let mut a = [0u64; DropReason::COUNT];
        a[DropReason::NoPath as usize] = 3;
        let row = |w, n| CounterRow {
            worker: Some(w),
            client: None,
            path: None,
            path_name: None,
            counters: CounterSet {
                rx_packets: n,
                drops: DropCounts::from_array(&a),
                ..CounterSet::zero()
            },
        };
        let s = counters(CounterScope::Workers, &[row(0, 10), row(1, 5)]);
        for r in DropReason::ALL {
            assert!(s.contains(&format!("drop {} ", r.as_str())), "{r}");
        }
        let rx = s.lines().find(|l| l.starts_with("rx_packets")).unwrap();
        assert_eq!(
            rx.split_whitespace().collect::<Vec<_>>(),
            ["rx_packets", "10", "5", "15"]
        );
        let np = s.lines().find(|l| l.starts_with("drop no_path")).unwrap();
        assert!(np.ends_with(" 6"), "{np}");
    }

    #[test]
    fn uptime_is_readable() {
        assert_eq!(uptime(59), "00:00:59");
        assert_eq!(uptime(90061), "1d 01:01:01");
    }
}
