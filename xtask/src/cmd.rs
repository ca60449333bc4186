//! Running external commands loudly: every command is echoed before it runs, and a failure names
//! the command that failed.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Builds a command from a program and its arguments.
///
/// A `cargo` command runs without the variables `cargo run` set for xtask itself
/// ([`PACKAGE_VARS`]): some build scripts (ring's) rerun when `CARGO_MANIFEST_DIR` changes, so
/// leaking xtask's would rebuild them, and everything above them, on every switch between
/// `cargo xtask …` and a plain `cargo build`/`cargo test`.
pub fn command(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    if program == "cargo" {
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if PACKAGE_VARS
                .iter()
                .any(|p| key == *p || key.starts_with("CARGO_PKG_"))
            {
                c.env_remove(key.as_ref());
            }
        }
    }
    c
}

/// What `cargo run` sets for the package it runs (besides every `CARGO_PKG_*`); none of it
/// describes the user's environment, so none of it is passed on to a nested cargo.
const PACKAGE_VARS: [&str; 5] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
];

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

/// Totals over every `test result:` line a `cargo test` run printed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TestTally {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests marked `#[ignore]` (the project has none; counted so they cannot hide).
    pub ignored: u64,
}

impl TestTally {
    /// Adds another run's counts to these.
    pub fn add(&mut self, other: Self) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }

    /// Adds the counts of one libtest summary line, e.g.
    /// `test result: ok. 48 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; …`.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = count.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Runs a `cargo test` command like [`run`], streaming its output, and returns the totals of its
/// summary lines (also when it fails, so the caller can report them).
pub fn run_tests(c: &mut Command) -> Result<(TestTally, bool)> {
    use std::io::{BufRead, BufReader};
    let shown = show(c);
    eprintln!("\x1b[1m$ {shown}\x1b[0m");
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))?;
    let mut tally = TestTally::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.with_context(|| format!("reading the output of `{shown}`"))?;
            println!("{line}");
            tally.add_line(&line);
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{shown}`"))?;
    Ok((tally, status.success()))
}

#[cfg(test)]
mod tests {
    use super::TestTally;

    #[test]
    fn tally_sums_libtest_summary_lines_and_ignores_others() {
        let mut t = TestTally::default();
        t.add_line("test result: ok. 48 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_line(
            "test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("test shape_errors_name_the_argument ... ok");
        t.add_line("running 12 tests");
        assert_eq!(
            t,
            TestTally {
                passed: 51,
                failed: 1,
                ignored: 2
            }
        );
    }
}
