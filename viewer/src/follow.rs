//! Follow mode (`follow=1`): the decisions behind following a run while it trains, kept free of
//! the browser so that they are tested natively. The browser half (`web::controller::follow`)
//! polls, and asks this module what to send, whether what came back is new, what the view keeps
//! across a swap and what the status line says.
//!
//! Every [`POLL_INTERVAL_MS`] the viewer asks for the bundle with a conditional request: the ETag
//! of the version in use in `If-None-Match`, else its `Last-Modified` in `If-Modified-Since`. A
//! 304 changes nothing. A 200 is compared with the version in use by its 24-byte header (format
//! version, payload length and the payload's CRC-32) as soon as those bytes arrive, so that a
//! server that sends no validators (a plain static server) costs one header per poll, not a
//! decode. A new version is decoded and swapped in; a failure (network, a file caught mid-write,
//! a decode error) keeps the model in use, shows a warning and is retried, with a back-off, and
//! the validators of the failed version are not recorded, so the next poll asks for it again.

use mclr_shared::bundle::HEADER_LEN;

use crate::state::{ViewState, Warning};

/// Time between two polls of a followed run, in ms.
pub const POLL_INTERVAL_MS: u32 = 2_000;

/// Longest time between polls after repeated failures, in ms.
pub const MAX_POLL_INTERVAL_MS: u32 = 30_000;

/// The validators of one version of a file, as its server sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` header, verbatim (quotes and a `W/` prefix included).
    pub etag: Option<String>,
    /// The `Last-Modified` header, verbatim.
    pub last_modified: Option<String>,
}

impl Validators {
    /// Validators from response headers; blank values count as absent.
    pub fn from_headers(etag: Option<&str>, last_modified: Option<&str>) -> Self {
        let keep = |value: Option<&str>| {
            value
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Self {
            etag: keep(etag),
            last_modified: keep(last_modified),
        }
    }

    /// The conditional request header for asking whether this version is still current:
    /// `If-None-Match` with the ETag, else `If-Modified-Since` with the date, else none.
    pub fn condition(&self) -> Option<(&'static str, &str)> {
        match (&self.etag, &self.last_modified) {
            (Some(etag), _) => Some(("If-None-Match", etag)),
            (None, Some(date)) => Some(("If-Modified-Since", date)),
            (None, None) => None,
        }
    }
}

/// What identifies a version of a file's content without keeping it: for a bundle its header
/// (which holds the payload's length and CRC-32), for a text its length and a 64-bit hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<u8>);

impl Fingerprint {
    /// Bytes of a bundle needed to fingerprint it: its header.
    pub const BUNDLE_PREFIX: usize = HEADER_LEN;

    /// The fingerprint of a bundle from (at least) its first [`Self::BUNDLE_PREFIX`] bytes;
    /// `None` when fewer arrived.
    pub fn of_bundle(bytes: &[u8]) -> Option<Self> {
        bytes.get(..HEADER_LEN).map(|header| Self(header.to_vec()))
    }

    /// The fingerprint of a whole text (or any bytes): length and FNV-1a 64.
    pub fn of_text(bytes: &[u8]) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let mut out = len.to_le_bytes().to_vec();
        out.extend_from_slice(&hash.to_le_bytes());
        Self(out)
    }
}

/// The bookkeeping of one followed file: the version in use and how the last polls went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watched {
    validators: Validators,
    fingerprint: Option<Fingerprint>,
    failures: u32,
    /// Conditional requests failed outright (a cross-origin server that refuses the preflight
    /// `If-None-Match` needs): ask plainly and compare fingerprints instead.
    plain: bool,
}

impl Watched {
    /// A file whose version in use came with `validators` and has `fingerprint`.
    pub fn new(validators: Validators, fingerprint: Option<Fingerprint>) -> Self {
        Self {
            validators,
            fingerprint,
            failures: 0,
            plain: false,
        }
    }

    /// The conditional header to send with the next poll (owned, for the request); none after
    /// [`Watched::ask_plainly`].
    pub fn condition(&self) -> Option<(&'static str, String)> {
        if self.plain {
            return None;
        }
        self.validators
            .condition()
            .map(|(name, value)| (name, value.to_owned()))
    }

    /// Stops sending conditional headers: a conditional request failed where a plain one may
    /// not (a cross-origin server must allow `If-None-Match` in a preflight). Polls then fetch
    /// the file and compare its fingerprint, which for a bundle stops after its header.
    pub fn ask_plainly(&mut self) {
        self.plain = true;
    }

