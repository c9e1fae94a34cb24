//! Options (MSS, window scale, SACK-permitted, timestamps), Nagle, delayed ACK, keepalive.
mod common;
use braid_proto::endpoint::CloseReason;
use braid_proto::tcp::Keepalive;
use braid_proto::{EndpointConfig, Error, Event, TcpConfig, TcpState};
use common::*;
use std::collections::HashSet;
use std::time::Duration;

fn cfg(f: impl FnOnce(&mut TcpConfig)) -> EndpointConfig {
    let mut c = EndpointConfig::default();
    // These tests are about TCP's own options: the DSS room MPTCP takes would change the MSS.
    c.mptcp.enabled = false;
    f(&mut c.tcp);
    c
}

/// Establishes, moves `n` bytes each way, returns the pair.
fn exchange(ca_cfg: EndpointConfig, cb_cfg: EndpointConfig, n: usize) -> Pair {
    let mut p = Pair::new(ca_cfg, cb_cfg, Duration::from_millis(10));
    let (ca, cb) = p.establish(80);
    let d = pattern(n, 1);
    assert!(p.transfer(ca, cb, &d, Duration::from_secs(30)) == d);
    let d = pattern(n, 2);
    assert!(p.transfer_dir(Dir::BtoA, cb, ca, &d, Duration::from_secs(30)) == d);
    p
}

fn syn_and_syn_ack(p: &Pair) -> (Seg, Seg) {
    let syn = p
        .segs(Dir::AtoB, 0)
        .into_iter()
        .find(|(_, s)| s.syn())
        .unwrap()
        .1;
    let sa = p
        .segs(Dir::BtoA, 0)
        .into_iter()
        .find(|(_, s)| s.syn())
        .unwrap()
        .1;
    (syn, sa)
}

#[test]
fn mss_negotiation_uses_the_smaller_and_segments_respect_it() {
    for ts in [true, false] {
        let p = exchange(
            cfg(|t| {
                t.mss = 1000;
                t.timestamps = ts;
            }),
            cfg(|t| t.timestamps = ts),
            300_000,
        );
        let (syn, sa) = syn_and_syn_ack(&p);
        assert_eq!(syn.mss, Some(1000));
        assert_eq!(sa.mss, Some(1460));
        let opt = if ts { 12 } else { 0 };
        for dir in [Dir::AtoB, Dir::BtoA] {
            let max = p
                .segs(dir, 0)
                .iter()
                .map(|(_, s)| s.payload.len())
                .max()
                .unwrap();
            assert_eq!(max, 1000 - opt, "ts {ts} {dir:?}: largest payload");
        }
    }
}

#[test]
fn window_scaling_on_and_off() {
    // Both on, buffers that autotune up to 32 MiB: the shift covers the cap (32 MiB >> 10 fits
    // the 16-bit field, as Linux computes it), the windows are scaled and exceed 64 KiB.
    let mut p = Pair::default_pair();
    let (ca, cb) = p.establish(80);
    let (syn, sa) = syn_and_syn_ack(&p);
    assert_eq!(syn.wscale, Some(10));
    assert_eq!(sa.wscale, Some(10));
    let d = pattern(100_000, 1);
    assert!(p.transfer(ca, cb, &d, Duration::from_secs(10)) == d);
    // The last ACKs (their windows grown by autotuning) arrive.
    p.run_for(Duration::from_millis(100));
    assert!(p.a.conn_info(ca).unwrap().peer_window > 65535);
    assert!(p.b.conn_info(cb).unwrap().peer_window > 65535);
    // Field × 1024 is what the receiver means.
    let w = p.segs(Dir::BtoA, 0).last().unwrap().1.window as u32;
    assert_eq!(p.a.conn_info(ca).unwrap().peer_window, w << 10);

    // Off on one side: no scaling at all, windows stay ≤ 65535 both ways.
    for (ws_a, ws_b) in [(true, false), (false, true), (false, false)] {
        let mut p = Pair::new(
            cfg(|t| t.window_scale = ws_a),
            cfg(|t| t.window_scale = ws_b),
            Duration::from_millis(10),
        );
        let (ca, cb) = p.establish(80);
        let (syn, sa) = syn_and_syn_ack(&p);
        assert_eq!(syn.wscale.is_some(), ws_a);
        assert_eq!(
            sa.wscale, None,
            "SYN/ACK carries WS only if both offered it"
        );
        let mut max_a = 0;
        let mut max_b = 0;
        let d = pattern(500_000, 3);
        let mut sent = 0;
        let mut got = 0;
        let mut buf = vec![0u8; 65536];
        while got < d.len() {
            if sent < d.len() {
                sent += p.a.send(ca, &d[sent..]).unwrap_or(0);
            }
            while let Ok(n) = p.b.recv(cb, &mut buf) {
                if n == 0 {
                    break;
                }
                got += n;
            }
            max_a = max_a.max(p.a.conn_info(ca).unwrap().peer_window);
            max_b = max_b.max(p.b.conn_info(cb).unwrap().peer_window);
            assert!(p.step(p.now + Duration::from_secs(10)));
        }
        assert!(max_a <= 65535 && max_a > 30_000, "{ws_a} {ws_b}: {max_a}");
        assert!(max_b <= 65535, "{ws_a} {ws_b}: {max_b}");
    }
}

