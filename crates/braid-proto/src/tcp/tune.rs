//! Buffer autotuning, as Linux does it.
//!
//! * Receive side — dynamic right-sizing (DRS, Linux's `tcp_rcv_space_adjust`): once per
//!   round trip the receiver counts what the application read in it; when that grew, the
//!   window grows to about twice it (plus the growth seen), so the sender is never held by the
//!   window while the reader keeps up. The round trip is the receiver's own estimate
//!   ([`RcvRtt`], Linux's `rcv_rtt_est`): timestamps echoed on data segments, or the time to
//!   receive one window's worth without timestamps.
//! * Send side (Linux's `tcp_sndbuf_expand`): the send buffer grows to twice the congestion
//!   window, so a full window can be in flight while as much again waits to be sent.
//!
//! Both only grow, up to the configured cap: what a peer can make us hold is bounded by it.
//! Under memory pressure (the endpoint's buffers together above
//! `EndpointConfig::memory_pressure`, Linux's `tcp_mem[1]`) growth stops and buffers shrink
//! towards [`PRESSURE_BUFFER`] (see `Tcb::set_memory_pressure`).

use super::recvbuf::RecvBuffer;
use super::sendbuf::SendBuffer;
use crate::time::Instant;
use std::time::Duration;

/// Initial congestion window of a sender, in segments (RFC 6928): the first measurement of
/// what one round trip delivers.
const INIT_SEGMENTS: u64 = 10;
/// Segments added on top of twice the bytes per round trip (Linux: 16 × advmss).
const SLACK_SEGMENTS: u64 = 16;
/// What buffers shrink towards while the endpoint is under memory pressure (half the
/// default size; Linux moderates to half of what is queued).
pub(crate) const PRESSURE_BUFFER: usize = 64 << 10;
/// One moderation under memory pressure: the send buffer shrinks to what it holds (at least
/// [`PRESSURE_BUFFER`]), the receive window closes towards it as the application reads, and
/// empty rings are freed.
pub(crate) fn moderate(send: &mut SendBuffer, recv: &mut RecvBuffer) {
    let keep = send.len().max(PRESSURE_BUFFER);
    if send.capacity() > keep {
        send.set_capacity(keep);
    }
    send.release();
    recv.shrink_towards(Some(PRESSURE_BUFFER));
    recv.release();
}

/// RTT samples above this are ignored (a stale or forged timestamp echo).
const MAX_RTT: Duration = Duration::from_secs(60);

/// The receiver's RTT estimate (Linux's `rcv_rtt_est`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RcvRtt {
    est: Option<Duration>,
    /// The last TSecr sampled (one sample per echoed value).
    last_tsecr: Option<u32>,
    /// Without timestamps: the stream offset that ends one window from `mark.1`.
    mark: Option<(u64, Instant)>,
}

impl RcvRtt {
    /// The estimate, once there is one.
    pub(crate) fn get(&self) -> Option<Duration> {
        self.est
    }

    /// A full-sized data segment arrived echoing `tsecr` (our timestamp clock reads `ts_now`,
    /// in milliseconds): one sample per echoed value, smoothed by 1/8 as Linux does.
    pub(crate) fn on_timestamp(&mut self, ts_now: u32, tsecr: u32) {
        if tsecr == 0 || self.last_tsecr == Some(tsecr) {
            return;
        }
        self.last_tsecr = Some(tsecr);
        let ms = ts_now.wrapping_sub(tsecr) as i32;
        if ms < 0 {
            return;
        }
        // Timestamps tick in milliseconds: a sample below one tick counts as one.
        let s = Duration::from_millis(ms.max(1) as u64);
        if s > MAX_RTT {
            return;
        }
        self.est = Some(match self.est {
            Some(e) => (e * 7 + s) / 8,
            None => s,
        });
    }

    /// Without timestamps: the in-order end reached `rcv_end` at `now`, with a window of
    /// `window` bytes. The time to receive one window is a sample (never above the smallest
    /// seen, as Linux's window-based estimate).
    pub(crate) fn on_window(&mut self, now: Instant, rcv_end: u64, window: u64) {
        match self.mark {
            Some((end, at)) if rcv_end >= end => {
                let s = now.saturating_duration_since(at);
                if !s.is_zero() && s <= MAX_RTT {
                    self.est = Some(self.est.map_or(s, |e| e.min(s)));
                }
                self.mark = Some((rcv_end + window.max(1), now));
            }
            Some(_) => {}
            None => self.mark = Some((rcv_end + window.max(1), now)),
        }
    }
}

/// Receive-buffer autotuning state (Linux's `rcvq_space`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RcvSpace {
    /// Bytes the application read in the last measured round trip.
    space: u64,
    /// Read offset and time at the start of the current measurement.
    seq: u64,
    time: Instant,
}

impl RcvSpace {
    pub(crate) fn new(now: Instant, mss: u32) -> Self {
        RcvSpace {
            space: INIT_SEGMENTS * mss.max(1) as u64,
            seq: 0,
            time: now,
        }
    }

    /// Bytes per second the application read in the last measured round trip of `rtt`.
    pub(crate) fn rate(&self, rtt: Duration) -> f64 {
        self.space as f64 / rtt.as_secs_f64().max(1e-6)
    }

