//! `--trace FILE`: the run's time series as JSON lines, one [`braid_sim::Sample`] per line.

use braid_proto::{ConnHandle, Endpoint, Instant};
use braid_sim::series::{conn_sample, event_of};
use braid_sim::{Sample, SampleEvent, SubflowSample, SAMPLE_INTERVAL};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// `--trace` for `braid connect` / `braid listen`: samples every connection of the endpoint once
/// in every [`braid_sim::SAMPLE_INTERVAL`] slot of run time (at the loop's first turn in the slot;
/// the loop's sleep is bounded by [`NetTracer::wait`]; missed slots are skipped) and at each event, one JSON line each with the
/// connection's number (in the order they were seen, from 0) and the fields of
/// [`braid_sim::Sample`].
pub struct NetTracer {
    out: TraceWriter,
    t0: Instant,
    next_tick: Instant,
    /// Per connection: its number and its subflows at the last sample.
    seen: HashMap<ConnHandle, (u64, Vec<SubflowSample>)>,
    next_id: u64,
}

/// One line of a connect/listen trace.
#[derive(serde::Serialize)]
struct NetLine<'a> {
    conn: u64,
    #[serde(flatten)]
    sample: &'a Sample,
}

impl NetTracer {
    pub fn create(path: &Path, t0: Instant) -> Result<Self, String> {
        Ok(NetTracer {
            out: TraceWriter::create(path)?,
            t0,
            next_tick: t0,
            seen: HashMap::new(),
            next_id: 0,
        })
    }

    /// After a turn of the loop: a tick line for every connection when one is due, else a line
    /// for each connection where an event happened.
    pub fn observe(
        &mut self,
        now: Instant,
        ep: &Endpoint,
        conns: &[ConnHandle],
        path_of: &dyn Fn(IpAddr) -> Option<usize>,
    ) {
        let tick = now >= self.next_tick;
        if tick {
            while self.next_tick <= now {
                self.next_tick += SAMPLE_INTERVAL;
            }
        }
        for &h in conns {
            let Some(info) = ep.conn_info(h) else {
                continue;
            };
            let t = now.saturating_duration_since(self.t0).as_secs_f64();
            let mut sample = conn_sample(t, SampleEvent::Tick, &info, path_of);
            let next_id = &mut self.next_id;
            let (id, last) = self.seen.entry(h).or_insert_with(|| {
                *next_id += 1;
                (*next_id - 1, Vec::new())
            });
            let event = event_of(last, &sample.subflows);
            if event.is_some() {
                last.clone_from(&sample.subflows);
            }
            match (tick, event) {
                (true, _) => {}
                (false, Some(e)) => sample.event = e,
                (false, None) => continue,
            }
            let id = *id;
            self.out.write(&NetLine {
                conn: id,
                sample: &sample,
            });
        }
    }

    /// The last line of a connection (before its handle is released).
    pub fn end(
        &mut self,
        now: Instant,
        ep: &Endpoint,
        h: ConnHandle,
        path_of: &dyn Fn(IpAddr) -> Option<usize>,
    ) {
        let Some(info) = ep.conn_info(h) else { return };
        let Some((id, _)) = self.seen.remove(&h) else {
            return;
        };
        let t = now.saturating_duration_since(self.t0).as_secs_f64();
        let sample = conn_sample(t, SampleEvent::End, &info, path_of);
        self.out.write(&NetLine {
            conn: id,
            sample: &sample,
        });
    }

    /// How long the loop may sleep before the next tick is due.
    pub fn wait(&self, now: Instant) -> Duration {
        self.next_tick.saturating_duration_since(now)
    }

    pub fn finish(self) -> Result<(), String> {
        self.out.finish()
    }
}
