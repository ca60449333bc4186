//! `cargo xtask serve [--port 8080] [--dir www/dist]`: serves the built site on 127.0.0.1 with
//! the server the browser end-to-end test and `mclr view` use (`mclr-serve`), so what a person
//! clicks through locally is served exactly as in CI.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::web::DIST;
use crate::workspace;

/// What `cargo xtask serve` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Port to serve on.
    #[arg(long, value_name = "N", default_value_t = 8080)]
    pub port: u16,
    /// Folder to serve [default: www/dist]
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

/// Serves until interrupted.
pub fn run(opts: &Options) -> Result<()> {
    let port = opts.port;
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => workspace::root()?.join(DIST),
    };
    if !dir.join("index.html").is_file() {
        bail!(
            "{} has no index.html: run `cargo xtask web` first",
            dir.display()
        );
    }
    let site =
        mclr_serve::serve(&dir, port).with_context(|| format!("serving {}", dir.display()))?;
    println!(
        "serving {} at {} (Ctrl-C stops)",
        dir.display(),
        site.url("/")
    );
    site.wait();
    Ok(())
}
