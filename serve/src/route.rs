//! From a request target to what it names: a path inside the site folder, or one file directly
//! inside the run folder. Everything that could leave a mount is refused here, before any file
//! system call: `..` (plain or percent-encoded), encoded slashes and backslashes, NUL bytes,
//! subfolders of the run, and names the run mount does not serve.

use std::path::{Component, PathBuf};

/// The first path segment under which the run folder is mounted: `/run/NAME`.
pub const RUN_MOUNT: &str = "run";

/// Extensions of the run files served at `/run/`: the bundles, thumbnail sheets, logs, results
/// and config. Weights (`.safetensors`) and anything else stay private.
pub const RUN_EXTENSIONS: [&str; 9] = [
    "mclr", "png", "jpg", "jpeg", "json", "jsonl", "toml", "md", "txt",
];

/// What a request target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A path relative to the site folder, made of plain names only (empty for `/`); a folder
    /// means its `index.html`.
    Site(PathBuf),
    /// A file directly inside the run folder, by its plain name (see [`run_file_allowed`]).
    Run(String),
}

/// Why a request target names nothing the server will send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a path (no leading `/`) or a broken percent escape: 400.
    Malformed,
    /// An attempt to leave a mount (`..`, an encoded `/` or `\`, a NUL, a run subfolder): 403.
    Forbidden,
    /// A name the run mount does not serve (hidden, or another extension), or the bare mount: 404.
    NotFound,
}

/// Routes a request target such as `/pkg/mclr_viewer.js?v=1` or `/run/live.mclr`. The query and
/// fragment are ignored; each segment is percent-decoded on its own (strictly: a broken escape is
/// [`Refusal::Malformed`]), so an encoded `/` can never create a segment. Empty and `.` segments
/// are skipped. With `has_run`, a first segment `run` routes to the run folder, which serves
/// exactly one further segment.
///
/// # Errors
/// The [`Refusal`] that says which answer to give.
pub fn route(target: &str, has_run: bool) -> Result<Route, Refusal> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = path.strip_prefix('/').ok_or(Refusal::Malformed)?;
    let mut segments = Vec::new();
    for raw in path.split('/') {
        let segment = mclr_shared::percent::decode_path(raw).ok_or(Refusal::Malformed)?;
        if segment.contains(['/', '\\', '\0']) || segment == ".." {
            return Err(Refusal::Forbidden);
        }
        if !(segment.is_empty() || segment == ".") {
            segments.push(segment);
        }
    }
    if has_run && segments.first().is_some_and(|s| s == RUN_MOUNT) {
        return match segments.as_slice() {
            [_, name] if run_file_allowed(name) => Ok(Route::Run(name.clone())),
            [_] | [_, _] => Err(Refusal::NotFound),
            _ => Err(Refusal::Forbidden),
        };
    }
    let relative: PathBuf = segments.iter().collect();
    // Belt and braces: after the checks above only plain names can remain.
    if relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        Ok(Route::Site(relative))
    } else {
        Err(Refusal::Forbidden)
    }
}

/// Whether the run mount serves a file of this name: not hidden (which keeps out the training
/// lock and partially written files, both named `.mclr-…`) and with one of [`RUN_EXTENSIONS`].
pub fn run_file_allowed(name: &str) -> bool {
    let Some((stem, extension)) = name.rsplit_once('.') else {
        return false;
    };
    !name.starts_with('.')
        && !stem.is_empty()
        && RUN_EXTENSIONS
            .iter()
            .any(|allowed| extension.eq_ignore_ascii_case(allowed))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Refusal, Route, route, run_file_allowed};

    fn site(path: &str) -> Result<Route, Refusal> {
        Ok(Route::Site(PathBuf::from(path)))
    }

    #[test]
    fn site_targets_resolve_inside_the_folder() {
        assert_eq!(route("/pkg/a%20b.js?x=1#f", true), site("pkg/a b.js"));
        assert_eq!(route("/", true), site(""));
        assert_eq!(route("/./a//b", true), site("a/b"));
        assert_eq!(route("//etc/passwd", true), site("etc/passwd"));
        assert_eq!(route("/run/live.mclr", false), site("run/live.mclr"));
    }

    #[test]
    fn traversal_and_encoded_separators_are_forbidden() {
        for target in [
            "/../etc/passwd",
            "/a/%2e%2e/%2e%2e/x",
            "/%2E%2E/x",
            "/a%5c..%5cx",
            "/a%2fb",
            "/run/%2Fetc%2Fpasswd",
            "/run/../config.toml",
            "/run/%2e%2e/config.toml",
            "/run/checkpoints/epoch-0001/state.json",
            "/run/sub/live.mclr",
            "/x%00.html",
        ] {
            assert_eq!(route(target, true), Err(Refusal::Forbidden), "{target}");
        }
    }

    #[test]
    fn malformed_targets_are_bad_requests() {
        assert_eq!(route("/bad%zz", true), Err(Refusal::Malformed));
        assert_eq!(route("relative", true), Err(Refusal::Malformed));
        assert_eq!(route("*", true), Err(Refusal::Malformed));
        assert_eq!(route("/run/%ff.mclr", true), Err(Refusal::Malformed));
    }

    #[test]
    fn the_run_mount_serves_plain_files_of_known_kinds_only() {
        for name in [
            "live.mclr",
            "live-thumbs.png",
            "metrics.jsonl",
            "bundle.mclr",
            "results.json",
            "results.md",
            "config.toml",
        ] {
            assert_eq!(
                route(&format!("/run/{name}"), true),
                Ok(Route::Run(name.to_owned()))
            );
        }
        assert_eq!(
            route("/%72un/./live.mclr", true),
            Ok(Route::Run("live.mclr".into()))
        );
        for target in [
            "/run/",
            "/run",
            "/run/.mclr-train.lock",
            "/run/.mclr-partial-x1.mclr",
            "/run/model.safetensors",
            "/run/noextension",
            "/run/.json",
        ] {
            assert_eq!(route(target, true), Err(Refusal::NotFound), "{target}");
        }
        assert!(run_file_allowed("LIVE.MCLR"));
        assert!(!run_file_allowed("optimizer.safetensors"));
    }
}
