//! `cmadp`: the client-side Multi-Access Data Proxy (C-MADP). A TUN device carries the
//! client's anchor address; one UDP socket per delivery connection, bound to its access
//! interface, carries the MX PDUs to and from the N-MADP. SIGINT/SIGTERM stop it cleanly.

use std::path::PathBuf;

use clap::Parser;
use dataplane::config::Role;
use dataplane::runtime::daemon;

#[derive(Debug, Parser)]
#[command(
    name = "cmadp",
    version,
    about = "Client-side Multi-Access Data Proxy (MAMS user plane)"
)]
struct Cli {
    /// Configuration file (TOML, see deploy/examples/cmadp.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Never sleep when idle.
    #[arg(long)]
    busy_poll: bool,
    /// Do not open the admin socket.
    #[arg(long)]
    no_admin: bool,
    /// Admin socket path (default: node.admin_socket).
    #[arg(long)]
    admin_socket: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let code = daemon::run(
        &cli.config,
        Some(Role::CMadp),
        &daemon::RunOptions {
            busy_poll: cli.busy_poll,
            no_admin: cli.no_admin,
            admin_socket: cli.admin_socket,
        },
    );
    std::process::exit(code);
}
