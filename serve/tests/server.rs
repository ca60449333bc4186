//! The server over real sockets: content types the browser insists on, lengths, 404s, no way
//! out of the site or the run folder, and the validators that let a viewer poll a live bundle.
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use mclr_serve::{Options, Server};

/// Sends a raw request and returns the whole answer (the server closes after one).
fn raw_bytes(addr: SocketAddr, request: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// [`raw_bytes`] as text (for heads and plain-text bodies).
fn raw(addr: SocketAddr, request: &str) -> String {
    String::from_utf8_lossy(&raw_bytes(addr, request)).into_owned()
}

/// `GET path` with extra header lines (each ending in `\r\n`).
fn get(addr: SocketAddr, path: &str, headers: &str) -> String {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n"),
    )
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer
        .split("\r\n\r\n")
        .next()?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
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

/// A folder holding `site/` (with an index page), `run/` (a run directory's files, a checkpoint
/// subfolder, the training lock, weights and a partial write) and, beside them, `secret.txt` and
/// `config.toml`, which must never be served.
fn site_and_run() -> (tempfile::TempDir, Server) {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path();
    std::fs::write(root.join("secret.txt"), "SECRET outside").unwrap();
    std::fs::write(root.join("config.toml"), "SECRET config outside").unwrap();
    let site = root.join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), "<p>site</p>").unwrap();
    let run = root.join("run");
    std::fs::create_dir_all(run.join("checkpoints/epoch-0001")).unwrap();
    for (name, text) in [
        ("live.mclr", "LIVE"),
        ("live-thumbs.png", "PNG"),
        ("metrics.jsonl", "{\"step\":0}\n"),
        ("bundle.mclr", "BUNDLE"),
        ("results.json", "{}"),
        ("config.toml", "name = \"run\""),
        ("model.safetensors", "SECRET weights"),
        (".mclr-train.lock", "SECRET lock"),
        (".mclr-partial-abc", "SECRET partial"),
        ("checkpoints/epoch-0001/state.json", "SECRET checkpoint"),
    ] {
        std::fs::write(run.join(name), text).unwrap();
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("secret.txt"), run.join("link.json")).unwrap();
    let server = mclr_serve::start(&Options {
        run: Some(run),
        ..Options::site(&site, 0)
    })
    .unwrap();
    (outer, server)
}

