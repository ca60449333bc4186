//! What happens when: loading a bundle ([`load`]), following a run as it trains ([`follow`]),
//! (re)computing the view when the state changes ([`view`]), the animation loop ([`animation`]),
//! drawing ([`draw`]), the scatter's mouse handling ([`pointer`]), the throttled address bar
//! ([`url`]) and training logs opened as files ([`logs`]).
//!
//! The browser objects and the loaded bundle live in one [`Core`], kept in a local (`!Send`)
//! [`StoredValue`] of the app's owner and reached through the [`Controller`] handle, which the
//! app provides as Leptos context (the browser runs the app on one thread). Components take it
//! with [`Controller::expect`] while they are set up; they only read the `Send` signals of
//! [`Ui`].

mod animation;
mod draw;
mod follow;
mod load;
mod logs;
mod pointer;
mod url;
mod view;

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;
use wasm_bindgen::closure::Closure;

pub use self::load::Source;
pub use self::view::STRIP_LEN;
use super::scatter::PointLayer;
use super::signals::Ui;
use super::sprites::Sprites;
use crate::engine::{Engine, GalleryIndex};
use crate::player::PathPlayer;
use crate::prior::PriorCloud;
use crate::session::Session;
use crate::state::Mode;
use crate::viewport::Viewport;

/// A bundle in use.
struct Loaded {
    session: Session,
    gallery: GalleryIndex,
    sprites: Option<Sprites>,
    /// The sheet file beside the bundle the sprites came from, if they did.
    sheet: Option<load::SheetFile>,
    by_class: Vec<Vec<usize>>,
}

/// The controller's non-reactive state: the engine, the loaded bundle and everything the canvas,
/// the animation loop, the pointer and the address bar keep between events.
#[derive(Default)]
struct Core {
    engine: Option<Rc<Engine>>,
    loaded: Option<Rc<Loaded>>,
    viewport: Option<Viewport>,
    layer: Option<PointLayer>,
    player: Option<PathPlayer>,
    cloud: Option<PriorCloud>,
    /// Bumped whenever a path is (re)started, so a stale frame does not put back an old player.
    path_generation: u64,
    frame_callback: Option<Closure<dyn FnMut(f64)>>,
    frame_pending: bool,
    drag: Option<pointer::Drag>,
    url: url::UrlThrottle,
    /// The follow loop's bookkeeping while a run is followed.
    following: Option<follow::Following>,
    /// Bumped whenever following starts or stops, so an older loop ends.
    follow_generation: u64,
}

/// The app's controller: its signals and its [`Core`]. `Copy`, so handlers, browser callbacks
/// and async tasks capture it freely.
#[derive(Clone, Copy)]
pub struct Controller {
    /// The signals the components read.
    pub ui: Ui,
    core: StoredValue<RefCell<Core>, LocalStorage>,
}

impl Controller {
    /// A controller for `ui` with an empty core, provided as context to the current owner and
    /// its children.
    pub fn provide(ui: Ui) -> Self {
        let controller = Self {
            ui,
            core: StoredValue::new_local(RefCell::new(Core::default())),
        };
        provide_context(controller);
        controller
    }

    /// The controller [`Controller::provide`] gave the app. Call it while a component is set
    /// up, not from an event handler.
    pub fn expect() -> Self {
        expect_context()
    }

    /// Runs `f` on the core; `None` if it is already borrowed (never expected: no borrow is held
    /// across an await or a call back into the controller) or the app is gone.
    fn with_core<R>(self, f: impl FnOnce(&mut Core) -> R) -> Option<R> {
        self.core
            .try_with_value(|core| core.try_borrow_mut().ok().map(|mut core| f(&mut core)))
            .flatten()
    }

    fn engine_and_bundle(self) -> Option<(Rc<Engine>, Rc<Loaded>)> {
        self.with_core(|core| Some((core.engine.clone()?, core.loaded.clone()?)))
            .flatten()
    }

    /// Whether the loaded bundle has gallery image `index`.
    fn has_image(self, index: u32) -> bool {
        self.with_core(|core| {
            core.loaded
                .as_ref()
                .is_some_and(|l| usize::try_from(index).is_ok_and(|i| i < l.session.len()))
        })
        .unwrap_or(false)
    }

    /// Picks gallery image `index` as the anchor, if it exists.
    pub fn pick_anchor(self, index: u32) -> bool {
        let exists = self.has_image(index);
        if exists {
            self.ui.error.set(None);
            self.ui.state.update(|s| s.anchor = Some(index));
        }
        exists
    }

    /// Picks gallery image `index` as image B of a transport (switching to transport mode).
    pub fn pick_target(self, index: u32) -> bool {
        let exists = self.has_image(index);
        if exists {
            self.ui.error.set(None);
            self.ui.state.update(|s| {
                s.b = Some(index);
                s.mode = Mode::Transport;
                s.t = s.clamp_t(s.t);
            });
        }
        exists
    }

    /// Whether gallery image `index` has the anchor's class.
    pub fn same_class_as_anchor(self, index: usize) -> bool {
        let anchor = self
            .ui
            .state
            .with_untracked(|s| s.anchor.and_then(|a| usize::try_from(a).ok()));
        self.with_core(|core| {
            let session = &core.loaded.as_ref()?.session;
            Some(session.labels.get(index)? == session.labels.get(anchor?)?)
        })
        .flatten()
        .unwrap_or(true)
    }
}
