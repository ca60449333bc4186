//! Running external commands loudly: every command is echoed before it runs, and a failure names
//! the command that failed.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Builds a command from a program and its arguments.
pub fn command(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Runs `c` with inherited stdio after printing it; fails if it exits non-zero.
pub fn run(c: &mut Command) -> Result<()> {
    let shown = show(c);
    eprintln!("\x1b[1m$ {shown}\x1b[0m");
    let status = c
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `c` quietly and returns its stdout, or `None` if it could not run or failed.
pub fn output(c: &mut Command) -> Option<String> {
    let out = c.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn show(c: &Command) -> String {
    std::iter::once(c.get_program().to_string_lossy().into_owned())
        .chain(c.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}
