//! `nmadp`: the N-MADP daemon and its tools.

use clap::{Parser, Subcommand};
use dataplane::decode::{self, DecodeArgs};
use dataplane::demo::{self, DemoArgs};

#[derive(Debug, Parser)]
#[command(
    name = "nmadp",
    version,
    about = "Network-side Multi-Access Data Proxy (MAMS user plane)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode MX PDUs (hex, standard input or a pcap capture) and print their layers.
    Decode(DecodeArgs),
    /// Run an N-MADP and a C-MADP in this process over emulated "wifi" and "lte" links, with
    /// live progress and a summary (no root, no NIC, no configuration).
    Demo(DemoArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Decode(args) => decode::run(args),
        Command::Demo(args) => demo::run(args),
    };
    std::process::exit(code);
}
