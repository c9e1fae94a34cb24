//! DSS checksums (RFC 8684 §3.3.1) and what a failed one leads to (§3.7): mappings spanning
//! several segments are verified over all their bytes before delivery; a corrupted payload
//! byte resets its subflow with MP_FAIL when there are others, and on the only subflow leads to
//! MP_FAIL, the peer's infinite mapping and fallback to TCP, the data intact in every case.
mod common;
use braid_proto::{ConnHandle, EndpointConfig, TcpState};
use braid_wire::mptcp::{dss_checksum, Dss, MptcpOption, ResetReason};
use common::*;
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

/// MPTCP with DSS checksums asked for.
fn csum_cfg() -> EndpointConfig {
    let mut c = EndpointConfig::default();
    c.mptcp.checksum = true;
    c
}

/// One payload byte flipped.
fn corrupt_payload(packet: &[u8]) -> Vec<u8> {
    let (_, r) = braid_wire::parse_ip_tcp(packet).expect("valid packet");
    let mut p = r.payload.to_vec();
    let i = p.len() / 2;
    p[i] ^= 0x5a;
    rewrite(packet, Some(&p), None)
}

fn info_fallback(ep: &braid_proto::Endpoint, h: ConnHandle) -> bool {
    ep.conn_info(h).unwrap().mptcp.unwrap().fallback
}

/// What the merging middlebox saw and did.
#[derive(Default)]
struct Merger {
    /// Data segments held back (at most two), waiting to become one mapping with the next.
    held: Vec<Vec<u8>>,
    /// Mappings made of three segments.
    merged: usize,
    /// Corrupt the middle segment (after the checksum is computed) of this merged mapping.
    corrupt_nth: Option<usize>,
}

/// The DSS mapping of a data segment that may join a merge: (dsn, subflow seq, data_len,
/// data ACK), with a checksum, no DATA_FIN, exactly its payload.
fn plain_mapping(pkt: &[u8]) -> Option<(u64, u32, u16, Option<u32>)> {
    let (_, r) = braid_wire::parse_ip_tcp(pkt).ok()?;
    if r.payload.is_empty() || r.flags.0 & (SYN | FIN | RST) != 0 {
        return None;
    }
    let d = dss_of(pkt)?;
    let m = d.mapping?;
    if d.data_fin || m.checksum.is_none() || m.data_len as usize != r.payload.len() {
        return None;
    }
    Some((
        m.dsn.value,
        m.subflow_seq,
        m.data_len,
        d.data_ack.map(|a| a.value as u32),
    ))
}

impl Merger {
    /// Turns three consecutive data segments, each with its own checksummed mapping, into one
    /// mapping carried by the first (checksum over all three payloads, as Linux maps a GSO
    /// burst) while the other two carry only their DATA_ACK.
    fn filter(&mut self, pkt: &[u8]) -> Verdict {
        let Some((dsn, ssn, _, _)) = plain_mapping(pkt) else {
            return self.release(pkt);
        };
        if let Some(last) = self.held.last() {
            let (ldsn, lssn, llen, _) = plain_mapping(last).expect("held ones qualify");
            if ldsn + llen as u64 != dsn || lssn.wrapping_add(llen as u32) != ssn {
                return self.release(pkt);
            }
        }
        self.held.push(pkt.to_vec());
        if self.held.len() < 3 {
            return Verdict::Drop;
        }
        let segs = std::mem::take(&mut self.held);
        let (dsn, ssn, _, ack) = plain_mapping(&segs[0]).unwrap();
        let payloads: Vec<Vec<u8>> = segs
            .iter()
            .map(|p| braid_wire::parse_ip_tcp(p).unwrap().1.payload.to_vec())
            .collect();
        let all: Vec<u8> = payloads.concat();
        let total = all.len() as u16;
        let first = MptcpOption::Dss(Dss {
            data_fin: false,
            data_ack: ack.map(braid_wire::mptcp::DataSeq::narrow),
            mapping: Some(braid_wire::mptcp::DssMapping {
                dsn: braid_wire::mptcp::DataSeq::wide(dsn),
                subflow_seq: ssn,
                data_len: total,
                checksum: Some(dss_checksum(dsn, ssn, total, &all)),
            }),
        })
        .emit_to_vec();
        let mut out = vec![rewrite(&segs[0], None, Some(&[first]))];
        for (k, p) in segs.iter().enumerate().skip(1) {
            let (_, _, _, ack) = plain_mapping(p).unwrap();
            let bodies: Vec<Vec<u8>> = ack
                .map(|a| {
                    MptcpOption::Dss(Dss {
                        data_fin: false,
                        data_ack: Some(braid_wire::mptcp::DataSeq::narrow(a)),
                        mapping: None,
                    })
                    .emit_to_vec()
                })
                .into_iter()
                .collect();
            let mut q = rewrite(p, None, Some(&bodies));
            if k == 1 && self.corrupt_nth == Some(self.merged) {
                q = corrupt_payload(&q);
            }
            out.push(q);
        }
        self.merged += 1;
        Verdict::Replace(out)
    }

