//! Packet schedulers (RFC 8684 leaves the choice to the implementation), selected by name.
//!
//! A scheduler sees plain snapshots of the subflows ([`SubflowView`]) and of the data level
//! ([`DataView`]) and answers which subflow takes the next chunk of data; the connection copies
//! the bytes and keeps the mappings. A new scheduler is one file and one line in [`REGISTRY`].

use std::time::Duration;

pub mod minrtt;
pub mod redundant;
pub mod roundrobin;

/// Makes a scheduler for one connection.
pub type Constructor = fn() -> Box<dyn Scheduler>;

/// Every scheduler by name, the default first.
pub const REGISTRY: &[(&str, Constructor)] = &[
    ("minrtt", || Box::new(minrtt::MinRtt)),
    ("roundrobin", || Box::new(roundrobin::RoundRobin::default())),
    ("redundant", || Box::new(redundant::Redundant)),
];

/// The names of [`REGISTRY`].
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.0).collect()
}

/// The error for a name the registry does not know.
pub fn unknown(name: &str) -> String {
    format!("unknown scheduler {name:?} (known: {})", names().join(", "))
}

/// The scheduler named `name`.
pub fn new_scheduler(name: &str) -> Option<Box<dyn Scheduler>> {
    REGISTRY.iter().find(|r| r.0 == name).map(|r| (r.1)())
}

/// One subflow as a scheduler sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SubflowView {
    /// Established, join complete, can still send data.
    pub usable: bool,
    /// Backup (ours or the peer's MP_PRIO / MP_JOIN B bit): only when no regular one can.
    pub backup: bool,
    /// RTO backoff (0: healthy).
    pub backoff: u32,
    pub srtt: Option<Duration>,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Bytes the congestion window has room for now, one chunk of queue included.
    pub room: u64,
    /// What it takes at once (one mapping).
    pub chunk: u64,
    /// Free space of its send buffer.
    pub send_free: u64,
    /// Bytes it holds unacknowledged.
    pub unacked: u64,
    /// Payload bytes of a full segment.
    pub mss: u32,
}

/// The data level as a scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DataView {
    /// Bytes written by the application and not yet scheduled.
    pub unsent: u64,
    /// What may be unacknowledged at once: the peer's data-level window and our send buffer.
    pub window: u64,
    /// The margin of blocking estimation (adapted by opportunistic retransmission).
    pub lambda: f64,
}

/// The next chunk to place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub len: u64,
    /// Data sent before on another subflow (RFC 8684 §3.3.6 reinjection).
    pub reinject: bool,
}

/// A scheduler's answer: subflow `sub` takes up to `max` bytes of the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    pub sub: usize,
    pub max: u64,
}

/// A packet scheduler of one connection.
pub trait Scheduler: std::fmt::Debug + Send {
    fn name(&self) -> &'static str;
    /// Which subflow takes (part of) `chunk`; `None` waits (no room, or waiting is better).
    fn pick(&mut self, subs: &[SubflowView], data: &DataView, chunk: Chunk) -> Option<Pick>;
    /// New data goes to every usable subflow, each from its own cursor as far as it keeps up
    /// (redundant); `pick` then places reinjections only.
    fn every_subflow(&self) -> bool {
        false
    }
    /// Opportunistic retransmission with penalisation of the slower subflow may run.
    fn opportunistic(&self) -> bool {
        true
    }
}

/// The subflows that may take a chunk of `len` bytes now: usable, with room for it (or for a
/// whole mapping) and send buffer space; healthy and regular ones only when there are any.
pub fn candidates(subs: &[SubflowView], len: u64) -> impl Iterator<Item = usize> + '_ {
    let healthy = subs.iter().any(|s| s.usable && s.backoff == 0 && !s.backup);
    let regular = subs.iter().any(|s| s.usable && !s.backup);
    subs.iter().enumerate().filter_map(move |(i, s)| {
        let ok = s.usable
            && (!healthy || (s.backoff == 0 && !s.backup))
            && (!regular || !s.backup)
            && s.room >= len.min(s.chunk)
            && s.send_free > 0;
        ok.then_some(i)
    })
}

/// The candidate with the lowest smoothed RTT.
pub fn lowest_rtt(subs: &[SubflowView], len: u64) -> Option<usize> {
    candidates(subs, len).min_by_key(|&i| subs[i].srtt.unwrap_or(Duration::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A usable subflow with room for `room` bytes.
    pub fn sub(srtt_ms: u64, cwnd: u32, room: u64) -> SubflowView {
        SubflowView {
            usable: true,
            srtt: Some(ms(srtt_ms)),
            cwnd,
            room,
            chunk: 4 * 1448,
            send_free: 1 << 20,
            mss: 1448,
            ..SubflowView::default()
        }
    }

    pub fn data(unsent: u64) -> DataView {
        DataView {
            unsent,
            window: 4 << 20,
            lambda: 1.0,
        }
    }

    #[test]
    fn registry_names() {
        for n in names() {
            assert_eq!(new_scheduler(n).unwrap().name(), n);
        }
        assert!(new_scheduler("blest").is_none());
        assert_eq!(
            unknown("blest"),
            "unknown scheduler \"blest\" (known: minrtt, roundrobin, redundant)"
        );
    }

    #[test]
    fn candidates_prefer_healthy_regular_subflows() {
        let mut subs = [sub(10, 10_000, 10_000), sub(5, 10_000, 10_000)];
        subs[1].backup = true;
        assert_eq!(candidates(&subs, 1000).collect::<Vec<_>>(), [0]);
        subs[0].backoff = 1;
        // A backed-off regular subflow still beats a backup.
        assert_eq!(candidates(&subs, 1000).collect::<Vec<_>>(), [0]);
        subs[0].usable = false;
        assert_eq!(candidates(&subs, 1000).collect::<Vec<_>>(), [1]);
        subs[1].room = 100;
        assert_eq!(candidates(&subs, 1000).count(), 0);
    }
}
