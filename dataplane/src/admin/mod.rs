//! The admin socket: a Unix stream socket (mode 0600) speaking JSON lines ([`protocol`]), the
//! server that runs it off the fast path ([`server`]), a client ([`client`], used by
//! `nmadpctl`), human tables ([`render`]) and Prometheus text ([`metrics`]).
//!
//! The daemon implements [`AdminBackend`]; the server only parses, dispatches and encodes, so
//! every command's meaning (and applying changes live) is the backend's.

pub mod client;
pub mod metrics;
pub mod protocol;
pub mod render;
pub mod server;

use protocol::{
    ClientInfo, CounterRow, CounterScope, LatencyInfo, PathInfo, PortsInfo, Removed, Request,
    Response, Status, SteeringInfo,
};

use crate::config::SteeringMode;

pub use client::{AdminClient, ClientError};
pub use server::{AdminServer, ServerError};

/// Default socket of an N-MADP (also the configuration default of `node.admin_socket`).
pub const DEFAULT_SOCKET: &str = "/run/nmadp/admin.sock";

/// What the daemon offers the admin socket: one method per command. Methods run on the admin
/// server's connection threads (never a worker), possibly several at once; an `Err` becomes
/// `{"ok":false,"error":...}` with the message as given, so it should name what was wrong
/// (`no client named "bob"`).
pub trait AdminBackend: Send + Sync {
    /// `status`
    fn status(&self) -> Result<Status, String>;
    /// `clients.list`
    fn clients_list(&self) -> Result<Vec<ClientInfo>, String>;
    /// `clients.show`
    fn clients_show(&self, client: &str) -> Result<ClientInfo, String>;
    /// `clients.add`: `toml` is one `[[client]]` table in configuration-file syntax; validate
    /// it with [`crate::config::Config::parse_client`] against the running configuration.
    fn clients_add(&self, toml: &str) -> Result<ClientInfo, String>;
    /// `clients.remove`
    fn clients_remove(&self, client: &str) -> Result<(), String>;
    /// `paths.list`: every client's paths, or `client`'s.
    fn paths_list(&self, client: Option<&str>) -> Result<Vec<PathInfo>, String>;
    /// `steering.show`
    fn steering_show(&self, client: &str) -> Result<SteeringInfo, String>;
    /// `steering.set`: the client's default mode (`tc` `None`) or one traffic class's; returns
    /// the steering after the change.
    fn steering_set(
        &self,
        client: &str,
        tc: Option<u8>,
        mode: SteeringMode,
    ) -> Result<SteeringInfo, String>;
    /// `counters`: one row per worker, client or path (of `client` only, if given). Every row's
    /// drop counters must carry every `DropReason` ([`protocol::DropCounts::from_array`]).
    fn counters(
        &self,
        scope: CounterScope,
        client: Option<&str>,
    ) -> Result<Vec<CounterRow>, String>;
    /// `latency`: build with [`LatencyInfo::from_histogram`].
    fn latency(&self) -> Result<Vec<LatencyInfo>, String>;
    /// `metrics`: Prometheus text. The default renders status, counters of every scope, paths
    /// and latency with [`metrics::prometheus`].
    fn metrics(&self) -> Result<String, String> {
        metrics::prometheus_from(self)
    }
    /// `ports`: every port's counters per worker and the devices' own (with extended
    /// statistics when `xstats`). The default answers that this backend has none.
    fn ports(&self, _xstats: bool) -> Result<PortsInfo, String> {
        Err("port statistics are not available from this daemon".into())
    }
    /// `shutdown`: ask the daemon to stop; it is answered before the daemon stops. Must not
    /// wait for [`AdminServer::shutdown`] (it runs on one of the server's threads): signal the
    /// main thread instead.
    fn shutdown(&self) -> Result<(), String>;
}

/// Runs one request against `backend`. Never panics on a backend error; a panicking backend
/// is caught by the server.
pub fn dispatch(backend: &dyn AdminBackend, req: &Request) -> Response {
    fn enc<T: serde::Serialize>(r: Result<T, String>) -> Response {
        match r {
            Ok(v) => match serde_json::to_value(v) {
                Ok(v) => Response::ok(v),
                Err(e) => Response::err(format!("cannot encode response: {e}")),
            },
            Err(e) => Response::err(e),
        }
    }
    match req {
        Request::Status => enc(backend.status()),
        Request::ClientsList => enc(backend.clients_list()),
        Request::ClientsShow { client } => enc(backend.clients_show(client)),
        Request::ClientsAdd { toml } => enc(backend.clients_add(toml)),
        Request::ClientsRemove { client } => {
            enc(backend.clients_remove(client).map(|()| Removed {
                removed: client.clone(),
            }))
        }
        Request::PathsList { client } => enc(backend.paths_list(client.as_deref())),
        Request::SteeringShow { client } => enc(backend.steering_show(client)),
        Request::SteeringSet { client, tc, mode } => enc(backend.steering_set(client, *tc, *mode)),
        Request::Counters { scope, client } => enc(backend.counters(*scope, client.as_deref())),
        Request::Latency => enc(backend.latency()),
        Request::Metrics => enc(backend.metrics()),
        Request::Ports { xstats } => enc(backend.ports(*xstats)),
        Request::Shutdown => enc(backend.shutdown()),
    }
}
