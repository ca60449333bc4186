//! Loading a bundle: picking the engine at start, reading and decoding the bytes (a download with
//! progress, or a dropped file), fetching a thumbnail sheet stored beside it, digesting them for
//! drawing, and fitting the view state to the new bundle — or, on a link that describes no view,
//! setting up the first view. A failed load leaves the previous bundle in place.

use std::rc::Rc;

use leptos::prelude::*;
use mclr_shared::bundle::{ImageFormat, Thumbnails};
use mclr_shared::error_chain;

use super::{Controller, Loaded};
use crate::engine::Engine;
use crate::error::{Result, ViewerError};
use crate::first_view::{self, FIRST_VIEW_COEFFICIENT, representative_anchor};
use crate::follow::{self, Fingerprint, LiveStatus, Validators, Watched};
use crate::results::ResultsTable;
use crate::session::Session;
use crate::viewport::{Viewport, class_colour};
use crate::web::loader::{self, Polled};
use crate::web::page;
use crate::web::scatter::PointLayer;
use crate::web::signals::{ClassEntry, FirstView, LiveView, OperatorRow, Progress, Summary};
use crate::web::sprites::Sprites;

/// Largest thumbnail sheet file read from beside a bundle (128 MiB): a sheet within the format's
/// pixel cap compresses far below it.
const MAX_SHEET_BYTES: u64 = 128 << 20;

/// Where a bundle comes from.
pub enum Source {
    /// An address to fetch.
    Url(String),
    /// A dropped or picked file.
    File(web_sys::File),
}

/// A thumbnail sheet stored beside its bundle, as last fetched: where, which version, and the
/// layout it was checked against (a new snapshot with the same file and layout reuses it).
#[derive(Debug, Clone)]
pub(super) struct SheetFile {
    url: String,
    watched: Watched,
    layout: (ImageFormat, u32, u32, u32),
}

/// The layout a sheet is checked against: format, tile size, columns, tiles.
fn layout(thumbnails: &Thumbnails) -> (ImageFormat, u32, u32, u32) {
    (
        thumbnails.format,
        thumbnails.tile_px,
        thumbnails.columns,
        thumbnails.count,
    )
}

/// A bundle read, decoded and digested, with what follow mode needs to know about it.
pub(super) struct Prepared {
    pub(super) loaded: Loaded,
    /// The address it came from; `None` for a file.
    pub(super) url: Option<String>,
    /// The download's validators.
    pub(super) validators: Validators,
    /// Its header, to recognise it again.
    pub(super) fingerprint: Option<Fingerprint>,
    /// A problem with its thumbnails (the view works without them).
    pub(super) sheet_problem: Option<String>,
}

impl Controller {
    /// Starts the app: picks the engine, then loads the bundle of the link (or the demo);
    /// `first_view` sets up the first view once it is loaded
    /// ([`ViewState::opens_first_view`](crate::state::ViewState::opens_first_view)).
    pub async fn start(self, first_view: bool) {
        let ui = self.ui;
        let (force_cpu, force_gpu) = ui.state.with_untracked(|s| (s.force_cpu, s.force_gpu));
        let engine = Engine::select(force_cpu, force_gpu).await;
        ui.backend.set(Some(engine.backend()));
        self.with_core(|core| core.engine = Some(Rc::new(engine)));
        let url = ui
            .state
            .with_untracked(|s| s.bundle.clone())
            .unwrap_or_else(|| "demo.mclr".to_owned());
        self.load_with(Source::Url(url), first_view).await;
    }

    /// Loads a bundle. On failure the error is shown and the previous bundle (if any) stays.
    pub async fn load(self, source: Source) {
        self.load_with(source, false).await;
    }

