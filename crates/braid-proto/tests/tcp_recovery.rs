//! Timers and loss: zero window and persist (RFC 9293 §3.8.6.1), RTO backoff (RFC 6298 §5),
//! SYN retries, and recovery from loss bursts with SACK (RFC 6675) and NewReno (RFC 6582).
mod common;
use braid_proto::endpoint::CloseReason;
use braid_proto::rng::Rng;
use braid_proto::{EndpointConfig, Error, Event, Instant, TcpConfig, TcpState};
use common::*;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

fn cfg(f: impl FnOnce(&mut TcpConfig)) -> EndpointConfig {
    let mut c = EndpointConfig::default();
    f(&mut c.tcp);
    c
}

// ------------------------------------------------------------------------------------------------
// Zero window and persist
// ------------------------------------------------------------------------------------------------

#[test]
fn zero_window_persist_probes_back_off_and_transfer_resumes() {
    let rbuf = 64 << 10;
    let mut p = Pair::new(
        EndpointConfig::default(),
        cfg(|t| {
            t.recv_buffer = rbuf;
            t.recv_buffer_max = rbuf;
        }),
        Duration::from_millis(10),
    );
    let (ca, cb) = p.establish(80);
    let data = pattern(1 << 20, 3);
    let mut sent = 0;
    // B's application does not read: the window closes.
    let ok = p.run_until(Duration::from_secs(10), |p| {
        while sent < data.len() {
            match p.a.send(ca, &data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        p.a.conn_info(ca).unwrap().peer_window == 0
    });
    assert!(ok, "the peer's window never closed");
    let stalled_at = p.log.len();
    let t0 = p.now;
    // Minutes of virtual time with a closed window.
    p.run_for(Duration::from_secs(300));
    let ib = p.b.conn_info(cb).unwrap();
    assert!(
        ib.bytes_received as usize <= rbuf,
        "B took more than its buffer"
    );
    assert!(ib.bytes_received as usize >= rbuf / 2);
    assert_eq!(p.a.conn_info(ca).unwrap().state, TcpState::Established);
    assert_eq!(ib.state, TcpState::Established);
    // The probes: A's segments while stalled. They carry no new data beyond the window.
    let probes: Vec<Instant> = p
        .segs(Dir::AtoB, stalled_at)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert!(probes.len() >= 5, "too few probes: {}", probes.len());
    assert!(
        probes.len() <= 20,
        "probes do not back off: {}",
        probes.len()
    );
    // Each answered (B replies with its zero window).
    let answers = p.segs(Dir::BtoA, stalled_at);
    assert!(answers.len() >= probes.len() - 1, "probes unanswered");
    assert!(answers.iter().all(|(_, s)| s.window == 0));
    // Exponential backoff up to the RTO ceiling.
    let gaps: Vec<Duration> = std::iter::once(probes[0] - t0)
        .chain(probes.windows(2).map(|w| w[1] - w[0]))
        .collect();
    for w in gaps.windows(2) {
        assert!(w[1] >= w[0], "probe gaps shrink: {gaps:?}");
    }
    assert!(gaps[0] >= Duration::from_millis(200), "{gaps:?}");
    assert!(gaps[3] >= gaps[0] * 4, "not exponential: {gaps:?}");
    assert!(
        *gaps.last().unwrap() <= Duration::from_secs(120),
        "{gaps:?}"
    );
    // The application reads: the transfer resumes and completes intact.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let end = p.now + Duration::from_secs(60);
    loop {
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
        if got.len() >= data.len() || !p.step(end) {
            break;
        }
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    // Resuming must not wait for the (long) next probe: the window update restarts it.
    assert!(p.now - t0 < Duration::from_secs(300) + Duration::from_secs(10));
}

#[test]
fn zero_window_lost_window_update_is_recovered_by_probe() {
    // The window update after B reads is lost: A's next probe must discover the open window.
    let mut p = Pair::new(
        EndpointConfig::default(),
        cfg(|t| {
            t.recv_buffer = 32 << 10;
            t.recv_buffer_max = 32 << 10;
        }),
        Duration::from_millis(10),
    );
    let (ca, cb) = p.establish(80);
    let data = pattern(200 << 10, 4);
    let mut sent = 0;
    let ok = p.run_until(Duration::from_secs(10), |p| {
        while sent < data.len() {
            match p.a.send(ca, &data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        p.a.conn_info(ca).unwrap().peer_window == 0
    });
    assert!(ok);
    p.run_for(Duration::from_secs(2));
    // Drop exactly the next segment B sends (its window update).
    let mut dropped = false;
    p.filter = Some(Box::new(move |d, _| {
        if d == Dir::BtoA && !dropped {
            dropped = true;
            return Verdict::Drop;
        }
        Verdict::Pass
    }));
    let mut all = Vec::new();
    let mut buf = vec![0u8; 65536];
    let end = p.now + Duration::from_secs(600);
    loop {
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
            all.extend_from_slice(&buf[..n]);
        }
        if all.len() >= data.len() || !p.step(end) {
            break;
        }
    }
    assert_eq!(
        all.len(),
        data.len(),
        "transfer stuck after a lost window update"
    );
    assert!(all == data);
}

// ------------------------------------------------------------------------------------------------
// RTO backoff, retries, SYN retries
// ------------------------------------------------------------------------------------------------

#[test]
fn rto_backs_off_exponentially_and_times_out() {
    let mut p = Pair::default_pair();
    let (ca, cb) = p.establish(80);
    // A warm-up exchange so the RTT estimate is real (20 ms RTT → RTO at the 200 ms floor).
    let warm = pattern(10_000, 1);
    assert_eq!(
        p.transfer(ca, cb, &warm, Duration::from_secs(5)).len(),
        warm.len()
    );
    p.run_for(Duration::from_secs(1));
    p.filter = Some(Box::new(|_, _| Verdict::Drop));
    let start = p.log.len();
    let t0 = p.now;
    p.a.send(ca, b"into the void").unwrap();
    p.run_for(Duration::from_secs(3600));
    let tx: Vec<(Instant, Seg)> = p
        .segs(Dir::AtoB, start)
        .into_iter()
        .filter(|(_, s)| s.payload == b"into the void")
        .collect();
    // First transmission plus max_retries (15) retransmissions.
    assert_eq!(
        tx.len(),
        16,
        "{:?}",
        tx.iter().map(|x| x.0).collect::<Vec<_>>()
    );
    assert_eq!(tx[0].0, t0);
    let gaps: Vec<Duration> = tx.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps[0] >= Duration::from_millis(200), "{gaps:?}");
    assert!(gaps[0] < Duration::from_millis(400), "{gaps:?}");
    for w in gaps.windows(2) {
        let expect = (w[0] * 2).min(Duration::from_secs(120));
        let diff = w[1].abs_diff(expect);
        assert!(diff <= Duration::from_millis(1), "not doubling: {gaps:?}");
    }
    assert_eq!(
        *gaps.last().unwrap(),
        Duration::from_secs(120),
        "capped at max_rto"
    );
    assert!(p
        .events_a
        .contains(&Event::Closed(ca, CloseReason::TimedOut)));
    assert_eq!(p.a.conn_info(ca).unwrap().state, TcpState::Closed);
    let mut buf = [0u8; 8];
    assert_eq!(p.a.recv(ca, &mut buf), Err(Error::TimedOut));
    // A RST is sent when giving up (RFC 9293 §3.8.3: the connection is closed).
    assert!(p.segs(Dir::AtoB, start).last().unwrap().1.rst());
    assert_eq!(p.a.counters().rto_expirations, 16);
}

#[test]
fn syn_to_silent_host_retries_then_times_out() {
    let mut p = Pair::default_pair();
    p.filter = Some(Box::new(|_, _| Verdict::Drop));
    let ca = p.a.connect(p.now, A, SocketAddr::new(B, 80)).unwrap();
    p.run_for(Duration::from_secs(600));
    let syns: Vec<Instant> = p
        .segs(Dir::AtoB, 0)
        .into_iter()
        .filter(|(_, s)| s.flags == SYN)
        .map(|(t, _)| t)
        .collect();
    // The SYN and syn_retries (6) retransmissions at 1, 3, 7, 15, 31, 63 s.
    let secs: Vec<u64> = syns.iter().map(|t| t.since_epoch().as_secs()).collect();
    assert_eq!(secs, vec![0, 1, 3, 7, 15, 31, 63]);
    assert!(p
        .events_a
        .contains(&Event::Closed(ca, CloseReason::TimedOut)));
    assert!(!p.events_a.iter().any(|e| matches!(e, Event::Connected(_))));
    // It gives up one backed-off RTO after the last SYN (127 s).
    assert_eq!(p.a.send(ca, b"x"), Err(Error::TimedOut));
    let mut buf = [0u8; 4];
    assert_eq!(p.a.recv(ca, &mut buf), Err(Error::TimedOut));
}

// ------------------------------------------------------------------------------------------------
// Loss bursts and random loss
// ------------------------------------------------------------------------------------------------

/// Transfers `size` bytes A→B dropping the first transmission of data segments number
/// `first .. first + n` (counted from the start of the transfer). Returns (pair, ca).
fn burst(n: usize, sack: bool, ts: bool, size: usize) -> (Pair, braid_proto::ConnHandle) {
    let c = cfg(|t| {
        t.sack = sack;
        t.timestamps = ts;
    });
    let mut p = Pair::new(c.clone(), c, Duration::from_millis(10));
    let (ca, cb) = p.establish(80);
    let first = 40;
    let mut count = 0usize;
    let mut dropped: HashSet<u32> = HashSet::new();
    p.filter = Some(Box::new(move |d, pkt| {
        if d != Dir::AtoB {
            return Verdict::Pass;
        }
        let s = Seg::parse(pkt);
        if s.payload.is_empty() {
            return Verdict::Pass;
        }
        if dropped.contains(&s.seq) {
            return Verdict::Pass; // a retransmission
        }
        count += 1;
        if count > first && count <= first + n {
            dropped.insert(s.seq);
            return Verdict::Drop;
        }
        Verdict::Pass
    }));
    let data = pattern(size, n as u64);
    let got = p.transfer(ca, cb, &data, Duration::from_secs(300));
    assert_eq!(
        got.len(),
        data.len(),
        "burst {n} sack {sack} ts {ts}: counters {:?}",
        p.a.counters()
    );
    assert!(got == data, "burst {n} sack {sack} ts {ts}: corrupted");
    (p, ca)
}

#[test]
fn single_drop_with_sack_recovers_without_rto() {
    for ts in [true, false] {
        let (p, ca) = burst(1, true, ts, 3 << 20);
        let c = p.a.counters();
        assert_eq!(c.rto_expirations, 0, "ts {ts}: {c:?}");
        assert!(c.fast_retransmits >= 1, "ts {ts}: {c:?}");
        let info = p.a.conn_info(ca).unwrap();
        let smss = info.mss as u64;
        assert!(
            info.bytes_retransmitted <= 2 * smss,
            "ts {ts}: one loss, {} bytes retransmitted",
            info.bytes_retransmitted
        );
    }
}

#[test]
fn single_drop_with_newreno_recovers_without_rto() {
    for ts in [true, false] {
        let (p, _ca) = burst(1, false, ts, 3 << 20);
        let c = p.a.counters();
        assert_eq!(c.rto_expirations, 0, "ts {ts}: {c:?}");
        assert!(c.fast_retransmits >= 1, "ts {ts}: {c:?}");
    }
}

#[test]
fn loss_bursts_sack_and_newreno() {
    for n in [3, 10, 50] {
        for sack in [true, false] {
            for ts in [true, false] {
                let (p, ca) = burst(n, sack, ts, 3 << 20);
                let info = p.a.conn_info(ca).unwrap();
                assert!(
                    info.bytes_retransmitted >= (n as u64) * info.mss as u64,
                    "burst {n}: every dropped segment must be resent"
                );
            }
        }
    }
}

#[test]
fn sack_burst_of_three_needs_no_rto() {
    // With SACK, a burst of 3 in a large window is repaired in one recovery episode.
    let (p, _) = burst(3, true, true, 3 << 20);
    assert_eq!(p.a.counters().rto_expirations, 0, "{:?}", p.a.counters());
}

fn random_loss(loss: f64, sack: bool, ts: bool, seed: u64) {
    let c = cfg(|t| {
        t.sack = sack;
        t.timestamps = ts;
    });
    let mut p = Pair::new(c.clone(), c, Duration::from_millis(10));
    let (ca, cb) = p.establish(80);
    let mut rng = Rng::new(seed);
    p.filter = Some(Box::new(move |_, _| {
        if rng.chance(loss) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    let data = pattern(2 << 20, seed);
    let got = p.transfer(ca, cb, &data, Duration::from_secs(900));
    assert_eq!(
        got.len(),
        data.len(),
        "loss {loss} sack {sack} ts {ts}: {:?}",
        p.a.counters()
    );
    assert!(got == data);
    assert!(p.a.counters().fast_retransmits > 0);
    // And the close completes despite the loss.
    p.a.shutdown(p.now, ca).unwrap();
    p.b.shutdown(p.now, cb).unwrap();
    p.run_for(Duration::from_secs(30));
    let sa = p.a.conn_info(ca).unwrap().state;
    let sb = p.b.conn_info(cb).unwrap().state;
    assert!(
        matches!(sa, TcpState::TimeWait | TcpState::Closed),
        "{sa:?}"
    );
    assert!(
        matches!(sb, TcpState::TimeWait | TcpState::Closed),
        "{sb:?}"
    );
}

#[test]
fn random_loss_both_directions() {
    let mut seed = 100;
    for loss in [0.01, 0.03, 0.05] {
        for sack in [true, false] {
            for ts in [true, false] {
                seed += 1;
                random_loss(loss, sack, ts, seed);
            }
        }
    }
}
