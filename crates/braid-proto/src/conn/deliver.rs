//! Data-level delivery: the bytes of each subflow, through its receive mappings (RFC 8684
//! §3.3.1, checksums verified over whole mappings), into the connection-level receive buffer.

use super::Subflow;
use crate::counters::Counters;
use crate::mptcp::conn::MpLevel;
use crate::tcp::tcb::End;
use braid_wire::mptcp::{dss_checksum_ok, ResetReason};

/// What to do with the bytes at a subflow's read point ([`rx_step`]).
enum RxStep {
    /// Up to `n` bytes go to data offset `data`.
    Deliver { data: u64, n: u64 },
    /// `n` bytes no mapping covers: not part of the data stream (RFC 8684 §3.3).
    Skip(u64),
    /// More bytes (the rest of a mapping) must arrive first.
    Wait,
    /// The mapping at the read point failed (`csum`: its checksum was wrong or missing; else
    /// it cannot be verified, or the subflow filled up with unmapped bytes): `dsn` and
    /// `data` place its first byte, `skip` bytes of it are at hand.
    Fail {
        dsn: u64,
        data: u64,
        skip: u64,
        csum: bool,
    },
}

/// Decides what happens to the bytes at subflow `t`'s read point. A mapping with a checksum
/// is verified over all its bytes once they are all in order in the subflow (peeked into
/// `scratch`, not consumed; RFC 8684 §3.3.1 lets one mapping span many segments), then marked
/// verified: nothing of it is delivered before.
fn rx_step(
    lv: &MpLevel,
    t: &mut Subflow,
    fallback: bool,
    implicit: bool,
    scratch: &mut [u8],
) -> RxStep {
    let off = t.rcv_read_offset();
    let avail = t.readable() as u64;
    if fallback && off >= lv.fb_rx.0 {
        return RxStep::Deliver {
            data: lv.fb_rx.1 + (off - lv.fb_rx.0),
            n: u64::MAX,
        };
    }
    // Bytes before the fallback point still go by their mappings.
    let before_fb = if fallback { lv.fb_rx.0 - off } else { u64::MAX };
    let cap = t.rcv_capacity() as u64;
    let Some(mp) = t.mp.as_deref_mut() else {
        return RxStep::Wait;
    };
    let Some(k) = mp.rx_index(off) else {
        let next = mp.rx_next_start(off);
        return match next {
            _ if implicit => RxStep::Deliver {
                data: off,
                n: next.map_or(u64::MAX, |s| s - off),
            },
            None if lv.csum && !fallback => {
                // Under checksums no byte is delivered without its mapping. A subflow that
                // fills up with bytes no mapping covers is broken (RFC 8684 §3.7).
                if avail >= cap {
                    let data = lv.recvbuf.in_order_end();
                    RxStep::Fail {
                        dsn: lv.remote_dsn(data),
                        data,
                        skip: avail,
                        csum: false,
                    }
                } else {
                    RxStep::Wait
                }
            }
            _ => RxStep::Skip(next.map_or(avail, |s| s - off).min(before_fb)),
        };
    };
    let m = mp.rx[k];
    let rest = m.sub + m.len - off;
    let data = m.data + (off - m.sub);
    if let Some(ck) = m.csum {
        let fail = |csum| RxStep::Fail {
            dsn: ck.dsn.wrapping_add(off - m.sub),
            data,
            skip: rest.min(avail),
            csum,
        };
        if m.sub != off || rest > cap || rest > scratch.len() as u64 {
            // Part of it went by unverified, or it can never be whole in the subflow.
            return fail(false);
        }
        if avail < rest {
            return if rest > before_fb {
                // Crosses the fallback point: it will not be completed.
                RxStep::Skip(before_fb)
            } else {
                RxStep::Wait
            };
        }
        let got = t.peek(0, &mut scratch[..rest as usize]);
        let ok = ck
            .value
            .is_some_and(|v| dss_checksum_ok(ck.dsn, ck.ssn, ck.data_len, v, &scratch[..got]));
        if !ok {
            return fail(ck.value.is_some());
        }
        if let Some(mp) = t.mp.as_deref_mut() {
            mp.rx[k].csum = None;
        }
    }
    RxStep::Deliver {
        data,
        n: rest.min(before_fb),
    }
}

