//! What the browser tests share: the site over `www/dist`, and a Chromium session that fails a
//! test with the page's state and a screenshot. Each test binary passes its own DOM snapshot
//! script (what it reads of the page) and adds its own helpers in its own `impl Browser` block.
// Not every binary uses every helper; a failed helper is a test failure, so unwrap is right.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use mclr_shared::error_chain;
use mclr_tests::chromium::{self, Gpu};
use mclr_tests::site::{self, Server};
use mclr_tests::webdriver::{Driver, Session};
use serde_json::{Value, json};

/// One browser at a time: the machine running CI has two cores.
pub static BROWSER: Mutex<()> = Mutex::new(());

/// Loading includes compiling the wasm module and decoding the bundle on a slow CPU.
pub const LOAD: Duration = Duration::from_secs(90);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Where screenshots go.
pub fn artifacts() -> PathBuf {
    workspace_root().join("target/e2e")
}

/// The site server over `www/dist`, or a failure saying how to build it.
pub fn serve_dist() -> Server {
    let dist = workspace_root().join("www/dist");
    for file in [
        "index.html",
        "pkg/mclr_viewer.js",
        "pkg/mclr_viewer_bg.wasm",
        "demo.mclr",
    ] {
        assert!(
            dist.join(file).is_file(),
            "{} is missing: run `cargo xtask web` first (it builds the site this test loads)",
            dist.join(file).display()
        );
    }
    site::serve(&dist, 0).unwrap()
}

/// A served copy of the built site (`index.html`, `style.css`, `pkg/`, `demo.mclr`) in a fresh
/// folder, so that a test can add, replace and break files beside the viewer (a followed run, a
/// bundle with training logs) without touching `www/dist`.
pub fn serve_copy_of_dist() -> (tempfile::TempDir, Server) {
    let dist = workspace_root().join("www/dist");
    // Checks that the site is built, with the same message as `serve_dist`.
    drop(serve_dist());
    let dir = tempfile::tempdir().unwrap();
    for file in ["index.html", "style.css", "demo.mclr"] {
        std::fs::copy(dist.join(file), dir.path().join(file)).unwrap();
    }
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    for entry in std::fs::read_dir(dist.join("pkg")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join("pkg").join(entry.file_name())).unwrap();
        }
    }
    let site = site::serve(dir.path(), 0).unwrap();
    (dir, site)
}

/// Writes `bytes` to `path` the way a trainer replaces a file: a temporary file beside it,
/// renamed over it, so that no reader ever sees half of it.
pub fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A browser session with a name for its screenshots and the script that reads the page.
pub struct Browser {
    _driver: Driver,
    pub session: Session,
    _profile: tempfile::TempDir,
    pub name: String,
    snapshot_js: &'static str,
}

impl Browser {
    /// Starts chromedriver and a fresh Chromium profile; `snapshot_js` returns the page's state
    /// as one JSON object.
    pub fn open(name: &str, gpu: Gpu, snapshot_js: &'static str) -> Self {
        Self::open_with(name, gpu, &[], snapshot_js)
    }

    /// [`Browser::open`] with `extra` command-line flags after the project's (e.g.
    /// `--force-prefers-reduced-motion`).
    pub fn open_with(name: &str, gpu: Gpu, extra: &[&str], snapshot_js: &'static str) -> Self {
        chromium::require_installed().unwrap_or_else(|e| panic!("{}", error_chain(&e)));
        let driver = Driver::start().unwrap_or_else(|e| panic!("{}", error_chain(&e)));
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = chromium::capabilities(profile.path(), gpu);
        if let Some(args) = capabilities["goog:chromeOptions"]["args"].as_array_mut() {
            args.extend(extra.iter().map(|a| json!(a)));
        }
        let session = driver
            .session(&capabilities)
            .unwrap_or_else(|e| panic!("starting Chromium: {}", error_chain(&e)));
        Self {
            _driver: driver,
            session,
            _profile: profile,
            name: name.to_owned(),
            snapshot_js,
        }
    }

    /// Saves `target/e2e/<name>-<phase>.png`.
    pub fn shot(&self, phase: &str) -> PathBuf {
        let path = artifacts().join(format!("{}-{phase}.png", self.name));
        self.session.save_screenshot(&path).unwrap();
        path
    }

    /// Unwraps `r`, or saves a screenshot and fails with the error and the page's state.
    pub fn check<T>(&self, r: mclr_tests::Result<T>) -> T {
        r.unwrap_or_else(|e| {
            let shot = self.shot("failure");
            panic!(
                "{}\npage state: {}\nscreenshot: {}",
                error_chain(&e),
                self.snapshot(),
                shot.display()
            )
        })
    }

    pub fn js(&self, script: &str, args: &[Value]) -> Value {
        let r = self.session.execute(script, args);
        self.check(r)
    }

    /// The page's state as the snapshot script reads it, for comparisons and failure messages.
    pub fn snapshot(&self) -> Value {
        self.session
            .execute(self.snapshot_js, &[])
            .unwrap_or_else(|e| json!(format!("(page unreadable: {})", error_chain(&e))))
    }

    pub fn navigate(&self, url: &str) {
        let r = self.session.navigate(url);
        self.check(r);
    }

    /// Polls the snapshot until `pred` holds, failing with `expected` and the last snapshot.
    pub fn wait(&self, expected: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let script = self.snapshot_js;
        let r = self.session.wait_for(expected, timeout, |s, found| {
            let v = s.execute(script, &[])?;
            *found = v.to_string();
            Ok(pred(&v).then_some(v))
        });
        self.check(r)
    }

    pub fn wait_ready(&self) -> Value {
        self.wait("body[data-ready=\"true\"]", LOAD, |v| v["ready"] == "true")
    }

    pub fn click(&self, selector: &str) {
        let r = self
            .session
            .find(selector)
            .and_then(|e| self.session.click(&e));
        self.check(r);
    }

    /// Fails on any console error except those containing one of `expected`.
    pub fn assert_console_clean(&self, expected: &[&str]) {
        let log = self.check(self.session.browser_log());
        let errors: Vec<_> = log
            .iter()
            .filter(|e| e.level == "SEVERE")
            .filter(|e| !expected.iter().any(|x| e.message.contains(x)))
            .collect();
        if !errors.is_empty() {
            let shot = self.shot("console-error");
            panic!(
                "console errors in {}:\n{}\nscreenshot: {}",
                self.name,
                errors
                    .iter()
                    .map(|e| format!("  [{}] {}", e.source, e.message))
                    .collect::<Vec<_>>()
                    .join("\n"),
                shot.display()
            );
        }
    }
}