    /// The application's read offset is `read` at `now`; `rtt` is the round trip to measure
    /// over (the receiver's estimate; the largest of the subflows' at the MPTCP data level).
    /// Returns the receive buffer size to grow to when a round trip's reading grew: twice what
    /// was read in it, plus slack, plus twice the growth seen (DRS), at most `max`; `None`
    /// when it stays as it is (`cap`).
    pub(crate) fn adjust(
        &mut self,
        now: Instant,
        read: u64,
        rtt: Option<Duration>,
        mss: u32,
        cap: usize,
        max: usize,
    ) -> Option<usize> {
        let rtt = rtt?;
        if now.saturating_duration_since(self.time) < rtt {
            return None;
        }
        let copied = read.saturating_sub(self.seq);
        self.seq = read;
        self.time = now;
        if copied <= self.space {
            return None;
        }
        let mut win = copied
            .saturating_mul(2)
            .saturating_add(SLACK_SEGMENTS * mss as u64);
        let grow = win.saturating_mul(copied - self.space) / self.space.max(1);
        win = win.saturating_add(grow.saturating_mul(2));
        self.space = copied;
        let want = win.min(max as u64) as usize;
        (want > cap).then_some(want)
    }
}

/// The send buffer a sender with congestion window `cwnd` needs (Linux's `tcp_sndbuf_expand`:
/// twice the window, so as much again waits while one window is in flight), at most `max`.
pub(crate) fn sndbuf_for(cwnd: u64, mss: u32, max: usize) -> usize {
    let need = cwnd
        .max(INIT_SEGMENTS * mss as u64)
        .saturating_mul(2)
        .min(max as u64);
    need as usize
}

/// The size a buffer of `cap` bytes grows to when `want` is more: at least by half (a ring
/// is copied whenever it outgrows its allocation, so growing by a segment per ACK would copy
/// it again and again), at most `max`. `None` when `want` fits.
pub(crate) fn grow_step(cap: usize, want: usize, max: usize) -> Option<usize> {
    (want > cap && cap < max).then(|| want.max(cap.saturating_add(cap / 2)).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn timestamp_samples_are_smoothed_and_bounded() {
        let mut r = RcvRtt::default();
        assert_eq!(r.get(), None);
        r.on_timestamp(1100, 1000);
        assert_eq!(r.get(), Some(Duration::from_millis(100)));
        // The same echoed value again: no second sample.
        r.on_timestamp(1300, 1000);
        assert_eq!(r.get(), Some(Duration::from_millis(100)));
        r.on_timestamp(1380, 1200);
        assert_eq!(r.get(), Some(Duration::from_millis(110)));
        // Zero (no echo), from the future, or absurdly old: ignored.
        r.on_timestamp(2000, 0);
        r.on_timestamp(2000, 2500);
        r.on_timestamp(200_000, 1400);
        assert_eq!(r.get(), Some(Duration::from_millis(110)));
        // Below one tick counts as one.
        let mut r = RcvRtt::default();
        r.on_timestamp(7, 7);
        assert_eq!(r.get(), Some(Duration::from_millis(1)));
    }

    #[test]
    fn window_samples_keep_the_smallest() {
        let mut r = RcvRtt::default();
        r.on_window(at(0), 0, 1000);
        r.on_window(at(30), 900, 1000);
        assert_eq!(r.get(), None);
        r.on_window(at(50), 1000, 2000);
        assert_eq!(r.get(), Some(Duration::from_millis(50)));
        r.on_window(at(130), 3000, 2000);
        assert_eq!(r.get(), Some(Duration::from_millis(50)));
        r.on_window(at(170), 5000, 2000);
        assert_eq!(r.get(), Some(Duration::from_millis(40)));
    }

    #[test]
    fn drs_grows_with_reading_per_round_trip_up_to_the_cap() {
        let rtt = Some(Duration::from_millis(100));
        let mss = 1000;
        let mut s = RcvSpace::new(at(0), mss);
        // No RTT yet, or less than one round trip since the last measurement: nothing.
        assert_eq!(s.adjust(at(500), 50_000, None, mss, 65_536, 1 << 20), None);
        assert_eq!(s.adjust(at(50), 50_000, rtt, mss, 65_536, 1 << 20), None);
        // 20 000 bytes read in a round trip, more than the initial 10 segments:
        // 2 · 20 000 + 16 000 = 56 000, grown by 2 · 56 000 · (20 000 - 10 000) / 10 000.
        assert_eq!(
            s.adjust(at(100), 20_000, rtt, mss, 65_536, 1 << 20),
            Some(168_000)
        );
        // The same amount again: no growth.
        assert_eq!(s.adjust(at(200), 40_000, rtt, mss, 168_000, 1 << 20), None);
        // Less: no shrinking either.
        assert_eq!(s.adjust(at(300), 45_000, rtt, mss, 168_000, 1 << 20), None);
        // A lot more: bounded by the cap.
        assert_eq!(
            s.adjust(at(400), 1_045_000, rtt, mss, 168_000, 1 << 20),
            Some(1 << 20)
        );
        assert_eq!(
            s.adjust(at(500), 9_045_000, rtt, mss, 1 << 20, 1 << 20),
            None
        );
    }

    #[test]
    fn growth_goes_in_steps_of_half() {
        assert_eq!(grow_step(1000, 1000, 10_000), None);
        assert_eq!(grow_step(1000, 1001, 10_000), Some(1500));
        assert_eq!(grow_step(1000, 4000, 10_000), Some(4000));
        assert_eq!(grow_step(8000, 9000, 10_000), Some(10_000));
        assert_eq!(grow_step(10_000, 90_000, 10_000), None);
    }

    #[test]
    fn sndbuf_is_twice_the_window_within_bounds() {
        assert_eq!(sndbuf_for(100_000, 1000, 1 << 20), 200_000);
        assert_eq!(sndbuf_for(1000, 1000, 1 << 20), 20_000);
        assert_eq!(sndbuf_for(u32::MAX as u64, 1000, 1 << 20), 1 << 20);
    }
}
