//! MPTCP v1 over one subflow: MP_CAPABLE handshake, DSS on every segment, DATA_FIN and close,
//! fallback to TCP (RFC 8684 §3.1, §3.3, §3.7), and refused joins (§3.2).
mod common;
use braid_proto::{EndpointConfig, Event, TcpState};
use braid_wire::mptcp::{MptcpOption, ResetReason};
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

/// The packet with its MPTCP options removed (a middlebox stripping them).
fn strip(packet: &[u8]) -> Vec<u8> {
    let (ip, mut r) = braid_wire::parse_ip_tcp(packet).expect("valid packet");
    r.options.mptcp = Default::default();
    let mut out = Vec::new();
    braid_wire::emit_ip_tcp(&ip, &r, &mut out);
    out
}

fn plain() -> EndpointConfig {
    let mut c = EndpointConfig::default();
    c.mptcp.enabled = false;
    c
}

fn pair(a: EndpointConfig, b: EndpointConfig) -> Pair {
    Pair::new(a, b, Duration::from_millis(10))
}

/// Moves `n` bytes each way, checks them, closes both ends in order.
fn both_ways_and_close(
    p: &mut Pair,
    n: usize,
) -> (braid_proto::ConnHandle, braid_proto::ConnHandle) {
    let (ca, cb) = p.establish(80);
    let up = pattern(n, 1);
    let got = p.transfer(ca, cb, &up, Duration::from_secs(120));
    assert!(
        got == up,
        "A->B data intact ({} of {})",
        got.len(),
        up.len()
    );
    let down = pattern(n, 2);
    let got = p.transfer_dir(Dir::BtoA, cb, ca, &down, Duration::from_secs(120));
    assert!(
        got == down,
        "B->A data intact ({} of {})",
        got.len(),
        down.len()
    );
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
    (ca, cb)
}