    /// Lets the held segments go (unchanged), followed by `pkt`.
    fn release(&mut self, pkt: &[u8]) -> Verdict {
        let mut out = std::mem::take(&mut self.held);
        out.push(pkt.to_vec());
        Verdict::Replace(out)
    }
}

/// A pair of one path whose packets in both directions go through a merging middlebox.
fn merging_pair(corrupt_nth: Option<usize>) -> (Pair, Rc<RefCell<[Merger; 2]>>) {
    let mut p = Pair::new(csum_cfg(), csum_cfg(), Duration::from_millis(10));
    let m = Rc::new(RefCell::new([
        Merger {
            corrupt_nth,
            ..Default::default()
        },
        Merger::default(),
    ]));
    let m2 = m.clone();
    p.filter = Some(Box::new(move |dir, pkt| {
        m2.borrow_mut()[(dir == Dir::BtoA) as usize].filter(pkt)
    }));
    (p, m)
}

#[test]
fn mappings_spanning_three_segments_are_verified_and_delivered_both_ways() {
    let (mut p, m) = merging_pair(None);
    let (ca, cb) = p.establish(80);
    let up = pattern(400_000, 11);
    let got = p.transfer(ca, cb, &up, Duration::from_secs(60));
    assert!(got == up, "A->B intact ({} of {})", got.len(), up.len());
    let down = pattern(300_000, 12);
    let got = p.transfer_dir(Dir::BtoA, cb, ca, &down, Duration::from_secs(60));
    assert!(got == down, "B->A intact ({} of {})", got.len(), down.len());
    let (ma, mb) = (m.borrow()[0].merged, m.borrow()[1].merged);
    assert!(ma > 50 && mb > 50, "merged mappings: {ma} A->B, {mb} B->A");
    for ep in [&p.a, &p.b] {
        let c = ep.counters();
        assert_eq!(c.mp_data_csum_err, 0);
        assert_eq!(c.mp_fail_tx + c.mp_fail_rx, 0);
    }
    assert!(!info_fallback(&p.a, ca) && !info_fallback(&p.b, cb));
    // Every segment carries the mapping of its payload and still fits the MTU.
    let big = p.log.iter().map(|(_, _, pk)| pk.len()).max().unwrap();
    assert!(big <= 1500, "a {big}-byte packet");
}

