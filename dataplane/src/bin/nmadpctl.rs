//! `nmadpctl`: talks to a running N-MADP over its admin socket.
//!
//! Exit status: 0 success, 1 the daemon answered with an error (message on stderr), 2 the
//! socket cannot be reached or the answer cannot be understood (usage errors also exit 2, as
//! with every clap program).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use dataplane::admin::protocol::{
    self, ClientInfo, CounterRow, CounterScope, LatencyInfo, PathInfo, Removed, Request, Status,
};
use dataplane::admin::{render, AdminClient, ClientError, DEFAULT_SOCKET};
use dataplane::config::SteeringMode;
use serde::de::DeserializeOwned;

#[derive(Debug, Parser)]
#[command(
    name = "nmadpctl",
    version,
    about = "Inspect and change a running N-MADP through its admin socket"
)]
struct Cli {
    /// Admin socket [env NMADP_ADMIN_SOCKET; default /run/nmadp/admin.sock]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the answer's data as JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for the daemon.
    #[arg(long, global = true, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Version, role, uptime, workers, clients, paths up, packet rates.
    Status,
    /// List, show, add or remove clients (changes apply live).
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Delivery connections: state, RTT, loss, rates.
    Paths {
        /// Only this client's paths.
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
    },
    /// Show or change a client's steering mode (changes apply live).
    Steering {
        #[command(subcommand)]
        command: SteeringCommand,
    },
    /// Packet, byte and drop counters (every drop reason) per worker, client or path.
    Counters {
        #[arg(value_enum, default_value_t = Scope::Workers)]
        scope: Scope,
        /// Only this client's rows (scopes clients and paths).
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
    },
    /// Latency percentiles in microseconds.
    Latency,
    /// Prometheus text exposition format.
    Metrics,
    /// Per-port rx/tx/dropped/error counters of every worker, and the devices' own counters
    /// (DPDK: rte_eth_stats, with --xstats the extended statistics).
    Ports {
        /// Also the devices' extended statistics.
        #[arg(long)]
        xstats: bool,
    },
    /// Stop the daemon.
    Shutdown,
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// One line per client.
    List,
    /// A client's steering, paths and counters.
    Show { name: String },
    /// Add a client from a file holding one [[client]] table, as in the configuration file
    /// (`-`: standard input).
    Add { file: PathBuf },
    /// Remove a client.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
enum SteeringCommand {
    /// The client's default mode and its traffic classes' modes.
    Show { name: String },
    /// Set the client's default mode, or one traffic class's with --tc.
    Set {
        name: String,
        /// single, active-standby, weighted, delay-aware, duplicate or per-flow
        #[arg(value_parser = protocol::parse_mode)]
        mode: SteeringMode,
        /// Traffic class ID.
        #[arg(long, value_name = "N")]
        tc: Option<u8>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scope {
    Workers,
    Clients,
    Paths,
}

impl From<Scope> for CounterScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Workers => CounterScope::Workers,
            Scope::Clients => CounterScope::Clients,
            Scope::Paths => CounterScope::Paths,
        }
    }
}

/// How a command ended.
enum Failure {
    /// The daemon said no: exit 1.
    Refused(String),
    /// No answer: exit 2.
    Unreachable(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Unreachable(e.to_string())
    }
}

struct Ctl {
    client: AdminClient,
    json: bool,
}

impl Ctl {
    /// Sends `req`, decodes its data as `T`, prints it (JSON, or `human`).
    fn run<T: DeserializeOwned + serde::Serialize>(
        &mut self,
        req: Request,
        human: impl FnOnce(&T) -> String,
    ) -> Result<(), Failure> {
        let data: T = self.client.call(&req)?.map_err(Failure::Refused)?;
        if self.json {
            let s = serde_json::to_string_pretty(&data)
                .map_err(|e| Failure::Unreachable(e.to_string()))?;
            println!("{s}");
        } else {
            print!("{}", human(&data));
        }
        Ok(())
    }
}

fn socket_path(cli: &Cli) -> PathBuf {
    cli.socket
        .clone()
        .or_else(|| {
            std::env::var_os("NMADP_ADMIN_SOCKET")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

fn run(cli: &Cli) -> Result<(), Failure> {
    // Read the file before connecting, so a typo in its name is not reported as a daemon error.
    let add_toml = match &cli.command {
        Command::Clients {
            command: ClientsCommand::Add { file },
        } => Some(read_input(file).map_err(Failure::Refused)?),
        _ => None,
    };
    let path = socket_path(cli);
    let client = AdminClient::connect(&path, Duration::from_secs(cli.timeout.max(1)))?;
    let mut c = Ctl {
        client,
        json: cli.json,
    };
    match &cli.command {
        Command::Status => c.run(Request::Status, |s: &Status| render::status(s)),
        Command::Clients { command } => match command {
            ClientsCommand::List => c.run(Request::ClientsList, |l: &Vec<ClientInfo>| {
                render::clients_list(l)
            }),
            ClientsCommand::Show { name } => c.run(
                Request::ClientsShow {
                    client: name.clone(),
                },
                render::client_show,
            ),
            ClientsCommand::Add { .. } => c.run(
                Request::ClientsAdd {
                    toml: add_toml.unwrap_or_default(),
                },
                |ci: &ClientInfo| {
                    format!("added client {}\n\n{}", ci.name, render::client_show(ci))
                },
            ),
            ClientsCommand::Remove { name } => c.run(
                Request::ClientsRemove {
                    client: name.clone(),
                },
                |r: &Removed| format!("removed client {}\n", r.removed),
            ),
        },
        Command::Paths { client } => c.run(
            Request::PathsList {
                client: client.clone(),
            },
            |p: &Vec<PathInfo>| render::paths(p),
        ),
        Command::Steering { command } => match command {
            SteeringCommand::Show { name } => c.run(
                Request::SteeringShow {
                    client: name.clone(),
                },
                render::steering,
            ),
            SteeringCommand::Set { name, mode, tc } => c.run(
                Request::SteeringSet {
                    client: name.clone(),
                    tc: *tc,
                    mode: *mode,
                },
                render::steering,
            ),
        },
        Command::Counters { scope, client } => {
            let scope = CounterScope::from(*scope);
            c.run(
                Request::Counters {
                    scope,
                    client: client.clone(),
                },
                |rows: &Vec<CounterRow>| render::counters(scope, rows),
            )
        }
        Command::Latency => c.run(Request::Latency, |l: &Vec<LatencyInfo>| render::latency(l)),
        Command::Metrics => c.run(Request::Metrics, |s: &String| s.clone()),
        Command::Ports { xstats } => c.run(Request::Ports { xstats: *xstats }, render::ports),
        Command::Shutdown => c.run(Request::Shutdown, |_: &serde_json::Value| {
            "the daemon is shutting down\n".to_owned()
        }),
    }
}

fn read_input(file: &PathBuf) -> Result<String, String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match run(&cli) {
        Ok(()) => 0,
        Err(Failure::Refused(m)) => {
            eprintln!("nmadpctl: {m}");
            1
        }
        Err(Failure::Unreachable(m)) => {
            eprintln!("nmadpctl: {m}");
            2
        }
    };
    std::process::exit(code);
}