#[test]
fn mp_capable_handshake_transfer_and_close() {
    let mut p = pair(EndpointConfig::default(), EndpointConfig::default());
    let (ca, cb) = both_ways_and_close(&mut p, 4 << 20);

    let ia = p.a.conn_info(ca).unwrap().mptcp.expect("MPTCP on A");
    let ib = p.b.conn_info(cb).unwrap().mptcp.expect("MPTCP on B");
    assert!(!ia.fallback && !ib.fallback);
    assert_eq!(ia.remote_token, ib.local_token);
    assert_eq!(ib.remote_token, ia.local_token);
    assert_eq!(ia.subflows.len(), 1);
    assert_eq!(p.a.counters().mp_capable_synack_rx, 1);
    assert_eq!(p.b.counters().mp_capable_syn_rx, 1);
    assert_eq!(p.b.counters().mp_capable_ack_rx, 1);
    assert_eq!(p.a.counters().mp_capable_fallback_synack, 0);
    assert_eq!(p.b.counters().mp_capable_fallback_ack, 0);

    // The handshake: SYN without key, SYN/ACK with B's key, third ACK with both.
    let mut seen_syn = false;
    let mut seen_synack = false;
    let mut seen_third = false;
    let (mut data_fin_a, mut data_fin_b) = (false, false);
    let mut dss_data = 0;
    let mut bare_data = 0;
    // Per direction: the subflow sequence ranges of the mappings sent.
    let mut cover: [Vec<(u32, u32)>; 2] = [Vec::new(), Vec::new()];
    let covered = |c: &[(u32, u32)], s: &Seg| {
        let end = s.seq.wrapping_add(s.payload.len() as u32);
        c.iter().any(|&(a, z)| {
            s.seq.wrapping_sub(a) <= z.wrapping_sub(a) && end.wrapping_sub(a) <= z.wrapping_sub(a)
        })
    };
    for (_, dir, pkt) in &p.log {
        let s = Seg::parse(pkt);
        let opts = mp_opts(pkt);
        if s.rst() {
            continue;
        }
        assert!(opts.len() <= 1, "one MPTCP option per segment");
        let o = opts.first().copied();
        if s.syn() && !s.is_ack() {
            let Some(MptcpOption::MpCapable(m)) = o else {
                panic!("SYN without MP_CAPABLE")
            };
            assert_eq!(m.version, 1);
            assert!(m.sender_key.is_none());
            seen_syn = true;
        } else if s.syn() {
            let Some(MptcpOption::MpCapable(m)) = o else {
                panic!("SYN/ACK without MP_CAPABLE")
            };
            assert!(m.sender_key.is_some() && m.receiver_key.is_none());
            seen_synack = true;
        } else {
            match o {
                Some(MptcpOption::MpCapable(m)) => {
                    assert_eq!(*dir, Dir::AtoB, "only the client repeats MP_CAPABLE");
                    assert!(m.sender_key.is_some() && m.receiver_key.is_some());
                    if s.payload.is_empty() {
                        seen_third = true;
                    } else {
                        assert_eq!(m.data_len, Some(s.payload.len() as u16));
                        cover[0].push((s.seq, s.seq.wrapping_add(s.payload.len() as u32)));
                    }
                }
                Some(MptcpOption::Dss(d)) => {
                    let k = (*dir == Dir::BtoA) as usize;
                    assert!(
                        d.data_ack.is_some() || !s.payload.is_empty(),
                        "DATA_ACK on every pure ACK"
                    );
                    if let Some(m) = d.mapping.filter(|_| !s.payload.is_empty()) {
                        // RFC 8684 §3.3.1: a mapping may cover several segments; braid sends
                        // it on the first one.
                        assert!(
                            m.data_len as usize >= s.payload.len(),
                            "mapping covers the payload"
                        );
                        cover[k].push((s.seq, s.seq.wrapping_add(m.data_len as u32)));
                        dss_data += 1;
                    } else if !s.payload.is_empty() {
                        assert!(covered(&cover[k], &s), "data outside every mapping");
                        bare_data += 1;
                    }
                    if d.data_fin {
                        match dir {
                            Dir::AtoB => data_fin_a = true,
                            Dir::BtoA => data_fin_b = true,
                        }
                    }
                }
                None if !s.payload.is_empty() => {
                    let k = (*dir == Dir::BtoA) as usize;
                    assert!(covered(&cover[k], &s), "data outside every mapping");
                    bare_data += 1;
                }
                other => panic!("unexpected MPTCP option {other:?} on {s:?}"),
            }
        }
    }
    assert!(seen_syn && seen_synack && seen_third);
    assert!(dss_data > 50, "data carried DSS mappings");
    assert!(
        bare_data > 10 * dss_data,
        "most data segments need no DSS ({bare_data} without, {dss_data} with)"
    );
    assert!(data_fin_a && data_fin_b, "DATA_FIN both ways");
    let ca_info = p.a.conn_info(ca).unwrap();
    assert!(matches!(
        ca_info.state,
        TcpState::TimeWait | TcpState::Closed
    ));
    assert!(ca_info.mss <= 1460 - 12 - 24, "MSS leaves room for the DSS");
}

#[test]
fn fallback_when_the_server_does_not_speak_mptcp() {
    let mut p = pair(EndpointConfig::default(), plain());
    let (ca, cb) = both_ways_and_close(&mut p, 1 << 20);
    assert!(p.a.conn_info(ca).unwrap().mptcp.unwrap().fallback);
    assert!(p.b.conn_info(cb).unwrap().mptcp.is_none());
    assert_eq!(p.a.counters().mp_capable_fallback_synack, 1);
    // After the SYN, nothing carries MPTCP options.
    let later = p.log.iter().filter(|(_, _, pk)| !Seg::parse(pk).syn());
    assert!(later.into_iter().all(|(_, _, pk)| mp_opts(pk).is_empty()));
}

#[test]
fn plain_client_gets_plain_tcp_from_an_mptcp_server() {
    let mut p = pair(plain(), EndpointConfig::default());
    let (ca, cb) = both_ways_and_close(&mut p, 1 << 20);
    assert!(p.a.conn_info(ca).unwrap().mptcp.is_none());
    assert!(p.b.conn_info(cb).unwrap().mptcp.is_none());
    assert_eq!(p.b.counters().mp_capable_syn_rx, 0);
    assert!(p.log.iter().all(|(_, _, pk)| mp_opts(pk).is_empty()));
}

