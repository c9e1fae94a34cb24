//! Data-level sending: data onto subflows as the scheduler picks (with reinjection first),
//! opportunistic retransmission, and the coupling input of the congestion controllers.

use super::Conn;
use super::Subflow;
use crate::mptcp::conn::MpLevel;
use crate::mptcp::sched::{Chunk, DataView, SubflowView};
use crate::tcp::sendbuf::SendBuffer;
use crate::tcp::TcpState;
use crate::time::Instant;

/// Copies data-level bytes onto subflows (RFC 8684 §3.3.1 mappings): reinjections first, then
/// new data within the peer's data-level window, on the subflow(s) the scheduler picks.
pub(crate) fn schedule(c: &mut Conn, scratch: &mut [u8]) {
    let (Some(lv), Some(sched)) = (c.level.as_deref_mut(), c.sched.as_deref_mut()) else {
        return;
    };
    let subs = &mut c.subs;
    if lv.fallback {
        // Regular TCP over subflow 0: data offsets are its stream offsets.
        let t = &mut subs[0];
        while lv.data_nxt < lv.sendbuf.end() {
            let n = (lv.sendbuf.end() - lv.data_nxt)
                .min(t.send_free() as u64)
                .min(scratch.len() as u64) as usize;
            if n == 0 {
                break;
            }
            let sub_off = t.send_end();
            let w = feed(&mut lv.sendbuf, t, lv.data_nxt, n);
            if let Some(mp) = t.mp.as_deref_mut().filter(|_| w > 0) {
                // Where the payload of a mapped subflow's segments is found.
                mp.push_tx_fallback(sub_off, lv.data_nxt, w);
            }
            lv.data_nxt += w;
            if w == 0 {
                break;
            }
        }
        return;
    }
    // The scheduler's view of the subflows, rebuilt per pick: on the stack for the usual few
    // subflows (this runs for every ACK), on the heap past that.
    const STACK_VIEWS: usize = 8;
    let mut stack = [SubflowView::default(); STACK_VIEWS];
    let mut heap: Vec<SubflowView> = Vec::new();
    loop {
        let (d_off, d_len, reinj) = if let Some(&(a, z)) = lv.reinject.front() {
            let a = a.max(lv.data_una).max(lv.sendbuf.start());
            if a >= z {
                lv.reinject.pop_front();
                continue;
            }
            (a, z - a, true)
        } else {
            // A closed data-level window with nothing in flight: one segment goes to a
            // subflow anyway, whose persist timer then probes the window (RFC 9293 §3.8.6.1).
            let probe = if lv.data_una >= lv.data_nxt { 1460 } else { 0 };
            let end = lv.sendbuf.end().min(lv.snd_right.max(lv.data_una + probe));
            if sched.every_subflow() {
                // New data goes to every subflow from its own cursor (below).
                redundant_fill(lv, subs, end, scratch);
                break;
            }
            if lv.data_nxt >= end {
                break;
            }
            (lv.data_nxt, end - lv.data_nxt, false)
        };
        let views: &[SubflowView] = if subs.len() <= STACK_VIEWS {
            for (v, t) in stack.iter_mut().zip(subs.iter()) {
                *v = sched_view(t);
            }
            &stack[..subs.len()]
        } else {
            heap.clear();
            heap.extend(subs.iter().map(sched_view));
            &heap
        };
        let data = DataView {
            // An application the send buffer held back has more than the buffer shows: the
            // end is not near (ECF must not wait for the fastest subflow as if it were).
            unsent: if lv.write_blocked {
                u64::MAX / 4
            } else {
                lv.sendbuf.end().saturating_sub(lv.data_nxt)
            },
            window: lv
                .snd_right
                .saturating_sub(lv.data_una)
                .min(lv.sendbuf.capacity() as u64),
            lambda: lv.blest_lambda,
        };
        let chunk = Chunk {
            len: d_len,
            reinject: reinj,
        };
        let Some(pick) = sched.pick(views, &data, chunk) else {
            break;
        };
        let Some(t) = subs.get_mut(pick.sub).filter(|t| sched_usable(t)) else {
            break;
        };
        let mut n = d_len
            .min(t.sched_room())
            .min(t.send_free() as u64)
            .min(scratch.len() as u64);
        if n < d_len {
            // Whole segments only: a cut mapping would end in a short segment.
            n = t.whole_segments(n, lv.csum);
        }
        n = n.min(pick.max);
        let sub_off = t.send_end();
        let w = feed(&mut lv.sendbuf, t, d_off, n as usize);
        if w == 0 {
            break;
        }
        if let Some(mp) = t.mp.as_deref_mut() {
            mp.push_tx(sub_off, d_off, w);
            mp.bytes_scheduled += w;
        }
        if reinj {
            if let Some(front) = lv.reinject.front_mut() {
                front.0 = d_off + w;
                if front.0 >= front.1 {
                    lv.reinject.pop_front();
                }
            }
        } else {
            lv.data_nxt += w;
        }
    }
}

