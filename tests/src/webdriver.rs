//! A small blocking client for the W3C WebDriver HTTP protocol, enough to drive headless
//! Chromium through chromedriver from a plain `#[test]`: start the driver, open sessions,
//! navigate, find elements, click, type, run scripts, take screenshots and read the browser's
//! console log.
//!
//! Every request is one JSON round trip over `ureq`; there is no async runtime. A W3C error answer
//! (`{"value": {"error": …, "message": …}}`) becomes [`Error::WebDriver`] naming the request.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::chromium::{APT_INSTALL, CHROMEDRIVER};
use crate::error::{Error, Result};

/// The key W3C uses for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long chromedriver gets to start listening.
const DRIVER_START: Duration = Duration::from_secs(20);

/// The largest answer read (a full-window screenshot is a few MB of base64).
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// A running chromedriver; dropping it kills the process.
#[derive(Debug)]
pub struct Driver {
    process: Child,
    base: String,
    agent: ureq::Agent,
}

/// One browser session (one browser window with its own profile); dropping it closes the browser.
#[derive(Debug)]
pub struct Session {
    agent: ureq::Agent,
    /// `http://127.0.0.1:<port>/session/<id>`.
    base: String,
}

/// A reference to an element of the current page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    id: String,
}

/// One entry of the browser's console log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO` or `DEBUG` (chromedriver's names).
    pub level: String,
    /// Where it came from: `console-api`, `javascript`, `network`, …
    pub source: String,
    /// The text, usually prefixed with the URL and line of its origin.
    pub message: String,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        // Protocol errors come back as 4xx/5xx with a JSON body we want to read.
        .http_status_as_error(false)
        // Only localhost is ever spoken to; an environment proxy must not intercept it.
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent()
}

impl Driver {
    /// Starts [`CHROMEDRIVER`] on a free local port and waits until it reports ready.
    pub fn start() -> Result<Self> {
        Self::start_at(Path::new(CHROMEDRIVER))
    }

