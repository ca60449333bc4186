//! The reactive state the components read: plain data (all `Send`), one signal per concern.
//! Browser objects and the loaded bundle live in the controller, not here.

use leptos::prelude::*;

use crate::curve_plot::RunLogs;
use crate::engine::Backend;
use crate::follow::LiveStatus;
use crate::state::ViewState;

/// Bytes of a bundle download so far, and the announced total if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Bytes received.
    pub loaded: f64,
    /// Content-Length, when the server sent one.
    pub total: Option<f64>,
}

/// One row of the operator list.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorRow {
    /// Operator index m.
    pub index: u32,
    /// Frobenius norm of Ψ_m.
    pub norm: f32,
    /// Fraction of training pairs that used it, in [0, 1].
    pub usage: f32,
}

/// One entry of the legend.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassEntry {
    /// Class name.
    pub name: String,
    /// CSS colour.
    pub colour: String,
    /// Gallery images of this class.
    pub count: usize,
}

/// What the panels show about the loaded bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// File name.
    pub name: String,
    /// One line: dataset, method, sizes.
    pub description: String,
    /// N.
    pub gallery: usize,
    /// Operators by decreasing norm.
    pub operators: Vec<OperatorRow>,
    /// Classes in label order.
    pub classes: Vec<ClassEntry>,
    /// Mean |c_m| under the prior per class, C × M (operators in index order).
    pub heatmap: Vec<f32>,
    /// M.
    pub num_operators: usize,
    /// The evaluation figures of the run and of the runs compared with it.
    pub results: crate::results::ResultsTable,
}

/// The hovered gallery point.
#[derive(Debug, Clone, PartialEq)]
pub struct Hover {
    /// Gallery index.
    pub index: usize,
    /// Position of the card, CSS pixels within the scatter panel.
    pub at: [f32; 2],
    /// Text under the thumbnail.
    pub label: String,
}

/// What the prior panel shows about the current sample cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorSummary {
    /// Samples drawn.
    pub samples: usize,
    /// Fraction whose nearest image has the anchor's label.
    pub keep_label: f32,
    /// The anchor's class name.
    pub class_name: String,
    /// Samples whose nearest image has the anchor's label.
    pub kept: usize,
    /// The nearest gallery image of each sample, in sample order.
    pub nearest: Vec<usize>,
}

/// A sweep as the inspect panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepView {
    /// The operator swept.
    pub operator: usize,
    /// (t, nearest gallery image) at the tile times.
    pub tiles: Vec<(f32, usize)>,
    /// Every time of the coordinate lines, ascending.
    pub times: Vec<f32>,
    /// T(t·e_m) z0 at each of `times`, row-major (times × d).
    pub positions: Vec<f32>,
    /// d.
    pub dim: usize,
}

/// The eigenvalues of the inspected operator's blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumView {
    /// The operator m.
    pub operator: usize,
    /// (re, im) of each eigenvalue, per block k.
    pub blocks: Vec<Vec<(f64, f64)>>,
}

/// What the transport panel shows about A → B.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportView {
    /// Gallery index of A.
    pub a: usize,
    /// Gallery index of B.
    pub b: usize,
    /// ‖T(c)z_A − z_B‖² / ‖z_A − z_B‖², `None` when A and B coincide.
    pub error: Option<f32>,
    /// ‖c‖₂ of the encoder's coefficients.
    pub norm: f32,
    /// The largest |c_m|: (m, c_m), at most five.
    pub top: Vec<(usize, f32)>,
}

/// Where the model in use came from, for `#live-status`: shown for a followed bundle and for a
/// live snapshot opened once.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveView {
    /// Epoch, step and save time of the model in use.
    pub status: LiveStatus,
    /// Whether the page follows the run (`follow=1`).
    pub following: bool,
    /// The last poll's problem, if it failed (the model in use stays).
    pub warning: Option<String>,
}

/// The first view as it was set up: while the state still equals it, the address bar keeps the
/// link as it was opened and the hint shows.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstView {
    /// The state the first view set.
    pub state: ViewState,
    /// The line explaining it.
    pub hint: String,
}

/// All signals of the app; `Copy`, so handlers and async tasks capture it freely.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// The share-link state (anchor, operators, T, t at rest, mode).
    pub state: RwSignal<ViewState>,
    /// The path's current t (moves every frame while playing).
    pub live_t: RwSignal<f32>,
    /// Whether the path animation runs.
    pub playing: RwSignal<bool>,
    /// Animation speed multiplier.
    pub speed: RwSignal<f32>,
    /// Plain-words error, shown in `#error`.
    pub error: RwSignal<Option<String>>,
    /// Ignored link parameters.
    pub warnings: RwSignal<Vec<String>>,
    /// Download progress while a bundle loads.
    pub progress: RwSignal<Option<Progress>>,
    /// The loaded bundle.
    pub summary: RwSignal<Option<Summary>>,
    /// Which engine computes.
    pub backend: RwSignal<Option<Backend>>,
    /// Gallery indices of the nearest neighbours of the path's current point.
    pub nn: RwSignal<Vec<usize>>,
    /// Compute time of the last frame in ms.
    pub frame_ms: RwSignal<Option<f64>>,
    /// The last copied share link.
    pub share_url: RwSignal<String>,
    /// The hovered point.
    pub hover: RwSignal<Option<Hover>>,
    /// The current operator sweep, in inspect mode.
    pub sweep: RwSignal<Option<SweepView>>,
    /// The current prior sample cloud, in prior mode.
    pub prior: RwSignal<Option<PriorSummary>>,
    /// The inspected operator's block eigenvalues, in inspect mode.
    pub spectrum: RwSignal<Option<SpectrumView>>,
    /// The current transport A → B, in transport mode.
    pub transport: RwSignal<Option<TransportView>>,
    /// Bumped after the sprite sheet of a new bundle is decoded, so thumbnails redraw.
    pub sprites_version: RwSignal<u64>,
    /// The runs of the training-curves panel.
    pub curves: RwSignal<RunLogs>,
    /// The live status line's contents, when there is one.
    pub live: RwSignal<Option<LiveView>>,
    /// The wall clock (ms since the Unix epoch), refreshed every second, for ages.
    pub now_ms: RwSignal<f64>,
    /// The first view while it is untouched.
    pub first_view: RwSignal<Option<FirstView>>,
}

impl Ui {
    /// Fresh signals for `state`.
    pub fn new(state: ViewState, warnings: Vec<String>) -> Self {
        Self {
            state: RwSignal::new(state),
            live_t: RwSignal::new(0.0),
            playing: RwSignal::new(false),
            speed: RwSignal::new(1.0),
            error: RwSignal::new(None),
            warnings: RwSignal::new(warnings),
            progress: RwSignal::new(None),
            summary: RwSignal::new(None),
            backend: RwSignal::new(None),
            nn: RwSignal::new(Vec::new()),
            frame_ms: RwSignal::new(None),
            share_url: RwSignal::new(String::new()),
            hover: RwSignal::new(None),
            sprites_version: RwSignal::new(0),
            prior: RwSignal::new(None),
            sweep: RwSignal::new(None),
            spectrum: RwSignal::new(None),
            transport: RwSignal::new(None),
            curves: RwSignal::new(RunLogs::default()),
            live: RwSignal::new(None),
            now_ms: RwSignal::new(js_sys::Date::now()),
            first_view: RwSignal::new(None),
        }
    }
}
