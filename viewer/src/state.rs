//! The view a share link describes, and its query-string form.
//!
//! Parse, don't validate: [`ViewState::from_query`] always returns a usable state plus one
//! [`Warning`] per parameter it ignored (unknown, malformed or out of range), never an error and
//! never a panic. Checks that need the bundle (anchor < N, operator < M) run later, in
//! [`ViewState::check_against`], and also produce warnings.

use std::collections::HashSet;
use std::fmt;

use crate::percent;

/// Half-width T of the time range t ∈ [−T, T] when the link does not say.
pub const DEFAULT_T_RANGE: f32 = 2.0;
/// Largest T a link may ask for: past it, paths leave any region the gallery covers.
pub const MAX_T_RANGE: f32 = 100.0;
/// Largest |coefficient| a link may set (the sliders span ±[`COEF_LIMIT`]).
pub const COEF_LIMIT: f32 = 4.0;
/// Longest `bundle` address accepted, in bytes.
pub const MAX_BUNDLE_URL_LEN: usize = 2048;
/// Most operators a link may select.
pub const MAX_SELECTED_OPERATORS: usize = 64;
/// Most prior samples S a link may ask for (each is one tile of the prior grid).
pub const MAX_SAMPLES: u32 = 256;
/// Longest query string read, in bytes (a link longer than any the viewer writes: the bundle
/// address is at most [`MAX_BUNDLE_URL_LEN`] and 64 operators take under 1 KB). The rest is
/// ignored with one warning, so a hostile link costs a bounded amount of parsing.
pub const MAX_QUERY_LEN: usize = 8192;
/// Most warnings shown as lines; the rest are summed up in one "and N more" line.
pub const MAX_SHOWN_WARNINGS: usize = 20;
/// Longest parameter value quoted back in a warning, in characters.
const QUOTE_CHARS: usize = 40;

/// What the viewer shows around the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Animate the path z(t) = T(t·c) z0 along the selected operators.
    #[default]
    Path,
    /// Sample coefficients from the learned prior at the anchor.
    Prior,
    /// Transport image A to image B with coefficients from the encoder.
    Transport,
    /// Inspect one operator: eigenvalues, sweeps, class heatmap.
    Inspect,
}

impl Mode {
    /// The name used in links.
    pub fn name(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Prior => "prior",
            Self::Transport => "transport",
            Self::Inspect => "inspect",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Path, Self::Prior, Self::Transport, Self::Inspect]
            .into_iter()
            .find(|mode| mode.name() == text)
    }
}

/// Everything a share link restores. Fields hold only values that passed parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewState {
    /// Address of the bundle; `None` opens the site's demo bundle.
    pub bundle: Option<String>,
    /// Gallery index of the anchor image.
    pub anchor: Option<u32>,
    /// Selected operators with their coefficients, in selection order, each index once.
    pub operators: Vec<(u32, f32)>,
    /// T: paths run over t ∈ [−T, T]; finite, in (0, [`MAX_T_RANGE`]].
    pub t_range: f32,
    /// The current time t, within [`ViewState::t_bounds`]: [−T, T], or [0, 1] in transport mode.
    pub t: f32,
    /// What is shown.
    pub mode: Mode,
    /// Seed of the prior sampler.
    pub seed: Option<u64>,
    /// Gallery index of image B (transport A → B).
    pub b: Option<u32>,
    /// S, the number of prior samples; `None` draws the default 64.
    pub samples: Option<u32>,
    /// The operator shown in inspect mode; `None` inspects the first selected operator, else
    /// the one of largest norm.
    pub inspect: Option<u32>,
    /// Use the CPU engine even where WebGPU is available (`cpu=1`).
    pub force_cpu: bool,
    /// Use WebGPU even where its only adapter is a software one (`gpu=1`), on which the CPU
    /// engine is usually faster; never set together with `force_cpu`, which wins.
    pub force_gpu: bool,
    /// Follow the bundle as a run rewrites it (`follow=1`): poll its address and swap the model
    /// in place when it changes, keeping the rest of this state.
    pub follow: bool,
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            bundle: None,
            anchor: None,
            operators: Vec::new(),
            t_range: DEFAULT_T_RANGE,
            t: 0.0,
            mode: Mode::Path,
            seed: None,
            b: None,
            samples: None,
            inspect: None,
            force_cpu: false,
            force_gpu: false,
            follow: false,
        }
    }
}

