//! The admin socket server: one acceptor thread, one thread per connection (at most
//! [`ServerOptions::max_clients`] at once), JSON lines in and out. Runs off the fast path; the
//! only thing it shares with the daemon is the [`AdminBackend`].
//!
//! Binding never steals a live socket and never exposes one with a loose mode: the socket is
//! bound under a temporary name in the target directory, made 0600, and only then renamed over
//! the final path (which atomically replaces a stale socket file), so no client can connect
//! before the mode is set.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::protocol::{Request, Response, MAX_LINE};
use super::{dispatch, AdminBackend};

/// Tunables of the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Connections served at once; more are answered with an error and closed.
    pub max_clients: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Longest request line, newline excluded.
    pub max_line: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_clients: 16,
            idle_timeout: Duration::from_secs(300),
            max_line: MAX_LINE,
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum ServerError {
    /// Another process answers on the socket.
    InUse(PathBuf),
    /// Something other than a socket is at the path.
    NotASocket(PathBuf),
    /// A system call failed.
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::InUse(p) => write!(
                f,
                "admin socket {} is in use by another process (is a daemon already running?)",
                p.display()
            ),
            ServerError::NotASocket(p) => write!(
                f,
                "{} exists and is not a socket; refusing to replace it",
                p.display()
            ),
            ServerError::Io { path, what, source } => {
                write!(f, "admin socket {}: {what}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A running admin server. [`AdminServer::shutdown`] (or dropping it) stops it and removes the
/// socket file.
pub struct AdminServer {
    path: PathBuf,
    /// (device, inode) of our socket file, so that stopping never removes a successor's.
    ident: (u64, u64),
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

/// How long the acceptor and connection threads sleep between looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// How long [`AdminServer::shutdown`] waits for connection threads to finish.
const DRAIN: Duration = Duration::from_secs(2);

impl AdminServer {
    /// Binds `path` with default options and starts serving `backend`.
    pub fn bind(
        path: impl AsRef<Path>,
        backend: Arc<dyn AdminBackend>,
    ) -> Result<AdminServer, ServerError> {
        Self::bind_with(path, backend, ServerOptions::default())
    }

    /// Binds `path` and starts serving `backend`.
    pub fn bind_with(
        path: impl AsRef<Path>,
        backend: Arc<dyn AdminBackend>,
        opts: ServerOptions,
    ) -> Result<AdminServer, ServerError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| ServerError::Io { path, what, source }
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Directories we create are private; an existing one keeps its mode (the operator's).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(io_err("cannot create directory", &parent))?;
        check_not_live(&path)?;
        let file_name = path
            .file_name()
            .ok_or_else(|| ServerError::Io {
                path: path.clone(),
                what: "no file name",
                source: io::ErrorKind::InvalidInput.into(),
            })?
            .to_string_lossy()
            .into_owned();
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = parent.join(format!(
            ".{file_name}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(io_err("cannot bind", &tmp))?;
        let setup = (|| {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .map_err(io_err("cannot set mode 0600", &tmp))?;
            // Replaces a stale socket file atomically (check_not_live found no one listening).
            std::fs::rename(&tmp, &path).map_err(io_err("cannot rename into place", &path))?;
            let md = std::fs::symlink_metadata(&path).map_err(io_err("cannot stat", &path))?;
            listener
                .set_nonblocking(true)
                .map_err(io_err("cannot set non-blocking", &path))?;
            Ok((md.dev(), md.ino()))
        })();
        let ident = match setup {
            Ok(i) => i,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (stop, active) = (stop.clone(), active.clone());
            std::thread::Builder::new()
                .name("admin-accept".into())
                .spawn(move || accept_loop(listener, backend, opts, stop, active))
                .map_err(io_err("cannot start thread", &path))?
        };
        Ok(AdminServer {
            path,
            ident,
            stop,
            active,
            acceptor: Some(acceptor),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether the server has been asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Stops accepting, removes the socket file (if it is still ours) and waits up to 2 s for
    /// open connections to close (they notice within 100 ms). Do not call it from an
    /// [`AdminBackend`] method: those run on connection threads.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        if let Ok(md) = std::fs::symlink_metadata(&self.path) {
            if (md.dev(), md.ino()) == self.ident {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        let deadline = Instant::now() + DRAIN;
        while self.active.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.stop_now();
        }
    }
}

/// Fails if `path` is something other than a socket, or a socket someone answers on.
fn check_not_live(path: &Path) -> Result<(), ServerError> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServerError::Io {
                path: path.into(),
                what: "cannot stat",
                source,
            })
        }
    };
    if !md.file_type().is_socket() {
        return Err(ServerError::NotASocket(path.into()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ServerError::InUse(path.into())),
        // Nobody listens: a stale file from a crashed daemon; it will be replaced.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(source) => Err(ServerError::Io {
            path: path.into(),
            what: "cannot check whether the existing socket is live",
            source,
        }),
    }
}

/// Waits up to `timeout` for `fd` to become readable.
fn wait_readable(fd: i32, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `p` is a valid pollfd for the duration of the call; nfds is 1.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0
}

/// Decrements the active-connection count when a connection thread ends (even by panic).
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn accept_loop(
    listener: UnixListener,
    backend: Arc<dyn AdminBackend>,
    opts: ServerOptions,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
) {
    while !stop.load(Ordering::Relaxed) {
        if !wait_readable(listener.as_raw_fd(), TICK) {
            continue;
        }
        loop {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EMFILE and friends: back off rather than spin.
                Err(_) => {
                    std::thread::sleep(TICK);
                    break;
                }
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            if active.fetch_add(1, Ordering::Relaxed) >= opts.max_clients {
                active.fetch_sub(1, Ordering::Relaxed);
                let msg = format!(
                    "too many admin connections (at most {} at once); try again",
                    opts.max_clients
                );
                let _ = (&stream).write_all(Response::err(msg).to_line().as_bytes());
                continue;
            }
            let guard = ActiveGuard(active.clone());
            let (backend, opts, stop) = (backend.clone(), opts.clone(), stop.clone());
            let spawned = std::thread::Builder::new()
                .name("admin-conn".into())
                .spawn(move || {
                    let _guard = guard;
                    serve(stream, &*backend, &opts, &stop);
                });
            // On failure the closure (and with it the guard and the stream) is dropped.
            drop(spawned);
        }
    }
}

/// Serves one connection until EOF, an I/O error, the idle timeout or stop.
fn serve(stream: UnixStream, backend: &dyn AdminBackend, opts: &ServerOptions, stop: &AtomicBool) {
    if stream.set_read_timeout(Some(TICK)).is_err() {
        return;
    }
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let mut line: Vec<u8> = Vec::new();
    let mut overlong = false;
    let mut last_input = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let (used, complete) = match reader.fill_buf() {
            Ok([]) => {
                // EOF: a last request without its newline is still answered.
                if !line.is_empty() || overlong {
                    let _ = respond(&mut writer, backend, &line, overlong, opts);
                }
                return;
            }
            Ok(buf) => {
                last_input = Instant::now();
                let (chunk, complete) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (&buf[..i], true),
                    None => (buf, false),
                };
                if !overlong && line.len().saturating_add(chunk.len()) <= opts.max_line {
                    line.extend_from_slice(chunk);
                } else {
                    // Keep reading (and discarding) up to the newline, then answer once.
                    overlong = true;
                    line.clear();
                }
                (chunk.len() + usize::from(complete), complete)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if last_input.elapsed() > opts.idle_timeout {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        reader.consume(used);
        if complete {
            let r = respond(&mut writer, backend, &line, overlong, opts);
            line.clear();
            overlong = false;
            if r.is_err() {
                return;
            }
        }
    }
}

/// Answers one request line (blank lines get no answer).
fn respond(
    w: &mut UnixStream,
    backend: &dyn AdminBackend,
    line: &[u8],
    overlong: bool,
    opts: &ServerOptions,
) -> io::Result<()> {
    let resp = if overlong {
        Response::err(format!(
            "request line longer than {} bytes; discarded",
            opts.max_line
        ))
    } else {
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        handle_line(backend, text)
    };
    w.write_all(resp.to_line().as_bytes())
}

/// Parses and dispatches one request line; a malformed line or a panicking backend gives an
/// error response.
pub fn handle_line(backend: &dyn AdminBackend, line: &[u8]) -> Response {
    let req: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return Response::err(format!("malformed request: {e}")),
    };
    match catch_unwind(AssertUnwindSafe(|| dispatch(backend, &req))) {
        Ok(r) => r,
        Err(_) => Response::err(format!("internal error: `{}` failed", req.cmd())),
    }
}
