//! `cargo xtask serve [--port 8080] [--dir www/dist]`: serves the built site on 127.0.0.1 with
//! the server the browser end-to-end test uses (`mclr_tests::site`), so what a person clicks
//! through locally is served exactly as in CI.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::web::DIST;
use crate::workspace;

/// Parses the options and serves until interrupted.
pub fn run(args: &[String]) -> Result<()> {
    let mut port: u16 = 8080;
    let mut dir: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("`{flag}` needs a value"))?;
        match flag.as_str() {
            "--port" => {
                port = value
                    .parse()
                    .with_context(|| format!("--port: `{value}` is not a port number"))?;
            }
            "--dir" => dir = Some(PathBuf::from(value)),
            other => bail!("`cargo xtask serve` takes --port N and --dir PATH (got `{other}`)"),
        }
    }
    let dir = match dir {
        Some(d) => d,
        None => workspace::root()?.join(DIST),
    };
    if !dir.join("index.html").is_file() {
        bail!(
            "{} has no index.html: run `cargo xtask web` first",
            dir.display()
        );
    }
    let site = mclr_tests::site::serve(&dir, port)
        .with_context(|| format!("serving {}", dir.display()))?;
    println!(
        "serving {} at {} (Ctrl-C stops)",
        dir.display(),
        site.url("/")
    );
    site.wait();
    Ok(())
}