/// A query parameter (or part of one) that was ignored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The parameter's name, e.g. `anchor`.
    pub parameter: String,
    /// The ignored value, shortened for display.
    pub value: String,
    /// Why it was ignored, in plain words.
    pub reason: String,
}

impl Warning {
    fn new(parameter: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            parameter: quote(parameter),
            value: quote(value),
            reason: reason.into(),
        }
    }
}

/// `text` shortened to [`QUOTE_CHARS`] characters, with `…` when cut.
fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let mut quoted: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        quoted.push('…');
    }
    quoted
}

/// The lines the page shows for `warnings`: the first [`MAX_SHOWN_WARNINGS`], then one line
/// saying how many more there are, so that a link with thousands of junk parameters adds a
/// bounded number of list items.
pub fn shown_warnings(warnings: &[String]) -> Vec<String> {
    let mut lines: Vec<String> = warnings.iter().take(MAX_SHOWN_WARNINGS).cloned().collect();
    let more = warnings.len().saturating_sub(MAX_SHOWN_WARNINGS);
    if more > 0 {
        lines.push(format!(
            "…and {more} more ignored parameter{}.",
            if more == 1 { "" } else { "s" }
        ));
    }
    lines
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ignored {}={}: {}.",
            self.parameter, self.value, self.reason
        )
    }
}

impl ViewState {
    /// Parses a query string (with or without the leading `?`). Every parameter that is unknown,
    /// repeated, malformed or out of range is left at its default and reported as a [`Warning`].
    ///
    /// Linear in the length of the query, of which at most [`MAX_QUERY_LEN`] bytes are read (a
    /// longer query is cut at the last `&` before that, with a warning).
    pub fn from_query(query: &str) -> (Self, Vec<Warning>) {
        let mut state = Self::default();
        let mut warnings = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut t_text: Option<String> = None;
        let query = query.strip_prefix('?').unwrap_or(query);
        let query = if query.len() > MAX_QUERY_LEN {
            let head = query.get(..MAX_QUERY_LEN).unwrap_or_else(|| {
                // Cut at a character boundary at or below the limit.
                let end = (0..=MAX_QUERY_LEN)
                    .rev()
                    .find(|&i| query.is_char_boundary(i))
                    .unwrap_or(0);
                query.get(..end).unwrap_or_default()
            });
            let kept = head
                .rfind('&')
                .map_or("", |i| head.get(..i).unwrap_or_default());
            warnings.push(Warning::new(
                "(link)",
                "",
                format!(
                    "the query is {} bytes long; only the parameters in its first {MAX_QUERY_LEN} \
                     bytes are read",
                    query.len()
                ),
            ));
            kept
        } else {
            query
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = (percent::decode(raw_key), percent::decode(raw_value));
            if seen.contains(&key) {
                warnings.push(Warning::new(
                    &key,
                    &value,
                    "repeated; the first value is used",
                ));
                continue;
            }
            seen.insert(key.clone());
            let outcome = match key.as_str() {
                "bundle" => parse_bundle(&value).map(|url| state.bundle = Some(url)),
                "anchor" => parse_index(&value).map(|i| state.anchor = Some(i)),
                "b" => parse_index(&value).map(|i| state.b = Some(i)),
                "S" => parse_samples(&value).map(|s| state.samples = Some(s)),
                "op" => value
                    .parse::<u32>()
                    .map(|m| state.inspect = Some(m))
                    .map_err(|_| "not an operator index (a whole number from 0)".to_owned()),
                "ops" => {
                    state.operators = parse_operators(&value, &mut warnings);
                    Ok(())
                }
                "T" => parse_t_range(&value).map(|t| state.t_range = t),
                "t" => {
                    // Checked against T once all parameters are read (T may come later).
                    t_text = Some(value.clone());
                    Ok(())
                }
                "mode" => Mode::parse(&value)
                    .map(|mode| state.mode = mode)
                    .ok_or_else(|| "not one of path, prior, transport, inspect".to_owned()),
                "seed" => value
                    .parse::<u64>()
                    .map(|seed| state.seed = Some(seed))
                    .map_err(|_| "not a whole number from 0 to 2^64 − 1".to_owned()),
                "cpu" => parse_flag(&value)
                    .map(|on| state.force_cpu = on)
                    .ok_or_else(|| "use cpu=1 to force the CPU engine".to_owned()),
                "gpu" => parse_flag(&value)
                    .map(|on| state.force_gpu = on)
                    .ok_or_else(|| "use gpu=1 to force the WebGPU engine".to_owned()),
                "follow" => parse_flag(&value)
                    .map(|on| state.follow = on)
                    .ok_or_else(|| "use follow=1 to follow a run as it trains".to_owned()),
                _ => Err("unknown parameter".to_owned()),
            };
            if let Err(reason) = outcome {
                warnings.push(Warning::new(&key, &value, reason));
            }
        }
        if state.force_cpu && state.force_gpu {
            // The safer engine wins: cpu=1 is how a person gets away from a failing GPU.
            state.force_gpu = false;
            warnings.push(Warning::new(
                "gpu",
                "1",
                "cpu=1 is also set, and it wins: the CPU engine is used",
            ));
        }
        if let Some(text) = t_text {
            match parse_finite(&text) {
                Ok(t) => {
                    state.t = state.clamp_t(t);
                    if state.t != t {
                        let (low, high) = state.t_bounds();
                        let range = if state.mode == Mode::Transport {
                            format!("[0, 1] in transport mode; {} is used", state.t)
                        } else {
                            format!("[−T, T] = [{low}, {high}]; {} is used", state.t)
                        };
                        warnings.push(Warning::new("t", &text, format!("t must lie in {range}")));
                    }
                }
                Err(reason) => warnings.push(Warning::new("t", &text, reason)),
            }
        }
        (state, warnings)
    }

