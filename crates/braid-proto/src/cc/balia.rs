//! BALIA, the Balanced Linked Adaptation algorithm (Peng, Walid, Hwang, Low, "Multipath TCP:
//! Analysis, Design, and Implementation", IEEE/ACM Transactions on Networking, 2016). With
//! x_k = w_k / rtt_k and α_r = max_k x_k / x_r, per ACK on path r, in segments:
//!
//! w_r += (x_r / rtt_r) / (Σ_k x_k)² · (1 + α_r) / 2 · (4 + α_r) / 5
//!
//! and per loss w_r −= w_r / 2 · min(α_r, 1.5). Slow start and recovery are Reno's; alone it
//! is Reno (α = 1).

use super::coupled::{CoupledCore, CoupledRule};
use super::CongestionControl;

/// BALIA for one subflow.
#[derive(Debug, Clone)]
pub struct Balia {
    core: CoupledCore,
}

impl Balia {
    pub fn new(mss: u32) -> Self {
        Balia {
            core: CoupledCore::new(mss),
        }
    }

    /// (x_r, α_r, Σ x_k) from the last snapshot, this subflow's window as it is now (segments
    /// per second); `None` alone.
    fn rates(&self) -> Option<(f64, f64, f64)> {
        if self.core.paths.len() < 2 {
            return None;
        }
        let own = self.core.reno.cwnd() as f64 / self.core.reno.mss() as f64;
        let x = |i: usize| {
            let p = &self.core.paths[i];
            let w = if i == self.core.me {
                own
            } else {
                p.cwnd as f64 / p.mss.max(1) as f64
            };
            w / p.srtt.as_secs_f64().max(1e-6)
        };
        let n = self.core.paths.len();
        let sum: f64 = (0..n).map(x).sum();
        let best = (0..n).map(x).fold(0.0f64, f64::max);
        let xr = x(self.core.me).max(1e-9);
        Some((xr, best / xr, sum))
    }

    /// α_r (1 alone).
    pub fn alpha(&self) -> f64 {
        self.rates().map_or(1.0, |r| r.1)
    }

    /// Window bytes gained per acknowledged byte in congestion avoidance.
    pub fn increase_per_byte(&self) -> f64 {
        let Some((xr, a, sum)) = self.rates() else {
            return self.core.reno.mss() as f64 / self.core.reno.cwnd().max(1) as f64;
        };
        let rtt = self.core.paths[self.core.me].srtt.as_secs_f64().max(1e-6);
        xr / rtt / (sum * sum) * (1.0 + a) / 2.0 * (4.0 + a) / 5.0
    }
}

impl CoupledRule for Balia {
    const NAME: &'static str = "balia";
    fn core(&self) -> &CoupledCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut CoupledCore {
        &mut self.core
    }
    fn increase(&self) -> f64 {
        self.increase_per_byte()
    }
    fn keep_on_loss(&self) -> f64 {
        // w − w/2 · min(α, 1.5): between one half and one quarter is kept.
        1.0 - self.alpha().min(1.5) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::lia::tests::{ack_bytes, in_avoidance, two_paths, MSS};
    use super::*;
    use crate::cc::Coupling;
    use crate::time::Instant;

    fn balia_on(me: usize, segs: u32) -> Balia {
        let paths = two_paths();
        let mut b = Balia::new(MSS);
        in_avoidance(&mut b, segs);
        b.set_coupling(&Coupling { paths: &paths, me });
        b
    }

    #[test]
    fn increase_follows_the_paper() {
        // x = 10/0.01 = 1000 and 20/0.04 = 500 segments/s, Σ = 1500.
        // Path 0: α = 1: (1000 / 0.01) / 1500² · 1 · 1 = 0.04444 per acked segment.
        let mut b = balia_on(0, 10);
        assert_eq!(b.alpha(), 1.0);
        assert!((b.increase_per_byte() - 1e5 / 2.25e6).abs() < 1e-12);
        ack_bytes(&mut b, 22_000); // 977.8
        assert_eq!(b.cwnd(), 10 * MSS);
        ack_bytes(&mut b, 1_000); // 1022.2
        assert_eq!(b.cwnd(), 11 * MSS);
        // Path 1: α = 2: (500 / 0.04) / 1500² · 3/2 · 6/5 = 0.01.
        let mut b = balia_on(1, 20);
        assert_eq!(b.alpha(), 2.0);
        assert!((b.increase_per_byte() - 0.01).abs() < 1e-12);
        ack_bytes(&mut b, 99_000); // 990
        assert_eq!(b.cwnd(), 20 * MSS);
        ack_bytes(&mut b, 2_000); // 1010
        assert_eq!(b.cwnd(), 21 * MSS);
    }

    #[test]
    fn decrease_follows_the_paper() {
        // Path 1 (α = 2): w − w/2 · 1.5 = w/4; path 0 (α = 1): w/2.
        let mut b = balia_on(1, 20);
        b.on_congestion_event(Instant::ZERO, 20 * MSS);
        assert_eq!(b.cwnd(), 5 * MSS);
        let mut b = balia_on(0, 10);
        b.on_congestion_event(Instant::ZERO, 10 * MSS);
        assert_eq!(b.cwnd(), 5 * MSS);
        // Alone: Reno.
        let mut b = Balia::new(MSS);
        in_avoidance(&mut b, 10);
        assert_eq!(b.increase_per_byte(), 0.1);
        b.on_congestion_event(Instant::ZERO, 10 * MSS);
        assert_eq!(b.cwnd(), 5 * MSS);
    }
}
