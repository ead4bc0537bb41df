//! A blocking admin socket client: one request line out, one response line back.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::protocol::{Request, Response};

/// Why a request did not produce a response.
#[derive(Debug)]
pub enum ClientError {
    /// The socket could not be reached (no daemon, wrong path, no permission).
    Connect { path: PathBuf, source: io::Error },
    /// The connection failed after connecting, or the daemon closed it.
    Io(io::Error),
    /// The daemon's answer is not a response, or its data not of the expected shape.
    Decode(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect { path, source } => write!(
                f,
                "cannot reach the admin socket {}: {source} (is the daemon running? use --socket or NMADP_ADMIN_SOCKET)",
                path.display()
            ),
            ClientError::Io(e) => write!(f, "admin socket: {e}"),
            ClientError::Decode(e) => write!(f, "unexpected answer from the daemon: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A connection to the admin socket.
pub struct AdminClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl AdminClient {
    /// Connects; `timeout` bounds each read and write.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<AdminClient, ClientError> {
        let path = path.as_ref();
        let conn = |source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let s = UnixStream::connect(path).map_err(conn)?;
        s.set_read_timeout(Some(timeout)).map_err(conn)?;
        s.set_write_timeout(Some(timeout)).map_err(conn)?;
        let r = s.try_clone().map_err(conn)?;
        Ok(AdminClient {
            reader: BufReader::new(r),
            writer: s,
        })
    }

    /// Sends one raw line (a newline is added) and reads one response line, unparsed.
    pub fn raw(&mut self, line: &str) -> Result<String, ClientError> {
        let mut out = String::with_capacity(line.len() + 1);
        out.push_str(line);
        out.push('\n');
        self.writer
            .write_all(out.as_bytes())
            .map_err(ClientError::Io)?;
        let mut resp = String::new();
        let n = self.reader.read_line(&mut resp).map_err(ClientError::Io)?;
        if n == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection without answering",
            )));
        }
        Ok(resp)
    }

    /// Sends a request and returns the response (which may be an error response).
    pub fn request(&mut self, req: &Request) -> Result<Response, ClientError> {
        let line = serde_json::to_string(req).map_err(|e| ClientError::Decode(e.to_string()))?;
        let resp = self.raw(&line)?;
        serde_json::from_str(resp.trim_end()).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends a request and decodes a successful response's data as `T`; an error response
    /// is `Ok(Err(message))`.
    pub fn call<T: DeserializeOwned>(
        &mut self,
        req: &Request,
    ) -> Result<Result<T, String>, ClientError> {
        let r = self.request(req)?;
        if !r.ok {
            return Ok(Err(r.error.unwrap_or_else(|| "unknown error".into())));
        }
        let data = r.data.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(data)
            .map(Ok)
            .map_err(|e| ClientError::Decode(format!("`{}` data: {e}", req.cmd())))
    }
}
