//! MPTCP control options acted upon (RFC 8684): MP_PRIO moves the peer's sending off a subflow
//! and back (§3.3.8), REMOVE_ADDR closes the subflows to a removed address (§3.4.2),
//! MP_FASTCLOSE resets the whole connection (§3.5), and `abort` sends it.
mod common;
use braid_proto::endpoint::CloseReason;
use braid_proto::{ConnHandle, EndpointConfig, Error, Event, TcpState};
use braid_wire::mptcp::MptcpOption;
use common::*;
use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

/// Two-path pair with both subflows up and 1 MiB moved each way.
fn two_subflows() -> (Pair, ConnHandle, ConnHandle) {
    let mut p = two_path_pair(EndpointConfig::default());
    let (ca, cb) = p.establish(80);
    let ok = p.run_until(Duration::from_secs(5), |p| {
        live_subflows(p, true, ca) == 2 && live_subflows(p, false, cb) == 2
    });
    assert!(ok, "second subflow not established");
    let up = pattern(1 << 20, 1);
    assert!(p.transfer(ca, cb, &up, Duration::from_secs(60)) == up);
    let down = pattern(1 << 20, 2);
    assert!(p.transfer_dir(Dir::BtoA, cb, ca, &down, Duration::from_secs(60)) == down);
    p.run_for(Duration::from_secs(1));
    (p, ca, cb)
}

/// Payload bytes each subflow of a connection put on the wire.
fn sent_per_subflow(p: &Pair, side_a: bool, h: ConnHandle) -> Vec<u64> {
    let ep = if side_a { &p.a } else { &p.b };
    let info = ep.conn_info(h).unwrap().mptcp.unwrap();
    info.subflows.iter().map(|s| s.bytes_sent).collect()
}

/// Adds the MPTCP option `body` to the `skip`-th (from 0) pure ACK without SACK going in `dir`
/// between `src` and `dst` once `armed` is set; every other packet passes.
fn add_to_pure_ack(
    p: &mut Pair,
    dir: Dir,
    (src, dst): (IpAddr, IpAddr),
    skip: usize,
    body: Vec<u8>,
) -> Rc<Cell<bool>> {
    let armed = Rc::new(Cell::new(true));
    let seen = Cell::new(0usize);
    let arm = armed.clone();
    p.filter = Some(Box::new(move |d, pkt| {
        if d != dir || !arm.get() || addrs(pkt) != (src, dst) {
            return Verdict::Pass;
        }
        let s = Seg::parse(pkt);
        if !s.pure_ack() || !s.sack.is_empty() {
            return Verdict::Pass;
        }
        seen.set(seen.get() + 1);
        if seen.get() <= skip {
            return Verdict::Pass;
        }
        arm.set(false);
        let (ip, r) = braid_wire::parse_ip_tcp(pkt).unwrap();
        let mut r2 = r;
        assert!(r2.options.mptcp.push(30, &body), "room for one more option");
        let mut out = Vec::new();
        braid_wire::emit_ip_tcp(&ip, &r2, &mut out);
        assert!(
            mp_opts(&out).len() == r.options.mptcp.len() + 1,
            "the option fits in the segment"
        );
        Verdict::Replace(vec![out])
    }));
    armed
}

/// The keys of the connection, from the client's third ACK: (client's, server's).
fn keys(p: &Pair) -> (u64, u64) {
    p.log
        .iter()
        .filter(|(_, d, _)| *d == Dir::AtoB)
        .find_map(|(_, _, pk)| {
            mp_opts(pk).into_iter().find_map(|o| match o {
                MptcpOption::MpCapable(m) => m.sender_key.zip(m.receiver_key),
                _ => None,
            })
        })
        .expect("third ACK with both keys")
}

fn closed_with(events: &[Event], h: ConnHandle) -> Option<CloseReason> {
    events.iter().find_map(|e| match e {
        Event::Closed(x, r) if *x == h => Some(*r),
        _ => None,
    })
}