#[test]
fn sack_permitted_only_when_both_offer() {
    for (sa_on, sb_on) in [(true, true), (true, false), (false, true)] {
        let mut p = Pair::new(
            cfg(|t| t.sack = sa_on),
            cfg(|t| t.sack = sb_on),
            Duration::from_millis(10),
        );
        let (ca, cb) = p.establish(80);
        let (syn, sa) = syn_and_syn_ack(&p);
        assert_eq!(syn.sack_perm, sa_on);
        assert_eq!(sa.sack_perm, sa_on && sb_on);
        // Drop one data segment: SACK blocks appear only when negotiated.
        let mut n = 0;
        p.filter = Some(Box::new(move |d, pkt| {
            if d == Dir::AtoB && !Seg::parse(pkt).payload.is_empty() {
                n += 1;
                if n == 20 {
                    return Verdict::Drop;
                }
            }
            Verdict::Pass
        }));
        let d = pattern(200_000, 4);
        assert!(p.transfer(ca, cb, &d, Duration::from_secs(30)) == d);
        let sacks = p
            .segs(Dir::BtoA, 0)
            .iter()
            .filter(|(_, s)| !s.sack.is_empty())
            .count();
        if sa_on && sb_on {
            assert!(sacks > 0, "no SACK blocks after a loss");
        } else {
            assert_eq!(sacks, 0);
        }
    }
}

#[test]
fn timestamps_echoed() {
    let p = exchange(
        EndpointConfig::default(),
        EndpointConfig::default(),
        200_000,
    );
    let (syn, sa) = syn_and_syn_ack(&p);
    let (syn_val, syn_ecr) = syn.ts.unwrap();
    assert_eq!(syn_ecr, 0);
    assert_eq!(sa.ts.unwrap().1, syn_val, "SYN/ACK echoes the SYN's TSval");
    // Every TSecr a side sends is a TSval it received earlier from its peer.
    let mut seen: [HashSet<u32>; 2] = [HashSet::new(), HashSet::new()];
    let mut checked = 0;
    for (_, d, pkt) in &p.log {
        let s = Seg::parse(pkt);
        let (val, ecr) = s.ts.expect("every segment carries timestamps");
        let (me, peer) = if *d == Dir::AtoB { (0, 1) } else { (1, 0) };
        if s.is_ack() {
            assert!(seen[peer].contains(&ecr), "{d:?} echoes {ecr} never sent");
            checked += 1;
        }
        seen[me].insert(val);
    }
    assert!(checked > 100);
    // Off on one side: no timestamps at all after the SYN.
    let p = exchange(
        EndpointConfig::default(),
        cfg(|t| t.timestamps = false),
        50_000,
    );
    for (_, s) in p.segs(Dir::AtoB, 0).iter().skip(1) {
        assert_eq!(s.ts, None);
    }
    for (_, s) in p.segs(Dir::BtoA, 0) {
        assert_eq!(s.ts, None);
    }
}

// ------------------------------------------------------------------------------------------------
// Nagle
// ------------------------------------------------------------------------------------------------

