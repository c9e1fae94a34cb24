//! `--trace FILE`: the run's time series as JSON lines, one [`braid_sim::Sample`] per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes samples to a file, keeping the first error for the end of the run (the simulation
/// goes on; the user hears about it once).
pub struct TraceWriter {
    path: PathBuf,
    out: BufWriter<File>,
    error: Option<std::io::Error>,
}

impl TraceWriter {
    pub fn create(path: &Path) -> Result<Self, String> {
        let file = File::create(path)
            .map_err(|e| format!("cannot create trace file {}: {e}", path.display()))?;
        Ok(TraceWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            error: None,
        })
    }

    /// Appends one line holding `value` as JSON.
    pub fn write<T: serde::Serialize>(&mut self, value: &T) {
        if self.error.is_some() {
            return;
        }
        let res = serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::other)
            .and_then(|()| self.out.write_all(b"\n"));
        self.error = res.err();
    }

    /// Flushes; the first error of the run, if any.
    pub fn finish(mut self) -> Result<(), String> {
        let res = match self.error.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        };
        res.map_err(|e| format!("writing trace file {}: {e}", self.path.display()))
    }
}