#[test]
fn syn_ack_stripped_falls_back() {
    let mut p = pair(EndpointConfig::default(), EndpointConfig::default());
    p.filter = Some(Box::new(|dir, pkt| {
        let s = Seg::parse(pkt);
        if dir == Dir::BtoA && s.syn() {
            Verdict::Replace(vec![strip(pkt)])
        } else {
            Verdict::Pass
        }
    }));
    let (ca, cb) = both_ways_and_close(&mut p, 1 << 20);
    assert!(p.a.conn_info(ca).unwrap().mptcp.unwrap().fallback);
    // B never heard the third ACK's keys; it falls back on the first segment without them.
    assert!(p.b.conn_info(cb).unwrap().mptcp.unwrap().fallback);
    assert_eq!(p.a.counters().mp_capable_fallback_synack, 1);
    assert_eq!(p.b.counters().mp_capable_fallback_ack, 1);
}

#[test]
fn third_ack_stripped_falls_back_on_both_sides() {
    let mut p = pair(EndpointConfig::default(), EndpointConfig::default());
    let mut done = false;
    p.filter = Some(Box::new(move |dir, pkt| {
        let s = Seg::parse(pkt);
        if !done && dir == Dir::AtoB && !s.syn() && s.is_ack() {
            done = true;
            Verdict::Replace(vec![strip(pkt)])
        } else {
            Verdict::Pass
        }
    }));
    let (ca, cb) = both_ways_and_close(&mut p, 1 << 20);
    assert!(p.b.conn_info(cb).unwrap().mptcp.unwrap().fallback);
    assert!(p.a.conn_info(ca).unwrap().mptcp.unwrap().fallback);
    assert_eq!(p.b.counters().mp_capable_fallback_ack, 1);
    assert_eq!(p.a.counters().mp_capable_fallback_ack, 1);
}

#[test]
fn third_ack_lost_and_first_data_without_mptcp_falls_back() {
    let mut p = pair(EndpointConfig::default(), EndpointConfig::default());
    let mut seen = 0;
    p.filter = Some(Box::new(move |dir, pkt| {
        let s = Seg::parse(pkt);
        if dir == Dir::AtoB && !s.syn() && seen < 2 {
            if s.pure_ack() && seen == 0 {
                seen = 1;
                return Verdict::Drop; // the third ACK
            }
            if !s.payload.is_empty() {
                seen = 2;
                return Verdict::Replace(vec![strip(pkt)]); // first data, MP_CAPABLE removed
            }
        }
        Verdict::Pass
    }));
    p.b.listen(80).unwrap();
    let ca = p.a.connect(p.now, A, SocketAddr::new(B, 80)).unwrap();
    p.run_until(Duration::from_secs(2), |p| {
        p.events_a.contains(&Event::Connected(ca))
    });
    let data = pattern(300_000, 3);
    let mut sent = p.a.send(ca, &data).unwrap();
    let mut cb = None;
    let ok = p.run_until(Duration::from_secs(5), |p| {
        cb = cb.or_else(|| p.b.accept(80));
        cb.is_some()
    });
    assert!(ok, "accepted");
    let cb = cb.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    p.run_until(Duration::from_secs(60), |p| {
        if sent < data.len() {
            if let Ok(n) = p.a.send(ca, &data[sent..]) {
                sent += n;
            }
        }
        while let Ok(n) = p.b.recv(cb, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() >= data.len()
    });
    assert!(got == data, "data intact after fallback");
    assert!(p.b.conn_info(cb).unwrap().mptcp.unwrap().fallback);
    assert!(p.a.conn_info(ca).unwrap().mptcp.unwrap().fallback);
    assert_eq!(p.b.counters().mp_capable_fallback_ack, 1);
}

#[test]
fn join_with_unknown_token_is_refused_with_mp_tcprst() {
    let mut p = pair(EndpointConfig::default(), EndpointConfig::default());
    let (ca, cb) = p.establish(80);
    let syn = Seg::new(1000, 0, braid_wire::TcpFlags::SYN)
        .build(SocketAddr::new(A, 40000), SocketAddr::new(B, 80));
    // Add an MP_JOIN for a token nobody has.
    let (ip, mut r) = braid_wire::parse_ip_tcp(&syn).unwrap();
    let body = MptcpOption::MpJoinSyn {
        backup: false,
        addr_id: 1,
        token: 0xdead_beef,
        nonce: 7,
    }
    .emit_to_vec();
    r.options.mptcp.push(30, &body);
    let mut pkt = Vec::new();
    braid_wire::emit_ip_tcp(&ip, &r, &mut pkt);
    let from = p.log.len();
    p.deliver_now(Dir::AtoB, &pkt);
    let rst = p.log[from..]
        .iter()
        .find(|(_, d, pk)| *d == Dir::BtoA && Seg::parse(pk).rst())
        .expect("RST sent");
    let opts = mp_opts(&rst.2);
    assert!(matches!(
        opts.first(),
        Some(MptcpOption::MpTcpRst {
            reason: ResetReason::MptcpError,
            ..
        })
    ));
    assert_eq!(p.b.counters().mp_join_no_token_found, 1);
    assert_eq!(p.b.counters().mp_rst_tx, 1);
    assert!(p.b.accept(80).is_none(), "no connection from a join");
    // The existing connection is unaffected.
    let data = pattern(100_000, 9);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(30)) == data);
}

