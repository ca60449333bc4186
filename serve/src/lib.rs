//! A small read-only HTTP/1.1 server for the mclr site and one training run: what `mclr view`,
//! `cargo xtask serve` and the browser end-to-end tests run.
//!
//! * **Mounts.** The site folder (`www/dist`) at `/`; optionally a run folder at `/run/`, which
//!   serves only regular files directly inside it, with a name [`run_file_allowed`] accepts (the
//!   bundles, thumbnail sheets, `metrics.jsonl`, results and config; not the weights, not hidden
//!   files such as the training lock or partial writes, no subfolders).
//! * **Nothing outside the mounts.** Each path segment is percent-decoded strictly on its own;
//!   `..`, an encoded `/` or `\`, a NUL and run subfolders are refused (403) before any file
//!   system call; a symlink in the site may not lead out of it, and the run mount follows none.
//! * **Whole files, revalidated.** A file is opened once; its `ETag` (inode, size and modification
//!   time in nanoseconds) and `Last-Modified` come from that handle, and so does the body, so a
//!   file that the trainer replaces by rename is served whole, old or new, with the validators of
//!   the version sent. `Cache-Control: no-cache` makes a browser revalidate every time, and
//!   `If-None-Match` / `If-Modified-Since` get `304 Not Modified` while the file is unchanged: a
//!   viewer polling `live.mclr` costs a head per poll until a checkpoint replaces it.
//! * **Small.** `GET` and `HEAD` only, one request per connection, a thread per connection (at
//!   most [`MAX_CONNECTIONS`] at once, then 503), 431 for a head over 16 KiB. The content type
//!   comes from the extension; `.wasm` is `application/wasm`, or the browser refuses to compile
//!   the module while it streams in.
//! * **Local by default.** [`Options::host`] defaults to 127.0.0.1; exposing a run is the
//!   caller's explicit choice.

mod error;
mod files;
mod http;
mod route;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use error::{Error, Result};
pub use route::{RUN_EXTENSIONS, RUN_MOUNT, Refusal, Route, route, run_file_allowed};

use http::{Body, Request, Status};

/// Connections answered at once; more get `503 Service Unavailable`. Bounds the threads a
/// client (or anyone who can reach an exposed port) can make the server start.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a connection may take to send its request head, or to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What to serve, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The site folder, served at `/`.
    pub site: PathBuf,
    /// A run folder, served at `/run/` (see the crate docs for which files).
    pub run: Option<PathBuf>,
    /// The address to listen on: 127.0.0.1 unless the run is meant to be reachable from other
    /// machines.
    pub host: IpAddr,
    /// The port; 0 picks a free one ([`Server::addr`] says which).
    pub port: u16,
}

impl Options {
    /// Serves `site` alone on 127.0.0.1 at `port`.
    pub fn site(site: &Path, port: u16) -> Self {
        Self {
            site: site.to_owned(),
            run: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
        }
    }
}

/// A running server; dropping it shuts it down.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// The folders a server reads from, resolved once at start.
#[derive(Debug)]
struct Mounts {
    /// Canonical site folder.
    site: PathBuf,
    /// Canonical run folder.
    run: Option<PathBuf>,
}

/// Starts serving `dir` alone on 127.0.0.1:`port` (0 picks a free port; [`Server::addr`] says
/// which): what `cargo xtask serve` and the browser tests do.
///
/// # Errors
/// As [`start`].
pub fn serve(dir: &Path, port: u16) -> Result<Server> {
    start(&Options::site(dir, port))
}