    /// Whether a link opens the first view (a representative anchor, the largest operator,
    /// playing) rather than the view its parameters describe.
    ///
    /// Only links that describe nothing do: the empty query (the demo page), and the address
    /// `mclr view` prints, whose only parameters are the `bundle` it follows and `follow` itself
    /// (follow mode is new, so no earlier link meant anything else by it). Every other link —
    /// `?bundle=x.mclr`, `?cpu=1` or `?gpu=1` alone included — keeps its exact meaning: anchor 0
    /// (or the link's), the link's operators, paused.
    pub fn opens_first_view(query: &str) -> bool {
        let (state, _) = Self::from_query(query);
        let query = query.strip_prefix('?').unwrap_or(query);
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| percent::decode(pair.split_once('=').map_or(pair, |(key, _)| key)))
            .all(|key| matches!(key.as_str(), "follow" | "bundle") && state.follow)
    }

    /// The range t runs over in this view: [0, 1] for a transport A → B (t = 0 is A, t = 1 the
    /// encoder's estimate of B), [−T, T] otherwise.
    pub fn t_bounds(&self) -> (f32, f32) {
        if self.mode == Mode::Transport {
            (0.0, 1.0)
        } else {
            (-self.t_range, self.t_range)
        }
    }

    /// `t` clamped into [`ViewState::t_bounds`].
    pub fn clamp_t(&self, t: f32) -> f32 {
        let (low, high) = self.t_bounds();
        t.clamp(low, high)
    }

    /// The query string (without `?`) that [`ViewState::from_query`] turns back into this state.
    /// Parameters at their default are left out, so links stay short.
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(url) = &self.bundle {
            parts.push(format!("bundle={}", percent::encode(url, ":/")));
        }
        if self.follow {
            parts.push("follow=1".to_owned());
        }
        if let Some(anchor) = self.anchor {
            parts.push(format!("anchor={anchor}"));
        }
        if !self.operators.is_empty() {
            let list: Vec<String> = self
                .operators
                .iter()
                .map(|(m, coef)| format!("{m}:{coef}"))
                .collect();
            parts.push(format!("ops={}", percent::encode(&list.join(","), ":,")));
        }
        if self.t_range != DEFAULT_T_RANGE {
            parts.push(format!("T={}", self.t_range));
        }
        if self.t != 0.0 {
            parts.push(format!("t={}", self.t));
        }
        if self.mode != Mode::Path {
            parts.push(format!("mode={}", self.mode.name()));
        }
        if let Some(seed) = self.seed {
            parts.push(format!("seed={seed}"));
        }
        if let Some(b) = self.b {
            parts.push(format!("b={b}"));
        }
        if let Some(samples) = self.samples {
            parts.push(format!("S={samples}"));
        }
        if let Some(m) = self.inspect {
            parts.push(format!("op={m}"));
        }
        if self.force_cpu {
            parts.push("cpu=1".to_owned());
        }
        if self.force_gpu {
            parts.push("gpu=1".to_owned());
        }
        parts.join("&")
    }

    /// Drops what does not exist in a bundle of `gallery` images and `operators` operators (an
    /// anchor or image B past the gallery, an operator index past M), with one warning each.
    pub fn check_against(&mut self, gallery: usize, operators: usize) -> Vec<Warning> {
        let mut warnings = Vec::new();
        let in_gallery = |i: u32| usize::try_from(i).is_ok_and(|i| i < gallery);
        for (name, slot) in [("anchor", &mut self.anchor), ("b", &mut self.b)] {
            if let Some(i) = *slot
                && !in_gallery(i)
            {
                warnings.push(Warning::new(
                    name,
                    &i.to_string(),
                    format!(
                        "the bundle has {gallery} images (0 to {})",
                        gallery.saturating_sub(1)
                    ),
                ));
                *slot = None;
            }
        }
        if let Some(m) = self.inspect
            && !usize::try_from(m).is_ok_and(|m| m < operators)
        {
            warnings.push(Warning::new(
                "op",
                &m.to_string(),
                format!(
                    "the bundle has {operators} operators (0 to {})",
                    operators.saturating_sub(1)
                ),
            ));
            self.inspect = None;
        }
        self.operators.retain(|&(m, coef)| {
            let keep = usize::try_from(m).is_ok_and(|m| m < operators);
            if !keep {
                warnings.push(Warning::new(
                    "ops",
                    &format!("{m}:{coef}"),
                    format!(
                        "the bundle has {operators} operators (0 to {})",
                        operators.saturating_sub(1)
                    ),
                ));
            }
            keep
        });
        warnings
    }

    /// The full coefficient vector c (M values): the selected operators' coefficients, 0 elsewhere.
    /// Indices at or past `operators` are skipped.
    pub fn coefficients(&self, operators: usize) -> Vec<f32> {
        let mut c = vec![0.0; operators];
        for &(m, coef) in &self.operators {
            if let Some(slot) = usize::try_from(m).ok().and_then(|m| c.get_mut(m)) {
                *slot = coef;
            }
        }
        c
    }

    /// The coefficient of operator `m` if it is selected.
    pub fn coefficient(&self, m: u32) -> Option<f32> {
        self.operators
            .iter()
            .find(|(index, _)| *index == m)
            .map(|&(_, coef)| coef)
    }
}

