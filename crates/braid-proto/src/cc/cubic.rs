//! CUBIC (RFC 9438).
//!
//! Window arithmetic in bytes, the cubic function in floating-point segments. Slow start is
//! Reno's (RFC 5681 with RFC 3465 byte counting, L = 2 * SMSS); HyStart++ (RFC 9406) is not
//! implemented, so slow start ends only at ssthresh or a loss.

use super::common::{initial_window, window_used, Phase, MAX_CWND};
use super::hystart::SlowStart;
use super::CongestionControl;
use crate::tcp::rtt::ewma;
use crate::time::Instant;
use std::time::Duration;

/// RFC 9438 §5.1: C, in segments per second cubed.
pub const C: f64 = 0.4;
/// RFC 9438 §4.6: multiplicative decrease factor.
pub const BETA: f64 = 0.7;
/// RFC 9438 §4.3: additive increase of the Reno-friendly estimate, 3 (1 - β) / (1 + β).
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// CUBIC congestion control. Window quantities are kept in bytes (as `f64` so that per-ACK
/// fractions of a byte accumulate) and turned into segments where RFC 9438 computes in segments.
#[derive(Debug, Clone)]
pub struct Cubic {
    mss: u32,
    /// Congestion window in bytes.
    cwnd: f64,
    ssthresh: u32,
    /// W_max: the window just before the last reduction, after fast convergence (bytes).
    w_max: f64,
    /// cwnd_prior: the window just before the last reduction (bytes), for the α switch of §4.3.
    cwnd_prior: f64,
    /// Start of the current congestion-avoidance epoch: the first ACK after a reduction.
    epoch_start: Option<Instant>,
    /// K of §4.2 in seconds, fixed at epoch start.
    k: f64,
    /// W_est of §4.3, the Reno-friendly estimate (bytes).
    w_est: f64,
    /// Smoothed RTT (RFC 6298 weights) of the samples seen: the RTT of W_cubic(t + RTT)
    /// (RFC 9438 §4.1.2 defines RTT as the smoothed round-trip time).
    srtt: Option<Duration>,
    /// Time of the previous ACK, to freeze the epoch clock while application-limited.
    last_ack: Option<Instant>,
    phase: Phase,
}

impl Cubic {
    /// Slow start from the RFC 6928 initial window, with an unbounded ssthresh.
    pub fn new(mss: u32) -> Self {
        let mss = mss.max(1);
        Cubic {
            mss,
            cwnd: f64::from(initial_window(mss)),
            ssthresh: u32::MAX,
            w_max: 0.0,
            cwnd_prior: 0.0,
            epoch_start: None,
            k: 0.0,
            w_est: 0.0,
            srtt: None,
            last_ack: None,
            phase: Phase::new(),
        }
    }

    /// Turns HyStart++ off (plain RFC 5681 slow start until the first loss) or back on.
    pub fn set_hystart(&mut self, on: bool) {
        self.phase.set_hystart(on);
    }

    /// K of RFC 9438 §4.2 in seconds: when W_cubic returns to W_max (bytes in, seconds out).
    fn compute_k(&self, w_max: f64, cwnd_epoch: f64) -> f64 {
        let segs = ((w_max - cwnd_epoch) / f64::from(self.mss)).max(0.0);
        (segs / C).cbrt()
    }

