//! OLIA, the Opportunistic Linked Increases Algorithm (Khalili, Gast, Popovic, Le Boudec,
//! "MPTCP is not Pareto-optimal: performance issues and a possible solution", IEEE/ACM
//! Transactions on Networking, 2013). Per ACK on path r, in segments:
//!
//! w_r += (w_r / rtt_r²) / (Σ_p w_p / rtt_p)² + α_r / w_r
//!
//! where α_r moves window from the paths with the largest windows (M) to the best paths that
//! do not have one (B \ M, best by ℓ_r² / rtt_r, ℓ_r the bytes between losses):
//! α_r = 1 / (|P| · |B \ M|) on B \ M, −1 / (|P| · |M|) on M when B \ M is not empty, else 0.
//! A loss halves the window (Reno's decrease and recovery, Reno's slow start).

use super::coupled::{CoupledCore, CoupledRule};
use super::CongestionControl;

/// OLIA for one subflow.
#[derive(Debug, Clone)]
pub struct Olia {
    core: CoupledCore,
    /// ℓ1: bytes acknowledged between the last two losses.
    between_losses: u64,
    /// ℓ2: bytes acknowledged since the last loss.
    since_loss: u64,
}

impl Olia {
    pub fn new(mss: u32) -> Self {
        Olia {
            core: CoupledCore::new(mss),
            between_losses: 0,
            since_loss: 0,
        }
    }

    /// α_r of this subflow from the last coupling snapshot (its own window as it is now).
    pub fn alpha(&self) -> f64 {
        let n = self.core.paths.len();
        if n < 2 {
            return 0.0;
        }
        let own = self.core.reno.cwnd();
        let w = |i: usize| {
            if i == self.core.me {
                own
            } else {
                self.core.paths[i].cwnd
            }
        };
        let quality = |i: usize| {
            let l = if i == self.core.me {
                self.inter_loss()
            } else {
                self.core.paths[i].inter_loss
            } as f64;
            l * l / self.core.paths[i].srtt.as_secs_f64().max(1e-6)
        };
        let max_w = (0..n).map(w).max().unwrap_or(0);
        let best_q = (0..n).map(quality).fold(0.0f64, f64::max);
        let in_m = |i: usize| w(i) == max_w;
        let in_b = |i: usize| quality(i) >= best_q * (1.0 - 1e-12);
        let collected = (0..n).filter(|&i| in_b(i) && !in_m(i)).count();
        if collected == 0 {
            return 0.0;
        }
        let m = (0..n).filter(|&i| in_m(i)).count();
        if in_b(self.core.me) && !in_m(self.core.me) {
            1.0 / (n * collected) as f64
        } else if in_m(self.core.me) {
            -1.0 / (n * m) as f64
        } else {
            0.0
        }
    }

    /// Window bytes gained (or lost) per acknowledged byte in congestion avoidance: the
    /// increase above with windows in segments.
    pub fn increase_per_byte(&self) -> f64 {
        let mss = self.core.reno.mss() as f64;
        let own = (self.core.reno.cwnd() as f64 / mss).max(1.0);
        if self.core.paths.len() < 2 {
            return 1.0 / own;
        }
        let mut sum = 0.0;
        for (i, p) in self.core.paths.iter().enumerate() {
            let w = if i == self.core.me {
                own
            } else {
                p.cwnd as f64 / p.mss.max(1) as f64
            };
            sum += w / p.srtt.as_secs_f64().max(1e-6);
        }
        let rtt = self.core.paths[self.core.me].srtt.as_secs_f64().max(1e-6);
        own / (rtt * rtt) / (sum * sum) + self.alpha() / own
    }
}

