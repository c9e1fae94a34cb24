//! Congestion control behind a trait, selected by name.

use crate::time::Instant;
use std::time::Duration;

pub mod cubic;
mod hystart;
pub mod reno;

/// Names accepted by [`new_cc`].
pub const CC_NAMES: &[&str] = &["reno", "cubic"];

/// A congestion controller for one TCP connection (later: one subflow). All sizes in bytes.
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
}

/// Makes the controller named `name` ("reno" or "cubic") for segments of `mss` bytes, with the
/// initial window of RFC 6928 (10 segments). `None` for an unknown name.
pub fn new_cc(name: &str, mss: u32) -> Option<Box<dyn CongestionControl>> {
    match name {
        "reno" | "newreno" => Some(Box::new(reno::Reno::new(mss))),
        "cubic" => Some(Box::new(cubic::Cubic::new(mss))),
        _ => None,
    }
}