    /// W_cubic(t) of RFC 9438 §4.2, in bytes, `t` in seconds since the epoch start.
    fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k;
        self.w_max + C * d * d * d * f64::from(self.mss)
    }

    /// RFC 9438 §4.6: ssthresh = flight_size * β_cubic, at least two segments.
    fn reduced_ssthresh(&self, in_flight: u32) -> u32 {
        let s = (f64::from(in_flight) * BETA) as u32;
        s.max(2 * self.mss).min(MAX_CWND)
    }

    fn set_cwnd(&mut self, bytes: f64) {
        if bytes.is_nan() {
            return;
        }
        self.cwnd = bytes.clamp(f64::from(self.mss), f64::from(MAX_CWND));
    }

    /// Congestion avoidance for `acked` bytes (RFC 9438 §4.2 - §4.5).
    fn congestion_avoidance(&mut self, now: Instant, acked: u32) {
        let epoch_start = match self.epoch_start {
            Some(t) => t,
            None => {
                // A new epoch: §4.2, with W_max = cwnd_epoch and K = 0 when the window is already
                // at or above W_max (after slow start or a timeout, §4.8).
                self.epoch_start = Some(now);
                if self.w_max <= self.cwnd {
                    self.w_max = self.cwnd;
                }
                self.k = self.compute_k(self.w_max, self.cwnd);
                self.w_est = self.cwnd;
                now
            }
        };
        let t = now.saturating_duration_since(epoch_start).as_secs_f64();
        let acked = f64::from(acked);

        // §4.3: the Reno-friendly estimate; α becomes 1 once it reached cwnd_prior.
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * acked / self.cwnd * f64::from(self.mss);

        if self.w_cubic(t) < self.w_est {
            // §4.3: Reno-friendly region.
            let w = self.w_est.max(self.cwnd);
            self.set_cwnd(w);
        } else {
            // §4.4 / §4.5: concave and convex regions. Target W_cubic(t + RTT), bounded to
            // [cwnd, 1.5 cwnd]; cwnd grows by (target - cwnd) / cwnd per segment acknowledged.
            let rtt = self.srtt.map_or(0.0, |r| r.as_secs_f64());
            let target = self.w_cubic(t + rtt).clamp(self.cwnd, 1.5 * self.cwnd);
            let w = self.cwnd + (target - self.cwnd) / self.cwnd * acked;
            self.set_cwnd(w);
        }
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn cwnd(&self) -> u32 {
        self.cwnd as u32
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
        self.phase.signal();
        if let Some(rtt) = rtt {
            self.srtt = Some(self.srtt.map_or(rtt, |s| ewma(s, rtt, 8)));
        }
        let last_ack = self.last_ack.replace(now);
        if acked == 0 {
            return;
        }
        let cwnd = self.cwnd();
        if !window_used(cwnd, self.ssthresh, self.mss, in_flight, app_limited) {
            // RFC 9438 §5.8: no growth while application-limited; the epoch clock is frozen
            // too, so the cubic function does not leap ahead when the sender resumes.
            if let (Some(start), Some(last)) = (self.epoch_start, last_ack) {
                self.epoch_start = Some(start + now.saturating_duration_since(last));
            }
            return;
        }
        let mut acked = acked;
        if cwnd < self.ssthresh {
            // Slow start as Reno: RFC 5681 §3.1 with RFC 3465 §2.2, L = 2 * SMSS, and
            // HyStart++ (RFC 9406) to leave it before the queue overflows.
            let divisor = match self
                .phase
                .hystart
                .on_ack(now, acked, rtt, cwnd, in_flight, self.mss)
            {
                SlowStart::Grow { divisor } => divisor,
                SlowStart::Exit => {
                    self.ssthresh = cwnd;
                    return;
                }
            };
            let inc = acked.min(2 * self.mss) / divisor;
            let room = self.ssthresh - cwnd;
            if inc < room {
                self.set_cwnd(self.cwnd + f64::from(inc));
                return;
            }
            self.set_cwnd(f64::from(self.ssthresh));
            acked -= room.min(acked);
            if acked == 0 {
                return;
            }
        }
        self.congestion_avoidance(now, acked);
    }

    fn on_congestion_event(&mut self, _now: Instant, in_flight: u32) {
        self.phase.signal();
        // §4.7 fast convergence: a window that stopped short of the previous W_max gives way.
        self.w_max = if self.cwnd < self.w_max {
            self.cwnd * (1.0 + BETA) / 2.0
        } else {
            self.cwnd
        };
        self.cwnd_prior = self.cwnd;
        // §4.6 multiplicative decrease.
        self.ssthresh = self.reduced_ssthresh(in_flight);
        self.set_cwnd(f64::from(self.ssthresh));
        self.epoch_start = None;
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        self.set_cwnd(f64::from(self.ssthresh));
        self.epoch_start = None;
    }

    fn on_rto(&mut self, _now: Instant, in_flight: u32) {
        // §4.8: cwnd as Reno (one segment), ssthresh by β_cubic; the next congestion-avoidance
        // stage starts with K = 0 and W_max = its starting window.
        if self.phase.rto() {
            self.ssthresh = self.reduced_ssthresh(in_flight);
            self.cwnd_prior = self.cwnd;
        }
        self.w_max = 0.0;
        self.epoch_start = None;
        self.set_cwnd(f64::from(self.mss));
    }

    fn set_mss(&mut self, mss: u32) {
        self.mss = mss.max(1);
        if let Some(w) = self.phase.initial_window(self.mss) {
            self.cwnd = f64::from(w);
        }
        self.set_cwnd(self.cwnd);
    }
}

