//! What LIA, OLIA and BALIA share: Reno's slow start and recovery, the increase credit of
//! congestion avoidance, the loss response and the coupling snapshot. Each of them is a
//! [`CoupledRule`] (its own increase and decrease) over a [`CoupledCore`]; the
//! [`CongestionControl`] implementation is the one below for all of them.

use super::reno::Reno;
use super::{CongestionControl, Coupling, Credit, PathShare};
use crate::time::Instant;
use std::time::Duration;

/// The state every coupled controller keeps.
#[derive(Debug, Clone)]
pub(crate) struct CoupledCore {
    pub(crate) reno: Reno,
    pub(crate) credit: Credit,
    /// The connection's subflows at the last coupling update (`paths[me]` is this one).
    pub(crate) paths: Vec<PathShare>,
    pub(crate) me: usize,
}

impl CoupledCore {
    pub(crate) fn new(mss: u32) -> Self {
        CoupledCore {
            reno: Reno::new(mss),
            credit: Credit::default(),
            paths: Vec::new(),
            me: 0,
        }
    }
}

/// The part of a coupled controller that is its own.
pub(crate) trait CoupledRule: std::fmt::Debug + Send {
    const NAME: &'static str;
    fn core(&self) -> &CoupledCore;
    fn core_mut(&mut self) -> &mut CoupledCore;
    /// Window bytes gained (or lost) per acknowledged byte in congestion avoidance.
    fn increase(&self) -> f64;
    /// The share of the flight a loss keeps (Reno: one half).
    fn keep_on_loss(&self) -> f64 {
        0.5
    }
    /// Called first for every ACK, before slow start.
    fn acked(&mut self, _acked: u32) {}
    /// Called first for every loss (fast retransmit or RTO).
    fn lost(&mut self) {}
    /// See [`CongestionControl::inter_loss_bytes`].
    fn inter_loss(&self) -> u64 {
        0
    }
}

impl<T: CoupledRule> CongestionControl for T {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn cwnd(&self) -> u32 {
        self.core().reno.cwnd()
    }
    fn ssthresh(&self) -> u32 {
        self.core().reno.ssthresh()
    }
    fn on_ack(
        &mut self,
        now: Instant,
        acked: u32,
        rtt: Option<Duration>,
        in_flight: u32,
        app_limited: bool,
    ) {
        self.acked(acked);
        let Some(ca) = self
            .core_mut()
            .reno
            .slow_start(now, acked, rtt, in_flight, app_limited)
        else {
            return;
        };
        if ca > 0 {
            let per_byte = self.increase();
            let core = self.core_mut();
            let n = core.credit.earn(ca, per_byte, core.reno.mss());
            core.reno.add_segments(n);
        }
    }
    fn on_congestion_event(&mut self, _now: Instant, in_flight: u32) {
        self.lost();
        self.core_mut().credit.clear();
        let keep = self.keep_on_loss();
        self.core_mut().reno.decrease_to(in_flight, keep);
    }
    fn on_recovery_exit(&mut self, now: Instant) {
        self.core_mut().reno.on_recovery_exit(now);
    }
    fn on_rto(&mut self, now: Instant, in_flight: u32) {
        self.lost();
        let core = self.core_mut();
        core.credit.clear();
        core.reno.on_rto(now, in_flight);
    }
    fn set_mss(&mut self, mss: u32) {
        self.core_mut().reno.set_mss(mss);
    }
    fn coupled(&self) -> bool {
        true
    }
    fn set_coupling(&mut self, c: &Coupling<'_>) {
        let core = self.core_mut();
        core.paths.clear();
        core.paths.extend_from_slice(c.paths);
        core.me = c.me.min(c.paths.len().saturating_sub(1));
    }
    fn inter_loss_bytes(&self) -> u64 {
        self.inter_loss()
    }
}
