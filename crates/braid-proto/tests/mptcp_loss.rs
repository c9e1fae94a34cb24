//! MPTCP handshakes with lost packets and data-level reassembly across subflows: the
//! MP_CAPABLE third ACK lost (RFC 8684 §3.1), the MP_JOIN third and fourth ACKs lost (§3.2),
//! and data reordered between two paths of very different delays (§3.3).
mod common;
use braid_proto::{ConnHandle, EndpointConfig, Event};
use braid_wire::mptcp::{MpCapable, MptcpOption};
use common::*;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

/// Bytes moved each way by the transfer tests.
const N: usize = 4 << 20;

// ---- helpers identical to those of mptcp_join.rs (mp_opts also in mptcp_basic.rs) ----------

// ---- helpers of this file ------------------------------------------------------------------

/// The packet travels between A2 and B2 (the joined path).
fn on_path2(packet: &[u8]) -> bool {
    let (s, t) = addrs(packet);
    s == A2 || t == A2
}

/// The MP_CAPABLE option of a packet, if any.
fn mpc(packet: &[u8]) -> Option<MpCapable> {
    mp_opts(packet).into_iter().find_map(|o| match o {
        MptcpOption::MpCapable(m) => Some(m),
        _ => None,
    })
}

fn has_join_ack(packet: &[u8]) -> bool {
    mp_opts(packet)
        .iter()
        .any(|o| matches!(o, MptcpOption::MpJoinAck { .. }))
}

/// Every A->B data segment of the log with the absolute DSN of its first byte, found through
/// the mappings of its subflow (subflows told apart by A's address): (log index, source, DSN).
fn data_dsns(log: &[(braid_proto::Instant, Dir, Vec<u8>)]) -> Vec<(usize, IpAddr, u64)> {
    /// A subflow's source address, ISN and mappings (relative seq, DSN, length).
    type Sub = (IpAddr, u32, Vec<(u32, u64, u32)>);
    let mut subs: Vec<Sub> = Vec::new();
    let mut out = Vec::new();
    for (i, (_, d, pk)) in log.iter().enumerate() {
        if *d != Dir::AtoB {
            continue;
        }
        let src = addrs(pk).0;
        let s = Seg::parse(pk);
        if s.syn() {
            subs.retain(|x| x.0 != src);
            subs.push((src, s.seq, Vec::new()));
            continue;
        }
        let Some(sub) = subs.iter_mut().find(|x| x.0 == src) else {
            continue;
        };
        let rel = s.seq.wrapping_sub(sub.1);
        for o in mp_opts(pk) {
            // (A DATA_FIN alone has subflow sequence 0 and maps no payload.)
            if let MptcpOption::Dss(d) = o {
                if let Some(m) = d.mapping.filter(|m| m.subflow_seq != 0) {
                    sub.2.push((m.subflow_seq, m.dsn.value, m.data_len as u32));
                }
            }
        }
        if s.payload.is_empty() {
            continue;
        }
        let hit = sub
            .2
            .iter()
            .rev()
            .find(|m| rel.wrapping_sub(m.0) < m.2)
            .map(|m| m.1 + rel.wrapping_sub(m.0) as u64);
        if let Some(dsn) = hit {
            out.push((i, src, dsn));
        }
    }
    out
}

fn has_dss(packet: &[u8]) -> bool {
    mp_opts(packet)
        .iter()
        .any(|o| matches!(o, MptcpOption::Dss(_)))
}

