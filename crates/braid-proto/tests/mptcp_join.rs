//! MPTCP with two subflows (RFC 8684 §3.2-§3.4): ADD_ADDR from the server, MP_JOIN with HMAC
//! checks, data over both subflows, refused joins, and a path blackholed mid-transfer.
mod common;
use braid_proto::{EndpointConfig, Event};
use braid_wire::mptcp::{MptcpOption, ResetReason};
use common::*;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn two_subflows_carry_data_both_ways_and_close() {
    let mut p = two_path_pair(EndpointConfig::default());
    let (ca, cb) = p.establish(80);
    let ok = p.run_until(Duration::from_secs(5), |p| {
        live_subflows(p, true, ca) == 2 && live_subflows(p, false, cb) == 2
    });
    assert!(ok, "second subflow not established");
    // The server announced B2 with an HMAC, the client echoed it and joined from A2 to B2.
    assert_eq!(p.a.counters().mp_add_addr, 1);
    assert!(p.b.counters().mp_echo_add >= 1);
    assert_eq!(p.a.counters().mp_join_syn_tx, 1);
    assert_eq!(p.b.counters().mp_join_syn_rx, 1);
    assert_eq!(p.a.counters().mp_join_synack_rx, 1);
    assert_eq!(p.b.counters().mp_join_ack_rx, 1);
    assert_eq!(p.a.counters().mp_join_synack_hmac_failure, 0);
    assert_eq!(p.b.counters().mp_join_ack_hmac_failure, 0);
    let info = p.a.conn_info(ca).unwrap().mptcp.unwrap();
    assert_eq!(
        (info.subflows[1].local.ip(), info.subflows[1].remote.ip()),
        (A2, B2)
    );
    assert_ne!(info.subflows[1].addr_id, 0);
    let joins: Vec<_> = p
        .log
        .iter()
        .filter(|(_, _, pk)| {
            mp_opts(pk)
                .iter()
                .any(|o| matches!(o, MptcpOption::MpJoinSyn { .. }))
        })
        .collect();
    assert_eq!(joins.len(), 1);
    assert_eq!(addrs(&joins[0].2), (A2, B2));

    let n = 8 << 20;
    let up = pattern(n, 1);
    assert!(
        p.transfer(ca, cb, &up, Duration::from_secs(120)) == up,
        "A->B intact"
    );
    let down = pattern(n, 2);
    let got = p.transfer_dir(Dir::BtoA, cb, ca, &down, Duration::from_secs(120));
    assert!(got == down, "B->A intact");
    for (ep, h, who) in [(&p.a, ca, "A"), (&p.b, cb, "B")] {
        let subs = ep.conn_info(h).unwrap().mptcp.unwrap().subflows;
        for (i, s) in subs.iter().enumerate() {
            assert!(
                s.bytes_sent > (n / 10) as u64,
                "{who}'s subflow {i} carried only {} bytes",
                s.bytes_sent
            );
            assert!(s.srtt.is_some() && !s.closed);
        }
    }
    // Both data directions used both address pairs on the wire.
    for dir in [Dir::AtoB, Dir::BtoA] {
        for (x, y) in [(A, B), (A2, B2)] {
            let bytes: usize = p
                .log
                .iter()
                .filter(|(_, d, pk)| {
                    *d == dir && {
                        let (s, t) = addrs(pk);
                        (s == x && t == y) || (s == y && t == x)
                    }
                })
                .map(|(_, _, pk)| pk.len())
                .sum();
            assert!(bytes > n / 10, "{dir:?} over {x}: {bytes} bytes");
        }
    }
    let now = p.now;
    p.a.shutdown(now, ca).unwrap();
    p.b.shutdown(now, cb).unwrap();
    let closed = p.run_until(Duration::from_secs(200), |p| {
        p.events_a
            .iter()
            .any(|e| matches!(e, Event::Closed(h, _) if *h == ca))
            && p.events_b
                .iter()
                .any(|e| matches!(e, Event::Closed(h, _) if *h == cb))
    });
    assert!(closed, "both ends close");
    assert!(p.events_a.contains(&Event::Closed(
        ca,
        braid_proto::endpoint::CloseReason::Normal
    )));
}

