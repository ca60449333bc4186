//! Loading a bundle: picking the engine at start, reading and decoding the bytes (a download with
//! progress, or a dropped file), digesting them for drawing, and fitting the view state to the
//! new bundle. A failed load leaves the previous bundle in place.

use std::rc::Rc;

use leptos::prelude::*;

use super::{Controller, Loaded};
use crate::engine::Engine;
use crate::error::Result;
use crate::session::Session;
use crate::viewport::{Viewport, class_colour};
use crate::web::loader;
use crate::web::page;
use crate::web::scatter::PointLayer;
use crate::web::signals::{ClassEntry, OperatorRow, Progress, Summary};
use crate::web::sprites::Sprites;

/// Where a bundle comes from.
pub enum Source {
    /// An address to fetch.
    Url(String),
    /// A dropped or picked file.
    File(web_sys::File),
}

impl Controller {
    /// Starts the app: picks the engine, then loads the bundle of the link (or the demo).
    pub async fn start(self) {
        let ui = self.ui;
        let (force_cpu, force_gpu) = ui.state.with_untracked(|s| (s.force_cpu, s.force_gpu));
        let engine = Engine::select(force_cpu, force_gpu).await;
        ui.backend.set(Some(engine.backend()));
        self.with_core(|core| core.engine = Some(Rc::new(engine)));
        let url = ui
            .state
            .with_untracked(|s| s.bundle.clone())
            .unwrap_or_else(|| "demo.mclr".to_owned());
        self.load(Source::Url(url)).await;
    }

    /// Loads a bundle. On failure the error is shown and the previous bundle (if any) stays.
    pub async fn load(self, source: Source) {
        let ui = self.ui;
        ui.playing.set(false);
        ui.error.set(None);
        ui.progress.set(Some(Progress {
            loaded: 0.0,
            total: None,
        }));
        page::set_ready(false);
        let from_url = matches!(source, Source::Url(_));
        let result = self.prepare(source).await;
        ui.progress.set(None);
        match result {
            Err(error) => {
                ui.error.set(Some(error.to_string()));
                // The previous bundle, if any, is still there and usable.
                if self
                    .with_core(|core| core.loaded.is_some())
                    .unwrap_or(false)
                {
                    page::set_ready(true);
                }
            }
            Ok((loaded, bundle_url, sprite_error)) => {
                self.install(loaded, from_url.then_some(bundle_url));
                if let Some(error) = sprite_error {
                    ui.error.set(Some(error));
                }
                self.refresh().await;
                page::set_ready(true);
            }
        }
    }

    /// Reads, decodes and digests a bundle; also returns its address and a thumbnail problem
    /// (which does not stop the viewer).
    async fn prepare(self, source: Source) -> Result<(Loaded, String, Option<String>)> {
        let ui = self.ui;
        let (bytes, name, url) = match source {
            Source::Url(url) => {
                let bytes = loader::fetch_bytes(&url, |loaded, total| {
                    // Progress is display-only; f64 holds any realistic byte count exactly.
                    #[allow(clippy::cast_precision_loss)]
                    ui.progress.set(Some(Progress {
                        loaded: loaded as f64,
                        total: total.map(|t| t as f64),
                    }));
                })
                .await?;
                (bytes, loader::name_from_url(&url), url)
            }
            Source::File(file) => (loader::read_file(&file).await?, file.name(), String::new()),
        };
        let session = Session::from_bytes(&bytes, &name)?;
        drop(bytes);
        let (sprites, sprite_error) = match Sprites::decode(&session.thumbnails).await {
            Ok(sprites) => (Some(sprites), None),
            Err(error) => (None, Some(error.to_string())),
        };
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
        Ok((
            Loaded {
                session,
                gallery,
                sprites,
                by_class,
            },
            url,
            sprite_error,
        ))
    }

    /// Makes `loaded` the current bundle and fits the state to it.
    fn install(self, loaded: Loaded, bundle_url: Option<String>) {
        let ui = self.ui;
        let session = &loaded.session;
        let summary = summarise(session, &loaded.by_class);
        let (gallery, operators) = (session.len(), session.num_operators());
        let viewport = Viewport::fit(&session.points, [800.0, 600.0]);
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
        // A dropped file has no address a link could carry: the link then opens the demo.
        if let Some(url) = bundle_url {
            state.bundle = (url != "demo.mclr").then_some(url);
        } else {
            state.bundle = None;
        }
        let warnings = state.check_against(gallery, operators);
        if state.anchor.is_none() && gallery > 0 {
            state.anchor = Some(0);
        }
        ui.warnings
            .update(|list| list.extend(warnings.iter().map(ToString::to_string)));
        ui.spectrum.set(None);
        ui.transport.set(None);
        ui.summary.set(Some(summary));
        ui.sprites_version.update(|v| *v += 1);
        ui.live_t.set(state.t);
        ui.state.set(state);
    }
}

fn summarise(session: &Session, by_class: &[Vec<usize>]) -> Summary {
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
    }
}