#[cfg(test)]
mod tests {
    use super::super::reno::testsim::{round, MSS};
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn segs(c: &Cubic) -> f64 {
        f64::from(c.cwnd()) / f64::from(MSS)
    }

    /// Slow start for `rounds` round trips, then a loss with the whole window in flight.
    fn after_loss(rounds: usize, now: &mut Instant, rtt: Duration) -> (Cubic, f64, f64) {
        let mut c = Cubic::new(MSS);
        c.set_hystart(false);
        for _ in 0..rounds {
            round(&mut c, now, rtt, MSS);
        }
        let before = c.cwnd();
        c.on_congestion_event(*now, before);
        c.on_recovery_exit(*now);
        let w_max = f64::from(before) / f64::from(MSS);
        let w_epoch = segs(&c);
        (c, w_max, w_epoch)
    }

    #[test]
    fn constants() {
        assert!((ALPHA - 0.529_411_764_7).abs() < 1e-9);
    }

    #[test]
    fn slow_start_doubles_per_rtt() {
        let mut c = Cubic::new(MSS);
        c.set_hystart(false);
        assert_eq!(c.cwnd(), 10 * MSS);
        assert_eq!(c.ssthresh(), u32::MAX);
        let mut now = Instant::ZERO;
        for _ in 0..6 {
            let before = c.cwnd();
            round(&mut c, &mut now, ms(20), MSS);
            assert_eq!(c.cwnd(), 2 * before);
        }
    }

    #[test]
    fn decrease_factor_is_0_7() {
        let mut c = Cubic::new(MSS);
        c.set_hystart(false);
        let mut now = Instant::ZERO;
        for _ in 0..4 {
            round(&mut c, &mut now, ms(20), MSS);
        }
        assert_eq!(c.cwnd(), 160 * MSS);
        c.on_congestion_event(now, 160 * MSS);
        assert_eq!(c.cwnd(), 112 * MSS);
        assert_eq!(c.ssthresh(), 112 * MSS);
        // Flight smaller than cwnd: ssthresh follows the flight (§4.6), floor of 2 segments.
        c.on_congestion_event(now, 50 * MSS);
        assert_eq!(c.cwnd(), 35 * MSS);
        c.on_congestion_event(now, MSS);
        assert_eq!(c.cwnd(), 2 * MSS);
    }

    #[test]
    fn fast_convergence() {
        let mut c = Cubic::new(MSS);
        c.set_hystart(false);
        c.cwnd = f64::from(100 * MSS);
        c.on_congestion_event(Instant::ZERO, 100 * MSS);
        assert_eq!(c.w_max, f64::from(100 * MSS));
        // The next loss comes at 80 segments, below W_max: W_max = 80 * (1 + 0.7) / 2 = 68.
        c.cwnd = f64::from(80 * MSS);
        c.on_congestion_event(Instant::ZERO, 80 * MSS);
        assert!((c.w_max - f64::from(68 * MSS)).abs() < 1e-6);
        assert_eq!(c.cwnd(), 56 * MSS);
    }