/// Starts a server with `options`; it answers on its own threads until shut down or dropped.
///
/// # Errors
/// [`Error::OpenFolder`] or [`Error::NotAFolder`] if a mount is missing or not a folder,
/// [`Error::Bind`] if the address cannot be listened on, [`Error::Thread`] if the accept thread
/// cannot start.
pub fn start(options: &Options) -> Result<Server> {
    let mounts = Mounts {
        site: folder("site", &options.site)?,
        run: options
            .run
            .as_deref()
            .map(|run| folder("run", run))
            .transpose()?,
    };
    let requested = SocketAddr::new(options.host, options.port);
    let listener = TcpListener::bind(requested).map_err(|source| Error::Bind {
        addr: requested,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: requested,
        source,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = Arc::clone(&stop);
        let mounts = Arc::new(mounts);
        std::thread::Builder::new()
            .name("serve-accept".into())
            .spawn(move || accept_loop(&listener, &mounts, &stop))
            .map_err(|source| Error::Thread { source })?
    };
    Ok(Server {
        addr,
        stop,
        acceptor: Some(acceptor),
    })
}

/// The canonical form of a folder to mount.
fn folder(what: &'static str, path: &Path) -> Result<PathBuf> {
    let canonical = path.canonicalize().map_err(|source| Error::OpenFolder {
        what,
        path: path.to_owned(),
        source,
    })?;
    if canonical.is_dir() {
        Ok(canonical)
    } else {
        Err(Error::NotAFolder {
            what,
            path: path.to_owned(),
        })
    }
}

impl Server {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The absolute URL of `path_and_query` on this server, e.g. `url("/?cpu=1")`.
    pub fn url(&self, path_and_query: &str) -> String {
        let sep = if path_and_query.starts_with('/') {
            ""
        } else {
            "/"
        };
        format!("http://{}{sep}{path_and_query}", self.addr)
    }

    /// Serves until the process is stopped (what `mclr view` and `cargo xtask serve` do).
    pub fn wait(mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }

    /// Stops accepting connections and waits for the accept thread to end. Requests already
    /// being answered finish on their own threads.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // `accept` blocks: a throwaway connection wakes it up so it sees the flag.
        let _ = TcpStream::connect_timeout(&wake_address(self.addr), Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.stop_now();
        }
    }
}

/// Where to connect to reach a listener bound to `addr` (a wildcard address is reached on
/// loopback).
fn wake_address(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

fn accept_loop(listener: &TcpListener, mounts: &Arc<Mounts>, stop: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
            let _ = http::respond_status(&mut stream, Status::Unavailable, false);
            continue;
        }
        let mounts = Arc::clone(mounts);
        let done = Arc::clone(&active);
        let spawned = std::thread::Builder::new()
            .name("serve-conn".into())
            .spawn(move || {
                // A client that hangs up mid-answer is not the server's problem.
                let _ = answer(stream, &mounts);
                done.fetch_sub(1, Ordering::SeqCst);
            });
        // A failed spawn drops the connection; the client sees a reset and may retry.
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Answers one request on `stream`.
fn answer(mut stream: TcpStream, mounts: &Mounts) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let request = match http::read_head(&stream) {
        Ok(r) => r,
        Err(status) => {
            http::respond_status(&mut stream, status, false)?;
            // Closing with unread input makes the kernel reset the connection, which can destroy
            // the answer before the client reads it: read the rest (bounded) first.
            return http::drain(&mut stream);
        }
    };
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        return http::respond_status(&mut stream, Status::MethodNotAllowed, false);
    }
    let opened = match route(&request.target, mounts.run.is_some()) {
        Ok(Route::Site(relative)) => files::open_site_file(&mounts.site, &relative),
        Ok(Route::Run(name)) => mounts
            .run
            .as_deref()
            .and_then(|dir| files::open_run_file(dir, &name)),
        Err(refusal) => {
            let status = match refusal {
                Refusal::Malformed => Status::BadRequest,
                Refusal::Forbidden => Status::Forbidden,
                Refusal::NotFound => Status::NotFound,
            };
            return http::respond_status(&mut stream, status, head_only);
        }
    };
    let Some(opened) = opened else {
        return http::respond_status(&mut stream, Status::NotFound, head_only);
    };
    send(&mut stream, &request, opened, head_only)
}

/// Sends an opened file: 304 if the client has this version, else its head and (for `GET`) body.
fn send(
    stream: &mut TcpStream,
    request: &Request,
    opened: files::Opened,
    head_only: bool,
) -> std::io::Result<()> {
    let validators = opened.validators();
    let content_type = content_type(opened.path());
    let body = if validators.not_modified(request) {
        Body::NotModified
    } else if head_only {
        Body::Head(opened.len())
    } else {
        let bytes = opened.read()?;
        return http::respond_file(stream, content_type, &validators, &Body::Full(&bytes));
    };
    http::respond_file(stream, content_type, &validators, &body)
}

/// The `Content-Type` for a file, from its extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("txt" | "md" | "jsonl" | "toml") => "text/plain; charset=utf-8",
        // `.mclr` bundles and anything unknown: bytes the page fetches, never rendered.
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::content_type;

    #[test]
    fn wasm_is_served_as_application_wasm_for_streaming_compile() {
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("a/b.JS")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("demo.mclr")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(Path::new("metrics.jsonl")),
            "text/plain; charset=utf-8"
        );
    }
}
