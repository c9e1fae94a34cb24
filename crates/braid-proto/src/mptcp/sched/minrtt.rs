//! Lowest RTT first (Linux's default scheduler), with two reasons to wait for the fastest
//! subflow rather than use a slower one now:
//!
//! * earliest completion first (Lim et al., "ECF", CoNEXT 2017): the bytes still to send would
//!   arrive sooner by waiting for the fastest subflow's window;
//! * blocking estimation (the idea of BLEST, Ferlin et al., IFIP Networking 2016): what the
//!   slower subflow would hold would not leave the fastest room in the peer's window.

use super::{lowest_rtt, Chunk, DataView, Pick, Scheduler, SubflowView};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct MinRtt;

impl Scheduler for MinRtt {
    fn name(&self) -> &'static str {
        "minrtt"
    }
    fn pick(&mut self, subs: &[SubflowView], data: &DataView, chunk: Chunk) -> Option<Pick> {
        let i = lowest_rtt(subs, chunk.len)?;
        if !chunk.reinject {
            let cands = usable_all(subs);
            let n = chunk.len.min(subs[i].chunk);
            if slower_finishes_later(subs, i, &cands, data)
                || blocks_faster(subs, i, &cands, data, n)
            {
                return None;
            }
        }
        Some(Pick {
            sub: i,
            max: u64::MAX,
        })
    }
}

/// The subflows worth waiting for: usable ones, regular ones only when there are any (a
/// backup subflow takes no data then, so waiting for it would wait for ever — a Linux
/// `backup` endpoint on a fast path stalled the upload), healthy ones only when there are any.
fn usable_all(subs: &[SubflowView]) -> Vec<usize> {
    let regular = subs.iter().any(|s| s.usable && !s.backup);
    let usable: Vec<usize> = (0..subs.len())
        .filter(|&i| subs[i].usable && (!regular || !subs[i].backup))
        .collect();
    let healthy: Vec<usize> = usable
        .iter()
        .copied()
        .filter(|&i| subs[i].backoff == 0)
        .collect();
    if healthy.is_empty() {
        usable
    } else {
        healthy
    }
}

/// The fastest of `cands` when it is not `i`: (its index, its SRTT, SRTT of `i`).
fn fastest_other(
    subs: &[SubflowView],
    i: usize,
    cands: &[usize],
) -> Option<(usize, Duration, Duration)> {
    let f = cands
        .iter()
        .copied()
        .min_by_key(|&j| subs[j].srtt.unwrap_or(Duration::MAX))?;
    if f == i {
        return None;
    }
    Some((f, subs[f].srtt?, subs[i].srtt?))
}

/// Blocking estimation: while `n` bytes sent now on the slower subflow `i` are in flight, the
/// fastest could send about λ · cwnd · SRTT(i) / SRTT(fastest). If that, what `i` already holds
/// and `n` do not fit in the window, the slower subflow would hold the window the fastest
/// needs (head-of-line blocking at the receiver).
fn blocks_faster(subs: &[SubflowView], i: usize, cands: &[usize], d: &DataView, n: u64) -> bool {
    let Some((f, rf, rs)) = fastest_other(subs, i, cands) else {
        return false;
    };
    let fast = d.lambda * subs[f].cwnd as f64 * rs.as_secs_f64() / rf.as_secs_f64().max(1e-6);
    subs[i].unacked as f64 + fast + n as f64 > d.window as f64
}

/// Earliest completion first: would the bytes still to schedule be delivered sooner by
/// waiting for the fastest subflow's window than by sending on `i` now?
fn slower_finishes_later(subs: &[SubflowView], i: usize, cands: &[usize], d: &DataView) -> bool {
    let Some((f, rf, rs)) = fastest_other(subs, i, cands) else {
        return false;
    };
    let k = d.unsent as f64;
    let cwnd = subs[f].cwnd.max(1) as f64;
    let wait = rf.as_secs_f64() * (1.0 + k / cwnd);
    wait < rs.as_secs_f64() * 1.25
}

#[cfg(test)]
mod tests {
    use super::super::tests::{data, sub};
    use super::*;

    fn new_data(len: u64) -> Chunk {
        Chunk {
            len,
            reinject: false,
        }
    }

    #[test]
    fn never_waits_for_a_faster_backup_subflow() {
        // The peer marked the fast subflow backup: the regular one sends, however little is
        // left (ECF and blocking estimation would otherwise wait for the backup's window).
        let mut subs = [sub(50, 100_000, 100_000), sub(1, 100_000, 100_000)];
        subs[1].backup = true;
        let mut s = MinRtt;
        for left in [5000, 10 << 20] {
            assert_eq!(s.pick(&subs, &data(left), new_data(5000)).unwrap().sub, 0);
        }
        // Without a regular one the backup carries it.
        subs[0].usable = false;
        assert_eq!(s.pick(&subs, &data(5000), new_data(5000)).unwrap().sub, 1);
    }

    #[test]
    fn lowest_rtt_with_room() {
        let mut subs = [sub(50, 100_000, 100_000), sub(10, 100_000, 100_000)];
        let mut s = MinRtt;
        assert_eq!(
            s.pick(&subs, &data(1 << 20), new_data(5000)).unwrap().sub,
            1
        );
        // The fast one is full: a big backlog is sent on the slow one...
        subs[1].room = 0;
        assert_eq!(
            s.pick(&subs, &data(10 << 20), new_data(5000)).unwrap().sub,
            0
        );
    }

    #[test]
    fn waits_for_the_fastest_when_it_finishes_sooner() {
        // ECF: 10 KB left; the fast path (10 ms, 100 KB window) sends it within
        // 10 ms · (1 + 0.1) = 11 ms, sooner than 1.25 · 50 ms on the slow one.
        let mut subs = [sub(50, 100_000, 100_000), sub(10, 100_000, 100_000)];
        subs[1].room = 0;
        assert_eq!(MinRtt.pick(&subs, &data(10_000), new_data(5000)), None);
        // A reinjection does not wait.
        let r = Chunk {
            len: 5000,
            reinject: true,
        };
        assert_eq!(MinRtt.pick(&subs, &data(10_000), r).unwrap().sub, 0);
    }

    #[test]
    fn waits_when_the_slow_path_would_block_the_window() {
        // BLEST: the fast path could send 100 KB · 50/10 = 500 KB while 5 KB crosses the slow
        // one; with a 256 KB window that does not fit.
        let mut subs = [sub(50, 100_000, 100_000), sub(10, 100_000, 100_000)];
        subs[1].room = 0;
        let mut d = data(100 << 20);
        d.window = 256 << 10;
        assert_eq!(MinRtt.pick(&subs, &d, new_data(5000)), None);
        d.window = 64 << 20;
        assert_eq!(MinRtt.pick(&subs, &d, new_data(5000)).unwrap().sub, 0);
    }
}