#[test]
fn a_byte_corrupted_inside_a_spanning_mapping_is_caught() {
    // The corrupted byte sits in the middle segment, which carries no mapping: only a check
    // over the whole mapping sees it.
    let (mut p, m) = merging_pair(Some(20));
    let (ca, cb) = p.establish(80);
    let up = pattern(400_000, 13);
    let got = p.transfer(ca, cb, &up, Duration::from_secs(60));
    assert!(m.borrow()[0].merged > 20, "the corruption never happened");
    assert!(got == up, "A->B intact ({} of {})", got.len(), up.len());
    assert_eq!(p.b.counters().mp_data_csum_err, 1);
    assert_eq!(p.b.counters().mp_fail_tx, 1);
    assert!(p.a.counters().mp_fail_rx >= 1);
    assert!(info_fallback(&p.a, ca) && info_fallback(&p.b, cb));
}

/// Corrupts (once) the payload of the `nth` data segment going `dir` between `x` and `y`
/// (first transmissions: new sequence numbers only).
fn corrupt_nth_data(
    p: &mut Pair,
    dir: Dir,
    x: IpAddr,
    y: IpAddr,
    nth: usize,
) -> Rc<RefCell<usize>> {
    let seen = Rc::new(RefCell::new(0usize));
    let s2 = seen.clone();
    let mut high: Option<u32> = None;
    p.filter = Some(Box::new(move |d, pkt| {
        if d != dir || addrs(pkt) != (x, y) {
            return Verdict::Pass;
        }
        let s = Seg::parse(pkt);
        if s.payload.is_empty() || s.syn() {
            return Verdict::Pass;
        }
        if high.is_some_and(|h| (s.seq.wrapping_sub(h) as i32) < 0) {
            return Verdict::Pass;
        }
        high = Some(s.seq.wrapping_add(s.payload.len() as u32));
        *s2.borrow_mut() += 1;
        if *s2.borrow() == nth {
            Verdict::Replace(vec![corrupt_payload(pkt)])
        } else {
            Verdict::Pass
        }
    }));
    seen
}

#[test]
fn corrupted_payload_on_one_of_two_subflows_resets_it_with_mp_fail() {
    let mut p = Pair::new(csum_cfg(), csum_cfg(), Duration::from_millis(10));
    p.a.add_local_addr(A2);
    p.b.add_local_addr(B2);
    let (ca, cb) = p.establish(80);
    let two = p.run_until(Duration::from_secs(5), |p| {
        p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows.len() == 2
            && p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows[1].state == TcpState::Established
    });
    assert!(two, "second subflow not established");
    let from = p.log.len();
    let seen = corrupt_nth_data(&mut p, Dir::AtoB, A2, B2, 5);
    let data = pattern(2 << 20, 14);
    let got = p.transfer(ca, cb, &data, Duration::from_secs(60));
    assert!(*seen.borrow() >= 5, "the corruption never happened");
    assert!(got == data, "intact ({} of {})", got.len(), data.len());
    let (a, b) = (p.a.counters(), p.b.counters());
    assert_eq!(b.mp_data_csum_err, 1);
    assert_eq!(b.mp_fail_tx, 1);
    assert!(b.mp_rst_tx >= 1);
    assert_eq!(a.mp_fail_rx, 1);
    assert!(a.mp_reinjections >= 1, "nothing reinjected");
    // B's RST on the second path carries MP_TCPRST and MP_FAIL.
    let rst = p.log[from..]
        .iter()
        .find(|(_, d, pk)| *d == Dir::BtoA && addrs(pk) == (B2, A2) && Seg::parse(pk).rst());
    let rst = rst.expect("no RST on the second path");
    let opts = mp_opts(&rst.2);
    assert!(opts.iter().any(|o| matches!(
        o,
        MptcpOption::MpTcpRst {
            reason: ResetReason::MiddleboxInterference,
            ..
        }
    )));
    assert!(opts.iter().any(|o| matches!(o, MptcpOption::MpFail { .. })));
    // The first subflow goes on as MPTCP; the second is closed on both ends.
    assert!(!info_fallback(&p.a, ca) && !info_fallback(&p.b, cb));
    for (ep, h) in [(&p.a, ca), (&p.b, cb)] {
        let subs = ep.conn_info(h).unwrap().mptcp.unwrap().subflows;
        assert!(!subs[0].closed && subs[1].closed, "{subs:?}");
    }
    // Still both ways.
    let down = pattern(300_000, 15);
    let got = p.transfer_dir(Dir::BtoA, cb, ca, &down, Duration::from_secs(60));
    assert!(got == down, "B->A intact afterwards");
}

