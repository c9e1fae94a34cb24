//! NewReno (RFC 5681, RFC 6582): slow start, congestion avoidance with appropriate byte counting.
//!
//! The loss-recovery half of NewReno (partial ACKs, RFC 6582 §3.2) lives in the TCP engine; this
//! is the window arithmetic it drives.

use super::common::{initial_window, window_used, Phase, MAX_CWND};
use super::hystart::SlowStart;
use super::CongestionControl;
use crate::time::Instant;
use std::time::Duration;

/// NewReno congestion control, all sizes in bytes.
#[derive(Debug, Clone)]
pub struct Reno {
    mss: u32,
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged in congestion avoidance not yet turned into window (RFC 3465 §2.1).
    bytes_acked: u32,
    phase: Phase,
}

impl Reno {
    /// Slow start from the RFC 6928 initial window, with an unbounded ssthresh.
    pub fn new(mss: u32) -> Self {
        let mss = mss.max(1);
        Reno {
            mss,
            cwnd: initial_window(mss),
            ssthresh: u32::MAX,
            bytes_acked: 0,
            phase: Phase::new(),
        }
    }

    /// Turns HyStart++ off (plain RFC 5681 slow start until the first loss) or back on.
    pub fn set_hystart(&mut self, on: bool) {
        self.phase.set_hystart(on);
    }

    /// RFC 5681 equation (4): half the flight, at least two segments.
    fn reduced_ssthresh(&self, in_flight: u32) -> u32 {
        (in_flight / 2).max(2 * self.mss)
    }

    /// The slow-start half of an ACK, shared with the coupled controllers: `None` when the ACK
    /// grows nothing (nothing acknowledged, window not used, or slow start just ended), else
    /// the acknowledged bytes left for congestion avoidance (0 while still in slow start).
    pub(crate) fn slow_start(
        &mut self,
        now: Instant,
        acked: u32,
        rtt: Option<Duration>,
        in_flight: u32,
        app_limited: bool,
    ) -> Option<u32> {
        self.phase.signal();
        if acked == 0 || !window_used(self.cwnd, self.ssthresh, self.mss, in_flight, app_limited) {
            return None;
        }
        if self.cwnd >= self.ssthresh {
            return Some(acked);
        }
        // RFC 5681 §3.1 slow start with RFC 3465 §2.2 byte counting, L = 2 * SMSS, and
        // HyStart++ (RFC 9406) to leave it before the queue overflows.
        let divisor = match self
            .phase
            .hystart
            .on_ack(now, acked, rtt, self.cwnd, in_flight, self.mss)
        {
            SlowStart::Grow { divisor } => divisor,
            SlowStart::Exit => {
                self.ssthresh = self.cwnd;
                return None;
            }
        };
        let inc = acked.min(2 * self.mss) / divisor;
        let room = self.ssthresh - self.cwnd;
        if inc < room {
            self.cwnd = (self.cwnd + inc).min(MAX_CWND);
            return Some(0);
        }
        // Crossing ssthresh: the rest of this ACK counts towards congestion avoidance.
        self.cwnd = self.ssthresh.min(MAX_CWND);
        Some(acked - room.min(acked))
    }

    /// The segment size the window counts in.
    pub(crate) fn mss(&self) -> u32 {
        self.mss
    }

    /// Changes the window by whole segments in congestion avoidance (coupled controllers),
    /// never below two segments; a decrease takes ssthresh along (it stays in avoidance).
    pub(crate) fn add_segments(&mut self, n: i64) {
        let w = self.cwnd as i64 + n * self.mss as i64;
        self.cwnd = w.clamp(2 * self.mss as i64, MAX_CWND as i64) as u32;
        if n < 0 {
            self.ssthresh = self.ssthresh.min(self.cwnd);
        }
    }

    /// A multiplicative decrease to `factor` of the flight (Reno: one half), at least two
    /// segments.
    pub(crate) fn decrease_to(&mut self, in_flight: u32, factor: f64) {
        self.phase.signal();
        let w = (in_flight as f64 * factor.clamp(0.0, 1.0)) as u32;
        self.ssthresh = w.max(2 * self.mss);
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }
}

