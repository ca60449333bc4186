//! Where the workspace and its target directory are, asked of cargo at run time from the current
//! directory.
//!
//! Neither comes from the build of xtask itself: with a target directory shared by several
//! checkouts (`CARGO_TARGET_DIR`), cargo may run the xtask binary last built from *another*
//! checkout, whose compile-time `CARGO_MANIFEST_DIR` names that other checkout; and the build
//! outputs live wherever cargo's configuration puts them, not necessarily in `./target`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::cmd::command;

/// The workspace xtask works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The folder of the workspace's root `Cargo.toml`.
    pub root: PathBuf,
    /// Where cargo puts its build outputs (`target/` unless configured otherwise).
    pub target: PathBuf,
}

/// The workspace root of the current directory (see [`current`]).
pub fn root() -> Result<PathBuf> {
    Ok(current()?.root.clone())
}

/// The target directory cargo uses for the current directory's workspace (see [`current`]).
pub fn target_dir() -> Result<PathBuf> {
    Ok(current()?.target.clone())
}

/// The workspace of the current directory, asked of cargo once per run. Says so when the running
/// xtask binary was built from another checkout than the one it works on.
pub fn current() -> Result<&'static Workspace> {
    static CURRENT: OnceLock<Workspace> = OnceLock::new();
    if let Some(ws) = CURRENT.get() {
        return Ok(ws);
    }
    let dir = std::env::current_dir().context("reading the current directory")?;
    let ws = locate(&dir, |_| {})?;
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).parent();
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if let Some(built_from) = built_from
        && !same(built_from, &ws.root)
    {
        eprintln!(
            "note: this xtask binary was built from {}; working on {}, the workspace of the \
             current directory (target directory {})",
            built_from.display(),
            ws.root.display(),
            ws.target.display()
        );
    }
    Ok(CURRENT.get_or_init(|| ws))
}

/// The workspace that `cargo metadata`, run in `dir`, reports; `configure` may adjust the command
/// first (the tests set its environment).
pub fn locate(dir: &Path, configure: impl FnOnce(&mut Command)) -> Result<Workspace> {
    let mut c = command("cargo", &["metadata", "--format-version", "1", "--no-deps"]);
    c.current_dir(dir);
    configure(&mut c);
    let out = c.output().context("could not start `cargo metadata`")?;
    if !out.status.success() {
        bail!(
            "`cargo metadata` failed in {} ({}): run cargo xtask from inside the mclr \
             checkout\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let ws = parse_metadata(&String::from_utf8_lossy(&out.stdout))?;
    if !ws.root.join("xtask/Cargo.toml").is_file() {
        bail!(
            "{} is not the mclr workspace (it has no xtask/): run cargo xtask from inside the \
             mclr checkout",
            ws.root.display()
        );
    }
    Ok(ws)
}

/// `workspace_root` and `target_directory` of `cargo metadata --format-version 1` output.
fn parse_metadata(json: &str) -> Result<Workspace> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("`cargo metadata` printed no JSON")?;
    let path = |key: &str| -> Result<PathBuf> {
        v[key]
            .as_str()
            .map(PathBuf::from)
            .with_context(|| format!("`cargo metadata` reported no `{key}`"))
    };
    Ok(Workspace {
        root: path("workspace_root")?,
        target: path("target_directory")?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::{Workspace, locate, parse_metadata};

    /// This checkout's root, as the test binary was built from it.
    fn checkout() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .canonicalize()
            .unwrap()
    }

    /// Without any target directory setting of the caller's environment.
    fn clean(c: &mut Command) -> &mut Command {
        c.env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
    }

    #[test]
    fn a_set_cargo_target_dir_is_the_target_directory() {
        let shared =
            std::env::temp_dir().join(format!("xtask-shared-target-{}", std::process::id()));
        let ws = locate(&checkout(), |c| {
            clean(c).env("CARGO_TARGET_DIR", &shared);
        })
        .unwrap();
        assert_eq!(
            ws,
            Workspace {
                root: checkout(),
                target: shared
            }
        );
    }

    #[test]
    fn a_subdirectory_finds_the_workspace_root_and_its_target() {
        let sub = checkout().join("xtask/src");
        let ws = locate(&sub, |c| {
            clean(c);
        })
        .unwrap();
        assert_eq!(ws.root, checkout());
        assert_eq!(ws.target, checkout().join("target"));
    }

    #[test]
    fn a_relative_cargo_target_dir_is_relative_to_the_current_directory() {
        let sub = checkout().join("xtask");
        let ws = locate(&sub, |c| {
            clean(c).env("CARGO_TARGET_DIR", "elsewhere");
        })
        .unwrap();
        assert_eq!(ws.root, checkout());
        assert_eq!(ws.target, sub.join("elsewhere"));
    }

    #[test]
    fn outside_any_workspace_is_an_error() {
        let outside = std::env::temp_dir();
        let err = locate(&outside, |c| {
            clean(c);
        });
        assert!(err.is_err(), "{err:?}");
    }

    #[test]
    fn metadata_without_the_keys_is_an_error() {
        let ws = parse_metadata(r#"{"workspace_root": "/w", "target_directory": "/t"}"#).unwrap();
        assert_eq!(ws.target, PathBuf::from("/t"));
        assert!(parse_metadata(r#"{"workspace_root": "/w"}"#).is_err());
        assert!(parse_metadata("not json").is_err());
    }
}
