//! Congestion control behind a trait, selected by name from one registry.
//!
//! A new controller is one file here and one line in [`REGISTRY`]: configuration checks, the
//! command line's help and its error messages all read the registry.
//!
//! Coupled controllers (RFC 6356 and its successors) see the other subflows of their MPTCP
//! connection through [`CongestionControl::set_coupling`], which the connection calls with a
//! snapshot of every subflow that carries data before the subflows handle their next input.

use crate::time::Instant;
use std::time::Duration;

pub mod balia;
mod common;
mod coupled;
pub mod cubic;
mod hystart;
pub mod lia;
pub mod olia;
pub mod reno;

/// Makes a controller for segments of `mss` bytes.
pub type Constructor = fn(u32) -> Box<dyn CongestionControl>;

/// Every controller by name, in the order help texts list them.
pub const REGISTRY: &[(&str, Constructor)] = &[
    ("reno", |mss| Box::new(reno::Reno::new(mss))),
    ("cubic", |mss| Box::new(cubic::Cubic::new(mss))),
    ("lia", |mss| Box::new(lia::Lia::new(mss))),
    ("olia", |mss| Box::new(olia::Olia::new(mss))),
    ("balia", |mss| Box::new(balia::Balia::new(mss))),
];

/// The names of [`REGISTRY`].
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.0).collect()
}

/// The error for a name the registry does not know.
pub fn unknown(name: &str) -> String {
    format!(
        "unknown congestion control {name:?} (known: {})",
        names().join(", ")
    )
}

/// Makes the controller named `name` for segments of `mss` bytes, with the initial window of
/// RFC 6928 (10 segments). `None` for an unknown name.
pub fn new_cc(name: &str, mss: u32) -> Option<Box<dyn CongestionControl>> {
    REGISTRY.iter().find(|r| r.0 == name).map(|r| (r.1)(mss))
}

/// What a coupled controller needs to know of one subflow of its connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathShare {
    /// Congestion window in bytes.
    pub cwnd: u32,
    /// Smoothed RTT.
    pub srtt: Duration,
    /// Segment size in bytes.
    pub mss: u32,
    /// OLIA's ℓ: the larger of the bytes acknowledged between the last two losses and since
    /// the last loss (see [`CongestionControl::inter_loss_bytes`]).
    pub inter_loss: u64,
}

/// The subflows of one connection as a coupled controller sees them: `paths[me]` is its own.
#[derive(Clone, Copy, Debug)]
pub struct Coupling<'a> {
    pub paths: &'a [PathShare],
    pub me: usize,
}

/// A congestion controller for one TCP connection or one MPTCP subflow. All sizes in bytes.
///
/// The TCP engine calls `on_ack` for every ACK that advances `snd_una` outside loss recovery,
/// `on_congestion_event` once when it enters fast recovery (loss detected by dupacks/SACK),
/// `on_recovery_exit` when recovery ends, and `on_rto` when the retransmission timer fires.
pub trait CongestionControl: std::fmt::Debug + Send {
    fn name(&self) -> &'static str;
    /// Current congestion window in bytes.
    fn cwnd(&self) -> u32;
    /// Current slow-start threshold in bytes.
    fn ssthresh(&self) -> u32;
    /// New cumulative ack of `acked` bytes. `rtt` is a fresh RTT sample if there is one;
    /// `in_flight` is the bytes in flight before this ACK; `app_limited` is true when the sender
    /// had less data than cwnd allowed (then the window must not grow past what was used).
    fn on_ack(
        &mut self,
        now: Instant,
        acked: u32,
        rtt: Option<Duration>,
        in_flight: u32,
        app_limited: bool,
    );
    /// Loss detected by fast retransmit / SACK: multiplicative decrease (ssthresh and cwnd).
    fn on_congestion_event(&mut self, now: Instant, in_flight: u32);
    /// Fast recovery finished: cwnd is set to ssthresh (RFC 6675 §5 / RFC 5681).
    fn on_recovery_exit(&mut self, now: Instant);
    /// The retransmission timer fired: ssthresh reduced, cwnd to one segment (RFC 5681 §3.1).
    fn on_rto(&mut self, now: Instant, in_flight: u32);
    /// The path MSS changed (or is first known).
    fn set_mss(&mut self, mss: u32);
    /// Whether the controller couples subflows (then the connection calls `set_coupling`).
    fn coupled(&self) -> bool {
        false
    }
    /// The connection's subflows now; an uncoupled controller ignores it. Without a call (plain
    /// TCP, or one subflow) a coupled controller behaves as Reno.
    fn set_coupling(&mut self, _coupling: &Coupling<'_>) {}
    /// Bytes acknowledged between losses (OLIA's ℓ, max of the last two intervals).
    fn inter_loss_bytes(&self) -> u64 {
        0
    }
}

/// The increase credit of a coupled controller in congestion avoidance: fractions of a segment
/// per acknowledged byte accumulate until they make whole segments (positive or negative).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Credit(f64);

impl Credit {
    /// Adds `acked` bytes at `per_byte` window bytes each; returns the whole segments earned.
    pub(crate) fn earn(&mut self, acked: u32, per_byte: f64, mss: u32) -> i64 {
        if !per_byte.is_finite() {
            return 0;
        }
        self.0 += acked as f64 * per_byte;
        let segs = (self.0 / mss.max(1) as f64).trunc();
        self.0 -= segs * mss as f64;
        segs as i64
    }

    pub(crate) fn clear(&mut self) {
        self.0 = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_builds_its_controller() {
        for name in names() {
            let cc = new_cc(name, 1000).unwrap();
            assert_eq!(cc.name(), name);
            assert_eq!(cc.cwnd(), 10_000);
        }
        assert!(new_cc("vegas", 1000).is_none());
        assert_eq!(
            unknown("vegas"),
            "unknown congestion control \"vegas\" (known: reno, cubic, lia, olia, balia)"
        );
    }

    #[test]
    fn credit_makes_whole_segments_both_ways() {
        let mut c = Credit::default();
        assert_eq!(c.earn(500, 1.0, 1000), 0);
        assert_eq!(c.earn(600, 1.0, 1000), 1);
        assert_eq!(c.earn(100, -20.0, 1000), -1);
        assert_eq!(c.earn(1, f64::NAN, 1000), 0);
    }
}