/// Moves a subflow's in-order bytes to their data offsets in the connection-level receive
/// buffer, as far as its window allows (the rest waits in the subflow).
///
/// On a connection that never had another subflow, bytes of the initial subflow that no
/// mapping covers continue its identity mapping (the single-subflow data sequence space is the
/// subflow's; RFC 8684 §3.3 asks a malformed DSS to be ignored, not the data) — unless DSS
/// checksums are in use: then every byte waits for its mapping and its verification.
///
/// A mapping that fails its checksum never reaches the data level (RFC 8684 §3.7): with other
/// subflows this one is reset with MP_FAIL and MP_TCPRST (the peer reinjects the data); on a
/// connection that never had another subflow, MP_FAIL goes out on ACKs and the connection
/// falls back to TCP when the peer's infinite mapping arrives.
pub(crate) fn drain_sub(
    lv: &mut MpLevel,
    t: &mut Subflow,
    sole: bool,
    scratch: &mut [u8],
    c: &mut Counters,
) {
    let Some(mp) = t.mp.as_deref() else {
        return;
    };
    let initial = mp.join.is_none();
    if mp.failed || (lv.fallback && !initial) {
        return;
    }
    // Fallen back, and not waiting for the answer to our own MP_FAIL: regular TCP.
    let fallback = lv.fallback && !lv.fail_pending;
    let implicit = sole && initial && !mp.rx_shifted && !lv.csum && !fallback;
    if fallback {
        if let Some((d, bytes)) = lv.fail_stash.take() {
            // The peer carried on after the failed mapping: its bytes as received are the
            // stream, as they would be over plain TCP.
            let win_end = lv.recvbuf.read_offset() + lv.recvbuf.capacity() as u64;
            let fit = win_end.saturating_sub(d).min(bytes.len() as u64) as usize;
            lv.recvbuf.write_at(d, &bytes[..fit]);
            if fit < bytes.len() {
                lv.fail_stash = Some((d + fit as u64, bytes[fit..].to_vec()));
            }
        }
    }
    loop {
        let avail = t.readable() as u64;
        if avail == 0 {
            break;
        }
        match rx_step(lv, t, fallback, implicit, scratch) {
            RxStep::Wait => break,
            RxStep::Skip(n) => {
                let n = n.min(avail).min(scratch.len() as u64) as usize;
                t.drain(&mut scratch[..n]);
                c.mp_dss_not_matching += 1;
            }
            RxStep::Deliver { data, n } => {
                let win_end = lv.recvbuf.read_offset() + lv.recvbuf.capacity() as u64;
                if data >= win_end {
                    break;
                }
                let n = avail.min(n).min(win_end - data).min(scratch.len() as u64) as usize;
                // Straight from the subflow's buffer into the connection's: one copy.
                let (x, y) = t.rcv_slices(n);
                let got = x.len() + y.len();
                if got == 0 {
                    break;
                }
                if data + got as u64 <= lv.recvbuf.in_order_end() {
                    c.mp_duplicate_data += 1;
                } else if data > lv.recvbuf.in_order_end() {
                    c.mp_ofo_queue += 1;
                }
                lv.recvbuf.write_at(data, x);
                if !y.is_empty() {
                    lv.recvbuf.write_at(data + x.len() as u64, y);
                }
                t.consume(got);
            }
            RxStep::Fail {
                dsn,
                data,
                skip,
                csum,
            } => {
                if csum {
                    c.mp_data_csum_err += 1;
                } else {
                    c.mp_dss_not_matching += 1;
                }
                let n = skip.clamp(1, scratch.len() as u64) as usize;
                if fallback || lv.fail_pending {
                    // Already failed once: discarded, the peer's answer settles the rest.
                    t.drain(&mut scratch[..n]);
                } else if sole && initial {
                    // RFC 8684 §3.7, one subflow: MP_FAIL on the subflow ACK; the bytes wait
                    // for the peer's infinite mapping (sent again, or kept as plain TCP).
                    let got = t.drain(&mut scratch[..n]);
                    if csum {
                        lv.fail_stash = Some((data, scratch[..got].to_vec()));
                    }
                    lv.fail_pending = true;
                    if let Some(mp) = t.mp.as_deref_mut() {
                        mp.fail_dsn = Some(dsn);
                        mp.fail_ack_due = true;
                    }
                    c.mp_fail_tx += 1;
                } else {
                    // RFC 8684 §3.7, several subflows: this one is reset with MP_FAIL (and
                    // MP_TCPRST); the peer sends the data again on the others.
                    if let Some(mp) = t.mp.as_deref_mut() {
                        mp.fail_dsn = Some(dsn);
                        mp.rst_reason = Some(ResetReason::MiddleboxInterference);
                        mp.failed = true;
                    }
                    c.mp_fail_tx += 1;
                    c.mp_rst_tx += 1;
                    t.reset(End::Reset);
                    return;
                }
            }
        }
    }
    let off = t.rcv_read_offset();
    if let Some(mp) = t.mp.as_deref_mut() {
        mp.prune_rx(off);
    }
}
