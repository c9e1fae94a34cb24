//! HyStart++ (RFC 9406): leave slow start when the RTT starts to grow, before the queue
//! overflows, through a short conservative slow start.
//!
//! Like Linux's CUBIC, it also watches the ACK train: when the ACKs of one round arrive back
//! to back for longer than half the minimum RTT, the window already covers the path's
//! bandwidth-delay product and slow start ends at once.
//!
//! Rounds are counted in bytes: a round ends once the bytes that were in flight when it began
//! have been acknowledged — the RFC's "ACK beyond windowEnd" without needing sequence numbers in
//! the congestion controller.

use crate::time::Instant;
use std::time::Duration;

const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// cwnd grows by acked / CSS_GROWTH_DIVISOR in conservative slow start.
pub(crate) const CSS_GROWTH_DIVISOR: u32 = 4;
const CSS_ROUNDS: u32 = 5;
/// ACKs closer than this belong to one train (Linux: `hystart_ack_delta_us`); on short paths
/// the gap must also be small against the RTT, or the pause between two slow-start bursts
/// would count as part of a train.
const ACK_TRAIN_DELTA: Duration = Duration::from_millis(2);
/// No HyStart exit below this many segments of window (Linux: `hystart_low_window`).
const LOW_WINDOW_SEGMENTS: u32 = 16;

/// What slow start should do with this ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlowStart {
    /// Grow by acked / divisor (1 in standard slow start, 4 in conservative slow start).
    Grow { divisor: u32 },
    /// Slow start is over: set ssthresh to the current cwnd and continue in avoidance.
    Exit,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct HyStart {
    round_target: u64,
    round_acked: u64,
    last_round_min: Option<Duration>,
    cur_round_min: Option<Duration>,
    samples: u32,
    /// Some(baseline) while in conservative slow start.
    css_baseline: Option<Duration>,
    css_rounds: u32,
    round_start: Option<Instant>,
    last_ack: Option<Instant>,
    min_rtt: Option<Duration>,
    /// Only the first slow start uses HyStart++ (RFC 9406 §4.3: after an RTO, plain slow start).
    disabled: bool,
}

impl HyStart {
    /// After an RTO: plain slow start from then on.
    pub fn disable(&mut self) {
        self.disabled = true;
        self.css_baseline = None;
    }

    /// One ACK in slow start of `acked` bytes with an optional RTT sample; `cwnd` and
    /// `in_flight` (before this ACK) in bytes.
    pub fn on_ack(
        &mut self,
        now: Instant,
        acked: u32,
        rtt: Option<Duration>,
        cwnd: u32,
        in_flight: u32,
        mss: u32,
    ) -> SlowStart {
        if self.disabled {
            return SlowStart::Grow { divisor: 1 };
        }
        if let Some(r) = rtt {
            self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        }
        self.round_acked += acked as u64;
        if self.round_acked >= self.round_target || self.round_start.is_none() {
            self.round_start = Some(now);
            self.last_ack = Some(now);
            // A new round (RFC 9406 §4.2).
            self.last_round_min = self.cur_round_min.take();
            self.samples = 0;
            self.round_acked = 0;
            self.round_target = in_flight.max(mss) as u64;
            if self.css_baseline.is_some() {
                self.css_rounds += 1;
                if self.css_rounds >= CSS_ROUNDS {
                    return SlowStart::Exit;
                }
            }
        }
        if let Some(r) = rtt {
            self.cur_round_min = Some(self.cur_round_min.map_or(r, |m| m.min(r)));
            self.samples += 1;
        }
        // ACK-train detection (Linux CUBIC's HyStart).
        if let (Some(start), Some(last), Some(min_rtt)) =
            (self.round_start, self.last_ack, self.min_rtt)
        {
            if now - last <= ACK_TRAIN_DELTA.min(min_rtt / 4) {
                self.last_ack = Some(now);
                if cwnd >= LOW_WINDOW_SEGMENTS * mss && now - start > min_rtt / 2 {
                    return SlowStart::Exit;
                }
            }
        }
        let enough = self.samples >= N_RTT_SAMPLE;
        match (self.css_baseline, self.cur_round_min, self.last_round_min) {
            (None, Some(cur), Some(last)) if enough => {
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if cur >= last + thresh {
                    self.css_baseline = Some(cur);
                    self.css_rounds = 0;
                }
            }
            (Some(base), Some(cur), _) if enough && cur < base => {
                // The RTT increase was spurious: back to standard slow start.
                self.css_baseline = None;
            }
            _ => {}
        }
        SlowStart::Grow {
            divisor: if self.css_baseline.is_some() {
                CSS_GROWTH_DIVISOR
            } else {
                1
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn at(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000)
    }

    #[test]
    fn flat_rtt_and_spaced_acks_stay_in_slow_start() {
        let mut h = HyStart::default();
        // One ACK every 5 ms (no train), RTT constant.
        for i in 0..1000 {
            assert_eq!(
                h.on_ack(at(5 * i), 2920, Some(ms(20)), 100_000, 100_000, 1460),
                SlowStart::Grow { divisor: 1 }
            );
        }
    }

    #[test]
    fn long_ack_train_exits() {
        let mut h = HyStart::default();
        // ACKs every 0.5 ms for longer than min_rtt / 2 = 10 ms within one round.
        let mut exited_at = None;
        for i in 0..100u64 {
            let now = Instant::from_nanos(i * 500_000);
            if h.on_ack(now, 2920, Some(ms(20)), 400_000, 400_000, 1460) == SlowStart::Exit {
                exited_at = Some(i);
                break;
            }
        }
        let i = exited_at.expect("ack train must end slow start");
        assert!(
            (20..=22).contains(&i),
            "exit after ~10 ms of train, got step {i}"
        );
    }

    #[test]
    fn rising_rtt_enters_css_then_exits() {
        let mut h = HyStart::default();
        let cwnd = 14600;
        // ACKs 3 ms apart: no train, only the delay signal.
        let mut clock = 0u64;
        fn t(c: &mut u64) -> Instant {
            *c += 3;
            Instant::from_nanos(*c * 1_000_000)
        }
        // Round 1 at 20 ms.
        for _ in 0..10 {
            h.on_ack(t(&mut clock), 1460, Some(ms(20)), cwnd, cwnd, 1460);
        }
        // The RTT jumps by 10 ms (> 4 ms threshold): conservative slow start.
        let mut saw_css = false;
        let mut exited = false;
        for _ in 0..200 {
            match h.on_ack(t(&mut clock), 1460, Some(ms(30)), cwnd, cwnd, 1460) {
                SlowStart::Grow { divisor } if divisor == CSS_GROWTH_DIVISOR => saw_css = true,
                SlowStart::Exit => {
                    exited = true;
                    break;
                }
                _ => {}
            }
        }
        assert!(saw_css && exited);
    }

    #[test]
    fn disabled_never_exits() {
        let mut h = HyStart::default();
        h.disable();
        for i in 0..500 {
            assert_eq!(
                h.on_ack(at(i), 1460, Some(ms(20 + i)), 14600, 14600, 1460),
                SlowStart::Grow { divisor: 1 }
            );
        }
    }
}
