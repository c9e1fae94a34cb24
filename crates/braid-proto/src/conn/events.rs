//! MPTCP events for the application, found by comparing what the connection's state says with
//! what was told already (`MpEvent`).

use super::Subflow;
use crate::mptcp::conn::{MpLevel, MAX_EVENTS};
use crate::mptcp::event::{MpEvent, SubClose};
use crate::tcp::tcb::End;
use crate::tcp::TcpState;
use std::collections::VecDeque;

/// Appends to `out` what happened since the last call: Established, the peer's announcements
/// and removals, subflows established, closed, or of changed priority.
pub(crate) fn collect(lv: &mut MpLevel, subs: &mut [Subflow], out: &mut VecDeque<MpEvent>) {
    let push = |out: &mut VecDeque<MpEvent>, e| {
        if out.len() < MAX_EVENTS {
            out.push_back(e);
        }
    };
    if lv.fallback {
        lv.events.clear();
        return;
    }
    if lv.fully_established && !lv.est_told {
        lv.est_told = true;
        push(out, MpEvent::Established);
    }
    for e in lv.events.drain(..) {
        push(out, e);
    }
    for t in subs.iter_mut() {
        let (local, remote, state, end) = (t.local, t.remote, t.state, t.end);
        let Some(mp) = t.mp.as_deref_mut() else {
            continue;
        };
        let open = !matches!(
            state,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::SynReceived
        );
        if mp.est_told.is_none() && open && mp.ready && lv.remote_key.is_some() {
            let backup = mp.is_backup();
            mp.est_told = Some(backup);
            push(
                out,
                MpEvent::SubEstablished {
                    local,
                    remote,
                    backup,
                },
            );
        }
        if let Some(told) = mp.est_told {
            if state == TcpState::Closed {
                if !mp.closed_told {
                    mp.closed_told = true;
                    push(
                        out,
                        MpEvent::SubClosed {
                            local,
                            remote,
                            reason: reason(mp, end),
                        },
                    );
                }
            } else if mp.is_backup() != told {
                let backup = mp.is_backup();
                mp.est_told = Some(backup);
                push(
                    out,
                    MpEvent::SubPriority {
                        local,
                        remote,
                        backup,
                    },
                );
            }
        }
    }
}

/// Why a subflow closed, from what the connection knows of it.
fn reason(mp: &crate::mptcp::conn::SubflowMp, end: Option<End>) -> SubClose {
    if mp.local_gone {
        SubClose::LocalGone
    } else if mp.removed {
        SubClose::PeerRemoved
    } else if mp.abandoned {
        SubClose::Closed
    } else {
        match end {
            Some(End::TimedOut) => SubClose::Timeout,
            Some(End::Reset) | Some(End::Refused) => SubClose::Reset(mp.rst_rx_reason),
            Some(End::Normal) | Some(End::Aborted) | None => SubClose::Closed,
        }
    }
}
