//! Mobility (issue 10): MPTCP events, local addresses that go away and come back, backup
//! priority changed at run time, and connections whose data is done while a path is dead.
mod common;
use braid_proto::{EndpointConfig, Event, MpEvent, SubClose};
use braid_wire::mptcp::MptcpOption;
use common::*;
use std::time::Duration;

fn mp_events(evs: &[Event], h: braid_proto::ConnHandle) -> Vec<MpEvent> {
    evs.iter()
        .filter_map(|e| match *e {
            Event::Mptcp { conn, event } if conn == h => Some(event),
            _ => None,
        })
        .collect()
}

fn sub_established(evs: &[MpEvent], local: std::net::IpAddr) -> usize {
    evs.iter()
        .filter(|e| matches!(e, MpEvent::SubEstablished { local: l, .. } if l.ip() == local))
        .count()
}

#[test]
fn events_local_address_gone_and_back_and_backup() {
    let mut p = two_path_pair(EndpointConfig::default());
    let (ca, cb) = p.establish(80);
    assert!(
        p.run_until(Duration::from_secs(5), |p| live_subflows(p, true, ca) == 2
            && live_subflows(p, false, cb) == 2)
    );
    p.run_for(Duration::from_millis(100));
    let ea = mp_events(&p.events_a, ca);
    let eb = mp_events(&p.events_b, cb);
    assert_eq!(ea.iter().filter(|e| **e == MpEvent::Established).count(), 1);
    assert_eq!(eb.iter().filter(|e| **e == MpEvent::Established).count(), 1);
    assert_eq!((sub_established(&ea, A), sub_established(&ea, A2)), (1, 1));
    assert_eq!((sub_established(&eb, B), sub_established(&eb, B2)), (1, 1));
    assert!(
        ea.iter()
            .any(|e| matches!(e, MpEvent::Announced { addr, port: None, .. } if *addr == B2)),
        "{ea:?}"
    );

    // A2 goes away in the middle of a transfer: its subflow closes without a packet from A2,
    // REMOVE_ADDR reaches B, which closes its side; the data arrives intact.
    let data = pattern(4 << 20, 7);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut removed_at_log = None;
    let ok = p.run_until(Duration::from_secs(60), |p| {
        while sent < data.len() {
            match p.a.send(ca, &data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        while let Ok(n) = p.b.recv(cb, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if removed_at_log.is_none() && got.len() > 1 << 20 {
            removed_at_log = Some(p.log.len());
            let now = p.now;
            p.a.remove_local_addr(now, A2);
        }
        got.len() == data.len()
    });
    assert!(ok, "transfer stalled at {} of {}", got.len(), data.len());
    assert!(got == data, "data corrupted");
    let from = removed_at_log.expect("removed");
    assert!(
        p.log[from..]
            .iter()
            .all(|(_, d, pk)| *d != Dir::AtoB || addrs(pk).0 != A2),
        "a packet left from the address that went away"
    );
    let rm = p.log[from..].iter().any(|(_, d, pk)| {
        *d == Dir::AtoB
            && mp_opts(pk)
                .iter()
                .any(|o| matches!(o, MptcpOption::RemoveAddr { addr_ids } if !addr_ids.is_empty()))
    });
    assert!(rm, "no REMOVE_ADDR sent");
    assert!(p.a.counters().mp_rm_addr_tx >= 1 && p.b.counters().mp_rm_addr >= 1);
    let ea = mp_events(&p.events_a, ca);
    assert!(
        ea.iter().any(|e| matches!(e, MpEvent::SubClosed { local, reason: SubClose::LocalGone, .. } if local.ip() == A2)),
        "{ea:?}"
    );
    p.run_for(Duration::from_millis(500));
    let eb = mp_events(&p.events_b, cb);
    assert!(
        eb.iter().any(|e| matches!(e, MpEvent::Removed { .. })),
        "{eb:?}"
    );
    assert!(
        eb.iter().any(|e| matches!(e, MpEvent::SubClosed { remote, reason: SubClose::PeerRemoved, .. } if remote.ip() == A2)),
        "{eb:?}"
    );
    assert_eq!(live_subflows(&p, true, ca), 1);

    // A2 comes back as a backup: a new subflow joins from it with the B bit.
    let now = p.now;
    p.a.add_local_addr_with(now, A2, true);
    assert!(
        p.run_until(Duration::from_secs(5), |p| live_subflows(p, true, ca) == 2
            && live_subflows(p, false, cb) == 2)
    );
    p.run_for(Duration::from_millis(100));
    let ea = mp_events(&p.events_a, ca);
    assert_eq!(sub_established(&ea, A2), 2);
    assert!(ea.iter().any(
        |e| matches!(e, MpEvent::SubEstablished { local, backup: true, .. } if local.ip() == A2)
    ));
    let info = p.b.conn_info(cb).unwrap().mptcp.unwrap();
    assert!(info
        .subflows
        .iter()
        .any(|s| !s.closed && s.remote.ip() == A2 && s.peer_backup));

    // Back to regular: MP_PRIO, SubPriority on both sides.
    let now = p.now;
    p.a.set_local_backup(now, A2, false);
    p.run_for(Duration::from_millis(200));
    let ea = mp_events(&p.events_a, ca);
    let eb = mp_events(&p.events_b, cb);
    assert!(
        ea.iter().any(
            |e| matches!(e, MpEvent::SubPriority { local, backup: false, .. } if local.ip() == A2)
        ),
        "{ea:?}"
    );
    assert!(
        eb.iter().any(
            |e| matches!(e, MpEvent::SubPriority { remote, backup: false, .. } if remote.ip() == A2)
        ),
        "{eb:?}"
    );
    assert!(p.b.counters().mp_prio_rx >= 1);
}

/// Path 2 is blackholed mid-transfer: every byte still arrives, and once the DATA_FIN exchange
/// is complete the connection closes within a few seconds instead of waiting out the dead
/// subflow's FIN retransmissions (minutes).
#[test]
fn connection_ends_when_its_data_is_done_despite_a_dead_path() {
    let mut p = two_path_pair(EndpointConfig::default());
    let (ca, cb) = p.establish(80);
    assert!(p.run_until(Duration::from_secs(5), |p| live_subflows(p, true, ca) == 2));
    let data = pattern(4 << 20, 9);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut eof = false;
    let mut shut = false;
    let ok = p.run_until(Duration::from_secs(120), |p| {
        while sent < data.len() {
            match p.a.send(ca, &data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        if sent == data.len() && !shut {
            shut = true;
            let now = p.now;
            p.a.shutdown(now, ca).unwrap();
        }
        while let Ok(n) = p.b.recv(cb, &mut buf) {
            if n == 0 {
                eof = true;
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() > 1 << 20 && p.filter.is_none() {
            // Silently dead from now on, both directions.
            p.filter = Some(Box::new(|_, pk| {
                let (s, d) = addrs(pk);
                if s == A2 || d == A2 {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                }
            }));
        }
        eof
    });
    assert!(ok, "no EOF: {} of {}", got.len(), data.len());
    assert!(got == data, "data corrupted");
    let now = p.now;
    p.b.shutdown(now, cb).unwrap();
    let closed_at = |p: &mut Pair| {
        p.events_a
            .iter()
            .any(|e| matches!(e, Event::Closed(h, braid_proto::endpoint::CloseReason::Normal) if *h == ca))
    };
    assert!(
        p.run_until(Duration::from_secs(5), closed_at),
        "client still open 5 s after the DATA_FIN exchange: {:?}",
        p.a.conn_info(ca)
            .unwrap()
            .mptcp
            .unwrap()
            .subflows
            .iter()
            .map(|s| s.state)
            .collect::<Vec<_>>()
    );
    let ea = mp_events(&p.events_a, ca);
    assert!(
        ea.iter().any(|e| matches!(e, MpEvent::SubClosed { local, reason: SubClose::Closed, .. } if local.ip() == A2)),
        "{ea:?}"
    );
}
