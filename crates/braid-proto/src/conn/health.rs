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

/// How long after sending its oldest unacknowledged segment subflow `t` may go without its
/// ACK: srtt + max(4·rttvar, srtt/2), at least [`MIN_SILENCE`] (plus a delayed-ACK allowance
/// when less than two segments are outstanding); and the least time after the last ACK news:
/// srtt + max(4·rttvar, srtt/4) (ACKs may come in bursts once per RTT). `None` before an RTT
/// sample.
pub(crate) fn silence_bounds(t: &Subflow) -> Option<(Duration, Duration)> {
    let srtt = t.srtt()?;
    let var = t.rttvar() * 4;
    let mut from_sent = (srtt + var.max(srtt / 2)).max(MIN_SILENCE);
    let mut from_news = (srtt + var.max(srtt / 4)).max(MIN_SILENCE);
    if t.send_end().saturating_sub(t.snd_una_offset()) < 2 * u64::from(t.smss()) {
        from_sent += DELAYED_ACK_ALLOWANCE;
        from_news += DELAYED_ACK_ALLOWANCE;
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
        // The oldest unacknowledged segment's ACK is due one RTT after it was sent, and ACK
        // news comes at least once per RTT; both with a margin. A subflow with news in the
        // last srtt is never stale.
        let news = t.ack_progress_at.map_or(since, |p| p.max(since));
        let sent = t.oldest_unacked_sent().unwrap_or(news).max(since);
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