/// Queues `n` data-level bytes from offset `off` of the connection's send buffer on subflow
/// `t`; returns the bytes it took. A mapped subflow (every MPTCP subflow until
/// [`own_bytes`] gives it a copy) only counts them: the connection's buffer keeps them until
/// the subflow no longer needs them, and lends them for each segment. Otherwise they are
/// copied straight from one buffer into the other (no scratch in between).
fn feed(sendbuf: &mut SendBuffer, t: &mut Subflow, off: u64, n: usize) -> u64 {
    if t.send_is_mapped() {
        let n = n.min(sendbuf.end().saturating_sub(off) as usize);
        sendbuf.keep_also(off);
        return t.tcb.send_mapped(n) as u64;
    }
    let (a, b) = sendbuf.slices_at(off, n);
    let w = t.send(a);
    if w < a.len() || b.is_empty() {
        return w as u64;
    }
    (w + t.send(b)) as u64
}

/// A mapped subflow gets its own copy of the bytes it still has to send: from its first
/// unacknowledged byte on, through its tx mappings, out of the connection's buffer (which then
/// need not keep them for it).
fn own_bytes(sendbuf: &SendBuffer, t: &mut Subflow) {
    let (Some(mp), true) = (t.mp.as_deref(), t.tcb.send_is_mapped()) else {
        return;
    };
    let tcb = &mut t.tcb;
    tcb.own_send_bytes(|b| {
        for &(so, d, len) in mp.tx.iter() {
            let from = so.max(b.end());
            if from >= so + len {
                continue;
            }
            let (x, y) = sendbuf.slices_at(d + (from - so), (so + len - from) as usize);
            b.write(x);
            b.write(y);
        }
    });
}

/// The data-level send buffer keeps what the mapped subflows may still have to send (again):
/// everything from the oldest data offset their tx mappings give a byte they have not had
/// acknowledged. A subflow whose data went to
/// the others (reinjected: its path died or stalled), or whose oldest byte lies more than a
/// quarter of the buffer behind the DATA_ACK, gets its own copy instead ([`own_bytes`]): a dead
/// or slow path does not hold the connection's memory, which stays what it was when every
/// subflow copied its bytes.
///
/// Worked out again only once the buffer keeps more than a sixteenth of its capacity (at least
/// 64 KiB) of acknowledged bytes: the scan of every mapping is not made on every pass.
pub(super) fn keep_for_subflows(lv: &mut MpLevel, subs: &mut [Subflow]) {
    let cap = lv.sendbuf.capacity();
    if lv.sendbuf.kept() <= (cap / 16).max(64 * 1024) {
        return;
    }
    let start = lv.sendbuf.start();
    let lag = cap as u64 / 4;
    let mut floor = u64::MAX;
    for t in subs.iter_mut() {
        if t.state == TcpState::Closed || !t.send_is_mapped() {
            continue;
        }
        let Some(mp) = t.mp.as_deref() else {
            continue;
        };
        // The data offset of each mapping's first byte the subflow has not had acknowledged.
        let una = t.tcb.snd_una_offset();
        let oldest = mp
            .tx
            .iter()
            .filter(|m| m.0 + m.2 > una)
            .map(|&(so, d, _)| d + una.saturating_sub(so))
            .min()
            .unwrap_or(u64::MAX);
        if oldest < start && (mp.reinjected || start - oldest > lag) {
            own_bytes(&lv.sendbuf, t);
        } else {
            floor = floor.min(oldest);
        }
    }
    lv.sendbuf.keep_from(floor);
}

