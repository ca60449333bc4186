//! What the browser tests share: the site over `www/dist`, and a Chromium session that fails a
//! test with the page's state and a screenshot. Each test binary passes its own DOM snapshot
//! script (what it reads of the page) and adds its own helpers in its own `impl Browser` block.
// Not every binary uses every helper; a failed helper is a test failure, so unwrap is right.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

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
        chromium::require_installed().unwrap_or_else(|e| panic!("{e}"));
        let driver = Driver::start().unwrap_or_else(|e| panic!("{e}"));
        let profile = tempfile::tempdir().unwrap();
        let session = driver
            .session(&chromium::capabilities(profile.path(), gpu))
            .unwrap_or_else(|e| panic!("starting Chromium: {e}"));
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
                "{e}\npage state: {}\nscreenshot: {}",
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
            .unwrap_or_else(|e| json!(format!("(page unreadable: {e})")))
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