impl CongestionControl for Reno {
    fn name(&self) -> &'static str {
        "reno"
    }

    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(
        &mut self,
        now: Instant,
        acked: u32,
        rtt: Option<Duration>,
        in_flight: u32,
        app_limited: bool,
    ) {
        let Some(acked) = self.slow_start(now, acked, rtt, in_flight, app_limited) else {
            return;
        };
        // RFC 5681 §3.1 congestion avoidance, by RFC 3465 §2.1 byte counting: one SMSS per
        // cwnd of bytes acknowledged.
        self.bytes_acked = self.bytes_acked.saturating_add(acked);
        while self.bytes_acked >= self.cwnd && self.cwnd < MAX_CWND {
            self.bytes_acked -= self.cwnd;
            self.cwnd = (self.cwnd + self.mss).min(MAX_CWND);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, in_flight: u32) {
        // RFC 5681 §3.2 step 2 / RFC 6675 §5: ssthresh = cwnd = max(FlightSize / 2, 2 * SMSS).
        self.decrease_to(in_flight, 0.5);
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        // RFC 6582 §3.2 step 3 (full ACK): deflate to ssthresh.
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }

    fn on_rto(&mut self, _now: Instant, in_flight: u32) {
        // RFC 5681 §3.1: ssthresh by equation (4) unless this segment already timed out once;
        // cwnd to the loss window of one segment.
        if self.phase.rto() {
            self.ssthresh = self.reduced_ssthresh(in_flight);
        }
        self.cwnd = self.mss;
        self.bytes_acked = 0;
    }

    fn set_mss(&mut self, mss: u32) {
        self.mss = mss.max(1);
        if let Some(w) = self.phase.initial_window(self.mss) {
            self.cwnd = w;
        }
        self.cwnd = self.cwnd.max(self.mss);
    }
}

/// Helpers that play a sender against a controller, for the tests of every controller.
#[cfg(test)]
pub(crate) mod testsim {
    use super::*;

    pub const MSS: u32 = 1000;

