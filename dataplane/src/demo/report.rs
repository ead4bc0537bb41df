//! Live progress lines and the final summary (table or JSON) of `nmadp demo`.

use pipelines::sim::link::LinkStats;
use serde_json::{json, Value};

use super::link_pump::{LinkPump, PumpStats};
use super::node::{NodeView, PathView};
use super::traffic::{Flow, FlowStats, SideStats};
use super::DemoArgs;

/// One progress sample (cumulative counters at time `t_ns` from the start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub t_ns: u64,
    /// Per path: the link pump's counters.
    pub links: Vec<(String, PumpStats)>,
    /// Per path, from the N-MADP: RTT, loss, state.
    pub paths: Vec<PathView>,
    /// Application deliveries (packets, bytes) per direction, and problems seen.
    pub down_delivered: (u64, u64),
    pub up_delivered: (u64, u64),
    pub out_of_order: u64,
    pub duplicates: u64,
    pub n_reorder_depth: u64,
    pub c_reorder_depth: u64,
}

fn sum_rx(s: &SideStats) -> (u64, u64) {
    s.rx.iter()
        .fold((0, 0), |(p, b), f| (p + f.delivered, b + f.bytes))
}

impl Sample {
    pub(super) fn take(
        t_ns: u64,
        pumps: &[LinkPump],
        internet: &SideStats,
        client: &SideStats,
        n: &NodeView,
        c: &NodeView,
    ) -> Sample {
        let bad = |s: &SideStats| {
            s.rx.iter()
                .fold((0, 0), |(o, d), f| (o + f.out_of_order, d + f.duplicates))
        };
        let (o1, d1) = bad(internet);
        let (o2, d2) = bad(client);
        Sample {
            t_ns,
            links: pumps
                .iter()
                .map(|p| (p.name().to_string(), p.stats()))
                .collect(),
            paths: n.paths.clone(),
            down_delivered: sum_rx(client),
            up_delivered: sum_rx(internet),
            out_of_order: o1 + o2,
            duplicates: d1 + d2,
            n_reorder_depth: n.reorder_depth,
            c_reorder_depth: c.reorder_depth,
        }
    }
}

fn mbit(bytes: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 * 1e3 / ns as f64
    }
}

fn ms(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_string(), |v| format!("{:.0}ms", v as f64 / 1e6))
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

/// One progress line: per path rate each direction, RTT, probe loss and state; reorder depth
/// in each node; application delivery rate and problems.
pub fn progress_line(prev: Option<&Sample>, s: &Sample, tty: bool) -> String {
    let dt = s.t_ns - prev.map_or(0, |p| p.t_ns);
    let mut line = format!("{:5.1}s", s.t_ns as f64 / 1e9);
    for (i, (name, l)) in s.links.iter().enumerate() {
        let (pd, pu) = prev.and_then(|p| p.links.get(i)).map_or((0, 0), |(_, x)| {
            (x.down.bytes_delivered, x.up.bytes_delivered)
        });
        let p = s.paths.get(i);
        line += &format!(
            " | {name:<4} v{:5.1} ^{:5.1} Mb/s rtt {:>5} loss {:>5} {}",
            mbit(l.down.bytes_delivered - pd, dt),
            mbit(l.up.bytes_delivered - pu, dt),
            ms(p.and_then(|p| p.rtt_ns)),
            pct(p.and_then(|p| p.loss)),
            p.map_or("?", |p| p.state.as_str()),
        );
        if !l.is_up {
            line += " [link cut]";
        }
    }
    let (dd, ud) = prev.map_or((0, 0), |p| (p.down_delivered.1, p.up_delivered.1));
    line += &format!(
        " | reorder depth N{:>4} C{:>4} | app v{:5.1} ^{:5.1} Mb/s ooo {} dup {}",
        s.n_reorder_depth,
        s.c_reorder_depth,
        mbit(s.down_delivered.1 - dd, dt),
        mbit(s.up_delivered.1 - ud, dt),
        s.out_of_order,
        s.duplicates,
    );
    if tty && (s.out_of_order > 0 || s.duplicates > 0) {
        line += "  <-- !";
    }
    line
}

/// One direction's totals as the application saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirTotals {
    pub offered: u64,
    pub offered_bytes: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicates: u64,
    pub corrupt: u64,
    pub max_gap_ns: u64,
    /// Per flow: (label, offered, delivered, reordered, duplicates).
    pub flows: Vec<(String, FlowStats)>,
}

