//! The real clock: braid's [`Instant`] as time elapsed since the driver started.

use braid_proto::Instant;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Monotonic time since an epoch taken at creation, plus the wall-clock time of that epoch
/// (for pcap timestamps only).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: std::time::Instant,
    wall_start: Duration,
}

impl Clock {
    /// This is the one place braid reads the system clocks: the engine only sees the values.
    #[allow(clippy::disallowed_methods)]
    pub fn new() -> Self {
        Clock {
            start: std::time::Instant::now(),
            wall_start: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    /// Now, in the engine's time.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The wall-clock time (since the Unix epoch) of an engine instant.
    pub fn wall(&self, t: Instant) -> Duration {
        self.wall_start + t.since_epoch()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
