//! `nmadp`: the N-MADP daemon and its tools.

use clap::{Parser, Subcommand};
use dataplane::decode::{self, DecodeArgs};

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
}

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Decode(args) => decode::run(args),
    };
    std::process::exit(code);
}
