//! The browser app: Leptos components, the canvas scatter, loading, the animation loop and the
//! page's URL. Only compiled for wasm32.

mod app;
mod charts;
mod controller;
mod loader;
mod page;
mod panels;
mod scatter;
mod signals;
mod sprites;

use wasm_bindgen::prelude::wasm_bindgen;

/// Entry point, run by the module's default `init`: installs a panic hook that logs (the last
/// resort; fallible paths report to the error panel instead) and mounts the app on `<body>`.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("mclr viewer panicked: {info}").into());
    }));
    leptos::mount::mount_to_body(app::App);
}