    /// One round trip of a cwnd-limited sender: a full window is in flight and is acknowledged
    /// one segment per ACK, the ACKs spread evenly over `rtt`; the RTT sample is `rtt`.
    pub fn round(cc: &mut dyn CongestionControl, now: &mut Instant, rtt: Duration, mss: u32) {
        let window = cc.cwnd();
        let acks = window.div_ceil(mss).max(1);
        let step = rtt / acks;
        let mut left = window;
        for _ in 0..acks {
            let acked = left.min(mss);
            *now += step;
            cc.on_ack(*now, acked, Some(rtt), window, false);
            left -= acked;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testsim::{round, MSS};
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn initial_window_rfc6928() {
        let r = Reno::new(MSS);
        assert_eq!(r.cwnd(), 10 * MSS);
        assert_eq!(r.ssthresh(), u32::MAX);
        assert_eq!(Reno::new(536).cwnd(), 5360);
        // RFC 6928: min(10 * MSS, max(2 * MSS, 14600)).
        assert_eq!(Reno::new(9000).cwnd(), 18000);
        let mut r = Reno::new(536);
        r.set_hystart(false);
        r.set_mss(1000);
        assert_eq!(r.cwnd(), 10_000);
    }

    #[test]
    fn slow_start_doubles_per_rtt() {
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        let mut now = Instant::ZERO;
        for _ in 0..5 {
            let before = r.cwnd();
            round(&mut r, &mut now, ms(50), MSS);
            assert_eq!(r.cwnd(), 2 * before);
        }
        assert_eq!(r.cwnd(), 320 * MSS);
    }

    #[test]
    fn abc_limits_slow_start_to_two_segments_per_ack() {
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        // A stretch ACK of 8 segments grows cwnd by only L = 2 segments (RFC 3465 §2.2).
        r.on_ack(Instant::ZERO, 8 * MSS, None, 10 * MSS, false);
        assert_eq!(r.cwnd(), 12 * MSS);
        // A partial segment counts by bytes.
        r.on_ack(Instant::ZERO, 100, None, 12 * MSS, false);
        assert_eq!(r.cwnd(), 12 * MSS + 100);
    }

    #[test]
    fn congestion_avoidance_one_segment_per_rtt() {
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        r.on_congestion_event(Instant::ZERO, 40 * MSS);
        assert_eq!(r.cwnd(), 20 * MSS);
        assert_eq!(r.ssthresh(), 20 * MSS);
        r.on_recovery_exit(Instant::ZERO);
        let mut now = Instant::ZERO;
        for i in 1..=30 {
            round(&mut r, &mut now, ms(50), MSS);
            assert_eq!(r.cwnd(), (20 + i) * MSS, "round {i}");
        }
        // Small ACKs (delayed ACK of half segments) accumulate byte-accurately.
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        r.on_congestion_event(Instant::ZERO, 20 * MSS);
        let cwnd = r.cwnd();
        for _ in 0..(cwnd / 100 - 1) {
            r.on_ack(Instant::ZERO, 100, None, cwnd, false);
        }
        assert_eq!(r.cwnd(), cwnd);
        r.on_ack(Instant::ZERO, 100, None, cwnd, false);
        assert_eq!(r.cwnd(), cwnd + MSS);
    }

    #[test]
    fn slow_start_leftover_goes_to_avoidance() {
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        r.on_congestion_event(Instant::ZERO, 30 * MSS); // ssthresh 15 MSS
        r.on_rto(Instant::ZERO, 30 * MSS); // first RTO: ssthresh from the flight again
        assert_eq!(r.ssthresh(), 15 * MSS);
        assert_eq!(r.cwnd(), MSS);
        let mut now = Instant::ZERO;
        round(&mut r, &mut now, ms(10), MSS); // 2
        round(&mut r, &mut now, ms(10), MSS); // 4
        round(&mut r, &mut now, ms(10), MSS); // 8
        round(&mut r, &mut now, ms(10), MSS); // 16 capped at 15, then CA
        assert_eq!(r.cwnd(), 15 * MSS);
        round(&mut r, &mut now, ms(10), MSS);
        assert_eq!(r.cwnd(), 16 * MSS);
    }

    #[test]
    fn halves_on_loss_with_floor() {
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        r.on_congestion_event(Instant::ZERO, 10 * MSS);
        assert_eq!((r.cwnd(), r.ssthresh()), (5 * MSS, 5 * MSS));
        r.on_congestion_event(Instant::ZERO, 3 * MSS);
        assert_eq!((r.cwnd(), r.ssthresh()), (2 * MSS, 2 * MSS));
        r.on_congestion_event(Instant::ZERO, 0);
        assert_eq!(r.cwnd(), 2 * MSS);
    }

    #[test]
    fn rto_sets_one_segment_and_holds_ssthresh_on_repeat() {
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        r.on_rto(Instant::ZERO, 40 * MSS);
        assert_eq!((r.cwnd(), r.ssthresh()), (MSS, 20 * MSS));
        // The same data times out again: in flight is now one segment, ssthresh is kept.
        r.on_rto(Instant::ZERO, MSS);
        assert_eq!((r.cwnd(), r.ssthresh()), (MSS, 20 * MSS));
        r.on_ack(Instant::ZERO, MSS, None, MSS, false);
        assert_eq!(r.cwnd(), 2 * MSS);
        r.on_rto(Instant::ZERO, 2 * MSS);
        assert_eq!((r.cwnd(), r.ssthresh()), (MSS, 2 * MSS));
    }

    #[test]
    fn app_limited_does_not_grow_unused_window() {
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        r.on_congestion_event(Instant::ZERO, 40 * MSS);
        r.on_recovery_exit(Instant::ZERO);
        let cwnd = r.cwnd();
        // Only 5 segments in flight out of 20: no growth however long this goes on.
        for _ in 0..1000 {
            r.on_ack(Instant::ZERO, MSS, None, 5 * MSS, true);
        }
        assert_eq!(r.cwnd(), cwnd);
        // Slow start: app-limited with 3 of 10 segments in flight does not grow either.
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        for _ in 0..100 {
            r.on_ack(Instant::ZERO, MSS, None, 3 * MSS, true);
        }
        assert_eq!(r.cwnd(), 10 * MSS);
        // But a window that was used does grow even if the sender then ran dry.
        r.on_ack(Instant::ZERO, MSS, None, 10 * MSS, true);
        assert_eq!(r.cwnd(), 11 * MSS);
    }

    #[test]
    fn no_overflow() {
        let mut r = Reno::new(MSS);
        r.set_hystart(false);
        for _ in 0..10_000 {
            r.on_ack(Instant::ZERO, u32::MAX, None, u32::MAX, false);
        }
        assert!(r.cwnd() <= MAX_CWND);
        r.on_congestion_event(Instant::ZERO, u32::MAX);
        assert_eq!(r.cwnd(), u32::MAX / 2);
    }
}