/// Rewrites the first MPTCP option of packets from `dir` matching `pick` with `f`.
fn corrupt(
    p: &mut Pair,
    dir: Dir,
    f: impl Fn(MptcpOption<'_>) -> Option<MptcpOption<'static>> + 'static,
) {
    p.filter = Some(Box::new(move |d, pkt| {
        if d != dir {
            return Verdict::Pass;
        }
        let (ip, r) = braid_wire::parse_ip_tcp(pkt).unwrap();
        let Some(Ok(o)) = MptcpOption::parse_list(r.options.mptcp).next() else {
            return Verdict::Pass;
        };
        let Some(new) = f(o) else {
            return Verdict::Pass;
        };
        let body = new.emit_to_vec();
        let mut r2 = r;
        r2.options.mptcp = Default::default();
        r2.options.mptcp.push(30, &body);
        let mut out = Vec::new();
        braid_wire::emit_ip_tcp(&ip, &r2, &mut out);
        Verdict::Replace(vec![out])
    }));
}

fn rst_with_reason(p: &Pair, dir: Dir) -> bool {
    p.log.iter().any(|(_, d, pk)| {
        *d == dir
            && Seg::parse(pk).rst()
            && mp_opts(pk).iter().any(|o| {
                matches!(
                    o,
                    MptcpOption::MpTcpRst {
                        reason: ResetReason::MptcpError,
                        ..
                    }
                )
            })
    })
}

#[test]
fn third_ack_with_wrong_hmac_is_refused_and_the_connection_goes_on() {
    let mut p = two_path_pair(EndpointConfig::default());
    corrupt(&mut p, Dir::AtoB, |o| match o {
        MptcpOption::MpJoinAck { mut hmac } => {
            hmac[0] ^= 1;
            Some(MptcpOption::MpJoinAck { hmac })
        }
        _ => None,
    });
    let (ca, cb) = p.establish(80);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.b.counters().mp_join_ack_hmac_failure, 1);
    assert!(p.b.counters().mp_rst_tx >= 1);
    assert!(rst_with_reason(&p, Dir::BtoA), "no RST with MP_TCPRST");
    assert_eq!(live_subflows(&p, false, cb), 1);
    let data = pattern(1 << 20, 5);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(60)) == data);
    let sa = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
    assert!(sa.len() == 2 && sa[1].closed, "{sa:?}");
    assert_eq!(sa[1].bytes_sent, 0, "no data on a refused subflow");
}

#[test]
fn synack_with_wrong_hmac_is_reset_by_the_client() {
    let mut p = two_path_pair(EndpointConfig::default());
    corrupt(&mut p, Dir::BtoA, |o| match o {
        MptcpOption::MpJoinSynAck {
            backup,
            addr_id,
            hmac,
            nonce,
        } => Some(MptcpOption::MpJoinSynAck {
            backup,
            addr_id,
            hmac: hmac ^ 1,
            nonce,
        }),
        _ => None,
    });
    let (ca, cb) = p.establish(80);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.a.counters().mp_join_synack_hmac_failure, 1);
    assert!(rst_with_reason(&p, Dir::AtoB), "no RST with MP_TCPRST");
    let data = pattern(1 << 20, 6);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(60)) == data);
    assert_eq!(live_subflows(&p, true, ca), 1);
}

#[test]
fn join_to_a_full_connection_is_refused() {
    let mut cfg = EndpointConfig::default();
    cfg.mptcp.max_subflows = 1;
    let mut p = two_path_pair(cfg);
    let (ca, cb) = p.establish(80);
    p.run_for(Duration::from_secs(2));
    // The client does not try beyond its own limit either.
    assert_eq!(p.a.counters().mp_join_syn_tx, 0);
    assert_eq!(live_subflows(&p, true, ca), 1);
    let data = pattern(200_000, 7);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(60)) == data);
}

#[test]
fn path_manager_none_opens_no_subflow() {
    let mut cfg = EndpointConfig::default();
    cfg.mptcp.path_manager = "none".into();
    let mut p = two_path_pair(cfg);
    let (ca, _cb) = p.establish(80);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.a.counters().mp_join_syn_tx, 0);
    assert_eq!(p.b.counters().mp_add_addr + p.a.counters().mp_add_addr, 0);
    assert_eq!(live_subflows(&p, true, ca), 1);
}