#[test]
fn corrupted_payload_on_the_only_subflow_falls_back_with_mp_fail_and_an_infinite_mapping() {
    let mut p = Pair::new(csum_cfg(), csum_cfg(), Duration::from_millis(10));
    let (ca, cb) = p.establish(80);
    let from = p.log.len();
    let seen = corrupt_nth_data(&mut p, Dir::AtoB, A, B, 30);
    let data = pattern(1 << 20, 16);
    let got = p.transfer(ca, cb, &data, Duration::from_secs(60));
    assert!(*seen.borrow() >= 30, "the corruption never happened");
    assert!(got == data, "intact ({} of {})", got.len(), data.len());
    let (a, b) = (p.a.counters(), p.b.counters());
    assert_eq!(b.mp_data_csum_err, 1);
    assert_eq!(b.mp_fail_tx, 1);
    assert_eq!(b.mp_infinite_map_rx, 1);
    assert!(a.mp_fail_rx >= 1);
    assert_eq!(a.mp_infinite_map_tx, 1);
    assert_eq!(a.mp_rst_tx + b.mp_rst_tx, 0, "no subflow reset");
    assert!(info_fallback(&p.a, ca) && info_fallback(&p.b, cb));
    // On the wire: MP_FAIL on a pure ACK from B, then A's infinite mapping on data, after
    // which A's packets carry no MPTCP option.
    let log = &p.log[from..];
    let fail_at = log
        .iter()
        .position(|(_, d, pk)| {
            *d == Dir::BtoA
                && Seg::parse(pk).pure_ack()
                && mp_opts(pk)
                    .iter()
                    .any(|o| matches!(o, MptcpOption::MpFail { .. }))
        })
        .expect("no MP_FAIL on an ACK");
    let inf_at = log
        .iter()
        .position(|(_, d, pk)| {
            *d == Dir::AtoB
                && !Seg::parse(pk).payload.is_empty()
                && dss_of(pk)
                    .and_then(|d| d.mapping)
                    .is_some_and(|m| m.data_len == 0)
        })
        .expect("no infinite mapping");
    assert!(fail_at < inf_at);
    let after = log[inf_at + 1..]
        .iter()
        .filter(|(_, d, _)| *d == Dir::AtoB)
        .filter(|(_, _, pk)| !mp_opts(pk).is_empty())
        .count();
    assert_eq!(after, 0, "MPTCP options after the infinite mapping");
    // Regular TCP both ways from now on, then an orderly close.
    let down = pattern(200_000, 17);
    let got = p.transfer_dir(Dir::BtoA, cb, ca, &down, Duration::from_secs(60));
    assert!(got == down, "B->A intact after fallback");
    let now = p.now;
    p.a.shutdown(now, ca).unwrap();
    p.b.shutdown(now, cb).unwrap();
    let done = |s: Option<braid_proto::ConnInfo>| {
        s.is_some_and(|i| matches!(i.state, TcpState::TimeWait | TcpState::Closed))
    };
    let closed = p.run_until(Duration::from_secs(10), |p| {
        done(p.a.conn_info(ca)) && done(p.b.conn_info(cb))
    });
    assert!(closed, "both ends close");
}