#[test]
fn mp_prio_moves_the_peers_sending_off_a_subflow_and_back() {
    let (mut p, ca, cb) = two_subflows();
    let before = sent_per_subflow(&p, true, ca);
    assert!(before[1] > 0, "both subflows carried data: {before:?}");

    // B, the receiver, asks A to use the second subflow (A2-B2) only as a backup.
    let from = p.log.len();
    let now = p.now;
    p.b.set_subflow_backup(now, cb, 1, true).unwrap();
    let ok = p.run_until(Duration::from_secs(2), |p| p.a.counters().mp_prio_rx == 1);
    assert!(ok, "MP_PRIO did not arrive");
    assert_eq!(p.b.counters().mp_prio_tx, 1);
    let prio: Vec<_> = p.log[from..]
        .iter()
        .filter(|(_, d, pk)| {
            *d == Dir::BtoA
                && mp_opts(pk).iter().any(|o| {
                    matches!(
                        o,
                        MptcpOption::MpPrio {
                            backup: true,
                            addr_id: None
                        }
                    )
                })
        })
        .collect();
    assert_eq!(prio.len(), 1, "one MP_PRIO");
    assert_eq!(addrs(&prio[0].2), (B2, A2), "on the subflow it concerns");
    assert!(Seg::parse(&prio[0].2).pure_ack(), "on a pure ACK");
    assert!(
        mp_opts(&prio[0].2)
            .iter()
            .any(|o| matches!(o, MptcpOption::Dss(_))),
        "beside the DSS"
    );
    let sa = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
    assert!(sa[1].peer_backup && !sa[1].backup && !sa[0].peer_backup);
    let sb = p.b.conn_info(cb).unwrap().mptcp.unwrap().subflows;
    assert!(sb[1].backup && !sb[1].peer_backup);

    // A sends new data on the regular subflow only.
    let n = 4 << 20;
    let data = pattern(n, 3);
    let s0 = sent_per_subflow(&p, true, ca);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(120)) == data);
    let s1 = sent_per_subflow(&p, true, ca);
    assert_eq!(s1[1], s0[1], "nothing new on the backup subflow");
    assert!(s1[0] - s0[0] >= n as u64);
    // B honours its own request for its sending too.
    let data = pattern(1 << 20, 4);
    let b0 = sent_per_subflow(&p, false, cb);
    assert!(p.transfer_dir(Dir::BtoA, cb, ca, &data, Duration::from_secs(60)) == data);
    let b1 = sent_per_subflow(&p, false, cb);
    assert_eq!(b1[1], b0[1], "B keeps off its backup subflow");

    // B=0: the subflow is regular again.
    let now = p.now;
    p.b.set_subflow_backup(now, cb, 1, false).unwrap();
    let ok = p.run_until(Duration::from_secs(2), |p| p.a.counters().mp_prio_rx == 2);
    assert!(ok, "second MP_PRIO did not arrive");
    assert!(!p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows[1].peer_backup);
    let data = pattern(n, 5);
    let s0 = sent_per_subflow(&p, true, ca);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(120)) == data);
    let s1 = sent_per_subflow(&p, true, ca);
    assert!(
        s1[1] - s0[1] > (n / 32) as u64,
        "the subflow carries data again: {s0:?} -> {s1:?}"
    );

    // Bad requests.
    let now = p.now;
    assert_eq!(
        p.b.set_subflow_backup(now, cb, 7, true),
        Err(Error::InvalidState(TcpState::Established))
    );
    assert_eq!(
        p.b.set_subflow_backup(now, ConnHandle(999), 0, true),
        Err(Error::UnknownConnection)
    );
}

