//! Round-trip time estimation and the retransmission timeout (RFC 6298), Linux-style floor.

use std::time::Duration;

/// Smoothed RTT, RTT variance and the retransmission timeout of one connection.
///
/// RFC 6298 §2 with one Linux deviation: the minimum (`min_rto`, 200 ms by default) bounds the
/// variance term, so `RTO = SRTT + max(4 * RTTVAR, min_rto)` instead of `max(1 s, ...)`.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    initial_rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    srtt: Option<Duration>,
    rttvar: Duration,
    latest: Option<Duration>,
    min_rtt: Option<Duration>,
}

impl RttEstimator {
    /// An estimator with no samples yet: its RTO is `initial_rto` (RFC 6298 §2.1).
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            initial_rto,
            min_rto,
            max_rto,
            srtt: None,
            rttvar: Duration::ZERO,
            latest: None,
            min_rtt: None,
        }
    }

    /// Takes one RTT measurement (RFC 6298 §2.2 for the first, §2.3 for later ones:
    /// alpha = 1/8, beta = 1/4). Karn's rule (§3) is the caller's: no samples from retransmissions.
    pub fn on_sample(&mut self, rtt: Duration) {
        self.latest = Some(rtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        match self.srtt {
            None => {
                // RFC 6298 §2.2
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                // RFC 6298 §2.3: RTTVAR first, with the old SRTT.
                let err = srtt.abs_diff(rtt);
                self.rttvar = ewma(self.rttvar, err, 4);
                self.srtt = Some(ewma(srtt, rtt, 8));
            }
        }
    }

    /// Smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// RTT variance (zero before the first sample).
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }

    /// The smallest sample seen over the connection's lifetime.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// Base RTO (no backoff): initial_rto before the first sample; then srtt + max(4*rttvar, min_rto)
    /// (Linux-style: the 200 ms floor applies to the variance term, so RTO >= srtt + 200ms), clamped to max_rto.
    pub fn rto(&self) -> Duration {
        let rto = match self.srtt {
            None => self.initial_rto,
            Some(srtt) => srtt.saturating_add(
                self.rttvar
                    .checked_mul(4)
                    .unwrap_or(Duration::MAX)
                    .max(self.min_rto),
            ),
        };
        rto.min(self.max_rto)
    }

    /// RTO after `backoff` doublings (RFC 6298 §5.5), clamped to max_rto, never overflowing.
    pub fn rto_backoff(&self, backoff: u32) -> Duration {
        let base = self.rto();
        let factor = 1u32.checked_shl(backoff).unwrap_or(0);
        if factor == 0 {
            // 2^backoff does not fit: only a zero base stays below max_rto.
            return if base.is_zero() { base } else { self.max_rto };
        }
        base.checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_rto)
    }
}

/// `old + (new - old) / n`, i.e. `((n - 1) * old + new) / n`, in wide arithmetic so no sample
/// (however absurd, e.g. from a forged timestamp) can overflow.
pub(crate) fn ewma(old: Duration, new: Duration, n: u32) -> Duration {
    let n = u128::from(n.max(1));
    let v = (old.as_nanos() * (n - 1) + new.as_nanos()) / n;
    Duration::from_nanos(u64::try_from(v).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn est() -> RttEstimator {
        RttEstimator::new(Duration::from_secs(1), ms(200), Duration::from_secs(120))
    }

    #[test]
    fn initial_rto_before_samples() {
        let e = est();
        assert_eq!(e.rto(), Duration::from_secs(1));
        assert_eq!(e.srtt(), None);
        assert_eq!(e.latest(), None);
        assert_eq!(e.min_rtt(), None);
        assert_eq!(e.rto_backoff(1), Duration::from_secs(2));
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut e = est();
        e.on_sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        // 4 * 50 ms = 200 ms, equal to the floor.
        assert_eq!(e.rto(), ms(300));
        e = est();
        e.on_sample(ms(400));
        assert_eq!(e.rttvar(), ms(200));
        assert_eq!(e.rto(), ms(400 + 800));
    }

    #[test]
    fn later_samples_are_smoothed() {
        let mut e = est();
        e.on_sample(ms(100));
        e.on_sample(ms(180));
        // RTTVAR = 3/4 * 50 + 1/4 * |100 - 180| = 37.5 + 20 = 57.5 ms
        assert_eq!(e.rttvar(), Duration::from_micros(57_500));
        // SRTT = 7/8 * 100 + 1/8 * 180 = 110 ms
        assert_eq!(e.srtt(), Some(ms(110)));
        assert_eq!(e.latest(), Some(ms(180)));
        assert_eq!(e.min_rtt(), Some(ms(100)));
        e.on_sample(ms(60));
        assert_eq!(e.min_rtt(), Some(ms(60)));
        // Many identical samples: converges to the sample, variance decays.
        for _ in 0..200 {
            e.on_sample(ms(20));
        }
        let srtt = e.srtt().unwrap();
        assert!(srtt >= ms(20) && srtt < ms(21), "{srtt:?}");
        assert!(e.rttvar() < ms(1));
    }

    #[test]
    fn floor_applies_to_variance_term() {
        let mut e = est();
        for _ in 0..100 {
            e.on_sample(ms(10));
        }
        let rto = e.rto();
        assert!(rto >= ms(210), "{rto:?}");
        assert!(rto < ms(212), "{rto:?}");
    }

    #[test]
    fn clamp_to_max() {
        let mut e = RttEstimator::new(ms(500), ms(200), Duration::from_secs(3));
        e.on_sample(Duration::from_secs(5));
        assert_eq!(e.rto(), Duration::from_secs(3));
        let mut e = RttEstimator::new(Duration::from_secs(10), ms(200), Duration::from_secs(3));
        assert_eq!(e.rto(), Duration::from_secs(3));
        e.on_sample(Duration::MAX);
        e.on_sample(Duration::MAX);
        e.on_sample(Duration::ZERO);
        assert_eq!(e.rto(), Duration::from_secs(3));
        assert_eq!(e.rto_backoff(100), Duration::from_secs(3));
    }

    #[test]
    fn backoff_doubles_and_saturates() {
        let mut e = est();
        e.on_sample(ms(100));
        assert_eq!(e.rto_backoff(0), ms(300));
        assert_eq!(e.rto_backoff(1), ms(600));
        assert_eq!(e.rto_backoff(2), ms(1200));
        assert_eq!(e.rto_backoff(8), ms(300 * 256));
        assert_eq!(e.rto_backoff(9), Duration::from_secs(120));
        for b in [31, 32, 33, 63, 64, 100, u32::MAX] {
            assert_eq!(e.rto_backoff(b), Duration::from_secs(120));
        }
        let zero = RttEstimator::new(Duration::ZERO, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(zero.rto_backoff(100), Duration::ZERO);
    }
}