#[test]
fn a_mapping_longer_than_the_receive_buffer_fails_instead_of_waiting_forever() {
    // Small buffers (4 segments); a middlebox claims the 10th data segment's mapping covers
    // 30000 bytes: it can never be whole in the subflow, so it is not waited for.
    let mut cfg = csum_cfg();
    cfg.tcp.recv_buffer = 4 * cfg.tcp.mss as usize;
    cfg.tcp.recv_buffer_max = cfg.tcp.recv_buffer;
    let mut p = Pair::new(cfg.clone(), cfg, Duration::from_millis(10));
    let (ca, cb) = p.establish(80);
    let n = Rc::new(RefCell::new(0usize));
    let n2 = n.clone();
    p.filter = Some(Box::new(move |d, pkt| {
        if d != Dir::AtoB || plain_mapping(pkt).is_none() {
            return Verdict::Pass;
        }
        *n2.borrow_mut() += 1;
        if *n2.borrow() != 10 {
            return Verdict::Pass;
        }
        let mut dss = dss_of(pkt).unwrap();
        let m = dss.mapping.as_mut().unwrap();
        m.data_len = 30_000;
        Verdict::Replace(vec![rewrite(
            pkt,
            None,
            Some(&[MptcpOption::Dss(dss).emit_to_vec()]),
        )])
    }));
    let data = pattern(300_000, 18);
    let got = p.transfer(ca, cb, &data, Duration::from_secs(60));
    assert!(*n.borrow() >= 10, "the rewrite never happened");
    assert!(got == data, "intact ({} of {})", got.len(), data.len());
    assert_eq!(p.b.counters().mp_fail_tx, 1);
    assert!(info_fallback(&p.a, ca) && info_fallback(&p.b, cb));
}

#[test]
fn a_lost_mp_fail_is_recovered_by_the_data_level_retransmission() {
    // MP_FAIL is stripped on its way: no infinite mapping ever comes. The sender never got a
    // DATA_ACK for the failed mapping (its subflow acknowledged it), so its data-level
    // retransmission (MPTCPRetrans) sends the bytes again under a new mapping, whose checksum
    // passes: the stream goes on intact and stays MPTCP.
    let mut p = Pair::new(csum_cfg(), csum_cfg(), Duration::from_millis(10));
    let (ca, cb) = p.establish(80);
    let seen = Rc::new(RefCell::new(0usize));
    let s2 = seen.clone();
    p.filter = Some(Box::new(move |d, pkt| {
        if d == Dir::BtoA {
            let opts = mp_opts(pkt);
            if opts.iter().any(|o| matches!(o, MptcpOption::MpFail { .. })) {
                let keep: Vec<Vec<u8>> = opts
                    .iter()
                    .filter(|o| !matches!(o, MptcpOption::MpFail { .. }))
                    .map(|o| o.emit_to_vec())
                    .collect();
                return Verdict::Replace(vec![rewrite(pkt, None, Some(&keep))]);
            }
            return Verdict::Pass;
        }
        if Seg::parse(pkt).payload.is_empty() {
            return Verdict::Pass;
        }
        *s2.borrow_mut() += 1;
        if *s2.borrow() == 20 {
            Verdict::Replace(vec![corrupt_payload(pkt)])
        } else {
            Verdict::Pass
        }
    }));
    let data = pattern(400_000, 19);
    let got = p.transfer(ca, cb, &data, Duration::from_secs(30));
    assert!(*seen.borrow() >= 20, "the corruption happened");
    assert!(got == data, "intact ({} of {})", got.len(), data.len());
    assert_eq!(p.b.counters().mp_fail_tx, 1);
    assert_eq!(p.a.counters().mp_fail_rx, 0);
    assert!(
        p.a.counters().mp_retrans >= 1,
        "the data level retransmitted"
    );
    p.run_for(Duration::from_secs(10));
    let closed = |evs: &[braid_proto::Event]| {
        evs.iter()
            .any(|e| matches!(e, braid_proto::Event::Closed(..)))
    };
    assert!(
        !closed(&p.events_a) && !closed(&p.events_b),
        "the connection goes on"
    );
    assert!(!info_fallback(&p.a, ca) && !info_fallback(&p.b, cb));
    let more = pattern(100_000, 20);
    assert!(p.transfer(ca, cb, &more, Duration::from_secs(30)) == more);
}