    #[test]
    fn returns_to_w_max_at_k_concave_then_convex() {
        let rtt = ms(100);
        let mut now = Instant::ZERO;
        // 10 * 2^7 = 1280 segments, reduced to 896.
        let (mut c, w_max, w_epoch) = after_loss(7, &mut now, rtt);
        assert_eq!((w_max, w_epoch), (1280.0, 896.0));
        // K = cbrt((W_max - cwnd_epoch) / C) = cbrt(384 / 0.4) = cbrt(960) ~ 9.87 s.
        let k = ((w_max - w_epoch) / C).cbrt();
        assert!((k - 9.865).abs() < 0.01, "{k}");
        let start = now;
        let mut samples = Vec::new(); // (t, cwnd in segments)
        while now - start < Duration::from_secs_f64(2.0 * k) {
            round(&mut c, &mut now, rtt, MSS);
            samples.push(((now - start).as_secs_f64(), segs(&c)));
        }
        let at = |t: f64| {
            samples
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                .unwrap()
                .1
        };
        // Back at W_max around t = K (the ACK clock lags by at most about one RTT).
        let w_k = at(k);
        assert!(
            (w_k - w_max).abs() < 0.02 * w_max,
            "cwnd {w_k} at K, W_max {w_max}"
        );
        // Follows W_cubic(t) closely on both sides.
        for t in [0.25 * k, 0.5 * k, 0.75 * k, 1.25 * k, 1.5 * k] {
            let w = C * (t - k).powi(3) + w_max;
            assert!(
                (at(t) - w).abs() < 0.03 * w,
                "t {t}: cwnd {} vs W_cubic {w}",
                at(t)
            );
        }
        // Concave before K: growth slows down; convex after K: growth speeds up.
        let q = k / 4.0;
        let g = |a: f64, b: f64| at(b) - at(a);
        assert!(g(0.0, q) > g(q, 2.0 * q) && g(q, 2.0 * q) > g(2.0 * q, 3.0 * q));
        assert!(g(2.0 * q, 3.0 * q) > g(3.0 * q, 4.0 * q));
        assert!(g(4.0 * q, 5.0 * q) < g(5.0 * q, 6.0 * q));
        assert!(g(5.0 * q, 6.0 * q) < g(6.0 * q, 7.0 * q));
        // Never faster than 1.5x per RTT.
        for w in samples.windows(2) {
            assert!(w[1].1 <= 1.5 * w[0].1 + 1.0);
        }
    }

    #[test]
    fn reno_friendly_region_at_small_bdp() {
        // Small window and short RTT: the cubic function barely moves in the time Reno needs
        // to add many segments, so the Reno-friendly estimate drives cwnd.
        let rtt = ms(5);
        let mut now = Instant::ZERO;
        let (mut c, w_max, w_epoch) = after_loss(1, &mut now, rtt);
        assert_eq!((w_max, w_epoch), (20.0, 14.0));
        let k = ((w_max - w_epoch) / C).cbrt();
        let start = now;
        let mut rounds = 0usize;
        // Until W_est reaches cwnd_prior, α_cubic ~ 0.53 segments per RTT.
        while segs(&c) < w_max {
            round(&mut c, &mut now, rtt, MSS);
            rounds += 1;
        }
        let expected = ((w_max - w_epoch) / ALPHA).ceil() as usize;
        assert!(
            rounds.abs_diff(expected) <= 2,
            "{rounds} rounds, expected ~{expected}"
        );
        // Then α = 1: one segment per RTT, as Reno.
        let prev = segs(&c);
        for _ in 0..100 {
            round(&mut c, &mut now, rtt, MSS);
        }
        let per_round = (segs(&c) - prev) / 100.0;
        assert!(
            (per_round - 1.0).abs() < 0.05,
            "{per_round} segments per RTT"
        );
        let t = (now - start).as_secs_f64();
        let w_cubic = C * (t - k).powi(3) + w_max;
        assert!(
            segs(&c) > w_cubic + 50.0,
            "cwnd {} vs W_cubic {w_cubic}",
            segs(&c)
        );
    }