#[test]
fn remove_addr_closes_the_subflow_to_that_address_and_the_transfer_goes_on() {
    let (mut p, ca, cb) = two_subflows();
    // The id B announced B2 with.
    let id = p
        .log
        .iter()
        .filter(|(_, d, _)| *d == Dir::BtoA)
        .find_map(|(_, _, pk)| {
            mp_opts(pk).into_iter().find_map(|o| match o {
                MptcpOption::AddAddr(a) if !a.is_echo() && a.addr == B2 => Some(a.addr_id),
                _ => None,
            })
        })
        .expect("B announced B2");
    assert_ne!(id, 0);
    let from = p.log.len();
    // B removes B2 while A sends: the REMOVE_ADDR rides on B's 20th pure ACK of the transfer.
    let body = MptcpOption::RemoveAddr { addr_ids: &[id] }.emit_to_vec();
    let armed = add_to_pure_ack(&mut p, Dir::BtoA, (B, A), 20, body);
    let n = 8 << 20;
    let data = pattern(n, 6);
    let s0 = sent_per_subflow(&p, true, ca);
    assert!(
        p.transfer(ca, cb, &data, Duration::from_secs(120)) == data,
        "transfer intact"
    );
    assert!(!armed.get(), "REMOVE_ADDR was sent");
    assert_eq!(p.a.counters().mp_rm_addr, 1);
    let s1 = sent_per_subflow(&p, true, ca);
    assert!(
        s1[1] - s0[1] < (n / 2) as u64 && s1[0] - s0[0] > (n / 2) as u64,
        "the rest went on the remaining subflow: {s0:?} -> {s1:?}"
    );
    let sa = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
    assert!(sa[1].closed && !sa[0].closed, "{sa:?}");
    // A reset the subflow with MP_TCPRST; B saw the RST.
    let rst = p.log[from..].iter().any(|(_, d, pk)| {
        *d == Dir::AtoB
            && addrs(pk) == (A2, B2)
            && Seg::parse(pk).rst()
            && mp_opts(pk)
                .iter()
                .any(|o| matches!(o, MptcpOption::MpTcpRst { .. }))
    });
    assert!(rst, "RST with MP_TCPRST on the removed path");
    assert!(p.b.conn_info(cb).unwrap().mptcp.unwrap().subflows[1].closed);
    // The path manager does not go back to the removed address.
    p.run_for(Duration::from_secs(5));
    assert_eq!(p.a.counters().mp_join_syn_tx, 1);
    assert_eq!(live_subflows(&p, true, ca), 1);
    // And the connection still closes in order.
    let now = p.now;
    p.a.shutdown(now, ca).unwrap();
    p.b.shutdown(now, cb).unwrap();
    let ok = p.run_until(Duration::from_secs(200), |p| {
        closed_with(&p.events_a, ca).is_some() && closed_with(&p.events_b, cb).is_some()
    });
    assert!(ok, "both ends close");
    assert_eq!(closed_with(&p.events_a, ca), Some(CloseReason::Normal));
}

#[test]
fn remove_addr_id_0_closes_the_initial_subflow_but_never_the_last() {
    // Two subflows: id 0 (B's initial address) names subflow 0; subflow 1 carries on.
    let (mut p, ca, cb) = two_subflows();
    let body = MptcpOption::RemoveAddr { addr_ids: &[0] }.emit_to_vec();
    let armed = add_to_pure_ack(&mut p, Dir::BtoA, (B2, A2), 5, body);
    let data = pattern(4 << 20, 7);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(120)) == data);
    assert!(!armed.get(), "REMOVE_ADDR was sent");
    let sa = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
    assert!(sa[0].closed && !sa[1].closed, "{sa:?}");
    let data = pattern(1 << 20, 8);
    assert!(p.transfer_dir(Dir::BtoA, cb, ca, &data, Duration::from_secs(60)) == data);

    // One subflow: removing its address would end the connection; it stays.
    let mut p = Pair::default_pair();
    let (ca, cb) = p.establish(80);
    let body = MptcpOption::RemoveAddr { addr_ids: &[0] }.emit_to_vec();
    let armed = add_to_pure_ack(&mut p, Dir::BtoA, (B, A), 2, body);
    let data = pattern(1 << 20, 9);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(60)) == data);
    assert!(!armed.get(), "REMOVE_ADDR was sent");
    assert_eq!(p.a.counters().mp_rm_addr, 1);
    assert_eq!(live_subflows(&p, true, ca), 1);
    assert!(closed_with(&p.events_a, ca).is_none());
}

/// Makes B send pure ACKs on both paths: A sends enough data for both subflows.
fn poke(p: &mut Pair, ca: ConnHandle, cb: ConnHandle) {
    let data = pattern(512 << 10, 10);
    let _ = p.transfer(ca, cb, &data, Duration::from_secs(5));
    p.run_for(Duration::from_millis(500));
}

