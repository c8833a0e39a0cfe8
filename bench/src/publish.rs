//! Where a benchmark's report goes: standard output, and the `--out` file when one is given.

use std::{io::Write as _, path::Path};

use anyhow::Context;

pub fn publish(report: &str, out: Option<&Path>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(report.as_bytes())?;
    stdout.flush()?;
    if let Some(path) = out {
        std::fs::write(path, report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