#[test]
fn files_are_served_with_their_content_type_and_length() {
    let dir = site_folder();
    let server = mclr_serve::serve(dir.path(), 0).unwrap();
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
        let answer = get(server.addr(), path, "");
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
        assert_eq!(header(&answer, "Cache-Control"), Some("no-cache"), "{path}");
        assert!(header(&answer, "ETag").is_some(), "{path}");
        assert!(header(&answer, "Last-Modified").is_some(), "{path}");
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
    assert!(header(&answer, "ETag").is_some());
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
    let server = mclr_serve::serve(&served, 0).unwrap();
    let status = |req: &str| status_line(&raw(server.addr(), req)).to_owned();
    assert_eq!(
        status("GET /nope.mclr HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status("GET /../secret.txt HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        status("GET /%2e%2e/secret.txt HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        status("GET /bad%zz HTTP/1.1\r\n\r\n"),
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
fn a_huge_request_head_is_refused_with_431() {
    let dir = site_folder();
    let server = mclr_serve::serve(dir.path(), 0).unwrap();
    let long = "a".repeat(20 * 1024);
    let answer = raw(
        server.addr(),
        &format!("GET / HTTP/1.1\r\nX-Long: {long}\r\n\r\n"),
    );
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let answer = raw(server.addr(), &format!("GET /{long} HTTP/1.1\r\n\r\n"));
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

#[test]
fn the_run_mount_serves_its_own_files() {
    let (_dir, server) = site_and_run();
    for (path, text, mime) in [
        ("/run/live.mclr", "LIVE", "application/octet-stream"),
        ("/run/live-thumbs.png", "PNG", "image/png"),
        (
            "/run/metrics.jsonl",
            "{\"step\":0}\n",
            "text/plain; charset=utf-8",
        ),
        ("/run/bundle.mclr", "BUNDLE", "application/octet-stream"),
        ("/run/results.json", "{}", "application/json"),
        (
            "/run/config.toml",
            "name = \"run\"",
            "text/plain; charset=utf-8",
        ),
        ("/", "<p>site</p>", "text/html; charset=utf-8"),
    ] {
        let answer = get(server.addr(), path, "");
        assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{path}");
        assert_eq!(body(&answer), text, "{path}");
        assert_eq!(header(&answer, "Content-Type"), Some(mime), "{path}");
    }
}

#[test]
fn traversal_absolute_paths_and_private_run_files_are_refused() {
    let (_dir, server) = site_and_run();
    for target in [
        "/run/../config.toml",
        "/run/../secret.txt",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/config.toml",
        "/run/%2e%2e/config.toml",
        "/run/%2F..%2Fsecret.txt",
        "/run/%2Fetc%2Fpasswd",
        "/run/..%5cconfig.toml",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/run//etc/passwd",
        "/run/checkpoints/epoch-0001/state.json",
        "/run/checkpoints",
        "/run/.mclr-train.lock",
        "/run/.mclr-partial-abc",
        "/run/model.safetensors",
        "/run/link.json",
        "/run/",
        "/secret.txt",
    ] {
        for method in ["GET", "HEAD"] {
            let answer = raw(
                server.addr(),
                &format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n"),
            );
            let status = status_line(&answer);
            assert!(
                status == "HTTP/1.1 403 Forbidden" || status == "HTTP/1.1 404 Not Found",
                "{method} {target}: {status}"
            );
            assert!(!answer.contains("SECRET"), "{method} {target}: {answer}");
        }
    }
    // Absolute-form and asterisk targets are not paths.
    for target in ["http://x/etc/passwd", "*", "etc/passwd"] {
        let answer = get(server.addr(), target, "");
        assert_eq!(status_line(&answer), "HTTP/1.1 400 Bad Request", "{target}");
    }
}

#[test]
fn etags_give_304_until_the_file_is_replaced_by_rename() {
    let (dir, server) = site_and_run();
    let addr = server.addr();
    let first = get(addr, "/run/live.mclr", "");
    let etag = header(&first, "ETag").unwrap().to_owned();
    let modified = header(&first, "Last-Modified").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(modified.ends_with(" GMT"), "{modified}");

    // Unchanged: 304 without a body, with the same validators.
    let again = get(
        addr,
        "/run/live.mclr",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(status_line(&again), "HTTP/1.1 304 Not Modified");
    assert_eq!(header(&again, "ETag"), Some(etag.as_str()));
    assert_eq!(body(&again), "");
    let since = get(
        addr,
        "/run/live.mclr",
        &format!("If-Modified-Since: {modified}\r\n"),
    );
    assert_eq!(status_line(&since), "HTTP/1.1 304 Not Modified");
    let head = raw(
        addr,
        &format!("HEAD /run/live.mclr HTTP/1.1\r\nIf-None-Match: {etag}\r\n\r\n"),
    );
    assert_eq!(status_line(&head), "HTTP/1.1 304 Not Modified");
    let other = get(addr, "/run/live.mclr", "If-None-Match: \"other\"\r\n");
    assert_eq!(status_line(&other), "HTTP/1.1 200 OK");
    assert_eq!(body(&other), "LIVE");

    // A writer replaces the file by rename, same size: a new entity tag and the new bytes.
    let run = dir.path().join("run");
    write_by_rename(&run, "live.mclr", b"EVIL");
    let replaced = get(
        addr,
        "/run/live.mclr",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(status_line(&replaced), "HTTP/1.1 200 OK", "{replaced}");
    assert_eq!(body(&replaced), "EVIL");
    let new_etag = header(&replaced, "ETag").unwrap();
    assert_ne!(new_etag, etag);
    let head = raw(addr, "HEAD /run/live.mclr HTTP/1.1\r\n\r\n");
    assert_eq!(header(&head, "ETag"), Some(new_etag));
    assert_eq!(header(&head, "Content-Length"), Some("4"));
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head:?}");
}

#[test]
fn readers_see_whole_files_while_a_writer_renames_new_versions_in() {
    let (dir, server) = site_and_run();
    let run = dir.path().join("run");
    let versions: Vec<Vec<u8>> = (0..4u8).map(|v| vec![b'a' + v; 200_000]).collect();
    write_by_rename(&run, "live.mclr", &versions[0]);
    let writer = {
        let (run, versions) = (run.clone(), versions.clone());
        std::thread::spawn(move || {
            for i in 0..200 {
                write_by_rename(&run, "live.mclr", &versions[i % versions.len()]);
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 20 {
        let answer = raw_bytes(server.addr(), "GET /run/live.mclr HTTP/1.1\r\n\r\n");
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let (head, bytes) = answer.split_at(split);
        let head = String::from_utf8_lossy(head);
        if status_line(&head) == "HTTP/1.1 404 Not Found" {
            continue; // renamed over three times during one request: rare, and safe
        }
        assert_eq!(status_line(&head), "HTTP/1.1 200 OK");
        assert!(
            versions.iter().any(|v| v.as_slice() == bytes),
            "a torn or mixed file of {} bytes",
            bytes.len()
        );
        reads += 1;
    }
    writer.join().unwrap();
}

/// Replaces `dir/name` the way the trainer does: a new file, then a rename over the old one.
fn write_by_rename(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".tmp-{name}"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[test]
fn a_missing_mount_or_a_file_as_mount_is_an_error_naming_it() {
    let dir = site_folder();
    let missing = dir.path().join("nope");
    let err = mclr_serve::start(&Options {
        run: Some(missing.clone()),
        ..Options::site(dir.path(), 0)
    })
    .unwrap_err();
    assert!(
        matches!(err, mclr_serve::Error::OpenFolder { what: "run", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&missing.display().to_string()));
    let err = mclr_serve::serve(&dir.path().join("index.html"), 0).unwrap_err();
    assert!(
        matches!(err, mclr_serve::Error::NotAFolder { what: "site", .. }),
        "{err:?}"
    );
}

#[test]
fn a_missing_site_folder_names_the_folder_and_chains_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-site");
    let os_error = std::fs::canonicalize(&missing).unwrap_err().to_string();
    let Err(err) = mclr_serve::serve(&missing, 0) else {
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