    /// Whether a 200's content is the version in use (a server without validators, or a file
    /// rewritten with the same bytes): then nothing is decoded.
    pub fn is_current(&self, fingerprint: &Fingerprint) -> bool {
        self.fingerprint.as_ref() == Some(fingerprint)
    }

    /// Records a version put in use: its validators become the next poll's condition.
    pub fn accept(&mut self, validators: Validators, fingerprint: Fingerprint) {
        self.validators = validators;
        self.fingerprint = Some(fingerprint);
        self.failures = 0;
    }

    /// Records a poll that changed nothing (304, or the same content).
    pub fn unchanged(&mut self) {
        self.failures = 0;
    }

    /// Records a 200 whose content is the version in use, under new `validators` (a file
    /// rewritten with the same bytes): the next poll asks with those.
    pub fn revalidated(&mut self, validators: Validators) {
        self.validators = validators;
        self.failures = 0;
    }

    /// Records a failed poll; the version in use and its validators stay, so the next poll asks
    /// for the new version again. Returns the number of failures in a row.
    pub fn fail(&mut self) -> u32 {
        self.failures = self.failures.saturating_add(1);
        self.failures
    }

    /// Failed polls in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// The wait before the next poll after `failures` failed polls in a row: [`POLL_INTERVAL_MS`],
/// doubled per failure after the first, at most [`MAX_POLL_INTERVAL_MS`].
pub fn poll_delay_ms(failures: u32) -> u32 {
    let doublings = failures.saturating_sub(1).min(8);
    POLL_INTERVAL_MS
        .saturating_mul(1 << doublings)
        .min(MAX_POLL_INTERVAL_MS)
}

/// The view state to keep when a followed bundle of `gallery` images and `operators` operators
/// replaces the one in use: all of it (anchor, image B, selected operators with their
/// coefficients, T, t, mode, seed, S, the inspected operator, the switches), each index checked
/// against the new bundle by [`ViewState::check_against`]; a dropped value comes back as a
/// warning to show.
pub fn carry_over(
    state: &ViewState,
    gallery: usize,
    operators: usize,
) -> (ViewState, Vec<Warning>) {
    let mut kept = state.clone();
    let warnings = kept.check_against(gallery, operators);
    (kept, warnings)
}

/// The address of a file stored beside the bundle at `bundle_url`: the bundle's folder (its
/// address up to the last `/` before any query or fragment) joined with `name`, a plain file name
/// (the bundle format allows no folders in it). Relative when the bundle's address is, so it
/// resolves against the page the same way.
pub fn beside(bundle_url: &str, name: &str) -> String {
    let path_end = bundle_url.find(['?', '#']).unwrap_or(bundle_url.len());
    let path = bundle_url.get(..path_end).unwrap_or(bundle_url);
    // The folder is never cut inside the scheme's "//": "https://host" is a folder itself.
    let after_scheme = path.find("://").map_or(0, |i| i + 3);
    let rest = path.get(after_scheme..).unwrap_or_default();
    match rest.rfind('/') {
        Some(i) => format!(
            "{}{name}",
            path.get(..after_scheme + i + 1).unwrap_or_default()
        ),
        None if after_scheme > 0 => format!("{path}/{name}"),
        None => name.to_owned(),
    }
}

/// Where a bundle's model came from, for the live status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveStatus {
    /// Training epochs completed.
    pub epoch: u32,
    /// Optimiser steps completed.
    pub step: u64,
    /// When the model was saved, ms since the Unix epoch; 0 when unknown.
    pub saved_unix_ms: u64,
}

impl LiveStatus {
    /// The status line, e.g. `live · epoch 3 · step 1,200 · saved 14 s ago`; `following` says
    /// `live`, otherwise `snapshot` (a live bundle opened once).
    pub fn text(&self, following: bool, now_unix_ms: f64) -> String {
        let kind = if following { "live" } else { "snapshot" };
        let saved = if self.saved_unix_ms == 0 {
            "saved at an unknown time".to_owned()
        } else {
            // ms since the epoch are far below 2^53: exact in f64.
            #[allow(clippy::cast_precision_loss)]
            let saved = self.saved_unix_ms as f64;
            format!("saved {}", ago(now_unix_ms - saved))
        };
        format!(
            "{kind} · epoch {} · step {} · {saved}",
            self.epoch,
            thousands(self.step)
        )
    }
}