fn parse_bundle(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("empty address".to_owned())
    } else if value.len() > MAX_BUNDLE_URL_LEN {
        Err(format!(
            "address longer than {MAX_BUNDLE_URL_LEN} characters"
        ))
    } else {
        Ok(value.to_owned())
    }
}

/// A switch: `1`/`true` is on, `0`/`false` off, anything else `None`.
fn parse_flag(value: &str) -> Option<bool> {
    match value {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn parse_index(value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .map_err(|_| "not an image index (a whole number from 0)".to_owned())
}

fn parse_samples(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(s) if (1..=MAX_SAMPLES).contains(&s) => Ok(s),
        _ => Err(format!("S is a whole number from 1 to {MAX_SAMPLES}")),
    }
}

fn parse_finite(value: &str) -> Result<f32, String> {
    match value.parse::<f32>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err("not a finite number".to_owned()),
    }
}

fn parse_t_range(value: &str) -> Result<f32, String> {
    let t_range = parse_finite(value)?;
    if t_range > 0.0 && t_range <= MAX_T_RANGE {
        Ok(t_range)
    } else {
        Err(format!("T must be above 0 and at most {MAX_T_RANGE}"))
    }
}

/// Parses `m:coef,m:coef,…`, keeping every well-formed, in-range item and warning about the rest.
fn parse_operators(value: &str, warnings: &mut Vec<Warning>) -> Vec<(u32, f32)> {
    let mut operators: Vec<(u32, f32)> = Vec::new();
    for item in value.split(',').filter(|item| !item.is_empty()) {
        let parsed = item
            .split_once(':')
            .ok_or_else(|| "expected operator:coefficient, e.g. 3:1.0".to_owned())
            .and_then(|(m, coef)| {
                let m = m
                    .parse::<u32>()
                    .map_err(|_| "the operator is not an index (a whole number from 0)")?;
                let coef = parse_finite(coef)?;
                if coef.abs() > COEF_LIMIT {
                    return Err(format!("coefficients lie in [−{COEF_LIMIT}, {COEF_LIMIT}]"));
                }
                if operators.iter().any(|&(seen, _)| seen == m) {
                    return Err(format!("operator {m} is listed twice"));
                }
                if operators.len() >= MAX_SELECTED_OPERATORS {
                    return Err(format!("at most {MAX_SELECTED_OPERATORS} operators"));
                }
                Ok((m, coef))
            });
        match parsed {
            Ok(op) => operators.push(op),
            Err(reason) => warnings.push(Warning::new("ops", item, reason)),
        }
    }
    operators
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_thousand_junk_keys_read_only_the_capped_query_and_show_capped_warnings() {
        let query: String = (0..30_000).map(|i| format!("junk{i}=x&")).collect();
        assert!(query.len() > 300_000);
        let (state, warnings) = ViewState::from_query(&query);
        assert_eq!(state, ViewState::default());
        let first = warnings[0].to_string();
        assert!(
            first.contains(&format!(
                "the query is {} bytes long; only the parameters in its first 8192 bytes are read",
                query.len()
            )),
            "{first}"
        );
        // Only the pairs inside the first 8192 bytes are parsed (each is at least 8 bytes).
        assert!(
            warnings.len() <= 1 + MAX_QUERY_LEN / 8,
            "{}",
            warnings.len()
        );
        assert!(warnings.len() > 500, "{}", warnings.len());

        let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        let shown = shown_warnings(&lines);
        assert_eq!(shown.len(), MAX_SHOWN_WARNINGS + 1);
        assert_eq!(
            shown[MAX_SHOWN_WARNINGS],
            format!(
                "…and {} more ignored parameters.",
                lines.len() - MAX_SHOWN_WARNINGS
            )
        );
        assert_eq!(shown_warnings(&lines[..3]), lines[..3].to_vec());
    }

    #[test]
    fn repeated_keys_are_found_with_a_set_and_quoted_short() {
        // Under the length cap: every key distinct but one, which repeats at the end.
        let long_key = "k".repeat(100);
        let query = format!("{long_key}=1&a=1&b=2&{long_key}=2");
        let (_, warnings) = ViewState::from_query(&query);
        let repeated: Vec<&Warning> = warnings
            .iter()
            .filter(|w| w.reason.starts_with("repeated"))
            .collect();
        assert_eq!(repeated.len(), 1);
        assert_eq!(repeated[0].parameter.chars().count(), QUOTE_CHARS + 1);
        assert!(repeated[0].parameter.ends_with('…'));
    }

    #[test]
    fn a_long_query_of_multibyte_characters_is_cut_at_a_character_boundary() {
        let query = format!("a={}", "é".repeat(MAX_QUERY_LEN));
        let (state, warnings) = ViewState::from_query(&query);
        assert_eq!(state, ViewState::default());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    fn full_state() -> ViewState {
        ViewState {
            bundle: Some("https://example.org/runs/a b&c.mclr?x=1#y".to_owned()),
            anchor: Some(42),
            operators: vec![(3, 1.0), (7, -0.5), (0, 0.123_456_79)],
            t_range: 3.5,
            t: 0.625,
            mode: Mode::Transport,
            seed: Some(u64::MAX),
            b: Some(7),
            samples: Some(128),
            inspect: Some(2),
            force_cpu: true,
            force_gpu: false,
            follow: true,
        }
    }

    #[test]
    fn every_field_survives_a_round_trip_with_gpu_forced() {
        let state = ViewState {
            force_cpu: false,
            force_gpu: true,
            ..full_state()
        };
        let (parsed, warnings) = ViewState::from_query(&state.to_query());
        assert_eq!(warnings, vec![]);
        assert_eq!(parsed, state);
    }

    #[test]
    fn the_follow_link_mclr_view_prints_is_printed_back_unchanged() {
        let query = "bundle=run/live.mclr&follow=1";
        let (state, warnings) = ViewState::from_query(query);
        assert_eq!(warnings, vec![]);
        assert!(state.follow);
        assert_eq!(state.bundle.as_deref(), Some("run/live.mclr"));
        assert_eq!(state.to_query(), query);
        let (state, warnings) = ViewState::from_query("follow=0&gpu=false");
        assert_eq!((state, warnings), (ViewState::default(), vec![]));
    }

    #[test]
    fn cpu_wins_over_gpu_with_a_warning() {
        for query in ["cpu=1&gpu=1", "gpu=1&cpu=true"] {
            let (state, warnings) = ViewState::from_query(query);
            assert!(state.force_cpu && !state.force_gpu, "{query}");
            assert_eq!(warnings.len(), 1, "{query}");
            assert_eq!(warnings[0].parameter, "gpu");
            assert!(warnings[0].reason.contains("cpu=1"), "{warnings:?}");
            assert_eq!(state.to_query(), "cpu=1");
        }
        let (_, warnings) = ViewState::from_query("gpu=yes&follow=2");
        let names: Vec<&str> = warnings.iter().map(|w| w.parameter.as_str()).collect();
        assert_eq!(names, ["gpu", "follow"]);
    }

    #[test]
    fn only_links_without_an_earlier_meaning_open_the_first_view() {
        for query in [
            "",
            "?",
            "follow=1",
            "?bundle=run/live.mclr&follow=1",
            "bundle=run%2Flive.mclr&follow=true",
        ] {
            assert!(ViewState::opens_first_view(query), "{query:?}");
        }
        // Links an earlier viewer read as a view keep that meaning.
        for query in [
            "?cpu=1",
            "?bundle=fresh.mclr",
            "?bundle=fresh.mclr&follow=0",
            "?anchor=0",
            "?anchor=abc&ops=zz",
            "?mode=prior",
            "?zoom=3",
            "?gpu=1",
            "?gpu=1&T=3",
            "?bundle=run/live.mclr&follow=1&cpu=1",
            "?follow=maybe",
        ] {
            assert!(!ViewState::opens_first_view(query), "{query:?}");
        }
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        let state = full_state();
        let (parsed, warnings) = ViewState::from_query(&state.to_query());
        assert_eq!(warnings, vec![]);
        assert_eq!(parsed, state);
    }

    #[test]
    fn the_default_state_is_the_empty_query() {
        assert_eq!(ViewState::default().to_query(), "");
        assert_eq!(ViewState::from_query(""), (ViewState::default(), vec![]));
        assert_eq!(ViewState::from_query("?"), (ViewState::default(), vec![]));
    }

    #[test]
    fn the_documented_link_form_parses() {
        let (state, warnings) =
            ViewState::from_query("?anchor=12&ops=3:1.0,7:-0.5&T=2.5&t=0.75&mode=path&cpu=1");
        assert_eq!(warnings, vec![]);
        assert_eq!(state.anchor, Some(12));
        assert_eq!(state.operators, vec![(3, 1.0), (7, -0.5)]);
        assert_eq!((state.t_range, state.t), (2.5, 0.75));
        assert!(state.force_cpu);
        assert_eq!(
            state.coefficients(8),
            vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -0.5]
        );
    }

    #[test]
    fn malformed_values_are_warned_about_and_left_at_default() {
        let (state, warnings) = ViewState::from_query(
            "anchor=-1&T=0&t=nan&mode=dance&seed=x&b=1.5&cpu=maybe&zoom=3&bundle=&S=0&op=-2",
        );
        assert_eq!(state, ViewState::default());
        let names: Vec<&str> = warnings.iter().map(|w| w.parameter.as_str()).collect();
        assert_eq!(
            names,
            [
                "anchor", "T", "mode", "seed", "b", "cpu", "zoom", "bundle", "S", "op", "t"
            ]
        );
        let (_, warnings) = ViewState::from_query("S=257");
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn bad_operator_items_are_dropped_one_by_one() {
        let (state, warnings) = ViewState::from_query("ops=3:1,x:2,4:inf,5,6:9,3:2,7:-0.5,,8:1e-3");
        assert_eq!(state.operators, vec![(3, 1.0), (7, -0.5), (8, 0.001)]);
        let values: Vec<&str> = warnings.iter().map(|w| w.value.as_str()).collect();
        assert_eq!(values, ["x:2", "4:inf", "5", "6:9", "3:2"]);
    }

    #[test]
    fn t_outside_the_range_is_clamped_with_a_warning_whatever_the_parameter_order() {
        let (state, warnings) = ViewState::from_query("t=2.5&T=3");
        assert_eq!((state.t, state.t_range), (2.5, 3.0));
        assert_eq!(warnings, vec![]);
        let (state, warnings) = ViewState::from_query("t=2.5&T=1");
        assert_eq!((state.t, state.t_range), (1.0, 1.0));
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].parameter, "t");
        let (state, warnings) = ViewState::from_query("t=-3");
        assert_eq!(state.t, -2.0);
        assert_eq!(warnings.len(), 1);
        let (state, warnings) = ViewState::from_query("t=nan");
        assert_eq!(state.t, 0.0);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn a_transport_link_keeps_t_in_zero_to_one() {
        let (state, warnings) = ViewState::from_query("mode=transport&b=3&t=0.4");
        assert_eq!((state.t, state.t_bounds()), (0.4, (0.0, 1.0)));
        assert_eq!(warnings, vec![]);
        // T does not widen a transport: t = 1.5 is past B, −0.5 before A.
        let (state, warnings) = ViewState::from_query("t=1.5&mode=transport&T=3");
        assert_eq!(state.t, 1.0);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].reason.contains("[0, 1]"), "{warnings:?}");
        let (state, warnings) = ViewState::from_query("mode=transport&t=-0.5");
        assert_eq!(state.t, 0.0);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].parameter, "t");
        assert_eq!(state.clamp_t(7.0), 1.0);
    }

    #[test]
    fn a_repeated_parameter_keeps_its_first_value() {
        let (state, warnings) = ViewState::from_query("anchor=1&anchor=2");
        assert_eq!(state.anchor, Some(1));
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn bundle_range_checks_drop_what_the_bundle_lacks() {
        let mut state = full_state();
        state.anchor = Some(100);
        state.b = Some(99);
        state.inspect = Some(4);
        let warnings = state.check_against(100, 4);
        assert_eq!(state.anchor, None);
        assert_eq!(state.b, Some(99));
        assert_eq!(state.inspect, None);
        assert_eq!(state.operators, vec![(3, 1.0), (0, 0.123_456_79)]);
        let params: Vec<&str> = warnings.iter().map(|w| w.parameter.as_str()).collect();
        assert_eq!(params, ["anchor", "op", "ops"]);
        assert!(
            warnings[0].to_string().contains("100 images"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn warnings_quote_long_values_shortened() {
        let long = "9".repeat(500);
        let (_, warnings) = ViewState::from_query(&format!("anchor={long}"));
        assert!(warnings[0].value.chars().count() <= QUOTE_CHARS + 1);
    }

    /// Deterministic garbage: never a panic, and whatever state comes out of a garbage query
    /// prints to a query that parses back to the same state without a warning.
    #[test]
    fn garbage_queries_never_panic_and_their_state_round_trips() {
        const PIECES: [&str; 36] = [
            "anchor",
            "ops",
            "T",
            "t",
            "mode",
            "seed",
            "b",
            "cpu",
            "gpu",
            "follow",
            "bundle",
            "S",
            "op",
            "=",
            "&",
            "?",
            ":",
            ",",
            "%",
            "%2",
            "%26",
            "%3D",
            "+",
            "-",
            ".",
            "e",
            "1",
            "0",
            "7",
            "99999999999",
            "inf",
            "NaN",
            "path",
            "prior",
            "é✓",
            "\u{0}",
        ];
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            let mut query = String::new();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let len = rng % 24;
            for _ in 0..len {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                query.push_str(PIECES[usize::try_from(rng % 36).unwrap()]);
            }
            let (state, _) = ViewState::from_query(&query);
            let (again, warnings) = ViewState::from_query(&state.to_query());
            assert_eq!(again, state, "query {query:?}");
            assert_eq!(warnings, vec![], "query {query:?}");
            let (low, high) = state.t_bounds();
            assert!((low..=high).contains(&state.t), "query {query:?}");
        }
    }
}