    async fn load_with(self, source: Source, first_view: bool) {
        let ui = self.ui;
        ui.playing.set(false);
        ui.error.set(None);
        ui.progress.set(Some(Progress {
            loaded: 0.0,
            total: None,
        }));
        page::set_ready(false);
        // Whatever was followed is no longer what the page shows once this succeeds; a failed
        // load leaves the old bundle, and its follow loop, in place.
        let result = self.prepare(source).await;
        ui.progress.set(None);
        match result {
            Err(error) => {
                ui.error.set(Some(error_chain(&error)));
                // The previous bundle, if any, is still there and usable.
                if self
                    .with_core(|core| core.loaded.is_some())
                    .unwrap_or(false)
                {
                    page::set_ready(true);
                }
            }
            Ok(prepared) => {
                self.stop_following();
                let Prepared {
                    loaded,
                    url,
                    validators,
                    fingerprint,
                    sheet_problem,
                } = prepared;
                let autoplay = self.install(loaded, url.clone(), first_view);
                if let Some(problem) = sheet_problem {
                    ui.error.set(Some(problem));
                }
                self.refresh().await;
                if autoplay && !page::prefers_reduced_motion() {
                    self.toggle_play();
                }
                if let Some(url) = url.filter(|_| ui.state.with_untracked(|s| s.follow)) {
                    self.start_following(url, validators, fingerprint);
                }
                page::set_ready(true);
            }
        }
    }

    /// Reads, decodes and digests a bundle, with its thumbnails.
    async fn prepare(self, source: Source) -> Result<Prepared> {
        let ui = self.ui;
        let (bytes, name, url, validators) = match source {
            Source::Url(url) => {
                let (bytes, validators) = loader::fetch_bytes(&url, |loaded, total| {
                    // Progress is display-only; f64 holds any realistic byte count exactly.
                    #[allow(clippy::cast_precision_loss)]
                    ui.progress.set(Some(Progress {
                        loaded: loaded as f64,
                        total: total.map(|t| t as f64),
                    }));
                })
                .await?;
                (bytes, loader::name_from_url(&url), Some(url), validators)
            }
            Source::File(file) => {
                let bytes = loader::read_file(&file, loader::MAX_DOWNLOAD, |size_mib| {
                    ViewerError::TooLarge {
                        size_mib,
                        limit_mib: crate::error::mib(crate::session::MAX_BUNDLE_BYTES),
                    }
                })
                .await?;
                (bytes, file.name(), None, Validators::default())
            }
        };
        let fingerprint = Fingerprint::of_bundle(&bytes);
        let session = Session::from_bytes(&bytes, &name)?;
        drop(bytes);
        let (sprites, sheet, sheet_problem) =
            self.sprites_for(&session, url.as_deref(), None).await;
        let loaded = self.digest(session, sprites, sheet).await?;
        Ok(Prepared {
            loaded,
            url,
            validators,
            fingerprint,
            sheet_problem,
        })
    }

    /// A decoded bundle made ready for the views: the gallery uploaded to the engine, images
    /// listed by class.
    pub(super) async fn digest(
        self,
        session: Session,
        sprites: Option<Sprites>,
        sheet: Option<SheetFile>,
    ) -> Result<Loaded> {
        let engine = self.with_core(|core| core.engine.clone()).flatten();
        let engine = match engine {
            Some(engine) => engine,
            None => Rc::new(Engine::select(true, false).await),
        };
        let gallery = engine.upload_gallery(&session.features, session.dim())?;
        let mut by_class = vec![Vec::new(); session.class_names.len()];
        for (i, &label) in session.labels.iter().enumerate() {
            if let Some(members) = by_class.get_mut(usize::from(label)) {
                members.push(i);
            }
        }
        Ok(Loaded {
            session,
            gallery,
            sprites,
            sheet,
            by_class,
        })
    }