#[test]
fn malformed_mptcp_options_are_ignored() {
    let mut p = pair(EndpointConfig::default(), EndpointConfig::default());
    // Corrupt every DSS from A to B into a malformed length; data must still flow (as TCP
    // segments; the DATA_ACK is simply missing from them).
    p.filter = Some(Box::new(|dir, pkt| {
        let (ip, r) = braid_wire::parse_ip_tcp(pkt).unwrap();
        if dir != Dir::AtoB || r.flags.syn() {
            return Verdict::Pass;
        }
        let Some(&(_, body)) = r.options.mptcp.as_slice().first() else {
            return Verdict::Pass;
        };
        if body.first().map(|b| b >> 4) != Some(2) {
            return Verdict::Pass;
        }
        let bad = [body[0], body[1] | 0x04, 0, 0, 0]; // claims a mapping it does not carry
        let mut r2 = r;
        r2.options.mptcp = Default::default();
        r2.options.mptcp.push(30, &bad);
        let mut out = Vec::new();
        braid_wire::emit_ip_tcp(&ip, &r2, &mut out);
        Verdict::Replace(vec![out])
    }));
    let (ca, cb) = p.establish(80);
    let data = pattern(200_000, 4);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(30)) == data);
}

/// The receiver's DATA_FIN arrives alone on pure ACKs to a subflow that already sent its FIN
/// (FIN-WAIT-2), while the peer holds back its own subflow FIN until the DATA_FIN is
/// acknowledged, as Linux does: the DATA_FIN must be acknowledged at once (found against Linux:
/// an unanswered DATA_FIN kept the connection open until the peer's 60 s fast close).
#[test]
fn data_fin_alone_after_our_subflow_fin_is_acknowledged_at_once() {
    let mut p = pair(EndpointConfig::default(), EndpointConfig::default());
    // B's subflow FINs lose their FIN flag: what arrives is the DATA_FIN alone on a pure ACK,
    // as Linux sends it before its subflow FIN.
    p.filter = Some(Box::new(|dir, pkt| {
        if dir == Dir::BtoA && Seg::parse(pkt).fin() {
            let (ip, mut r) = braid_wire::parse_ip_tcp(pkt).expect("valid packet");
            r.flags = braid_wire::TcpFlags(r.flags.0 & !braid_wire::TcpFlags::FIN);
            let mut out = Vec::new();
            braid_wire::emit_ip_tcp(&ip, &r, &mut out);
            Verdict::Replace(vec![out])
        } else {
            Verdict::Pass
        }
    }));
    let (ca, cb) = p.establish(80);
    let up = pattern(256 << 10, 4);
    let mut sent = p.a.send(ca, &up).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut a_shut = false;
    let eof = p.run_until(Duration::from_secs(30), |p| {
        let now = p.now;
        if sent < up.len() {
            sent += p.a.send(ca, &up[sent..]).unwrap_or(0);
        } else if !a_shut {
            a_shut = p.a.shutdown(now, ca).is_ok();
        }
        loop {
            match p.b.recv(cb, &mut buf) {
                Ok(0) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => return false,
            }
        }
    });
    assert!(eof && got == up, "B read A's data and its end");
    p.run_for(Duration::from_secs(1));
    let info = p.a.conn_info(ca).unwrap().mptcp.unwrap();
    assert_eq!(info.subflows[0].state, TcpState::FinWait2);
    let from = p.log.len();
    let now = p.now;
    p.b.shutdown(now, cb).unwrap();
    p.run_for(Duration::from_secs(2));
    // B's DATA_FIN (DSN of the mapping) and the first DATA_ACK from A beyond it.
    let mut fin_at = None;
    let mut acked_at = None;
    for (t, dir, pkt) in &p.log[from..] {
        for o in mp_opts(pkt) {
            let MptcpOption::Dss(d) = o else { continue };
            match dir {
                Dir::BtoA if d.data_fin && fin_at.is_none() => {
                    let m = d.mapping.expect("DATA_FIN has a mapping");
                    fin_at = Some((*t, m.dsn.value as u32));
                }
                Dir::AtoB => {
                    if let (Some((_, dsn)), Some(a)) = (fin_at, d.data_ack) {
                        if acked_at.is_none() && (a.value as u32).wrapping_sub(dsn) as i32 > 0 {
                            acked_at = Some(*t);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let (t_fin, _) = fin_at.expect("B sent its DATA_FIN");
    let t_ack = acked_at.expect("A acknowledged B's DATA_FIN");
    // One round trip (10 ms each way), not a retransmission timer.
    assert!(
        t_ack - t_fin <= Duration::from_millis(25),
        "acknowledged after {:?}",
        t_ack - t_fin
    );
}

/// braid connect → a plain-TCP server, both sending at once (the Linux interop case
/// `braid_client_to_plain_tcp_linux_server_falls_back`): the SYN/ACK has no MP_CAPABLE, so
/// plain TCP. We shut down first; the server's last data and FIN arrive, then its FIN again
/// (our ACK was late), and our second ACK reaches a socket that is gone: Linux answers it with
/// a RST. Both directions were complete and acknowledged, so the connection ended normally
/// and the data the application has not read yet is still there, then the EOF.
#[test]
fn fallback_rst_in_time_wait_is_a_normal_end_and_keeps_unread_data() {
    const PISS: u32 = 5000;
    let mut l = Lone::new(EndpointConfig::default());
    let (h, syn) = l.connect();
    let iss = syn.seq;
    let mut sa = Seg::new(PISS, iss.wrapping_add(1), SYN | ACK);
    sa.mss = Some(1460);
    l.input(&sa);
    assert_eq!(l.state(h), TcpState::Established);
    assert!(l.info(h).mptcp.expect("MPTCP connection").fallback);
    assert_eq!(l.ep.counters().mp_capable_fallback_synack, 1);
    assert_eq!(l.ep.send(h, b"request"), Ok(7));
    l.ep.shutdown(l.now, h).unwrap();
    let out = l.drain();
    let our_fin = out.iter().find(|s| s.fin()).expect("our FIN");
    let our_end = our_fin.seq.wrapping_add(our_fin.seg_len());
    assert_eq!(our_end, iss.wrapping_add(1 + 7 + 1));
    let reply = pattern(3000, 4);
    let mut seq = PISS + 1;
    for chunk in reply.chunks(1460) {
        l.input(&Seg::new(seq, our_end, ACK).data(chunk));
        seq += chunk.len() as u32;
    }
    assert_eq!(l.state(h), TcpState::FinWait2);
    let out = l.input(&Seg::new(seq, our_end, ACK | FIN));
    assert_eq!(out.last().map(|s| s.ack), Some(seq + 1), "{out:?}");
    assert_eq!(l.state(h), TcpState::TimeWait);
    let out = l.input(&Seg::new(seq, our_end, ACK | FIN));
    assert_eq!(
        out.len(),
        1,
        "the retransmitted FIN is ACKed again: {out:?}"
    );
    let out = l.input(&Seg::new(out[0].ack, 0, RST));
    assert!(out.is_empty(), "no answer to a RST: {out:?}");
    assert_eq!(l.state(h), TcpState::Closed);
    let closed: Vec<_> = l
        .events
        .iter()
        .filter(|e| matches!(e, Event::Closed(..)))
        .collect();
    assert_eq!(
        closed,
        [&Event::Closed(
            h,
            braid_proto::endpoint::CloseReason::Normal
        )]
    );
    let mut got = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        match l.ep.recv(h, &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("recv after {} bytes: {e}", got.len()),
        }
    }
    assert!(got == reply, "{} of {} bytes read", got.len(), reply.len());
    l.ep.release(l.now, h);
    assert!(l.drain().is_empty(), "nothing left to say");
    assert_eq!(l.ep.connection_count(), 0);
}