/// The redundant scheduler's new data: every usable subflow sends every byte up to `end`, each
/// from its own cursor, as far as its window and buffer allow; a subflow that lags skips what the
/// peer has already DATA_ACKed (it cannot help any more). Backup subflows take part only when no
/// regular one can.
fn redundant_fill(lv: &mut MpLevel, subs: &mut [Subflow], end: u64, scratch: &mut [u8]) {
    let is_backup = |t: &Subflow| t.mp.as_deref().is_some_and(|m| m.is_backup());
    let any_regular = subs.iter().any(|t| sched_usable(t) && !is_backup(t));
    let floor = lv.data_una.max(lv.sendbuf.start());
    for t in subs.iter_mut() {
        if !sched_usable(t) || (any_regular && is_backup(t)) {
            continue;
        }
        while let Some(mp) = t.mp.as_deref() {
            let from = mp.redundant_next.max(floor);
            if from >= end {
                break;
            }
            let want = end - from;
            let mut n = want
                .min(t.sched_room())
                .min(t.send_free() as u64)
                .min(scratch.len() as u64);
            if n < want {
                n = t.whole_segments(n, lv.csum);
            }
            if n == 0 {
                break;
            }
            let sub_off = t.send_end();
            let w = feed(&mut lv.sendbuf, t, from, n as usize);
            let Some(mp) = t.mp.as_deref_mut() else {
                break;
            };
            if w == 0 {
                break;
            }
            mp.push_tx(sub_off, from, w);
            mp.bytes_scheduled += w;
            mp.redundant_next = from + w;
            lv.data_nxt = lv.data_nxt.max(from + w);
        }
    }
}

/// Established, join complete, can still send.
fn sched_usable(t: &Subflow) -> bool {
    t.can_carry() && t.mp.as_deref().is_some_and(|m| m.ready)
}

/// A subflow as the scheduler sees it.
fn sched_view(t: &Subflow) -> SubflowView {
    SubflowView {
        // A stale subflow (`health`) takes no data; its own TCP probes it. Nor does one that
        // recovered while it still retransmits what was reinjected on the others: new data
        // would wait behind that backlog (in slow start after a blackhole) and the receiver
        // with it, while the others, a backup too, can carry it now.
        usable: sched_usable(t)
            && !t
                .mp
                .as_deref()
                .is_some_and(|m| m.stale || m.reinjected_to > t.snd_una_offset()),
        backup: t.mp.as_deref().is_some_and(|m| m.is_backup()),
        backoff: t.backoff(),
        srtt: t.srtt(),
        cwnd: t.cwnd(),
        room: t.sched_room(),
        chunk: t.sched_chunk(),
        send_free: t.send_free() as u64,
        unacked: t.send_end().saturating_sub(t.snd_una_offset()),
        mss: t.smss(),
    }
}

/// Gives every coupled congestion controller of an MPTCP connection the state of the subflows
/// that carry data (RFC 6356: windows and RTTs of all of them; OLIA: bytes between losses).
pub(crate) fn couple(c: &mut Conn) {
    if c.subs.len() < 2 || !c.subs[0].cc().coupled() {
        return;
    }
    let carries = |t: &Subflow| {
        t.can_carry() && t.srtt().is_some() && t.mp.as_deref().is_some_and(|m| m.ready)
    };
    let mut shares = Vec::with_capacity(c.subs.len());
    let mut index = Vec::with_capacity(c.subs.len());
    for (i, t) in c.subs.iter().enumerate().filter(|(_, t)| carries(t)) {
        index.push(i);
        shares.push(crate::cc::PathShare {
            cwnd: t.cwnd(),
            srtt: t.srtt().unwrap_or_default(),
            mss: t.smss(),
            inter_loss: t.cc().inter_loss_bytes(),
        });
    }
    for (me, &i) in index.iter().enumerate() {
        c.subs[i]
            .cc_mut()
            .set_coupling(&crate::cc::Coupling { paths: &shares, me });
    }
}

/// How the blocking estimate of minrtt adapts: up by a step each time a slower subflow held the
/// peer's full window for a round trip of the fastest, down slowly while DATA_ACKs advance
/// (per second).
const LAMBDA_STEP: f64 = 0.5;
const LAMBDA_DECAY: f64 = 0.1;
const LAMBDA_MAX: f64 = 3.0;