    /// The thumbnails of `session`: its embedded sheet, or the sheet file beside the bundle at
    /// `bundle_url`, fetched and checked with [`mclr_shared::bundle::check_sheet`] before it is
    /// decoded. `previous` is the bundle in use when a followed one replaces it: a sheet of the
    /// same address and layout is asked for conditionally and reused when unchanged (once per
    /// name and version, not at every snapshot). Also returns the problem, if any, in words;
    /// the view works without thumbnails.
    pub(super) async fn sprites_for(
        self,
        session: &Session,
        bundle_url: Option<&str>,
        previous: Option<&Loaded>,
    ) -> (Option<Sprites>, Option<SheetFile>, Option<String>) {
        let thumbnails = &session.thumbnails;
        let Some(file) = thumbnails.sheet_file.as_deref() else {
            return match Sprites::decode(thumbnails, &thumbnails.sheet).await {
                Ok(sprites) => (Some(sprites), None, None),
                Err(error) => (None, None, Some(error_chain(&error))),
            };
        };
        let Some(bundle_url) = bundle_url else {
            return (
                None,
                None,
                Some(format!(
                    "This bundle's thumbnails are stored beside it, in {file}, and a dropped file \
                     has no address to find it at: open the bundle from its address \
                     (?bundle=…) to see them. The view works without them."
                )),
            );
        };
        let url = follow::beside(bundle_url, file);
        // The sheet in use, when it is the same file with the same layout.
        let reusable = previous.and_then(|loaded| {
            let sheet = loaded.sheet.as_ref()?;
            let sprites = loaded.sprites.as_ref()?;
            (sheet.url == url && sheet.layout == layout(thumbnails)).then_some((sheet, sprites))
        });
        let condition = reusable.and_then(|(sheet, _)| sheet.watched.condition());
        let problem = |reason: String| {
            format!(
                "The thumbnails could not be loaded from {file} beside the bundle: {reason}. \
                 The view works without them."
            )
        };
        let keep_or_drop = |reason: String| match reusable {
            // The earlier sheet of the same layout is still right for these tiles.
            Some((sheet, sprites)) => (
                Some(sprites.clone()),
                Some(sheet.clone()),
                Some(problem(reason)),
            ),
            None => (None, None, Some(problem(reason))),
        };
        let (polled, _) =
            loader::poll_or_plain(&url, condition, MAX_SHEET_BYTES, 0, |_| false).await;
        let (bytes, validators) = match polled {
            Ok(Polled::NotModified | Polled::Same(_)) => {
                return match reusable {
                    Some((sheet, sprites)) => (Some(sprites.clone()), Some(sheet.clone()), None),
                    None => keep_or_drop(
                        "the server said it had not changed, but the viewer has no copy".to_owned(),
                    ),
                };
            }
            Ok(Polled::Status(status, text)) => {
                return keep_or_drop(format!("the server answered {status} {text}"));
            }
            Err(error) => return keep_or_drop(error_chain(&error)),
            Ok(Polled::Body(bytes, validators)) => (bytes, validators),
        };
        let fingerprint = Fingerprint::of_text(&bytes);
        if let Some((sheet, sprites)) = reusable
            && sheet.watched.is_current(&fingerprint)
        {
            let mut sheet = sheet.clone();
            sheet.watched.accept(validators, fingerprint);
            return (Some(sprites.clone()), Some(sheet), None);
        }
        if let Err(error) = mclr_shared::bundle::check_sheet(thumbnails, &bytes) {
            return keep_or_drop(format!("it is not a usable sheet ({error})"));
        }
        match Sprites::decode(thumbnails, &bytes).await {
            Ok(sprites) => (
                Some(sprites),
                Some(SheetFile {
                    url,
                    watched: Watched::new(validators, Some(fingerprint)),
                    layout: layout(thumbnails),
                }),
                None,
            ),
            Err(error) => keep_or_drop(error_chain(&error)),
        }
    }