/// 100 one-byte writes while the first is in flight; returns A's data segments sent in the
/// first 30 ms (less than one RTT) and whether all bytes arrived.
fn tiny_writes(nagle: bool) -> usize {
    let mut p = Pair::new(
        cfg(|t| t.nagle = nagle),
        EndpointConfig::default(),
        Duration::from_millis(50),
    );
    let (ca, cb) = p.establish(80);
    let start = p.log.len();
    let t0 = p.now;
    for _ in 0..100 {
        p.a.send(ca, b"x").unwrap();
        p.flush();
    }
    let early = p
        .segs(Dir::AtoB, start)
        .iter()
        .filter(|(t, s)| !s.payload.is_empty() && *t - t0 < Duration::from_millis(30))
        .count();
    let mut got = 0;
    let mut buf = [0u8; 256];
    p.run_until(Duration::from_secs(5), |p| {
        while let Ok(n) = p.b.recv(cb, &mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        got >= 100
    });
    assert_eq!(got, 100);
    early
}

#[test]
fn nagle_coalesces_tiny_writes_while_data_is_in_flight() {
    assert_eq!(
        tiny_writes(true),
        1,
        "with Nagle only the first byte goes out at once"
    );
    assert_eq!(
        tiny_writes(false),
        100,
        "without Nagle every write goes out at once"
    );
}

// ------------------------------------------------------------------------------------------------
// Delayed ACK
// ------------------------------------------------------------------------------------------------

#[test]
fn delayed_ack_small_segment_waits_two_full_segments_do_not() {
    let mut p = Pair::default_pair();
    let (ca, _cb) = p.establish(80);
    p.run_for(Duration::from_secs(1));
    let start = p.log.len();
    let t0 = p.now;
    p.a.send(ca, &[7u8; 100]).unwrap();
    p.run_for(Duration::from_millis(200));
    let acks = p.segs(Dir::BtoA, start);
    assert_eq!(acks.len(), 1);
    // Arrives at t0 + 10 ms, ACKed 40 ms later.
    assert_eq!(acks[0].0 - t0, Duration::from_millis(50));

    let mss = p.a.conn_info(ca).unwrap().mss as usize;
    let start = p.log.len();
    let t0 = p.now;
    p.a.send(ca, &vec![8u8; 2 * mss]).unwrap();
    p.run_for(Duration::from_millis(200));
    let data = p.segs(Dir::AtoB, start);
    assert_eq!(data.len(), 2);
    assert!(data.iter().all(|(_, s)| s.payload.len() == mss));
    let acks = p.segs(Dir::BtoA, start);
    assert_eq!(acks.len(), 1, "one ACK for two full segments");
    assert_eq!(acks[0].0 - t0, Duration::from_millis(10), "sent on arrival");
}

// ------------------------------------------------------------------------------------------------
// Keepalive
// ------------------------------------------------------------------------------------------------

#[test]
fn keepalive_probes_answered_keep_the_connection() {
    let ka = Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        probes: 3,
    };
    let mut p = Pair::new(
        cfg(|t| t.keepalive = Some(ka)),
        EndpointConfig::default(),
        Duration::from_millis(10),
    );
    let (ca, cb) = p.establish(80);
    let start = p.log.len();
    p.run_for(Duration::from_secs(55));
    let probes = p.segs(Dir::AtoB, start);
    // One probe every 10 s of idleness, each answered.
    assert!((4..=6).contains(&probes.len()), "{probes:?}");
    assert!(probes
        .iter()
        .all(|(_, s)| s.payload.is_empty() && !s.fin() && !s.rst()));
    assert!(p.segs(Dir::BtoA, start).len() >= probes.len());
    assert_eq!(p.a.conn_info(ca).unwrap().state, TcpState::Established);
    assert_eq!(p.b.conn_info(cb).unwrap().state, TcpState::Established);
    // The path dies: 3 unanswered probes, then the connection times out.
    p.filter = Some(Box::new(|_, _| Verdict::Drop));
    let t0 = p.now;
    let start = p.log.len();
    p.run_for(Duration::from_secs(60));
    assert!(p
        .events_a
        .contains(&Event::Closed(ca, CloseReason::TimedOut)));
    let out = p.segs(Dir::AtoB, start);
    let probes = out.iter().filter(|(_, s)| !s.rst()).count();
    assert_eq!(probes, 3, "{out:?}");
    let closed_at = out.last().unwrap().0;
    assert!(
        closed_at - t0 <= Duration::from_secs(14),
        "{:?}",
        closed_at - t0
    );
    let mut buf = [0u8; 4];
    assert_eq!(p.a.recv(ca, &mut buf), Err(Error::TimedOut));
    // Without keepalive, B (idle, same dead path) is still established.
    assert_eq!(p.b.conn_info(cb).unwrap().state, TcpState::Established);
}