/// Sends `data[sent..]` on the sending side of `dir` (handle `tx`) and reads on the other side
/// (handle `rx`) until all of `data` has arrived or `limit` passes; `got` is what was read
/// before. `hook` runs after every step. Returns everything read.
#[allow(clippy::too_many_arguments)]
fn pump(
    p: &mut Pair,
    dir: Dir,
    tx: ConnHandle,
    rx: ConnHandle,
    data: &[u8],
    mut sent: usize,
    mut got: Vec<u8>,
    limit: Duration,
    mut hook: impl FnMut(&mut Pair),
) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    p.run_until(limit, |p| {
        let (s, r) = match dir {
            Dir::AtoB => (&mut p.a, &mut p.b),
            Dir::BtoA => (&mut p.b, &mut p.a),
        };
        while sent < data.len() {
            match s.send(tx, &data[sent..]) {
                Ok(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        while let Ok(n) = r.recv(rx, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        hook(p);
        got.len() >= data.len()
    });
    got
}

/// [`pump`] of all of `data` from A to B, nothing read before.
fn pump_up(
    p: &mut Pair,
    ca: ConnHandle,
    cb: ConnHandle,
    data: &[u8],
    limit: Duration,
    hook: impl FnMut(&mut Pair),
) -> Vec<u8> {
    pump(p, Dir::AtoB, ca, cb, data, 0, Vec::new(), limit, hook)
}

/// Moves `data` from the sending side of `dir` to the other and checks it arrived intact.
fn move_intact(p: &mut Pair, dir: Dir, tx: ConnHandle, rx: ConnHandle, seed: u64) {
    let data = pattern(N, seed);
    let got = pump(
        p,
        dir,
        tx,
        rx,
        &data,
        0,
        Vec::new(),
        Duration::from_secs(30),
        |_| {},
    );
    assert!(
        got == data,
        "{dir:?}: data intact ({} of {} bytes)",
        got.len(),
        data.len()
    );
}

/// Payload bytes each subflow of `h` on one side put on the wire.
fn sent_per_subflow(p: &Pair, side_a: bool, h: ConnHandle) -> Vec<u64> {
    let ep = if side_a { &p.a } else { &p.b };
    let info = ep.conn_info(h).expect("connection").mptcp.expect("MPTCP");
    info.subflows.iter().map(|s| s.bytes_sent).collect()
}

/// Neither side fell back, and the tokens each learned are the other's.
fn assert_mptcp_both(p: &Pair, ca: ConnHandle, cb: ConnHandle) {
    let ia = p.a.conn_info(ca).unwrap().mptcp.expect("MPTCP on A");
    let ib = p.b.conn_info(cb).unwrap().mptcp.expect("MPTCP on B");
    assert!(!ia.fallback, "A fell back to TCP");
    assert!(!ib.fallback, "B fell back to TCP");
    assert_eq!(ia.remote_token, ib.local_token);
    assert_eq!(ib.remote_token, ia.local_token, "B learned A's key");
    assert_eq!(p.a.counters().mp_capable_fallback_ack, 0);
    assert_eq!(p.b.counters().mp_capable_fallback_ack, 0);
    assert_eq!(p.a.counters().mp_capable_fallback_synack, 0);
}

/// A filter dropping the client's first pure ACK after the SYN/ACK (the MP_CAPABLE third ACK).
fn drop_third_ack(p: &mut Pair) {
    let mut dropped = false;
    p.filter = Some(Box::new(move |dir, pkt| {
        let s = Seg::parse(pkt);
        if !dropped && dir == Dir::AtoB && !s.syn() && s.pure_ack() {
            dropped = true;
            return Verdict::Drop;
        }
        Verdict::Pass
    }));
}

/// Log index of the first client packet after its SYN (the lost third ACK); checks that it is
/// a pure ACK with MP_CAPABLE carrying both keys and no data-level length.
fn lost_third_ack(p: &Pair) -> (usize, MpCapable) {
    let i = p
        .log
        .iter()
        .position(|(_, d, pk)| *d == Dir::AtoB && !Seg::parse(pk).syn())
        .expect("client sent after its SYN");
    assert!(
        Seg::parse(&p.log[i].2).pure_ack(),
        "third ACK is a pure ACK"
    );
    let m = mpc(&p.log[i].2).expect("third ACK carries MP_CAPABLE");
    assert!(m.sender_key.is_some() && m.receiver_key.is_some() && m.data_len.is_none());
    (i, m)
}

/// Runs until both sides have two established subflows.
fn wait_two_subflows(p: &mut Pair, ca: ConnHandle, cb: ConnHandle) {
    let ok = p.run_until(Duration::from_secs(10), |p| {
        live_subflows(p, true, ca) == 2 && live_subflows(p, false, cb) == 2
    });
    assert!(ok, "second subflow not established");
}

/// After an A->B transfer (`a_sent`) and a B->A transfer (`b_sent`), each sender used both
/// subflows.
fn assert_both_subflows_used(a_sent: &[u64], b_sent: &[u64]) {
    assert_eq!(a_sent.len(), 2, "A's subflows: {a_sent:?}");
    assert_eq!(b_sent.len(), 2, "B's subflows: {b_sent:?}");
    assert!(a_sent.iter().all(|&n| n > 0), "A->B used: {a_sent:?}");
    assert!(b_sent.iter().all(|&n| n > 0), "B->A used: {b_sent:?}");
}

// ---- tests -----------------------------------------------------------------------------------

/// RFC 8684 §3.1: the third ACK is not delivered reliably; when it is lost, the client's first
/// data segment repeats MP_CAPABLE with both keys and the data-level length, and the server
/// learns the keys from it. No fallback; a second subflow joins and carries data.
#[test]
fn mp_capable_third_ack_lost_client_sends_first() {
    let mut p = two_path_pair(EndpointConfig::default());
    drop_third_ack(&mut p);
    p.b.listen(80).unwrap();
    let ca = p.a.connect(p.now, A, SocketAddr::new(B, 80)).unwrap();
    let ok = p.run_until(Duration::from_secs(2), |p| {
        p.events_a.contains(&Event::Connected(ca))
    });
    assert!(ok, "client connected");
    // Data right away, before any SYN/ACK retransmission could make the client ACK again.
    let up = pattern(N, 11);
    let sent = p.a.send(ca, &up).unwrap();
    assert!(sent > 0);
    let mut cb = None;
    let ok = p.run_until(Duration::from_secs(5), |p| {
        cb = cb.or_else(|| p.b.accept(80));
        cb.is_some()
    });
    assert!(ok, "server accepted");
    let cb = cb.unwrap();

    // What the wire shows: the lost third ACK, then the first data with both keys.
    let (i, third) = lost_third_ack(&p);
    let (_, _, first) = p.log[i + 1..]
        .iter()
        .find(|(_, d, _)| *d == Dir::AtoB)
        .expect("client sent data");
    let s = Seg::parse(first);
    assert!(
        !s.payload.is_empty(),
        "the next client segment is data: {s:?}"
    );
    let m = mpc(first).expect("first data repeats MP_CAPABLE");
    assert_eq!(m.sender_key, third.sender_key);
    assert_eq!(m.receiver_key, third.receiver_key);
    assert_eq!(
        m.data_len,
        Some(s.payload.len() as u16),
        "data-level length"
    );
    assert_eq!(p.b.counters().mp_capable_ack_rx, 1);

    let got = pump(
        &mut p,
        Dir::AtoB,
        ca,
        cb,
        &up,
        sent,
        Vec::new(),
        Duration::from_secs(30),
        |_| {},
    );
    assert!(got == up, "A->B intact ({} of {})", got.len(), up.len());
    wait_two_subflows(&mut p, ca, cb);
    let a_sent = sent_per_subflow(&p, true, ca);
    move_intact(&mut p, Dir::BtoA, cb, ca, 12);
    let b_sent = sent_per_subflow(&p, false, cb);
    assert_mptcp_both(&p, ca, cb);
    assert_eq!(p.b.counters().mp_capable_ack_rx, 1);
    assert_eq!(p.b.counters().mp_join_ack_rx, 1);
    assert_both_subflows_used(&a_sent, &b_sent);
}

/// RFC 8684 §3.1: the third ACK lost and the server the first to send. The client repeats
/// MP_CAPABLE with both keys on its pure ACKs until the server's first DSS reaches it; the
/// server's data does not make it fall back.
#[test]
fn mp_capable_third_ack_lost_server_sends_first() {
    let mut p = two_path_pair(EndpointConfig::default());
    drop_third_ack(&mut p);
    p.b.listen(80).unwrap();
    let ca = p.a.connect(p.now, A, SocketAddr::new(B, 80)).unwrap();
    let mut cb = None;
    let ok = p.run_until(Duration::from_secs(10), |p| {
        cb = cb.or_else(|| p.b.accept(80));
        cb.is_some() && p.events_a.contains(&Event::Connected(ca))
    });
    assert!(ok, "handshake completed after the lost third ACK");
    let cb = cb.unwrap();
    move_intact(&mut p, Dir::BtoA, cb, ca, 21);
    wait_two_subflows(&mut p, ca, cb);
    let b_sent = sent_per_subflow(&p, false, cb);
    move_intact(&mut p, Dir::AtoB, ca, cb, 22);
    let a_sent = sent_per_subflow(&p, true, ca);
    assert_mptcp_both(&p, ca, cb);
    assert_eq!(p.b.counters().mp_capable_ack_rx, 1);

    let (i, third) = lost_third_ack(&p);
    // The server's first segment with a DSS on the initial subflow, and when it reached A.
    let delay = p.delay;
    let (t_dss, _, _) = p
        .log
        .iter()
        .find(|(_, d, pk)| *d == Dir::BtoA && !on_path2(pk) && has_dss(pk))
        .expect("server sent a DSS");
    let dss_arrival = *t_dss + delay;
    let first_data = p
        .log
        .iter()
        .find(|(_, d, pk)| *d == Dir::BtoA && !Seg::parse(pk).payload.is_empty())
        .expect("server sent data");
    assert!(has_dss(&first_data.2), "server data carries a DSS");
    // Before that arrival every client pure ACK repeats both keys; at least one did.
    let mut repeats = 0;
    for (t, d, pk) in &p.log[i + 1..] {
        if *d != Dir::AtoB || on_path2(pk) || !Seg::parse(pk).pure_ack() {
            continue;
        }
        if *t < dss_arrival {
            let m = mpc(pk).expect("client pure ACK before the server's DSS repeats MP_CAPABLE");
            assert_eq!(
                (m.sender_key, m.receiver_key),
                (third.sender_key, third.receiver_key)
            );
            repeats += 1;
        } else {
            assert!(mpc(pk).is_none(), "MP_CAPABLE after the server's DSS");
        }
    }
    assert!(repeats >= 1, "no later client pure ACK repeated the keys");
    assert_both_subflows_used(&a_sent, &b_sent);
}

/// RFC 8684 §3.2: the MP_JOIN third ACK (the initiator's HMAC) is lost; the initiator repeats
/// it until acknowledged, the responder checks it once and the subflow then carries data.
#[test]
fn mp_join_third_ack_lost_is_retransmitted() {
    let mut p = two_path_pair(EndpointConfig::default());
    let mut dropped = false;
    p.filter = Some(Box::new(move |dir, pkt| {
        if !dropped && dir == Dir::AtoB && has_join_ack(pkt) {
            dropped = true;
            return Verdict::Drop;
        }
        Verdict::Pass
    }));
    let (ca, cb) = p.establish(80);
    wait_two_subflows(&mut p, ca, cb);
    let join_acks = p
        .log
        .iter()
        .filter(|(_, d, pk)| *d == Dir::AtoB && has_join_ack(pk))
        .count();
    assert!(join_acks >= 2, "third ACK sent {join_acks} times");
    assert_eq!(p.b.counters().mp_join_ack_rx, 1);
    assert_eq!(p.b.counters().mp_join_ack_hmac_failure, 0);
    assert_eq!(p.a.counters().mp_join_synack_hmac_failure, 0);
    assert_eq!(p.a.counters().mp_rst_tx + p.b.counters().mp_rst_tx, 0);
    move_intact(&mut p, Dir::AtoB, ca, cb, 31);
    let a_sent = sent_per_subflow(&p, true, ca);
    move_intact(&mut p, Dir::BtoA, cb, ca, 32);
    let b_sent = sent_per_subflow(&p, false, cb);
    assert_mptcp_both(&p, ca, cb);
    assert_both_subflows_used(&a_sent, &b_sent);
}

/// RFC 8684 §3.2: the responder's ACK of the third ACK (the "fourth ACK") is lost. The
/// initiator keeps repeating its third ACK; the responder must answer one of those so the
/// initiator may send data on the subflow. The client sends first, so no data from the server
/// on the joined path can stand in for the lost ACK.
#[test]
fn mp_join_fourth_ack_lost_still_completes() {
    let mut p = two_path_pair(EndpointConfig::default());
    let mut dropped = false;
    p.filter = Some(Box::new(move |dir, pkt| {
        if !dropped && dir == Dir::BtoA && on_path2(pkt) {
            let s = Seg::parse(pkt);
            if !s.syn() && s.pure_ack() {
                dropped = true;
                return Verdict::Drop;
            }
        }
        Verdict::Pass
    }));
    let (ca, cb) = p.establish(80);
    wait_two_subflows(&mut p, ca, cb);
    // Time for the client to repeat its third ACK (connection timer, >= 200 ms) and for the
    // server to answer it.
    p.run_for(Duration::from_secs(3));
    let join_acks: Vec<usize> = (0..p.log.len())
        .filter(|&i| p.log[i].1 == Dir::AtoB && has_join_ack(&p.log[i].2))
        .collect();
    assert!(
        join_acks.len() >= 2,
        "third ACK not repeated: {join_acks:?}"
    );
    let server_acks: Vec<usize> = (0..p.log.len())
        .filter(|&i| {
            let (_, d, pk) = &p.log[i];
            let s = Seg::parse(pk);
            *d == Dir::BtoA && on_path2(pk) && !s.syn() && s.pure_ack()
        })
        .collect();
    // The dropped packet was the server's first pure ACK on the joined path, after the join's
    // third ACK; a repeated third ACK must be answered.
    assert!(server_acks.first() > join_acks.first(), "{server_acks:?}");
    assert!(
        server_acks.iter().any(|&i| i > join_acks[1]),
        "server never answered the repeated third ACK (pure ACKs on path 2 at {server_acks:?}, \
         third ACKs at {join_acks:?})"
    );
    move_intact(&mut p, Dir::AtoB, ca, cb, 41);
    let a_sent = sent_per_subflow(&p, true, ca);
    assert!(
        a_sent[1] > 0,
        "client never used the joined subflow: {a_sent:?}"
    );
    move_intact(&mut p, Dir::BtoA, cb, ca, 42);
    let b_sent = sent_per_subflow(&p, false, cb);
    assert_eq!(p.b.counters().mp_join_ack_rx, 1);
    assert_eq!(p.b.counters().mp_join_ack_hmac_failure, 0);
    assert_mptcp_both(&p, ca, cb);
    assert_both_subflows_used(&a_sent, &b_sent);
}

/// Packets of the joined path held back by the filter, to be delivered later than the others.
type Held = Rc<RefCell<Vec<(Dir, Vec<u8>)>>>;

/// Puts the held packets on the wire with `extra` delay on top of the link's (called right
/// after every step, so the extra delay counts from when they were sent).
fn release(p: &mut Pair, held: &Held, extra: Duration) {
    p.flush();
    let pkts: Vec<_> = held.borrow_mut().drain(..).collect();
    let base = p.delay;
    p.delay = base + extra;
    for (dir, pk) in pkts {
        p.inject(dir, pk);
    }
    p.delay = base;
}

/// RFC 8684 §3.3: with one path 10 ms and the other 50 ms one way, data sent later on the
/// fast path overtakes data sent earlier on the slow one. The receiver puts the bytes back in
/// data-sequence order: intact data, and its out-of-order counter shows it had to.
#[test]
fn reassembly_across_subflows_with_different_delays() {
    for sched in ["minrtt", "roundrobin"] {
        let mut cfg = EndpointConfig::default();
        cfg.mptcp.scheduler = sched.into();
        let mut p = two_path_pair(cfg);
        let extra = Duration::from_millis(40);
        let held: Held = Rc::new(RefCell::new(Vec::new()));
        let h2 = held.clone();
        p.filter = Some(Box::new(move |dir, pkt| {
            if on_path2(pkt) {
                h2.borrow_mut().push((dir, pkt.to_vec()));
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        }));
        p.b.listen(80).unwrap();
        let ca = p.a.connect(p.now, A, SocketAddr::new(B, 80)).unwrap();
        let mut cb = None;
        let ok = p.run_until(Duration::from_secs(10), |p| {
            release(p, &held, extra);
            cb = cb.or_else(|| p.b.accept(80));
            cb.is_some_and(|cb| live_subflows(p, false, cb) == 2) && live_subflows(p, true, ca) == 2
        });
        assert!(ok, "{sched}: second subflow not established");
        let cb = cb.unwrap();
        let from = p.log.len();
        let data = pattern(N, 51);
        let got = pump_up(&mut p, ca, cb, &data, Duration::from_secs(30), |p| {
            release(p, &held, extra)
        });
        assert!(
            got == data,
            "{sched}: intact ({} of {})",
            got.len(),
            data.len()
        );
        let a_sent = sent_per_subflow(&p, true, ca);
        assert!(a_sent.iter().all(|&n| n > 0), "{sched}: {a_sent:?}");
        let subs = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
        let (r1, r2) = (subs[0].srtt.unwrap(), subs[1].srtt.unwrap());
        assert!(r2 > r1 * 2, "{sched}: the delays differ ({r1:?} vs {r2:?})");

        // From the log: data segments of the slow path arrived after segments of the fast
        // path with higher DSNs (arrival = send time + that path's one-way delay).
        let mut arrivals: Vec<(braid_proto::Instant, bool, u64)> = data_dsns(&p.log)
            .into_iter()
            .filter(|&(i, _, _)| i >= from)
            .map(|(i, src, dsn)| {
                let slow = src == A2;
                let at = p.log[i].0 + p.delay + if slow { extra } else { Duration::ZERO };
                (at, slow, dsn)
            })
            .collect();
        let total: usize = p.log[from..]
            .iter()
            .filter(|(_, d, pk)| *d == Dir::AtoB && !Seg::parse(pk).payload.is_empty())
            .count();
        assert_eq!(arrivals.len(), total, "{sched}: every data segment mapped");
        arrivals.sort_by_key(|a| a.0);
        let mut max_fast = 0;
        let mut overtaken = 0;
        for &(_, slow, dsn) in &arrivals {
            if slow && dsn < max_fast {
                overtaken += 1;
            } else if !slow {
                max_fast = max_fast.max(dsn);
            }
        }
        assert!(overtaken > 0, "{sched}: no reordering across subflows");
        let c = p.b.counters();
        assert!(
            c.mp_ofo_queue > 0,
            "{sched}: receiver saw no out-of-order data"
        );
        assert_mptcp_both(&p, ca, cb);
    }
}

/// The server sends first and its first data segment (the one carrying the DSS mapping) is
/// lost: the following segments of the same mapping carry no MPTCP option and reach the client
/// first. They are not a sign that the server fell back (found by the endpoint fuzzer: the
/// client fell back alone, read the server's data-level retransmission as new bytes).
#[test]
fn later_segments_of_a_mapping_arriving_first_are_no_fallback() {
    let mut p = Pair::new(
        EndpointConfig::default(),
        EndpointConfig::default(),
        Duration::from_millis(10),
    );
    let mut dropped = false;
    p.filter = Some(Box::new(move |dir, pkt| {
        let s = Seg::parse(pkt);
        if dir == Dir::BtoA && !dropped && !s.payload.is_empty() {
            dropped = true;
            return Verdict::Drop;
        }
        Verdict::Pass
    }));
    let (ca, cb) = p.establish(80);
    let data = pattern(64 << 10, 21);
    let got = p.transfer_dir(Dir::BtoA, cb, ca, &data, Duration::from_secs(30));
    assert!(got == data, "intact ({} of {})", got.len(), data.len());
    let a = p.a.conn_info(ca).unwrap().mptcp.unwrap();
    let b = p.b.conn_info(cb).unwrap().mptcp.unwrap();
    assert!(!a.fallback && !b.fallback, "no fallback");
    assert_eq!(p.a.counters().mp_capable_fallback_ack, 0);
    // Later segments without any MPTCP option did arrive before the first one.
    let first_data = p
        .log
        .iter()
        .filter(|(_, d, pk)| *d == Dir::BtoA && !Seg::parse(pk).payload.is_empty())
        .take(3)
        .filter(|(_, _, pk)| mp_opts(pk).is_empty())
        .count();
    assert!(
        first_data >= 1,
        "the test did not make option-less segments go first"
    );
    let more = pattern(32 << 10, 22);
    assert!(p.transfer(ca, cb, &more, Duration::from_secs(30)) == more);
}

/// A data segment on the joined path is acknowledged by the receiver's subflow but its bytes
/// never reach the data level (its mapping is rewritten to name data already delivered: the
/// receiver counts a duplicate, as Linux drops data beyond its window or under memory pressure
/// after its subflow acknowledged it), and from then on the first path drops everything: the
/// first subflow never has all it carried acknowledged again. Only the data level's own
/// retransmission (RFC 8684 §3.3.6) can fill the hole; it must not wait for every subflow to
/// be fully acknowledged (found against Linux: a transfer stuck for 100 s at one DATA_ACK).
#[test]
fn data_level_hole_is_retransmitted_while_another_subflow_is_stuck() {
    use braid_wire::mptcp::DataSeq;
    let mut p = two_path_pair(EndpointConfig::default());
    let (ca, cb) = p.establish(80);
    wait_two_subflows(&mut p, ca, cb);
    // The rewritten mapping's DSN as sent, and as rewritten: the first DSN of the transfer,
    // delivered long before (a mapping may cover several segments; only its first carries it).
    let hole: Rc<RefCell<Option<(u64, u64)>>> = Rc::new(RefCell::new(None));
    let h = hole.clone();
    let mut first: Option<DataSeq> = None;
    let mut path2_maps = 0usize;
    p.filter = Some(Box::new(move |dir, pkt| {
        if dir != Dir::AtoB {
            return Verdict::Pass;
        }
        if h.borrow().is_some() {
            return if on_path2(pkt) {
                Verdict::Pass
            } else {
                Verdict::Drop
            };
        }
        let Some(mut d) = dss_of(pkt).filter(|d| d.mapping.is_some_and(|m| m.data_len > 0)) else {
            return Verdict::Pass;
        };
        let mut m = d.mapping.unwrap();
        let f = *first.get_or_insert(m.dsn);
        if !on_path2(pkt) {
            return Verdict::Pass;
        }
        path2_maps += 1;
        if path2_maps < 8 || f.wide != m.dsn.wide {
            return Verdict::Pass;
        }
        *h.borrow_mut() = Some((m.dsn.value, f.value));
        m.dsn = f;
        d.mapping = Some(m);
        let body = MptcpOption::Dss(d).emit_to_vec();
        Verdict::Replace(vec![rewrite(pkt, None, Some(&[body]))])
    }));
    let data = pattern(N, 77);
    let got = pump_up(&mut p, ca, cb, &data, Duration::from_secs(60), |_| {});
    assert!(
        hole.borrow().is_some(),
        "no segment of path 2 was rewritten"
    );
    assert!(
        got == data,
        "data intact ({} of {} bytes; A: {:?})",
        got.len(),
        data.len(),
        p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows
    );
    assert!(
        p.b.counters().mp_duplicate_data >= 1,
        "the receiver dropped the rewritten segment's bytes as a duplicate"
    );
    assert!(
        p.a.counters().mp_retrans >= 1,
        "the data level retransmitted ({:?})",
        p.a.counters().mp_retrans
    );
    // The first path stayed dead: its subflow never had its data acknowledged again.
    let subs = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
    assert!(
        subs[0].bytes_acked < subs[0].bytes_sent,
        "the first subflow is stuck: {subs:?}"
    );
}

/// The subflows hold no copy of their bytes: the connection-level buffer keeps what they may
/// still send again. A path that dies with data in flight must not make it keep everything
/// sent since: the dead subflow gets its own copy of what it still holds, and the
/// connection's memory stays near its buffer size while the other path carries the rest.
#[test]
fn a_dead_path_does_not_hold_the_connection_buffer() {
    // Send buffers of at most 1 MiB, so that most of the transfer comes after the death.
    let mut cfg = EndpointConfig::default();
    cfg.tcp.send_buffer_max = 1 << 20;
    let mut p = two_path_pair(cfg);
    let (ca, cb) = p.establish(80);
    wait_two_subflows(&mut p, ca, cb);
    let dead = Rc::new(RefCell::new(false));
    let d = dead.clone();
    p.filter = Some(Box::new(move |_, pkt| {
        if *d.borrow() && !on_path2(pkt) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    let data = pattern(4 * N, 78);
    let mut peak = 0u64;
    let mut cap = 0u64;
    let got = pump_up(&mut p, ca, cb, &data, Duration::from_secs(120), |p| {
        let info = p.a.conn_info(ca).unwrap();
        if info.bytes_acked >= N as u64 / 4 {
            *dead.borrow_mut() = true;
        }
        peak = peak.max(info.buffers.allocated);
        cap = cap.max(info.buffers.send_buffer);
    });
    assert!(
        got == data,
        "data intact ({} of {} bytes)",
        got.len(),
        data.len()
    );
    let subs = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
    assert!(
        subs[0].bytes_acked < subs[0].bytes_sent,
        "the first subflow died with data in flight: {subs:?}"
    );
    // The rings never hold much more than the send buffer's size (plus the dead subflow's
    // own copy of its flight, a quarter of the buffer kept besides, the receive ring): not
    // the 15 MiB sent after the path died.
    assert!(
        peak <= 3 * cap,
        "peak memory {peak} bytes, send buffer of {cap} bytes"
    );
}
