//! `nmadp decode`: decodes MX PDUs (draft-04 §4.2, §4.4, §5) and prints their layers, for
//! people reading captures. Human-readable by default; with `--json`, one object per PDU with
//! the fields of `WIRE.md`.

pub mod input;
mod model;
mod render;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use pipelines::Direction;

pub use model::{decode_packet, DecodeError, Decoded, Layers, Mode};

/// Exit status for malformed input (and for a capture with at least one malformed PDU).
pub const EXIT_MALFORMED: i32 = 2;

/// Which way the PDU travels (a type-1 control PDU is a REQ downlink and an ACK uplink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    Downlink,
    Uplink,
}

impl From<DirectionArg> for Direction {
    fn from(d: DirectionArg) -> Direction {
        match d {
            DirectionArg::Downlink => Direction::Downlink,
            DirectionArg::Uplink => Direction::Uplink,
        }
    }
}

/// `nmadp decode` arguments.
#[derive(Debug, Args)]
#[command(after_help = "EXAMPLES:
  nmadp decode 4500007a...1190                  one MX PDU, from its IP header
  nmadp decode --json --outer 4500...           from an outer IPv4/UDP header
  nmadp decode --control --direction uplink 0101001100
  xxd -p -c0 pdu.bin | nmadp decode             one hex PDU per line on standard input
  nmadp decode --pcap capture.pcap              every packet; ports and protocols recognised")]
pub struct DecodeArgs {
    /// The PDU in hex (separators and 0x allowed). Without it (and without --pcap), one PDU
    /// per line is read from standard input.
    pub hex: Vec<String>,
    /// Decode every packet of a pcap or pcapng capture (Ethernet, VLAN, Linux cooked, raw IP,
    /// loopback). Tunnel, control and GRE packets are recognised by port and protocol.
    #[arg(long, short = 'r', value_name = "FILE", conflicts_with = "hex")]
    pub pcap: Option<PathBuf>,
    /// Print one JSON object per PDU (fields of WIRE.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Direction of travel.
    #[arg(long, value_enum, default_value = "downlink")]
    pub direction: DirectionArg,
    /// The input is an MX control PDU (draft-04 §5).
    #[arg(long)]
    pub control: bool,
    /// The PDU was sent under UDP-tunnel "MX header optimization": IP header unchanged, trailer
    /// (if any) after the SDUs, concatenated SDUs found from the IP length (draft-04 §4.2.3).
    #[arg(long)]
    pub header_optimization: bool,
    /// The input starts at an outer IP/UDP (or IP/GRE) header.
    #[arg(long)]
    pub outer: bool,
    /// UDP ports of MX data tunnels, for --pcap (WIRE.md reference ports by default).
    #[arg(long = "data-port", value_name = "PORT", default_values_t = [10020u16, 10021])]
    pub data_ports: Vec<u16>,
    /// UDP port of the N-MADP control endpoint, for --pcap.
    #[arg(long = "control-port", value_name = "PORT", default_values_t = [8888u16])]
    pub control_ports: Vec<u16>,
    /// In --pcap mode, also list packets that are not MAMS traffic.
    #[arg(long)]
    pub all: bool,
}

impl DecodeArgs {
    fn mode(&self) -> Mode {
        Mode {
            direction: self.direction.into(),
            control: self.control,
            header_optimization: self.header_optimization,
            outer: self.outer,
            data_ports: self.data_ports.clone(),
            control_ports: self.control_ports.clone(),
            auto: false,
        }
    }
}

/// Runs `nmadp decode`; returns the process exit status.
pub fn run(args: &DecodeArgs) -> i32 {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let code = run_to(args, &mut out, &mut err);
    let _ = out.flush();
    code
}

/// [`run`] with explicit output streams (for tests).
pub fn run_to(args: &DecodeArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if let Some(path) = &args.pcap {
        return run_capture(args, path, out, err);
    }
    let pdus = if args.hex.is_empty() {
        match input::read_stdin_hex(std::io::stdin().lock()) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(err, "nmadp decode: {e}");
                return EXIT_MALFORMED;
            }
        }
    } else {
        match input::parse_hex(&args.hex.join("")) {
            Ok(bytes) => vec![input::InputPdu {
                number: 1,
                timestamp: None,
                bytes,
            }],
            Err(e) => {
                let _ = writeln!(err, "nmadp decode: {e}");
                return EXIT_MALFORMED;
            }
        }
    };
    if pdus.is_empty() {
        let _ = writeln!(
            err,
            "nmadp decode: no input (give hex, --pcap FILE, or hex lines on standard input)"
        );
        return EXIT_MALFORMED;
    }
    let mode = args.mode();
    let numbered = pdus.len() > 1;
    let mut status = 0;
    for pdu in &pdus {
        match decode_packet(&pdu.bytes, &mode) {
            Ok(d) => {
                let number = numbered.then_some(pdu.number);
                if args.json {
                    let _ = writeln!(out, "{}", render::json(&d, number, None));
                } else {
                    let _ = write!(out, "{}", render::text(&d, number, None, pdu.bytes.len()));
                }
            }
            Err(e) => {
                status = EXIT_MALFORMED;
                let at = if numbered {
                    format!(" (line {})", pdu.number)
                } else {
                    String::new()
                };
                let _ = write!(err, "{}", render::error(&e, &pdu.bytes, &at));
            }
        }
    }
    status
}

fn run_capture(
    args: &DecodeArgs,
    path: &std::path::Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let (pdus, skipped) = match input::read_capture(path) {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(err, "nmadp decode: {e}");
            return EXIT_MALFORMED;
        }
    };
    let mut mode = args.mode();
    mode.auto = true;
    let (mut decoded, mut malformed, mut other) = (0usize, 0usize, 0usize);
    for pdu in &pdus {
        match decode_packet(&pdu.bytes, &mode) {
            Ok(d) if d.layers == Layers::NotMams => {
                other += 1;
                if args.all && !args.json {
                    let _ = writeln!(
                        out,
                        "#{} {}",
                        pdu.number,
                        d.note.as_deref().unwrap_or("not MAMS traffic")
                    );
                }
            }
            Ok(d) => {
                decoded += 1;
                if args.json {
                    let _ = writeln!(out, "{}", render::json(&d, Some(pdu.number), pdu.timestamp));
                } else {
                    let _ = write!(
                        out,
                        "{}",
                        render::text(&d, Some(pdu.number), pdu.timestamp, pdu.bytes.len())
                    );
                }
            }
            Err(e) => {
                malformed += 1;
                let at = format!(" (packet {})", pdu.number);
                if args.json {
                    let _ = writeln!(out, "{}", render::json_error(&e, pdu.number));
                }
                let _ = write!(err, "{}", render::error(&e, &pdu.bytes, &at));
            }
        }
    }
    for s in &skipped {
        other += 1;
        if args.all && !args.json {
            let _ = writeln!(out, "#{} skipped: {}", s.number, s.why);
        }
    }
    let _ = writeln!(
        err,
        "{}: {} packets: {} MAMS PDUs decoded, {} malformed, {} other",
        path.display(),
        pdus.len() + skipped.len(),
        decoded,
        malformed,
        other
    );
    if malformed > 0 {
        EXIT_MALFORMED
    } else {
        0
    }
}
