//! Training logs opened as files: a dropped or picked `.jsonl` becomes another run in the curves
//! panel, labelled by its file name (a `.mclr` goes to [`Controller::load`] instead).

use leptos::prelude::*;
use mclr_shared::bundle::limits::MAX_TRAINING_LOG_BYTES;
use wasm_bindgen_futures::spawn_local;

use super::{Controller, Source};
use crate::error::{ViewerError, mib};
use crate::web::loader;

/// Whether a dropped or picked file is a training log (`.jsonl`) rather than a bundle.
pub fn is_training_log(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".jsonl")
}

impl Controller {
    /// Opens dropped or picked files: every `.jsonl` as a training log, the first other file as
    /// the bundle.
    pub fn open_files(self, files: &web_sys::FileList) {
        let mut bundle = None;
        for i in 0..files.length() {
            let Some(file) = files.get(i) else {
                continue;
            };
            if is_training_log(&file.name()) {
                spawn_local(self.add_log_file(file));
            } else if bundle.is_none() {
                bundle = Some(file);
            }
        }
        if let Some(file) = bundle {
            spawn_local(self.load(Source::File(file)));
        }
    }

    /// Reads `file` (at most [`MAX_TRAINING_LOG_BYTES`], the bundle format's cap on a log) and
    /// adds it to the curves; a log that does not parse shows its error in the panel's legend.
    pub async fn add_log_file(self, file: web_sys::File) {
        let name = file.name();
        let limit = u64::try_from(MAX_TRAINING_LOG_BYTES).unwrap_or(u64::MAX);
        let read = loader::read_file(&file, limit, |size_mib| ViewerError::File {
            name: name.clone(),
            reason: format!(
                "it is {size_mib:.1} MiB, more than the {:.0} MiB a training log may have",
                mib(limit)
            ),
        })
        .await;
        match read {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                self.ui.curves.update(|runs| runs.add_file(&name, &text));
            }
            Err(error) => self.ui.error.set(Some(mclr_shared::error_chain(&error))),
        }
    }
}