/// One path goes black (every packet of its address pair dropped) after `after` packets.
fn blackhole_mid_transfer(path2: bool, dir: Dir) {
    let mut p = two_path_pair(EndpointConfig::default());
    let (ca, cb) = p.establish(80);
    assert!(p.run_until(Duration::from_secs(5), |p| live_subflows(p, true, ca) == 2));
    let seen = Rc::new(Cell::new(0usize));
    let s2 = seen.clone();
    let (x, y) = if path2 { (A2, B2) } else { (A, B) };
    p.filter = Some(Box::new(move |_, pkt| {
        s2.set(s2.get() + 1);
        let (s, t) = addrs(pkt);
        let on_path = (s == x && t == y) || (s == y && t == x);
        if on_path && s2.get() > 400 {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    let data = pattern(8 << 20, 8);
    let got = match dir {
        Dir::AtoB => p.transfer(ca, cb, &data, Duration::from_secs(120)),
        Dir::BtoA => p.transfer_dir(Dir::BtoA, cb, ca, &data, Duration::from_secs(120)),
    };
    assert!(seen.get() > 400, "the blackhole never started");
    assert!(
        got == data,
        "intact after the blackhole ({} of {})",
        got.len(),
        data.len()
    );
    let sender = if dir == Dir::AtoB { &p.a } else { &p.b };
    assert!(sender.counters().mp_reinjections >= 1, "nothing reinjected");
}

#[test]
fn initial_path_blackholed_mid_transfer_stays_intact() {
    blackhole_mid_transfer(false, Dir::AtoB);
}

#[test]
fn joined_path_blackholed_mid_transfer_stays_intact() {
    blackhole_mid_transfer(true, Dir::AtoB);
}

#[test]
fn initial_path_blackholed_server_to_client_stays_intact() {
    blackhole_mid_transfer(false, Dir::BtoA);
}

#[test]
fn schedulers_move_data_intact() {
    for sched in ["roundrobin", "redundant", "minrtt"] {
        let mut cfg = EndpointConfig::default();
        cfg.mptcp.scheduler = sched.into();
        let mut p = two_path_pair(cfg);
        let (ca, cb) = p.establish(80);
        assert!(p.run_until(Duration::from_secs(5), |p| live_subflows(p, true, ca) == 2));
        let data = pattern(2 << 20, 9);
        assert!(
            p.transfer(ca, cb, &data, Duration::from_secs(60)) == data,
            "{sched}"
        );
        let subs = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
        for s in &subs {
            assert!(s.bytes_sent > 0, "{sched}: a subflow unused: {subs:?}");
        }
        if sched == "redundant" {
            // Every byte scheduled once both subflows could carry data goes on both (only the
            // first window went before the join completed); the slower copy is still on its
            // way when the receiver has read everything and keeps going until acknowledged.
            let all = data.len() as u64 * 97 / 100;
            let done = p.run_until(Duration::from_secs(10), |p| {
                let subs = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
                subs.iter().all(|s| s.bytes_sent >= all)
            });
            let subs = p.a.conn_info(ca).unwrap().mptcp.unwrap().subflows;
            assert!(done, "{subs:?}");
        }
    }
}

#[test]
fn random_mptcp_option_bytes_never_panic() {
    // A middlebox rewrites the MPTCP option bodies of some packets with random bytes (the
    // subtype kept, lengths varied). Whatever the data becomes, the engines must not panic
    // and must stay bounded.
    let mut moved = 0;
    for seed in 0..20u64 {
        let mut p = two_path_pair(EndpointConfig::default());
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        p.filter = Some(Box::new(move |_, pkt| {
            let (ip, r) = braid_wire::parse_ip_tcp(pkt).unwrap();
            let Some(&(_, body)) = r.options.mptcp.as_slice().first() else {
                return Verdict::Pass;
            };
            if rnd() % 8 != 0 || body.is_empty() {
                return Verdict::Pass;
            }
            let len = (rnd() % 28) as usize + 1;
            let mut bad: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            bad[0] = (body[0] & 0xf0) | (bad[0] & 0x0f);
            let mut r2 = r;
            r2.options.mptcp = Default::default();
            r2.options.mptcp.push(30, &bad);
            let mut out = Vec::new();
            braid_wire::emit_ip_tcp(&ip, &r2, &mut out);
            Verdict::Replace(vec![out])
        }));
        p.b.listen(80).unwrap();
        let ca =
            p.a.connect(p.now, A, std::net::SocketAddr::new(B, 80))
                .unwrap();
        let data = pattern(300_000, seed);
        let mut sent = 0;
        let mut buf = vec![0u8; 65536];
        let mut cb = None;
        p.run_until(Duration::from_secs(30), |p| {
            if cb.is_none() {
                cb = p.b.accept(80);
            }
            while sent < data.len() {
                match p.a.send(ca, &data[sent..]) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            if let Some(cb) = cb {
                while let Ok(n) = p.b.recv(cb, &mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
            false
        });
        assert!(p.a.connection_count() <= 1 && p.b.connection_count() <= 1);
        moved += cb
            .and_then(|h| p.b.conn_info(h))
            .map_or(0, |i| i.bytes_received);
        if let Some(i) = p.a.conn_info(ca).and_then(|i| i.mptcp) {
            assert!(i.subflows.len() <= 8);
        }
    }
    // The corruption is not so heavy that nothing moves.
    assert!(moved > 20 * 100_000, "only {moved} bytes moved");
}