    /// Starts the chromedriver at `program` (see [`Driver::start`]).
    pub fn start_at(program: &Path) -> Result<Self> {
        if !program.exists() {
            return Err(Error::MissingProgram {
                program: program.to_owned(),
                install: APT_INSTALL,
            });
        }
        let port = free_port()?;
        let process = Command::new(program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", program.display()), e))?;
        let mut driver = Self {
            process,
            base: format!("http://127.0.0.1:{port}"),
            agent: agent(),
        };
        let started = Instant::now();
        loop {
            let ready = request(
                &driver.agent,
                "GET",
                &format!("{}/status", driver.base),
                None,
            )
            .ok()
            .is_some_and(|v| v["ready"].as_bool() == Some(true));
            if ready {
                return Ok(driver);
            }
            let exited = driver.process.try_wait().ok().flatten().is_some();
            if exited || started.elapsed() > DRIVER_START {
                let _ = driver.process.kill();
                let _ = driver.process.wait();
                let mut output = String::new();
                if let Some(mut out) = driver.process.stdout.take() {
                    let _ = out.read_to_string(&mut output);
                }
                if let Some(mut err) = driver.process.stderr.take() {
                    let _ = err.read_to_string(&mut output);
                }
                return Err(Error::DriverStart {
                    port,
                    secs: DRIVER_START.as_secs(),
                    output: output.trim().to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens a browser session with `capabilities` (the `alwaysMatch` object, e.g.
    /// [`crate::chromium::capabilities`]).
    pub fn session(&self, capabilities: &Value) -> Result<Session> {
        let body = json!({ "capabilities": { "alwaysMatch": capabilities } });
        let value = request(
            &self.agent,
            "POST",
            &format!("{}/session", self.base),
            Some(&body),
        )?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| Error::Protocol {
                what: "new session".into(),
                found: short(&value),
            })?
            .to_owned();
        Ok(Session {
            agent: self.agent.clone(),
            base: format!("{}/session/{id}", self.base),
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Session {
    fn call(&self, method: &'static str, path: &str, body: Option<&Value>) -> Result<Value> {
        request(&self.agent, method, &format!("{}{path}", self.base), body)
    }

    /// Loads `url` and waits for the document to finish loading.
    pub fn navigate(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(&json!({ "url": url })))
            .map(drop)
    }

    /// The URL of the current page.
    pub fn current_url(&self) -> Result<String> {
        let v = self.call("GET", "/url", None)?;
        as_string(&v, "current url")
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns what it
    /// returned. Elements in `args` are passed as [`Element::to_json`].
    pub fn execute(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// The first element matching the CSS `selector`.
    pub fn find(&self, selector: &str) -> Result<Element> {
        let v = self.call(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": selector })),
        )?;
        element_of(&v, selector)
    }

    /// Every element matching the CSS `selector`, in document order.
    pub fn find_all(&self, selector: &str) -> Result<Vec<Element>> {
        let v = self.call(
            "POST",
            "/elements",
            Some(&json!({ "using": "css selector", "value": selector })),
        )?;
        v.as_array()
            .ok_or_else(|| Error::Protocol {
                what: format!("elements `{selector}`"),
                found: short(&v),
            })?
            .iter()
            .map(|e| element_of(e, selector))
            .collect()
    }

    /// Clicks `element` (scrolling it into view first, as a user would).
    pub fn click(&self, element: &Element) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{}/click", element.id),
            Some(&json!({})),
        )
        .map(drop)
    }

    /// Clears an input or textarea.
    pub fn clear(&self, element: &Element) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{}/clear", element.id),
            Some(&json!({})),
        )
        .map(drop)
    }

    /// Types `text` into `element`; `"\u{E007}"` is the Enter key.
    pub fn send_keys(&self, element: &Element, text: &str) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{}/value", element.id),
            Some(&json!({ "text": text })),
        )
        .map(drop)
    }

    /// The element's attribute `name` (`None` if it has none).
    pub fn attribute(&self, element: &Element, name: &str) -> Result<Option<String>> {
        let v = self.call(
            "GET",
            &format!("/element/{}/attribute/{name}", element.id),
            None,
        )?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// The element's rendered text.
    pub fn text(&self, element: &Element) -> Result<String> {
        let v = self.call("GET", &format!("/element/{}/text", element.id), None)?;
        as_string(&v, "element text")
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.call("GET", "/screenshot", None)?;
        let b64 = as_string(&v, "screenshot")?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|source| Error::Base64 {
                what: "screenshot",
                source,
            })
    }

    /// Saves a screenshot to `path`, creating its folder.
    pub fn save_screenshot(&self, path: &Path) -> Result<()> {
        let png = self.screenshot()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        std::fs::write(path, png).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// The browser console entries since the last call (chromedriver's log endpoint; needs
    /// `goog:loggingPrefs` in the capabilities).
    pub fn browser_log(&self) -> Result<Vec<LogEntry>> {
        let v = self.call("POST", "/se/log", Some(&json!({ "type": "browser" })))?;
        let entries = v.as_array().ok_or_else(|| Error::Protocol {
            what: "browser log".into(),
            found: short(&v),
        })?;
        Ok(entries
            .iter()
            .map(|e| LogEntry {
                level: e["level"].as_str().unwrap_or_default().to_owned(),
                source: e["source"].as_str().unwrap_or_default().to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Polls `probe` every 100 ms until it returns `Ok(Some(_))`, for at most `timeout`.
    ///
    /// `probe` returns `Ok(None)` while the condition does not hold yet; the last `found` string
    /// it reported through `seen` goes into the timeout error next to `expected`, so a failure
    /// says both what was wanted and what the page showed.
    pub fn wait_for<T>(
        &self,
        expected: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Self, &mut String) -> Result<Option<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut found = String::from("(nothing yet)");
        loop {
            if let Some(v) = probe(self, &mut found)? {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                return Err(Error::Timeout {
                    expected: expected.to_owned(),
                    found,
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes the browser. Dropping the session does the same, ignoring errors.
    pub fn close(mut self) -> Result<()> {
        let base = std::mem::take(&mut self.base);
        request(&self.agent, "DELETE", &base, None).map(drop)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.base.is_empty() {
            let _ = request(&self.agent, "DELETE", &self.base, None);
        }
    }
}

impl Element {
    /// The W3C JSON form of the reference, for [`Session::execute`] arguments.
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

/// One request; returns the answer's `value`, or the W3C error it carried.
fn request(
    agent: &ureq::Agent,
    method: &'static str,
    url: &str,
    body: Option<&Value>,
) -> Result<Value> {
    let path = url
        .splitn(4, '/')
        .nth(3)
        .map_or_else(|| url.to_owned(), |p| format!("/{p}"));
    let http = |source: ureq::Error| Error::Http {
        method,
        path: path.clone(),
        source: Box::new(source),
    };
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, body) => agent
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .send(body.unwrap_or(&json!({})).to_string()),
    }
    .map_err(http)?;
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(http)?;
    let answer: Value = serde_json::from_str(&text).map_err(|_| Error::Protocol {
        what: format!("{method} {path} (HTTP {status})"),
        found: text.chars().take(300).collect(),
    })?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if status < 400 {
        // A success: `value` is whatever the command returned (a script may return an object
        // with an `error` field of its own).
        return Ok(value);
    }
    match value.get("error").and_then(Value::as_str) {
        Some(error) => Err(Error::WebDriver {
            method,
            path,
            error: error.to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        }),
        None => Err(Error::Protocol {
            what: format!("{method} {path} (HTTP {status})"),
            found: short(&answer),
        }),
    }
}

fn element_of(v: &Value, selector: &str) -> Result<Element> {
    v[ELEMENT_KEY]
        .as_str()
        .map(|id| Element { id: id.to_owned() })
        .ok_or_else(|| Error::Protocol {
            what: format!("element `{selector}`"),
            found: short(v),
        })
}

fn as_string(v: &Value, what: &str) -> Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Protocol {
            what: what.to_owned(),
            found: short(v),
        })
}

/// A JSON value shortened for an error message.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

/// A port that was free a moment ago (the driver binds it right after).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("finding a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free port", e))
}
