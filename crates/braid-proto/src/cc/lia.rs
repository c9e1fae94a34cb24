//! LIA, the Linked Increases Algorithm of RFC 6356: coupled congestion avoidance for MPTCP
//! subflows. Slow start, loss response and recovery are Reno's (RFC 6356 §3 changes only the
//! increase); with one subflow (or none coupled) it is Reno.

use super::coupled::{CoupledCore, CoupledRule};
use super::CongestionControl;

/// LIA for one subflow.
#[derive(Debug, Clone)]
pub struct Lia {
    core: CoupledCore,
}

impl Lia {
    pub fn new(mss: u32) -> Self {
        Lia {
            core: CoupledCore::new(mss),
        }
    }

    /// Window bytes gained per acknowledged byte in congestion avoidance (RFC 6356 §3):
    /// min(α · MSS_i / cwnd_total, MSS_i / cwnd_i), with
    /// α = cwnd_total · max_i(cwnd_i / rtt_i²) / (Σ_i cwnd_i / rtt_i)²,
    /// this subflow's window taken as it is now.
    pub fn increase_per_byte(&self) -> f64 {
        let c = &self.core;
        let own = c.reno.cwnd().max(1) as f64;
        let mss = c.reno.mss() as f64;
        let uncoupled = mss / own;
        if c.paths.len() < 2 {
            return uncoupled;
        }
        let (mut total, mut best, mut sum) = (0.0, 0.0f64, 0.0);
        for (i, p) in c.paths.iter().enumerate() {
            let w = if i == c.me { own } else { p.cwnd as f64 };
            let rtt = p.srtt.as_secs_f64().max(1e-6);
            total += w;
            best = best.max(w / (rtt * rtt));
            sum += w / rtt;
        }
        let alpha = total * best / (sum * sum);
        (alpha * mss / total).min(uncoupled)
    }
}

impl CoupledRule for Lia {
    const NAME: &'static str = "lia";
    fn core(&self) -> &CoupledCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut CoupledCore {
        &mut self.core
    }
    fn increase(&self) -> f64 {
        self.increase_per_byte()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cc::{Coupling, PathShare};
    use crate::time::Instant;
    use std::time::Duration;

    pub const MSS: u32 = 1000;

    pub fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Two subflows: 10 segments at 10 ms and 20 segments at 40 ms.
    pub fn two_paths() -> [PathShare; 2] {
        [
            PathShare {
                cwnd: 10 * MSS,
                srtt: ms(10),
                mss: MSS,
                inter_loss: 0,
            },
            PathShare {
                cwnd: 20 * MSS,
                srtt: ms(40),
                mss: MSS,
                inter_loss: 0,
            },
        ]
    }

    /// A controller in congestion avoidance at `segs` segments.
    pub fn in_avoidance(cc: &mut dyn CongestionControl, segs: u32) {
        cc.on_congestion_event(Instant::ZERO, 2 * segs * MSS);
        cc.on_recovery_exit(Instant::ZERO);
        assert_eq!(cc.cwnd(), segs * MSS);
    }

    /// Acknowledges `bytes` one segment at a time (the last one shorter), window fully used.
    pub fn ack_bytes(cc: &mut dyn CongestionControl, mut bytes: u32) {
        while bytes > 0 {
            let a = bytes.min(MSS);
            let w = cc.cwnd();
            cc.on_ack(Instant::ZERO, a, Some(ms(10)), w, false);
            bytes -= a;
        }
    }

    /// LIA in congestion avoidance at `segs` segments on subflow `me` of `paths`.
    fn lia_on(paths: &[PathShare], me: usize, segs: u32) -> Lia {
        let mut l = Lia::new(MSS);
        in_avoidance(&mut l, segs);
        l.set_coupling(&Coupling { paths, me });
        l
    }

    #[test]
    fn alone_it_is_reno() {
        let mut l = Lia::new(MSS);
        in_avoidance(&mut l, 10);
        assert_eq!(l.increase_per_byte(), 0.1);
        ack_bytes(&mut l, 10 * MSS);
        assert_eq!(l.cwnd(), 11 * MSS);
    }

    #[test]
    fn increase_follows_rfc6356() {
        // cwnd/rtt²: 10000/0.01² = 1e8 (max), 20000/0.04² = 1.25e7; Σ cwnd/rtt = 1e6 + 5e5;
        // α = 30000 · 1e8 / 1.5e6² = 4/3; path 0: min(4/3 · 1000/30000, 1000/10000) = 0.0444.
        let paths = two_paths();
        let mut l = lia_on(&paths, 0, 10);
        assert!((l.increase_per_byte() - 4.0 / 3.0 / 30.0).abs() < 1e-12);
        ack_bytes(&mut l, 22_000); // 977.8 bytes of window: not a segment yet
        assert_eq!(l.cwnd(), 10 * MSS);
        ack_bytes(&mut l, 1_000); // 1022.2
        assert_eq!(l.cwnd(), 11 * MSS);
        // Path 1: min(0.0444, 1000/20000 = 0.05): the coupled term again.
        let l = lia_on(&paths, 1, 20);
        assert!((l.increase_per_byte() - 4.0 / 3.0 / 30.0).abs() < 1e-12);
        // Never more than Reno would on the same path: a long path beside a short one, whose
        // coupled term (α = 1.01e6 · 1e8 / (1e6 + 1e6)² ≈ 25: 0.025 per byte) exceeds 1000/1e6.
        let mut p = paths;
        p[1].cwnd = 1000 * MSS;
        p[1].srtt = ms(1000);
        let l = lia_on(&p, 1, 1000);
        assert_eq!(l.increase_per_byte(), 0.001);
    }

    #[test]
    fn loss_halves_as_reno() {
        let paths = two_paths();
        let mut l = lia_on(&paths, 0, 10);
        l.on_congestion_event(Instant::ZERO, 10 * MSS);
        assert_eq!((l.cwnd(), l.ssthresh()), (5 * MSS, 5 * MSS));
    }
}
