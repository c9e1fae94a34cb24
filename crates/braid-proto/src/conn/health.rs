//! Stale subflows: a path that stops delivering without any signal (a blackhole) is noticed
//! from the subflow's own evidence — data outstanding and no ACK news (snd_una, SACK or a
//! duplicate ACK) for an RTT-scaled time while another subflow works — long before its
//! retransmission timer backs off. A stale subflow gets no new data, its unacknowledged data
//! is reinjected on the others (`after_mptcp`), and its own TCP keeps probing it with the RTO
//! capped at [`STALE_RTO_CAP`] (the 200 ms floor stays) so that it notices a return quickly.
//! ACK news again and it recovers.

use super::Subflow;
use crate::counters::Counters;
use crate::tcp::TcpState;
use crate::time::Instant;
use std::time::Duration;

/// Largest retransmission timeout of a stale subflow (its probe interval).
pub(crate) const STALE_RTO_CAP: Duration = Duration::from_millis(500);
/// Shortest silence that can make a subflow stale. Far below the 200 ms RTO floor, but above
/// what a receiver's ACK pacing and a busy host's scheduling make of a sub-millisecond path:
/// with 10 ms, a veth path to Linux (srtt ≈ 0) went stale and back 200 times in one upload
/// and the connection stalled.
const MIN_SILENCE: Duration = Duration::from_millis(50);
/// Added to the silence bound when less than two segments are outstanding: the peer may be
/// delaying its ACK (Linux delays at most 200 ms).
const DELAYED_ACK_ALLOWANCE: Duration = Duration::from_millis(200);

/// How long after the ACK of its oldest unacknowledged segment was set going (see
/// [`Subflow::oldest_ack_due_from`]) subflow `t` may go without it: srtt + max(4·rttvar,
/// srtt/2), at least [`MIN_SILENCE`] (plus a delayed-ACK allowance when less than two full
/// segments are outstanding); and the least time after the last ACK news: max(4·rttvar,
/// srtt/4, [`MIN_SILENCE`]). The second bound only matters once the first has passed, that is
/// when the ACK clock itself must be running: news then comes far more often than once per
/// RTT (an ACK per two segments), and a pause of a quarter RTT (at least 50 ms) with an
/// overdue ACK is evidence enough. `None` before an RTT sample.
pub(crate) fn silence_bounds(t: &Subflow) -> Option<(Duration, Duration)> {
    let srtt = t.srtt()?;
    let var = t.rttvar() * 4;
    let mut from_sent = (srtt + var.max(srtt / 2)).max(MIN_SILENCE);
    let from_news = var.max(srtt / 4).max(MIN_SILENCE);
    if t.oldest_ack_due_from()
        .is_none_or(|(_, delayable)| delayable)
    {
        from_sent += DELAYED_ACK_ALLOWANCE;
    }
    Some((from_sent, from_news))
}

fn candidate(t: &Subflow) -> bool {
    t.state != TcpState::Closed && t.can_carry() && t.mp.as_deref().is_some_and(|m| m.ready)
}

/// Updates every subflow's stale verdict; returns when the next verdict may fall (a timer).
pub(crate) fn check(
    subs: &mut [Subflow],
    now: Instant,
    counters: &mut Counters,
) -> Option<Instant> {
    // First the evidence of each subflow: (outstanding, time of the last news).
    let mut next: Option<Instant> = None;
    for t in subs.iter_mut() {
        let outstanding = t.send_end() > t.snd_una_offset();
        let progress = t.ack_progress_at;
        let live = candidate(t);
        let Some(mp) = t.mp.as_deref_mut() else {
            continue;
        };
        if !live || !outstanding {
            mp.out_since = None;
        } else if mp.out_since.is_none() {
            mp.out_since = Some(now);
        }
        if mp.stale && (!live || !outstanding || progress.is_some_and(|p| p > mp.stale_at)) {
            // ACKs came again (or there is nothing left to wait for): usable again.
            mp.stale = false;
            if live {
                counters.mp_subflow_recover += 1;
            }
            t.rto_cap = None;
        }
    }
    // A subflow works: it may carry data, is not stale, not in RTO backoff, and either has
    // nothing outstanding or had ACK news within its silence bound.
    let works = |t: &Subflow| {
        candidate(t)
            && t.backoff() == 0
            && t.mp.as_deref().is_some_and(|m| !m.stale)
            && (t.send_end() <= t.snd_una_offset()
                || match (t.ack_progress_at, silence_bounds(t)) {
                    (Some(p), Some(b)) => now < p + b.0,
                    _ => false,
                })
    };
    // How many work, counted before any is changed below (subflow i is changed only at step
    // i, so `works(&subs[i])` there still sees it as it was).
    let working = subs.iter().filter(|t| works(t)).count();
    #[allow(clippy::needless_range_loop)] // subs[i] is borrowed mutably inside
    for i in 0..subs.len() {
        let t = &subs[i];
        let Some(mp) = t.mp.as_deref() else {
            continue;
        };
        let others = working > usize::from(works(t));
        if mp.stale {
            if !others {
                // Nothing else works: ordinary TCP again (it gives up after its retries).
                subs[i].rto_cap = None;
            } else {
                subs[i].rto_cap = Some(STALE_RTO_CAP);
            }
            continue;
        }
        if !candidate(t) {
            continue;
        }
        let (Some(since), Some((from_sent, from_news))) = (mp.out_since, silence_bounds(t)) else {
            continue;
        };
        // The oldest unacknowledged segment's ACK is due one RTT after it (and the segment
        // after it) was sent, and while it is overdue a working ACK clock brings news often;
        // both with a margin.
        let news = t.ack_progress_at.map_or(since, |p| p.max(since));
        let sent = t.oldest_ack_due_from().map_or(news, |(s, _)| s).max(since);
        let due = (sent + from_sent).max(news + from_news);
        if !others {
            continue;
        }
        if now >= due {
            let t = &mut subs[i];
            t.rto_cap = Some(STALE_RTO_CAP);
            if let Some(mp) = t.mp.as_deref_mut() {
                mp.stale = true;
                mp.stale_at = now;
            }
            counters.mp_subflow_stale += 1;
        } else {
            next = Some(next.map_or(due, |n| n.min(due)));
        }
    }
    next
}
