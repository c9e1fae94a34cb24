//! A transparent endpoint (`listen_transparent`): SYNs to any address and port are held until
//! the application accepts them (SYN/ACK), refuses them (RST) or forgets them (silence).

mod common;
use braid_proto::{EndpointConfig, Error, Event, PendingId, TcpState};
use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// An address the endpoint does not own: the client's original destination.
const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

fn transparent() -> Lone {
    let mut l = Lone::new(EndpointConfig::default());
    l.ep.listen_transparent();
    l.local = SocketAddr::new(DST, 443);
    l
}

fn syn(iss: u32) -> Seg {
    let mut s = Seg::new(iss, 0, SYN);
    s.mss = Some(1400);
    s.wscale = Some(7);
    s.sack_perm = true;
    s.ts = Some((1000, 0));
    s
}

fn pending(l: &Lone) -> Vec<(PendingId, SocketAddr, SocketAddr)> {
    l.events
        .iter()
        .filter_map(|e| match *e {
            Event::PendingSyn { id, local, remote } => Some((id, local, remote)),
            _ => None,
        })
        .collect()
}

#[test]
fn held_syn_is_answered_only_when_accepted() {
    let mut l = transparent();
    let out = l.input(&syn(5000));
    assert!(out.is_empty(), "a held SYN gets no answer yet: {out:?}");
    let p = pending(&l);
    assert_eq!(p.len(), 1, "{:?}", l.events);
    let (id, local, remote) = p[0];
    assert_eq!(local, SocketAddr::new(DST, 443), "original destination");
    assert_eq!(remote, l.peer);
    assert_eq!(l.ep.pending_count(), 1);
    // A retransmitted SYN while the decision is pending: no second event, no answer.
    l.now += Duration::from_secs(1);
    assert!(l.input(&syn(5000)).is_empty());
    assert_eq!(pending(&l).len(), 1);

    let h = l.ep.accept_pending(l.now, id).expect("accept");
    assert_eq!(l.ep.pending_count(), 0);
    // The SYN/ACK comes from the original destination.
    let mut buf = Vec::new();
    let t = l.ep.poll_transmit(l.now, &mut buf).expect("a SYN/ACK");
    assert_eq!((t.src, t.dst), (DST, A));
    assert_eq!(addrs(&buf), (DST, A));
    let sa = &Seg::parse(&buf);
    assert!(l.drain().is_empty());
    assert!(sa.has(SYN | ACK));
    assert_eq!(sa.ack, 5001);
    assert_eq!((sa.src_port, sa.dst_port), (443, PEER_PORT));
    assert!(sa.mss.is_some() && sa.wscale.is_some() && sa.sack_perm && sa.ts.is_some());
    let iss = sa.seq;
    let ack = Seg::new(5001, iss.wrapping_add(1), ACK).ts(1001, sa.ts.unwrap().0);
    assert!(l.input(&ack).is_empty());
    assert!(l.events.contains(&Event::Connected(h)), "{:?}", l.events);
    assert_eq!(l.state(h), TcpState::Established);
    assert_eq!(l.info(h).local, SocketAddr::new(DST, 443));
    // The peer's MSS is honoured: a large write goes out in segments of at most 1400 bytes
    // (less the timestamp option).
    l.ep.send(h, &pattern(5000, 1)).expect("send");
    let out = l.drain();
    assert!(!out.is_empty());
    assert!(out.iter().all(|s| s.payload.len() <= 1400 - 12), "{out:?}");
    // Data and a half-close from the client.
    let data = Seg::new(5001, iss.wrapping_add(1), ACK | PSH)
        .ts(1002, 0)
        .data(b"hello");
    l.input(&data);
    let fin = Seg::new(5006, iss.wrapping_add(1), ACK | FIN).ts(1003, 0);
    l.input(&fin);
    let mut buf = [0u8; 64];
    assert_eq!(l.ep.recv(h, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(l.ep.recv(h, &mut buf), Ok(0), "the client's FIN");
    // Half-closed: our side can still send.
    assert_eq!(l.state(h), TcpState::CloseWait);
    assert!(l.ep.send(h, b"more").is_ok());
}

#[test]
fn refused_syn_gets_rst() {
    let mut l = transparent();
    l.input(&syn(7000));
    let (id, _, _) = pending(&l)[0];
    l.ep.refuse_pending(id).expect("refuse");
    let out = l.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].has(RST | ACK), "{:?}", out[0]);
    assert_eq!(out[0].ack, 7001);
    assert_eq!(out[0].src_port, 443);
    assert_eq!(l.ep.connection_count(), 0);
    assert_eq!(l.ep.refuse_pending(id), Err(Error::UnknownConnection));
    assert_eq!(
        l.ep.accept_pending(l.now, id),
        Err(Error::UnknownConnection)
    );
}

#[test]
fn forgotten_syn_is_silent_and_held_again_on_retransmission() {
    let mut l = transparent();
    l.input(&syn(9000));
    let (id, _, _) = pending(&l)[0];
    l.ep.forget_pending(id).expect("forget");
    assert!(l.drain().is_empty());
    assert_eq!(l.ep.pending_count(), 0);
    l.input(&syn(9000));
    let p = pending(&l);
    assert_eq!(p.len(), 2);
    assert_ne!(p[0].0, p[1].0, "a new pending id");
}

#[test]
fn pending_syns_are_bounded_by_the_backlog() {
    let cfg = EndpointConfig {
        backlog: 4,
        ..Default::default()
    };
    let mut l = Lone::new(cfg);
    l.ep.listen_transparent();
    for i in 0..10u16 {
        l.local = SocketAddr::new(DST, 1000 + i);
        assert!(l.input(&syn(100 + i as u32)).is_empty());
    }
    assert_eq!(l.ep.pending_count(), 4);
    assert_eq!(pending(&l).len(), 4);
    assert_eq!(l.ep.counters().listen_overflows, 6);
}

#[test]
fn non_syn_segments_for_no_connection_are_still_reset() {
    let mut l = transparent();
    let out = l.input(&Seg::new(1, 2, ACK));
    assert_eq!(out.len(), 1);
    assert!(out[0].rst());
    assert_eq!(out[0].seq, 2);
    assert!(pending(&l).is_empty());
}

#[test]
fn a_normal_endpoint_drops_packets_to_other_addresses() {
    let mut l = Lone::new(EndpointConfig::default());
    l.local = SocketAddr::new(DST, 443);
    assert!(l.input(&syn(1)).is_empty());
    assert!(pending(&l).is_empty());
    assert_eq!(l.ep.counters().not_for_us, 1);
}