/// One path's totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathTotals {
    pub name: String,
    pub down: LinkStats,
    pub up: LinkStats,
    pub n: PathView,
    pub c: PathView,
    pub link_up: bool,
}

/// Everything the summary shows.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub args: Option<DemoArgs>,
    pub flows: Vec<Flow>,
    pub nodes: [String; 2],
    pub samples: Vec<Sample>,
    pub cut_at_ns: Option<u64>,
    /// Time from start-up until every path was up (traffic starts then).
    pub warmup_ns: u64,
    pub sending_ns: u64,
    pub elapsed_ns: u64,
    pub paths: Vec<PathTotals>,
    pub down: DirTotals,
    pub up: DirTotals,
    pub n_drops: Vec<(String, u64)>,
    pub c_drops: Vec<(String, u64)>,
    pub n_view: NodeView,
    pub c_view: NodeView,
    pub unroutable: u64,
    pub anchor_port_drops: u64,
}

fn totals(sent: &SideStats, recv: &SideStats, flows: &[Flow]) -> DirTotals {
    let mut t = DirTotals::default();
    for s in &sent.tx {
        t.offered += s.sent;
        t.offered_bytes += s.sent_bytes;
        let r = recv
            .rx
            .iter()
            .find(|r| r.id == s.id)
            .cloned()
            .unwrap_or_default();
        t.delivered += r.delivered;
        t.delivered_bytes += r.bytes;
        t.reordered += r.out_of_order;
        t.duplicates += r.duplicates;
        t.corrupt += r.corrupt;
        t.max_gap_ns = t.max_gap_ns.max(r.max_gap_ns);
        let label = flows
            .iter()
            .find(|f| f.id == s.id)
            .map_or_else(|| format!("#{}", s.id), |f| f.label());
        let mut f = r;
        f.sent = s.sent;
        f.sent_bytes = s.sent_bytes;
        t.flows.push((label, f));
    }
    t.lost = t.offered.saturating_sub(t.delivered);
    t
}

impl Report {
    pub(super) fn new(args: &DemoArgs, flows: &[Flow], nodes: [String; 2]) -> Report {
        Report {
            args: Some(args.clone()),
            flows: flows.to_vec(),
            nodes,
            ..Report::default()
        }
    }

    /// Whether any node ran on the fallback loop instead of the runtime.
    pub fn fallback(&self) -> bool {
        self.nodes.iter().any(|n| n.contains("FALLBACK"))
    }

    /// The lines printed before the run.
    pub fn banner(&self) -> String {
        let Some(a) = &self.args else {
            return String::new();
        };
        let mut s = format!(
            "nmadp demo: N-MADP + C-MADP over emulated links, {:.1} s, steering {}\n  wifi {} Mbit/s {} ms loss {}% | lte {} Mbit/s {} ms loss {}% | offered v{} ^{} Mbit/s, {}-byte packets{}\n",
            a.duration,
            a.steering,
            a.wifi_rate,
            a.wifi_delay,
            a.wifi_loss,
            a.lte_rate,
            a.lte_delay,
            a.lte_loss,
            a.downlink_rate,
            a.uplink_rate,
            a.packet_size,
            a.cut_wifi_at
                .map_or_else(String::new, |c| format!(", wifi cut at {c} s")),
        );
        for n in &self.nodes {
            s += &format!("  {n}\n");
        }
        s.pop();
        s
    }