impl CoupledRule for Olia {
    const NAME: &'static str = "olia";
    fn core(&self) -> &CoupledCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut CoupledCore {
        &mut self.core
    }
    fn increase(&self) -> f64 {
        self.increase_per_byte()
    }
    fn acked(&mut self, acked: u32) {
        self.since_loss += acked as u64;
    }
    fn lost(&mut self) {
        self.between_losses = self.since_loss;
        self.since_loss = 0;
    }
    fn inter_loss(&self) -> u64 {
        self.between_losses.max(self.since_loss)
    }
}

#[cfg(test)]
mod tests {
    use super::super::lia::tests::{ack_bytes, in_avoidance, two_paths, MSS};
    use super::*;
    use crate::cc::Coupling;
    use crate::time::Instant;

    /// The paper's rule on two paths: 10 segments at 10 ms (ℓ = 100000 bytes, the best path),
    /// 20 segments at 40 ms (ℓ = 50000: the largest window). Σ w/rtt = 1000 + 500 = 1500.
    fn olia_on(me: usize, segs: u32) -> Olia {
        let mut paths = two_paths();
        paths[0].inter_loss = 100_000;
        paths[1].inter_loss = 50_000;
        let mut o = Olia::new(MSS);
        in_avoidance(&mut o, segs);
        o.set_coupling(&Coupling { paths: &paths, me });
        o.between_losses = paths[me].inter_loss;
        o
    }

    #[test]
    fn increase_follows_the_paper() {
        // Path 0 is in B \ M: α = 1 / (2 · 1) = 0.5;
        // increase = (10 / 0.01²) / 1500² + 0.5 / 10 = 0.04444 + 0.05 per acked segment.
        let mut o = olia_on(0, 10);
        assert_eq!(o.alpha(), 0.5);
        assert!((o.increase_per_byte() - (1e5 / 2.25e6 + 0.05)).abs() < 1e-12);
        ack_bytes(&mut o, 10_000); // 944 bytes of window
        assert_eq!(o.cwnd(), 10 * MSS);
        ack_bytes(&mut o, 1_000); // 1039
        assert_eq!(o.cwnd(), 11 * MSS);
        // Path 1 is M: α = −0.5; (20 / 0.04²) / 1500² − 0.5 / 20 = 0.005556 − 0.025 < 0: its
        // window shrinks towards the better path.
        let mut o = olia_on(1, 20);
        assert_eq!(o.alpha(), -0.5);
        assert!((o.increase_per_byte() - (12_500.0 / 2.25e6 - 0.025)).abs() < 1e-12);
        ack_bytes(&mut o, 51_000); // −991.7
        assert_eq!(o.cwnd(), 20 * MSS);
        ack_bytes(&mut o, 1_000); // −1011.1
        assert_eq!(o.cwnd(), 19 * MSS);
    }

    #[test]
    fn no_collected_path_no_alpha() {
        // The best path also has the largest window: α = 0 everywhere.
        let mut paths = two_paths();
        paths[0].inter_loss = 1_000;
        paths[1].inter_loss = 1_000_000;
        let mut o = Olia::new(MSS);
        in_avoidance(&mut o, 10);
        o.set_coupling(&Coupling {
            paths: &paths,
            me: 0,
        });
        assert_eq!(o.alpha(), 0.0);
        // Alone: Reno's 1/w.
        let mut o = Olia::new(MSS);
        in_avoidance(&mut o, 10);
        assert_eq!(o.increase_per_byte(), 0.1);
    }

    #[test]
    fn losses_rotate_the_inter_loss_counts() {
        let mut o = Olia::new(MSS);
        in_avoidance(&mut o, 10);
        assert_eq!(o.inter_loss_bytes(), 0);
        ack_bytes(&mut o, 30_000);
        assert_eq!(o.inter_loss_bytes(), 30_000);
        o.on_congestion_event(Instant::ZERO, 10 * MSS);
        ack_bytes(&mut o, 5_000);
        // ℓ = max(ℓ1 = 30000, ℓ2 = 5000).
        assert_eq!(o.inter_loss_bytes(), 30_000);
        assert_eq!(o.cwnd(), 5 * MSS + MSS);
    }
}