/// An age in words: `just now` under a second (or for a clock behind the trainer's), then
/// `14 s ago`, `3 min ago`, `2 h ago`, `5 d ago`.
pub fn ago(ms: f64) -> String {
    if !ms.is_finite() || ms < 1000.0 {
        return "just now".to_owned();
    }
    // Whole units of a finite, positive age.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let seconds = (ms / 1000.0).floor() as u64;
    let (value, unit) = match seconds {
        0..60 => (seconds, "s"),
        60..3600 => (seconds / 60, "min"),
        3600..86_400 => (seconds / 3600, "h"),
        _ => (seconds / 86_400, "d"),
    };
    format!("{value} {unit} ago")
}

/// `n` with a comma every three digits: `1,200`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};

    use super::*;
    use crate::state::Mode;

    #[test]
    fn the_condition_is_the_etag_else_the_date_else_none() {
        let both = Validators::from_headers(Some("\"abc\""), Some("Tue, 01 Dec 2026 10:00:00 GMT"));
        assert_eq!(both.condition(), Some(("If-None-Match", "\"abc\"")));
        let date = Validators::from_headers(Some("  "), Some("Tue, 01 Dec 2026 10:00:00 GMT"));
        assert_eq!(
            date.condition(),
            Some(("If-Modified-Since", "Tue, 01 Dec 2026 10:00:00 GMT"))
        );
        assert_eq!(Validators::from_headers(None, None).condition(), None);
        let weak = Validators::from_headers(Some("W/\"x\""), None);
        assert_eq!(weak.condition(), Some(("If-None-Match", "W/\"x\"")));
    }

    #[test]
    fn etag_bookkeeping_records_only_versions_put_in_use() {
        let bundle = |seed| {
            let spec = SyntheticSpec {
                seed,
                ..SyntheticSpec::default()
            };
            mclr_shared::bundle::encode(&synthetic_bundle(&spec).unwrap()).unwrap()
        };
        let (first, second) = (bundle(1), bundle(2));
        let first_print = Fingerprint::of_bundle(&first).unwrap();
        let mut watched = Watched::new(
            Validators::from_headers(Some("\"v1\""), None),
            Some(first_print.clone()),
        );
        assert_eq!(
            watched.condition(),
            Some(("If-None-Match", "\"v1\"".to_owned()))
        );
        // The same bytes again (a server without validators): nothing to decode.
        assert!(watched.is_current(&Fingerprint::of_bundle(&first[..HEADER_LEN]).unwrap()));
        let second_print = Fingerprint::of_bundle(&second).unwrap();
        assert!(!watched.is_current(&second_print));
        // A failed decode of v2 keeps v1's validators: the next poll asks for v2 again.
        assert_eq!(watched.fail(), 1);
        assert_eq!(watched.fail(), 2);
        assert_eq!(
            watched.condition(),
            Some(("If-None-Match", "\"v1\"".to_owned()))
        );
        assert!(watched.is_current(&first_print));
        // v2 put in use: its ETag is the next condition, and the failures are over.
        watched.accept(
            Validators::from_headers(Some("\"v2\""), None),
            second_print.clone(),
        );
        assert_eq!(watched.failures(), 0);
        assert_eq!(
            watched.condition(),
            Some(("If-None-Match", "\"v2\"".to_owned()))
        );
        assert!(watched.is_current(&second_print));
        assert!(!watched.is_current(&first_print));
        // The same bytes rewritten: new validators, same version.
        watched.revalidated(Validators::from_headers(Some("\"v2b\""), None));
        assert!(watched.is_current(&second_print));
        assert_eq!(
            watched.condition(),
            Some(("If-None-Match", "\"v2b\"".to_owned()))
        );
        // A server that refuses conditional requests is asked plainly from then on.
        watched.ask_plainly();
        assert_eq!(watched.condition(), None);
        assert!(watched.is_current(&second_print));
        // Fewer bytes than a header fingerprint nothing.
        assert_eq!(Fingerprint::of_bundle(&first[..HEADER_LEN - 1]), None);
    }

    #[test]
    fn text_fingerprints_tell_appended_logs_apart() {
        let log = "{\"step\":0}\n";
        let longer = "{\"step\":0}\n{\"step\":1}\n";
        assert_eq!(
            Fingerprint::of_text(log.as_bytes()),
            Fingerprint::of_text(log.as_bytes())
        );
        assert_ne!(
            Fingerprint::of_text(log.as_bytes()),
            Fingerprint::of_text(longer.as_bytes())
        );
        assert_ne!(Fingerprint::of_text(b"ab"), Fingerprint::of_text(b"ba"));
    }

    #[test]
    fn polls_back_off_after_failures_up_to_a_limit() {
        assert_eq!(poll_delay_ms(0), POLL_INTERVAL_MS);
        assert_eq!(poll_delay_ms(1), POLL_INTERVAL_MS);
        assert_eq!(poll_delay_ms(2), 2 * POLL_INTERVAL_MS);
        assert_eq!(poll_delay_ms(3), 4 * POLL_INTERVAL_MS);
        assert_eq!(poll_delay_ms(100), MAX_POLL_INTERVAL_MS);
    }

    #[test]
    fn a_swap_keeps_the_whole_view_and_warns_about_what_the_new_bundle_lacks() {
        let state = ViewState {
            bundle: Some("run/live.mclr".to_owned()),
            anchor: Some(12),
            operators: vec![(3, 1.5), (0, -0.25)],
            t_range: 3.0,
            t: -1.25,
            mode: Mode::Transport,
            seed: Some(9),
            b: Some(30),
            samples: Some(16),
            inspect: Some(3),
            force_cpu: false,
            force_gpu: true,
            follow: true,
        };
        let (kept, warnings) = carry_over(&state, 40, 4);
        assert_eq!(kept, state);
        assert_eq!(warnings, vec![]);
        // A smaller snapshot: what it lacks is dropped, visibly; the rest stays.
        let (kept, warnings) = carry_over(&state, 20, 2);
        assert_eq!(kept.anchor, Some(12));
        assert_eq!(kept.b, None);
        assert_eq!(kept.operators, vec![(0, -0.25)]);
        assert_eq!(kept.inspect, None);
        assert_eq!(
            (kept.t_range, kept.t, kept.mode),
            (3.0, -1.25, Mode::Transport)
        );
        assert_eq!(
            (kept.seed, kept.samples, kept.follow),
            (Some(9), Some(16), true)
        );
        let names: Vec<&str> = warnings.iter().map(|w| w.parameter.as_str()).collect();
        assert_eq!(names, ["b", "op", "ops"]);
    }

    #[test]
    fn files_beside_a_bundle_resolve_against_its_folder() {
        assert_eq!(
            beside("run/live.mclr", "live-thumbs.png"),
            "run/live-thumbs.png"
        );
        assert_eq!(beside("live.mclr", "metrics.jsonl"), "metrics.jsonl");
        assert_eq!(
            beside("/runs/a/live.mclr?v=2#x", "metrics.jsonl"),
            "/runs/a/metrics.jsonl"
        );
        assert_eq!(
            beside("https://example.org/runs/b.mclr", "s.png"),
            "https://example.org/runs/s.png"
        );
        assert_eq!(
            beside("https://example.org", "s.png"),
            "https://example.org/s.png"
        );
        assert_eq!(
            beside("https://example.org/", "s.png"),
            "https://example.org/s.png"
        );
        assert_eq!(beside("b.mclr?dir=/x/", "s.png"), "s.png");
    }

    #[test]
    fn the_status_line_says_epoch_step_and_age() {
        let status = LiveStatus {
            epoch: 3,
            step: 1200,
            saved_unix_ms: 1_000_000,
        };
        assert_eq!(
            status.text(true, 1_014_500.0),
            "live · epoch 3 · step 1,200 · saved 14 s ago"
        );
        assert_eq!(
            status.text(false, 1_000_000.0 + 3.0 * 3_600_000.0),
            "snapshot · epoch 3 · step 1,200 · saved 3 h ago"
        );
        let unknown = LiveStatus {
            saved_unix_ms: 0,
            ..status
        };
        assert!(
            unknown
                .text(true, 5.0)
                .ends_with("saved at an unknown time")
        );
        assert_eq!(ago(-5_000.0), "just now");
        assert_eq!(ago(f64::NAN), "just now");
        assert_eq!(ago(125_000.0), "2 min ago");
        assert_eq!(ago(3.0 * 86_400_000.0), "3 d ago");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
