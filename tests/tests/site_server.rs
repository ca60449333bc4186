//! The static site server over real sockets: content types the browser insists on, lengths,
//! 404s, and no way out of the served folder.
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;

use mclr_tests::site;

/// Sends a raw request and returns the whole answer (the server closes after one).
fn raw_bytes(addr: std::net::SocketAddr, request: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// [`raw_bytes`] as text (for heads and plain-text bodies).
fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    String::from_utf8_lossy(&raw_bytes(addr, request)).into_owned()
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer
        .split("\r\n\r\n")
        .next()?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

fn site_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><p>hi</p>").unwrap();
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    std::fs::write(dir.path().join("pkg/app_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("pkg/app.js"), "export default 1;").unwrap();
    std::fs::write(
        dir.path().join("demo.mclr"),
        [0x89u8, b'M', b'C', b'L', b'R'],
    )
    .unwrap();
    dir
}

#[test]
fn files_are_served_with_their_content_type_and_length() {
    let dir = site_folder();
    let server = site::serve(dir.path(), 0).unwrap();
    let cases = [
        ("/pkg/app_bg.wasm", "application/wasm", 8),
        ("/pkg/app.js", "text/javascript; charset=utf-8", 17),
        ("/demo.mclr", "application/octet-stream", 5),
        ("/", "text/html; charset=utf-8", 24),
        (
            "/index.html?anchor=3&ops=1:0.5",
            "text/html; charset=utf-8",
            24,
        ),
    ];
    for (path, mime, len) in cases {
        let answer = raw(
            server.addr(),
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
        );
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{path}: {answer}"
        );
        assert_eq!(header(&answer, "Content-Type"), Some(mime), "{path}");
        assert_eq!(
            header(&answer, "Content-Length"),
            Some(len.to_string().as_str()),
            "{path}"
        );
        let head_len = answer.find("\r\n\r\n").unwrap() + 4;
        let bytes = raw_bytes(server.addr(), &format!("GET {path} HTTP/1.1\r\n\r\n"));
        assert_eq!(bytes.len() - head_len, len, "{path}: body length");
    }
    let wasm = std::fs::read(dir.path().join("pkg/app_bg.wasm")).unwrap();
    let answer = raw(server.addr(), "HEAD /pkg/app_bg.wasm HTTP/1.1\r\n\r\n");
    assert_eq!(
        header(&answer, "Content-Length"),
        Some(wasm.len().to_string().as_str())
    );
    assert!(answer.ends_with("\r\n\r\n"), "HEAD has no body: {answer:?}");
    server.shutdown();
}

#[test]
fn missing_files_are_404_and_escapes_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret.txt"), "secret").unwrap();
    let served = outer.path().join("site");
    std::fs::create_dir(&served).unwrap();
    std::fs::write(served.join("index.html"), "ok").unwrap();
    let server = site::serve(&served, 0).unwrap();
    let status = |req: &str| {
        let a = raw(server.addr(), req);
        a.lines().next().unwrap_or_default().to_owned()
    };
    assert_eq!(
        status("GET /nope.mclr HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status("GET /../secret.txt HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status("GET /%2e%2e/secret.txt HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status("POST / HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(status("nonsense\r\n\r\n"), "HTTP/1.1 400 Bad Request");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outer.path().join("secret.txt"), served.join("link.txt"))
            .unwrap();
        assert_eq!(
            status("GET /link.txt HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 404 Not Found"
        );
    }
    let addr = server.addr();
    server.shutdown();
    assert!(
        TcpStream::connect(addr).is_err(),
        "port still open after shutdown"
    );
}

#[test]
fn a_missing_site_folder_names_the_folder_and_chains_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-site");
    let os_error = std::fs::canonicalize(&missing).unwrap_err().to_string();
    let Err(err) = site::serve(&missing, 0) else {
        panic!("a missing folder was served");
    };
    let message = err.to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(!message.contains(&os_error), "{message}");
    let chain = mclr_shared::error_chain(&err);
    assert_eq!(chain, format!("{message}: {os_error}"));
}
