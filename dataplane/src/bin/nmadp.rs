//! `nmadp`: the N-MADP daemon and its tools.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use dataplane::decode::{self, DecodeArgs};
use dataplane::runtime::daemon;

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

// Keep one variant per subcommand and one arm in `main`: adding a subcommand touches two
// places.
#[derive(Debug, Subcommand)]
enum Command {
    /// Decode MX PDUs (hex, standard input or a pcap capture) and print their layers.
    Decode(DecodeArgs),
    /// Run the N-MADP daemon until SIGINT/SIGTERM (or `nmadpctl shutdown`).
    Run(RunArgs),
    /// Validate a configuration file and print a summary (exit 1 with FILE:LINE errors).
    CheckConfig(CheckConfigArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Configuration file (TOML, see deploy/examples/nmadp.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Poll the ports without ever sleeping (dedicated cores); by default an idle worker
    /// sleeps 0.5 ms after a few hundred empty iterations.
    #[arg(long)]
    busy_poll: bool,
    /// Do not open the admin socket.
    #[arg(long)]
    no_admin: bool,
    /// Admin socket path (default: node.admin_socket).
    #[arg(long)]
    admin_socket: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct CheckConfigArgs {
    /// Configuration file.
    file: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Decode(args) => decode::run(args),
        Command::Run(a) => daemon::run(
            &a.config,
            None,
            &daemon::RunOptions {
                busy_poll: a.busy_poll,
                no_admin: a.no_admin,
                admin_socket: a.admin_socket.clone(),
            },
        ),
        Command::CheckConfig(a) => match daemon::check_config(&a.file) {
            Ok(summary) => {
                print!("{summary}");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
    };
    std::process::exit(code);
}