    #[test]
    fn rto_sets_one_segment_then_restarts() {
        let rtt = ms(50);
        let mut now = Instant::ZERO;
        let mut c = Cubic::new(MSS);
        c.set_hystart(false);
        for _ in 0..3 {
            round(&mut c, &mut now, rtt, MSS);
        }
        assert_eq!(c.cwnd(), 80 * MSS);
        c.on_rto(now, 80 * MSS);
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 56 * MSS);
        // A second timeout of the same data keeps ssthresh (RFC 5681 §3.1).
        c.on_rto(now, MSS);
        assert_eq!((c.cwnd(), c.ssthresh()), (MSS, 56 * MSS));
        // Slow start back to ssthresh: 1, 2, 4, ..., 32, 56; the last 8 ACKs of that round
        // are congestion avoidance already and add a fraction of a segment.
        for _ in 0..6 {
            round(&mut c, &mut now, rtt, MSS);
        }
        assert!(c.cwnd() >= 56 * MSS && c.cwnd() < 57 * MSS, "{}", c.cwnd());
        // Then K = 0 with W_max = 56: convex growth from there, slow at first.
        let start = c.cwnd();
        round(&mut c, &mut now, rtt, MSS);
        assert_eq!(c.k, 0.0);
        let first = c.cwnd() - start;
        assert!(first <= 2 * MSS, "grew {first}");
    }

    #[test]
    fn app_limited_does_not_grow_nor_leap() {
        let rtt = ms(100);
        let mut now = Instant::ZERO;
        let (mut c, _, _) = after_loss(5, &mut now, rtt); // 320 -> 224 segments
        for _ in 0..20 {
            round(&mut c, &mut now, rtt, MSS);
        }
        let before_pause = c.cwnd();
        let mut last_growth = before_pause;
        round(&mut c, &mut now, rtt, MSS);
        let growth_before = c.cwnd() - last_growth;
        last_growth = c.cwnd();
        // 20 s of a trickle: 10 segments in flight, far below cwnd.
        for _ in 0..2000 {
            now += ms(10);
            c.on_ack(now, MSS, Some(rtt), 10 * MSS, true);
        }
        assert_eq!(c.cwnd(), last_growth);
        // Resuming: the cubic clock was frozen, the next round grows about as much as before.
        round(&mut c, &mut now, rtt, MSS);
        let growth_after = c.cwnd() - last_growth;
        assert!(
            growth_after <= growth_before + 2 * MSS,
            "{growth_after} after vs {growth_before} before"
        );
    }

    #[test]
    fn mss_change_and_extremes() {
        let mut c = Cubic::new(536);
        c.set_hystart(false);
        c.set_mss(1460);
        assert_eq!(c.cwnd(), 14600);
        let mut now = Instant::ZERO;
        for _ in 0..2000 {
            now += ms(1);
            c.on_ack(now, u32::MAX, Some(ms(1)), u32::MAX, false);
        }
        assert!(c.cwnd() <= MAX_CWND);
        c.on_congestion_event(now, u32::MAX);
        for _ in 0..2000 {
            now += Duration::from_secs(100);
            c.on_ack(now, u32::MAX, Some(ms(1)), u32::MAX, false);
        }
        assert!(c.cwnd() <= MAX_CWND && c.cwnd() >= 1460);
        // Absurd RTT samples neither panic nor poison the window.
        c.on_ack(now, MSS, Some(Duration::MAX), u32::MAX, false);
        c.on_ack(now, MSS, Some(Duration::MAX), u32::MAX, false);
        c.on_congestion_event(now, 100 * 1460);
        c.on_recovery_exit(now);
        for _ in 0..100 {
            now += Duration::from_secs(1);
            c.on_ack(now, 1460, Some(Duration::MAX), u32::MAX, false);
        }
        assert!(
            c.cwnd() >= 70 * 1460 && c.cwnd() <= MAX_CWND,
            "{}",
            c.cwnd()
        );
    }
}

#[cfg(test)]
mod hystart_tests {
    use super::*;
    use crate::cc::reno::testsim::{round, MSS};

    #[test]
    fn hystart_ends_slow_start_on_an_ack_train() {
        // A saturated path: the ACKs of every round arrive back to back over the whole RTT, so
        // the train outlasts min_rtt / 2 once the window is large enough (16 segments).
        let mut c = Cubic::new(MSS);
        let mut now = Instant::ZERO;
        for _ in 0..10 {
            round(&mut c, &mut now, Duration::from_millis(50), MSS);
        }
        assert!(c.ssthresh() < u32::MAX, "slow start never ended");
        assert!(c.ssthresh() >= 16 * MSS);
    }
}