    /// Makes `loaded` the current bundle and fits the state to it; with `first_view`, sets up
    /// the first view (a representative anchor, the largest operator). Returns whether it did,
    /// so the caller starts playing.
    fn install(self, loaded: Loaded, bundle_url: Option<String>, first_view: bool) -> bool {
        let ui = self.ui;
        let session = &loaded.session;
        let summary = summarise(session, &loaded.by_class);
        let (gallery, operators) = (session.len(), session.num_operators());
        let viewport = Viewport::fit(&session.points, [800.0, 600.0]);
        let first = first_view.then(|| first_view_picks(session)).flatten();
        let logs = session.run.training_logs.clone();
        let from_url = bundle_url.is_some();
        let live = live_status(session);
        let is_live = session.run.live;
        self.with_core(|core| {
            core.loaded = Some(Rc::new(loaded));
            core.viewport = Some(viewport);
            core.player = None;
            core.cloud = None;
            core.path_generation += 1;
            if core.layer.is_none() {
                core.layer = PointLayer::new();
            }
            if let Some(layer) = core.layer.as_mut() {
                layer.invalidate();
            }
        });
        let mut state = ui.state.get_untracked();
        // A dropped file has no address a link could carry (or follow): the link then opens the
        // demo.
        if let Some(url) = bundle_url {
            state.bundle = (url != "demo.mclr").then_some(url);
        } else {
            state.bundle = None;
            state.follow = false;
        }
        let warnings = state.check_against(gallery, operators);
        if state.anchor.is_none() && gallery > 0 {
            state.anchor = Some(0);
        }
        let mut autoplay = false;
        if let Some((anchor, m, hint)) = first {
            state.anchor = Some(anchor);
            state.operators = vec![(m, FIRST_VIEW_COEFFICIENT)];
            ui.first_view.set(Some(FirstView {
                state: state.clone(),
                hint,
            }));
            autoplay = true;
        } else {
            ui.first_view.set(None);
        }
        let following = state.follow && from_url;
        ui.live.set((following || is_live).then_some(LiveView {
            status: live,
            following,
            warning: None,
        }));
        ui.curves.update(|runs| runs.set_bundle(&logs));
        ui.warnings
            .update(|list| list.extend(warnings.iter().map(ToString::to_string)));
        ui.spectrum.set(None);
        ui.transport.set(None);
        ui.summary.set(Some(summary));
        ui.sprites_version.update(|v| *v += 1);
        ui.live_t.set(state.t);
        ui.state.set(state);
        autoplay
    }
}

/// The first view's anchor, operator and hint for `session`; `None` for an empty gallery or no
/// operators.
fn first_view_picks(session: &Session) -> Option<(u32, u32, String)> {
    let anchor = representative_anchor(&session.labels, &session.features, session.dim())?;
    let m = *session.order.first()?;
    let class_name = session
        .labels
        .get(anchor)
        .and_then(|&l| session.class_names.get(usize::from(l)))
        .map_or("", String::as_str);
    Some((
        u32::try_from(anchor).ok()?,
        u32::try_from(m).ok()?,
        first_view::hint(class_name, m),
    ))
}

/// Epoch, step and save time of a bundle's model.
pub(super) fn live_status(session: &Session) -> LiveStatus {
    LiveStatus {
        epoch: session.metadata.epochs,
        step: session.metadata.steps,
        saved_unix_ms: session.run.saved_unix_ms,
    }
}

/// What the panels show about a bundle.
pub(super) fn summarise(session: &Session, by_class: &[Vec<usize>]) -> Summary {
    let meta = &session.metadata;
    Summary {
        name: session.name.clone(),
        description: format!(
            "{} · {} · {} images · d = {} · {} operators",
            meta.dataset,
            meta.method,
            session.len(),
            session.dim(),
            session.num_operators()
        ),
        gallery: session.len(),
        operators: session
            .order
            .iter()
            .map(|&m| OperatorRow {
                index: u32::try_from(m).unwrap_or(u32::MAX),
                norm: session.norms.get(m).copied().unwrap_or(0.0),
                usage: session.usage.get(m).copied().unwrap_or(0.0).clamp(0.0, 1.0),
            })
            .collect(),
        classes: session
            .class_names
            .iter()
            .enumerate()
            .map(|(c, name)| ClassEntry {
                name: name.clone(),
                colour: class_colour(c),
                count: by_class.get(c).map_or(0, Vec::len),
            })
            .collect(),
        heatmap: session.heatmap.clone(),
        num_operators: session.num_operators(),
        results: ResultsTable::from_metrics(&meta.method, &meta.metrics),
    }
}