    pub(super) fn finish(
        &mut self,
        pumps: &[LinkPump],
        internet: &SideStats,
        client: &SideStats,
        n: &NodeView,
        c: &NodeView,
        unroutable: u64,
    ) {
        self.down = totals(internet, client, &self.flows);
        self.up = totals(client, internet, &self.flows);
        self.paths = pumps
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let s = p.stats();
                PathTotals {
                    name: p.name().to_string(),
                    down: s.down,
                    up: s.up,
                    n: n.paths.get(i).cloned().unwrap_or_default(),
                    c: c.paths.get(i).cloned().unwrap_or_default(),
                    link_up: s.is_up,
                }
            })
            .collect();
        self.n_drops = n.drops.clone();
        self.c_drops = c.drops.clone();
        self.n_view = n.clone();
        self.c_view = c.clone();
        self.unroutable = unroutable;
        self.anchor_port_drops = internet.port.tx_dropped + client.port.tx_dropped;
        if self.sending_ns == 0 {
            self.sending_ns = self.elapsed_ns;
        }
    }

    /// The application saw no reordering and no duplicates.
    pub fn application_ok(&self) -> bool {
        self.down.reordered + self.up.reordered + self.down.duplicates + self.up.duplicates == 0
    }

    fn path_rtt(p: &PathTotals) -> Option<u64> {
        p.n.rtt_ns
    }

    /// The human-readable summary table.
    pub fn table(&self) -> String {
        let secs = self.sending_ns;
        let mut s = String::new();
        s += &format!(
            "\nSummary ({:.1} s of traffic, {:.1} s total){}\n",
            self.sending_ns as f64 / 1e9,
            self.elapsed_ns as f64 / 1e9,
            if self.fallback() {
                "  [FALLBACK engine loop, not the runtime]"
            } else {
                ""
            }
        );
        s += "path  dir   packets   Mbit/s  RTT      loss   state         link drops (loss/queue/down)\n";
        for p in &self.paths {
            for (dir, l) in [("down", &p.down), ("up", &p.up)] {
                s += &format!(
                    "{:<5} {:<4} {:>9} {:>8.1}  {:<8} {:<6} {:<13} {}/{}/{}\n",
                    p.name,
                    dir,
                    l.delivered,
                    mbit(l.bytes_delivered, secs),
                    ms(Self::path_rtt(p)),
                    pct(p.n.loss),
                    if p.link_up {
                        p.n.state.clone()
                    } else {
                        format!("{} (cut)", p.n.state)
                    },
                    l.dropped_loss,
                    l.dropped_queue,
                    l.dropped_down,
                );
            }
        }
        s += "\ndirection  offered  delivered  lost  reordered-at-app  duplicates  corrupt  Mbit/s  max gap\n";
        for (name, d) in [("downlink", &self.down), ("uplink", &self.up)] {
            s += &format!(
                "{:<9} {:>8} {:>10} {:>5} {:>17} {:>11} {:>8} {:>7.1}  {}\n",
                name,
                d.offered,
                d.delivered,
                d.lost,
                d.reordered,
                d.duplicates,
                d.corrupt,
                mbit(d.delivered_bytes, secs),
                ms(Some(d.max_gap_ns)),
            );
        }
        s += "\nflows:";
        for (name, d) in [("v", &self.down), ("^", &self.up)] {
            for (label, f) in &d.flows {
                s += &format!(
                    " {name}{label} {}/{} ooo {} dup {};",
                    f.delivered, f.sent, f.out_of_order, f.duplicates
                );
            }
        }
        s += "\n";
        s += &format!(
            "reorder buffers: N-MADP max depth {} ({} held back and released in order, {} gaps skipped); C-MADP max depth {} ({} held, {} gaps)\n",
            self.n_view.max_reorder_depth,
            self.n_view.reordered,
            self.n_view.gaps_skipped,
            self.c_view.max_reorder_depth,
            self.c_view.reordered,
            self.c_view.gaps_skipped,
        );
        let drops = |d: &[(String, u64)]| {
            if d.is_empty() {
                "none".to_string()
            } else {
                d.iter()
                    .map(|(r, n)| format!("{r}={n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        s += &format!(
            "engine drops: N-MADP {}; C-MADP {}\n",
            drops(&self.n_drops),
            drops(&self.c_drops)
        );
        if self.unroutable + self.anchor_port_drops > 0 {
            s += &format!(
                "harness drops: switch unroutable {}, anchor ring full {}\n",
                self.unroutable, self.anchor_port_drops
            );
        }
        let both = self.paths.iter().all(|p| p.down.delivered > 0);
        s += &format!(
            "result: {} (application saw {} reordered, {} duplicates){}\n",
            if self.application_ok() { "OK" } else { "FAIL" },
            self.down.reordered + self.up.reordered,
            self.down.duplicates + self.up.duplicates,
            if both {
                "; both paths carried traffic"
            } else {
                "; NOT every path carried traffic"
            }
        );
        s
    }

    /// The summary as JSON.
    pub fn to_json(&self) -> Value {
        let secs = self.sending_ns;
        let dir = |d: &DirTotals| {
            json!({
                "offered": d.offered,
                "offered_bytes": d.offered_bytes,
                "delivered": d.delivered,
                "delivered_bytes": d.delivered_bytes,
                "delivered_mbps": mbit(d.delivered_bytes, secs),
                "lost": d.lost,
                "reordered_at_application": d.reordered,
                "duplicates": d.duplicates,
                "corrupt": d.corrupt,
                "max_gap_ms": d.max_gap_ns as f64 / 1e6,
                "flows": d.flows.iter().map(|(l, f)| json!({
                    "flow": l, "sent": f.sent, "delivered": f.delivered,
                    "reordered": f.out_of_order, "duplicates": f.duplicates,
                })).collect::<Vec<_>>(),
            })
        };
        let link = |l: &LinkStats| {
            json!({
                "packets": l.delivered,
                "bytes": l.bytes_delivered,
                "mbps": mbit(l.bytes_delivered, secs),
                "sent": l.sent,
                "dropped_loss": l.dropped_loss,
                "dropped_queue": l.dropped_queue,
                "dropped_down": l.dropped_down,
            })
        };
        let drops = |d: &[(String, u64)]| {
            d.iter()
                .map(|(r, n)| (r.clone(), json!(n)))
                .collect::<serde_json::Map<_, _>>()
        };
        let view = |v: &NodeView| {
            json!({
                "max_reorder_depth": v.max_reorder_depth,
                "reordered_repaired": v.reordered,
                "gaps_skipped": v.gaps_skipped,
                "anchor_rx": v.anchor_rx,
                "anchor_tx": v.anchor_tx,
                "drops": drops(&v.drops),
                "details": v.details,
            })
        };
        json!({
            "runtime": !self.fallback(),
            "nodes": self.nodes,
            "args": self.args.as_ref().map(|a| json!({
                "duration": a.duration, "steering": a.steering,
                "wifi": {"rate_mbps": a.wifi_rate, "delay_ms": a.wifi_delay, "loss_pct": a.wifi_loss},
                "lte": {"rate_mbps": a.lte_rate, "delay_ms": a.lte_delay, "loss_pct": a.lte_loss},
                "downlink_mbps": a.downlink_rate, "uplink_mbps": a.uplink_rate,
                "packet_size": a.packet_size, "seed": a.seed, "cut_wifi_at": a.cut_wifi_at,
            })),
            "sending_s": self.sending_ns as f64 / 1e9,
            "elapsed_s": self.elapsed_ns as f64 / 1e9,
            "warmup_s": self.warmup_ns as f64 / 1e9,
            "cut_at_s": self.cut_at_ns.map(|t| t as f64 / 1e9),
            "paths": self.paths.iter().map(|p| json!({
                "name": p.name,
                "link_up": p.link_up,
                "state": p.n.state,
                "rtt_ms": p.n.rtt_ns.map(|v| v as f64 / 1e6),
                "probe_loss": p.n.loss,
                "down": link(&p.down),
                "up": link(&p.up),
                "nmadp_tx_pdus": p.n.tx_pdus,
                "cmadp_tx_pdus": p.c.tx_pdus,
            })).collect::<Vec<_>>(),
            "downlink": dir(&self.down),
            "uplink": dir(&self.up),
            "nmadp": view(&self.n_view),
            "cmadp": view(&self.c_view),
            "harness": {"switch_unroutable": self.unroutable, "anchor_ring_full": self.anchor_port_drops},
            "timeline": self.samples.iter().map(|s| json!({
                "t_s": s.t_ns as f64 / 1e9,
                "down_delivered": s.down_delivered.0,
                "up_delivered": s.up_delivered.0,
                "links": s.links.iter().map(|(n, l)| json!({
                    "name": n, "up": l.is_up, "down_packets": l.down.delivered, "up_packets": l.up.delivered,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "application_ok": self.application_ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_ok_fails_on_any_reordering_or_duplicate() {
        let mut r = Report::default();
        assert!(r.application_ok());
        r.up.reordered = 1;
        assert!(!r.application_ok());
        r.up.reordered = 0;
        r.down.duplicates = 2;
        assert!(!r.application_ok());
    }

    #[test]
    fn mbit_converts_bytes_over_ns() {
        assert_eq!(mbit(1_250_000, 1_000_000_000), 10.0);
        assert_eq!(mbit(5, 0), 0.0);
    }
}