/// Opportunistic retransmission and penalisation (Raiciu et al., "How Hard Can It Be?
/// Designing and Implementing a Deployable Multipath TCP", NSDI 2012): the peer's data-level
/// window (or our send buffer) has no room for new data, the oldest unacknowledged data sits on a slower subflow
/// and has not been acknowledged for a round trip of the fastest subflow (it is being
/// recovered, or queued behind a long queue): the fastest subflow with room sends it again and
/// the slower subflow's window is reduced (once per its round trip). Once per DATA_ACK point;
/// the receiver keeps whichever copy arrives first. True when it sent.
pub(crate) fn opportunistic(c: &mut Conn, now: Instant, scratch: &mut [u8]) -> bool {
    let Some(lv) = c.level.as_deref_mut() else {
        return false;
    };
    let a = lv.data_una;
    if lv.una_since.0 != a {
        let idle = now.saturating_duration_since(lv.una_since.1).as_secs_f64();
        lv.una_since = (a, now);
        lv.blest_lambda = (lv.blest_lambda - LAMBDA_DECAY * idle).max(1.0);
    }
    let subs = &mut c.subs;
    let usable = |t: &Subflow| {
        t.can_carry()
            && t.backoff() == 0
            && t.mp.as_deref().is_some_and(|m| m.ready && !m.is_backup())
    };
    let Some((f, rf)) = subs
        .iter()
        .enumerate()
        .filter(|(_, t)| usable(t))
        .filter_map(|(i, t)| t.srtt().map(|r| (i, r)))
        .min_by_key(|&(_, r)| r)
    else {
        return false;
    };
    // No new data may go: the peer's window is full, or our send buffer is (all it holds is
    // unacknowledged and the application waits for room).
    let mss = subs[f].smss() as u64;
    let window_full = lv.sendbuf.end() > lv.data_nxt && lv.snd_right < lv.data_nxt + mss;
    let buffer_full = lv.data_nxt >= lv.sendbuf.end() && lv.sendbuf.free() < mss as usize;
    // The end of the stream (all written is scheduled, the application closed): the fastest
    // subflow is idle, and the last bytes must not wait for a slower one's timeout.
    let tail = lv.fin_queued && lv.data_nxt >= lv.sendbuf.end();
    let stuck = now.saturating_duration_since(lv.una_since.1);
    let blocked = (window_full || buffer_full || tail) && stuck >= rf;
    if !c.sched.as_deref().is_some_and(|s| s.opportunistic())
        || lv.fallback
        || !blocked
        || a >= lv.data_nxt
        || lv.opp_at == Some(a)
    {
        return false;
    }
    let holds = |t: &Subflow| {
        t.mp.as_deref()
            .and_then(|m| m.tx_of_data(a))
            .filter(|&(so, _)| so >= t.snd_una_offset())
    };
    let Some((j, left)) = subs
        .iter()
        .enumerate()
        .find_map(|(j, t)| holds(t).map(|(_, left)| (j, left)))
    else {
        return false;
    };
    let t = &subs[f];
    // The holder is slower, or has had twice its round trip (its segment was lost).
    let late = |r: std::time::Duration| r > rf || stuck >= 2 * r;
    if j == f
        || holds(t).is_some()
        || subs[j].srtt().is_none_or(|r| !late(r))
        || t.sched_room() < t.smss() as u64
        || t.send_free() == 0
    {
        return false;
    }
    lv.opp_at = Some(a);
    lv.blest_lambda = (lv.blest_lambda + LAMBDA_STEP).min(LAMBDA_MAX);
    let t = &mut subs[f];
    let mut n = left
        .min(t.sched_chunk())
        .min(t.sched_room())
        .min(t.send_free() as u64)
        .min(scratch.len() as u64);
    if n < left {
        n = t.whole_segments(n, lv.csum);
    }
    let sub_off = t.send_end();
    let w = feed(&mut lv.sendbuf, t, a, n as usize);
    if w == 0 {
        return false;
    }
    if let Some(mp) = t.mp.as_deref_mut() {
        mp.push_tx(sub_off, a, w);
    }
    if !tail {
        subs[j].penalize(now);
    }
    true
}
