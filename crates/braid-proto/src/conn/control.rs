//! The MPTCP control options the subflows received, acted on where they concern the whole
//! connection: MP_FASTCLOSE, REMOVE_ADDR, MP_PRIO (RFC 8684 §3.5, §3.4.2, §3.3.8) and the answer
//! to MP_FAIL (§3.7).

use super::Subflow;
use crate::counters::Counters;
use crate::mptcp::conn::MpLevel;
use crate::tcp::tcb::End;
use crate::tcp::TcpState;
use braid_wire::mptcp::ResetReason;

/// Acts on the control options the subflows received (RFC 8684 §3.5, §3.4.2, §3.3.8) where
/// they concern other subflows than the one they came on; asks for the pure ACK that carries
/// a pending MP_PRIO of ours.
pub(crate) fn mp_control(lv: &mut MpLevel, subs: &mut [Subflow], counters: &mut Counters) {
    if lv.fastclose_rx {
        // RFC 8684 §3.5: every subflow is reset and the connection closed at once.
        for t in subs.iter_mut().filter(|t| t.state != TcpState::Closed) {
            t.reset(End::Reset);
        }
        lv.rm_pending.clear();
        lv.peer_prio.clear();
        return;
    }
    if !lv.rm_pending.is_empty() {
        // RFC 8684 §3.4.2: the subflows using a removed address of the peer are closed (with
        // RST and MP_TCPRST, as Linux does: the address is gone, a FIN would not arrive).
        // The last subflow able to carry data stays: closing it would end the connection,
        // which the peer did not ask for; if its address is really gone it times out.
        let ids = std::mem::take(&mut lv.rm_pending);
        let hit: Vec<bool> = subs
            .iter()
            .map(|t| {
                t.state != TcpState::Closed
                    && t.mp
                        .as_deref()
                        .is_some_and(|m| ids.contains(&m.remote_id()))
            })
            .collect();
        let ready =
            |t: &Subflow| t.state != TcpState::Closed && t.mp.as_deref().is_some_and(|m| m.ready);
        let survivor = subs.iter().zip(&hit).any(|(t, &h)| ready(t) && !h);
        let keep = if survivor {
            None
        } else {
            subs.iter().zip(&hit).position(|(t, &h)| ready(t) && h)
        };
        for (i, t) in subs.iter_mut().enumerate() {
            if !hit[i] || keep == Some(i) {
                continue;
            }
            if let Some(mp) = t.mp.as_deref_mut() {
                mp.removed = true;
                mp.rst_reason = Some(ResetReason::Unspecified);
            }
            counters.mp_rst_tx += 1;
            t.reset(End::Reset);
        }
    }
    for (id, backup) in std::mem::take(&mut lv.peer_prio) {
        for t in subs.iter_mut() {
            if let Some(mp) = t.mp.as_deref_mut().filter(|m| m.remote_id() == id) {
                mp.peer_backup = backup;
            }
        }
    }
    for t in subs.iter_mut() {
        let Some(mp) = t.mp.as_deref_mut() else {
            continue;
        };
        if mp.prio_pending.is_some() {
            if lv.fallback {
                mp.prio_pending = None;
            } else if mp.ready && lv.fully_established {
                t.force_ack();
            }
        }
    }
}

/// Answers the peer's MP_FAIL (RFC 8684 §3.7): on a connection that never had another
/// subflow, with an infinite mapping and fallback to TCP, sending again as regular TCP from
/// the failed DSN (the peer dropped the failed mapping; it places our bytes by the infinite
/// mapping's DSN); otherwise the subflow is reset and its data reinjected on the others
/// (`mp_after`).
pub(crate) fn mp_fail_answer(lv: &mut MpLevel, subs: &mut [Subflow], counters: &mut Counters) {
    let sole = subs.len() == 1;
    for t in subs.iter_mut() {
        let sub_off = t.send_end();
        let Some(mp) = t.mp.as_deref_mut() else {
            continue;
        };
        let Some(dsn) = mp.fail_rx.take() else {
            continue;
        };
        if lv.fallback || t.tcb.state == TcpState::Closed {
            continue;
        }
        if sole && mp.join.is_none() {
            // From the DSN the peer names (everything before it arrived in order), or from
            // the DATA_ACK when that DSN is not one of our unacknowledged bytes.
            let failed = dsn.wrapping_sub(lv.local_dsn(0));
            let restart = if (lv.data_una..=lv.data_nxt).contains(&failed) {
                failed
            } else {
                lv.data_una
            }
            .clamp(lv.sendbuf.start(), lv.sendbuf.end().max(lv.sendbuf.start()));
            // Our stream from `sub_off` on carries data from `restart` on; theirs goes on
            // where its last mapping ended (one subflow: nothing was out of sequence).
            lv.fallback = true;
            lv.fb_tx = (sub_off, restart);
            if !lv.fail_pending {
                lv.fb_rx = mp.rx_tail.unwrap_or((0, 0));
            }
            lv.data_nxt = restart;
            lv.reinject.clear();
            if lv.local_fin.is_some() && !lv.local_fin_acked() {
                // The DATA_FIN becomes the subflow's FIN after the data.
                lv.local_fin = None;
            }
            mp.inf_map = Some((sub_off, lv.local_dsn(restart)));
            counters.mp_infinite_map_tx += 1;
        } else {
            mp.rst_reason = Some(ResetReason::MiddleboxInterference);
            counters.mp_rst_tx += 1;
            t.reset(End::Reset);
        }
    }
}
