//! A small static file server for the built site (`www/dist`): what `cargo xtask serve` runs and
//! what the browser end-to-end test loads the viewer from.
//!
//! It serves `GET` and `HEAD` on 127.0.0.1 only, one request per connection, each on its own thread.
//! The content type comes from the file extension; `.wasm` must be `application/wasm`, or the
//! browser refuses to compile the module while it streams in. Paths are URL-decoded and any `..`
//! segment (or a symlink leading outside the folder) is refused, so nothing outside the folder can
//! be read.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};

/// Longest request head (request line and headers) the server reads before answering 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A running server; dropping it shuts it down.
#[derive(Debug)]
pub struct Site {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// Starts serving `dir` on 127.0.0.1:`port` (0 picks a free port; [`Site::addr`] says which).
///
/// Fails if `dir` is not a folder or the port cannot be bound.
pub fn serve(dir: &Path, port: u16) -> Result<Site> {
    let root = dir
        .canonicalize()
        .map_err(|e| Error::io(format!("opening the site folder {}", dir.display()), e))?;
    if !root.is_dir() {
        return Err(Error::io(
            format!("serving {}", dir.display()),
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder"),
        ));
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .map_err(|e| Error::io(format!("binding 127.0.0.1:{port}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = Arc::clone(&stop);
        let root = Arc::new(root);
        std::thread::Builder::new()
            .name("site-accept".into())
            .spawn(move || accept_loop(&listener, &root, &stop))
            .map_err(|e| Error::io("starting the server thread", e))?
    };
    Ok(Site {
        addr,
        stop,
        acceptor: Some(acceptor),
    })
}

impl Site {
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

    /// Serves until the process is stopped (what `cargo xtask serve` does).
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
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.stop_now();
        }
    }
}

fn accept_loop(listener: &TcpListener, root: &Arc<PathBuf>, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let root = Arc::clone(root);
        // A failed spawn drops the connection; the client sees a reset and may retry.
        let _ = std::thread::Builder::new()
            .name("site-conn".into())
            .spawn(move || {
                // A client that hangs up mid-answer is not the server's problem.
                let _ = answer(stream, &root);
            });
    }
}

/// A parsed request line.
struct Request {
    method: String,
    target: String,
}

fn answer(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = match read_head(&stream) {
        Ok(r) => r,
        Err(status) => return respond_text(&mut stream, status, true),
    };
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        return respond_text(&mut stream, Status::MethodNotAllowed, false);
    }
    let Some(relative) = resolve_target(&request.target) else {
        return respond_text(&mut stream, Status::BadRequest, head_only);
    };
    let mut path = root.join(&relative);
    if path.is_dir() {
        path.push("index.html");
    }
    // Symlinks inside the folder may not lead out of it.
    let inside = path.canonicalize().is_ok_and(|p| p.starts_with(root));
    let body = if inside { fs::read(&path).ok() } else { None };
    let Some(body) = body else {
        return respond_text(&mut stream, Status::NotFound, head_only);
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        content_type(&path),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(&body)?;
    }
    stream.flush()
}

/// Reads the request line and skips the headers (a static server needs none of them).
fn read_head(stream: &TcpStream) -> std::result::Result<Request, Status> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut read = 0usize;
    let mut request = None;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|_| Status::BadRequest)?;
        read += n;
        if n == 0 || read > MAX_HEAD_BYTES {
            return Err(if n == 0 {
                Status::BadRequest
            } else {
                Status::HeadTooLarge
            });
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if request.is_none() {
            let mut parts = trimmed.split(' ');
            let (Some(method), Some(target), Some(version)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(Status::BadRequest);
            };
            if !version.starts_with("HTTP/1.") {
                return Err(Status::BadRequest);
            }
            request = Some(Request {
                method: method.to_owned(),
                target: target.to_owned(),
            });
        } else if trimmed.is_empty() {
            return request.ok_or(Status::BadRequest);
        }
    }
}

/// Turns a request target (`/pkg/mclr_viewer.js?v=1`) into a path relative to the site folder,
/// or `None` if it is malformed or tries to leave the folder.
pub fn resolve_target(target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = path.strip_prefix('/')?;
    let decoded = mclr_viewer::percent::decode_path(path)?;
    if decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut out = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            s => out.push(s),
        }
    }
    // Belt and braces: after the checks above only plain names can remain.
    out.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(out)
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
        Some("txt" | "md") => "text/plain; charset=utf-8",
        // `.mclr` bundles and anything unknown: bytes the page fetches, never rendered.
        _ => "application/octet-stream",
    }
}

/// The error answers the server gives.
#[derive(Debug, Clone, Copy)]
enum Status {
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeadTooLarge,
}

fn respond_text(stream: &mut TcpStream, status: Status, head_only: bool) -> std::io::Result<()> {
    let (code, reason) = match status {
        Status::BadRequest => (400, "Bad Request"),
        Status::NotFound => (404, "Not Found"),
        Status::MethodNotAllowed => (405, "Method Not Allowed"),
        Status::HeadTooLarge => (431, "Request Header Fields Too Large"),
    };
    let body = format!("{code} {reason}\n");
    let allow = if matches!(status, Status::MethodNotAllowed) {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{content_type, resolve_target};

    #[test]
    fn targets_resolve_inside_the_folder_and_dot_dot_is_refused() {
        assert_eq!(
            resolve_target("/pkg/a%20b.js?x=1#f"),
            Some(PathBuf::from("pkg/a b.js"))
        );
        assert_eq!(resolve_target("/"), Some(PathBuf::new()));
        assert_eq!(resolve_target("/./a//b"), Some(PathBuf::from("a/b")));
        assert_eq!(resolve_target("/../etc/passwd"), None);
        assert_eq!(resolve_target("/a/%2e%2e/%2e%2e/x"), None);
        assert_eq!(resolve_target("/a%5c..%5cx"), None);
        assert_eq!(resolve_target("/bad%zz"), None);
        assert_eq!(resolve_target("relative"), None);
    }

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
    }
}