#[test]
fn mp_fastclose_with_our_key_resets_the_connection_and_a_wrong_key_is_ignored() {
    let (mut p, ca, cb) = two_subflows();
    let (key_a, _) = keys(&p);

    // A wrong key: ignored and counted; the connection goes on.
    let body = MptcpOption::MpFastclose {
        receiver_key: key_a ^ 1,
    }
    .emit_to_vec();
    let armed = add_to_pure_ack(&mut p, Dir::BtoA, (B, A), 0, body);
    poke(&mut p, ca, cb);
    assert!(!armed.get(), "MP_FASTCLOSE was sent");
    assert_eq!(p.a.counters().mp_fastclose_bad_key, 1);
    assert_eq!(p.a.counters().mp_fastclose_rx, 0);
    let data = pattern(1 << 20, 11);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(60)) == data);
    assert_eq!(live_subflows(&p, true, ca), 2);
    assert!(closed_with(&p.events_a, ca).is_none());

    // Our key on an ACK (RFC 8684 §3.5 option A): every subflow is reset, the application
    // sees a reset, and so does the peer.
    let from = p.log.len();
    let body = MptcpOption::MpFastclose {
        receiver_key: key_a,
    }
    .emit_to_vec();
    let armed = add_to_pure_ack(&mut p, Dir::BtoA, (B2, A2), 0, body);
    poke(&mut p, ca, cb);
    assert!(!armed.get(), "MP_FASTCLOSE was sent");
    let ok = p.run_until(Duration::from_secs(2), |p| {
        closed_with(&p.events_a, ca).is_some() && closed_with(&p.events_b, cb).is_some()
    });
    assert!(ok, "both ends closed");
    assert_eq!(p.a.counters().mp_fastclose_rx, 1);
    assert_eq!(closed_with(&p.events_a, ca), Some(CloseReason::Reset));
    assert_eq!(closed_with(&p.events_b, cb), Some(CloseReason::Reset));
    let sa = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
    assert!(sa.iter().all(|s| s.closed), "{sa:?}");
    for path in [(A, B), (A2, B2)] {
        let rst = p.log[from..]
            .iter()
            .any(|(_, d, pk)| *d == Dir::AtoB && addrs(pk) == path && Seg::parse(pk).rst());
        assert!(rst, "RST on {path:?}");
    }
    let mut buf = [0u8; 100];
    assert_eq!(p.a.recv(ca, &mut buf), Err(Error::ConnectionReset));
    assert!(p.a.send(ca, b"late").is_err());
}

#[test]
fn abort_sends_mp_fastclose_with_the_peer_key_on_every_subflow() {
    let (mut p, ca, cb) = two_subflows();
    let (_, key_b) = keys(&p);
    let from = p.log.len();
    let now = p.now;
    p.a.abort(now, ca).unwrap();
    let ok = p.run_until(Duration::from_secs(2), |p| {
        closed_with(&p.events_b, cb).is_some()
    });
    assert!(ok, "the peer tore the connection down");
    assert_eq!(closed_with(&p.events_a, ca), Some(CloseReason::Aborted));
    assert_eq!(closed_with(&p.events_b, cb), Some(CloseReason::Reset));
    let rsts: Vec<_> = p.log[from..]
        .iter()
        .filter(|(_, d, pk)| *d == Dir::AtoB && Seg::parse(pk).rst())
        .collect();
    assert_eq!(rsts.len(), 2, "one RST per subflow");
    let mut paths: Vec<_> = rsts.iter().map(|(_, _, pk)| addrs(pk)).collect();
    paths.sort();
    assert_eq!(paths, vec![(A, B), (A2, B2)]);
    for (_, _, pk) in &rsts {
        let o = mp_opts(pk);
        assert!(
            o.contains(&MptcpOption::MpFastclose {
                receiver_key: key_b
            }),
            "{o:?}"
        );
        assert!(o.iter().any(|o| matches!(o, MptcpOption::MpTcpRst { .. })));
    }
    assert_eq!(p.a.counters().mp_fastclose_tx, 2);
    assert!(p.b.counters().mp_fastclose_rx >= 1);
    assert_eq!(p.b.counters().mp_fastclose_bad_key, 0);
    assert!(p
        .b
        .conn_info(cb)
        .unwrap()
        .mptcp
        .unwrap()
        .subflows
        .iter()
        .all(|s| s.closed));
    let mut buf = [0u8; 100];
    assert_eq!(p.b.recv(cb, &mut buf), Err(Error::ConnectionReset));
}

#[test]
fn abort_after_fallback_sends_a_plain_rst() {
    // The server answers without MP_CAPABLE: plain TCP, nothing MPTCP on the RST.
    let mut cfg_b = EndpointConfig::default();
    cfg_b.mptcp.enabled = false;
    let mut p = Pair::new(EndpointConfig::default(), cfg_b, Duration::from_millis(10));
    let (ca, cb) = p.establish(80);
    assert!(p.a.conn_info(ca).unwrap().mptcp.unwrap().fallback);
    let from = p.log.len();
    let now = p.now;
    p.a.abort(now, ca).unwrap();
    let ok = p.run_until(Duration::from_secs(2), |p| {
        closed_with(&p.events_b, cb).is_some()
    });
    assert!(ok);
    let rst = p.log[from..]
        .iter()
        .find(|(_, d, pk)| *d == Dir::AtoB && Seg::parse(pk).rst())
        .expect("RST");
    assert!(mp_opts(&rst.2).is_empty());
    assert_eq!(p.a.counters().mp_fastclose_tx, 0);
}
