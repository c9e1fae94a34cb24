//! Issue 3's MPTCP scenarios through the real engine: aggregation over two paths, a path going
//! down, middleboxes that strip MPTCP options, and many random lossy seeds.

mod common;

use braid_proto::rng::Rng;
use braid_sim::{run, Direction, Mode, PathSpec, Report, SimConfig, Strip};
use common::ms;
use std::time::Duration;

const MBIT: u64 = 1_000_000;
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

fn mptcp(paths: Vec<PathSpec>, bytes: u64, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(paths, bytes, seed);
    cfg.mode = Mode::Mptcp;
    cfg
}

fn run_ok(cfg: &SimConfig) -> Report {
    let r = run(cfg, None).expect("runnable config");
    assert_eq!(r.mode, cfg.mode);
    r
}

fn assert_intact(r: &Report) {
    assert!(r.completed, "not completed: {:?}", r.failure);
    assert!(r.intact, "completed but not intact: {r:?}");
    assert_eq!(r.bytes_received, r.bytes);
}

/// Payload bytes the client's subflows on `path` sent.
fn sent_on(r: &Report, path: usize) -> u64 {
    r.subflows
        .iter()
        .filter(|s| s.path == path)
        .map(|s| s.bytes_sent)
        .sum()
}

/// Payload-carrying bytes delivered client → server on `path` (headers included).
fn delivered_on(r: &Report, path: usize) -> u64 {
    r.links
        .iter()
        .find(|l| l.path == path && l.direction == Direction::ClientToServer)
        .map_or(0, |l| l.stats.bytes_delivered)
}

#[test]
fn tcp_mode_stays_plain_tcp_on_path_0() {
    // A stripping middlebox on every path would count any MPTCP option the engine sent.
    let mut p = PathSpec::new(50 * MBIT, ms(5));
    p.strip = Strip::All;
    let cfg = SimConfig::new(vec![p.clone(), p], 2 * MIB, 4);
    let r = run_ok(&cfg);
    assert_intact(&r);
    assert!(!r.fallback, "tcp mode never reports a fallback");
    assert_eq!(r.subflows.len(), 1);
    assert_eq!(r.subflows[0].path, 0);
    for l in &r.links {
        assert_eq!(l.stats.mptcp_stripped, 0, "tcp mode sent MPTCP options");
    }
    assert_eq!(delivered_on(&r, 1), 0, "tcp mode used path 1");
    assert!(r.max_stall_ms >= 0.0 && r.max_stall_ms < 1000.0);
}

#[test]
fn stall_figure_covers_an_outage() {
    // TCP over one path that is down from 1 s to 3 s: the receiver gets nothing for at least
    // those 2 s (less the last packets in flight), then the RTO brings the transfer back.
    let mut p = PathSpec::new(100 * MBIT, ms(10));
    p.down_at = Some(Duration::from_secs(1));
    p.up_at = Some(Duration::from_secs(3));
    let r = run_ok(&SimConfig::new(vec![p], 32 * MIB, 7));
    assert_intact(&r);
    assert!(
        (1950.0..8000.0).contains(&r.max_stall_ms),
        "max stall {} ms",
        r.max_stall_ms
    );
    // Without an outage the longest gap is far shorter.
    let clean = run_ok(&SimConfig::new(
        vec![PathSpec::new(100 * MBIT, ms(10))],
        4 * MIB,
        7,
    ));
    assert!(
        clean.max_stall_ms < 100.0,
        "max stall {}",
        clean.max_stall_ms
    );
}

/// Two equal 100 Mbit/s paths, 128 MiB (issue 3's shape). Deterministic: no random loss.
///
/// 190 Mbit/s was asked; the figure here is bounded below that by the shape itself: each
/// 1500-byte packet carries at most 1448 bytes (timestamps; a DSS on the first segment of each
/// mapping), both subflows start with IW10 and slow start (about 65 ms of each link unused),
/// and the second subflow can start only after the server's ADD_ADDR and the MP_JOIN handshake
/// with its fourth ACK (data from 80 ms). Counting those gives at most about 188.9 Mbit/s from
/// the first SYN to the last byte read; braid reaches 188.3.
#[test]
fn two_equal_paths_aggregate() {
    let p = PathSpec::new(100 * MBIT, ms(10));
    let cfg = mptcp(vec![p.clone(), p], 128 * MIB, 1);
    let r = run_ok(&cfg);
    assert_intact(&r);
    assert!(!r.fallback);
    assert!(r.subflows.len() >= 2, "subflows: {:?}", r.subflows);
    for path in 0..2 {
        let share = sent_on(&r, path) as f64 / r.bytes as f64;
        assert!(share >= 0.30, "path {path} carried {share:.3} of the bytes");
    }
    assert!(r.goodput_mbps >= 188.0, "goodput {} Mbit/s", r.goodput_mbps);
}

/// 100 Mbit/s / 10 ms + 20 Mbit/s / 50 ms, 64 MiB, default buffers: at least 90% of the sum.
/// The redundant scheduler puts each byte on every subflow as far as that subflow keeps up: the
/// fast subflow carries every byte, the slower one every byte not yet acknowledged at the data
/// level when it has room (a lagging subflow skips what the peer already has), so the transfer
/// runs at the faster path's pace.
#[test]
fn redundant_sends_every_byte_each_subflow_can_still_help_with() {
    let fast = PathSpec::new(100 * MBIT, ms(10));
    let bytes = 16 * MIB;
    for (slow, slow_share) in [
        (fast.clone(), 0.97),
        (PathSpec::new(50 * MBIT, ms(20)), 0.4),
    ] {
        let mut cfg = mptcp(vec![fast.clone(), slow], bytes, 1);
        cfg.endpoint.mptcp.scheduler = "redundant".into();
        let r = run_ok(&cfg);
        assert_intact(&r);
        assert!(sent_on(&r, 0) >= bytes, "fast path sent {}", sent_on(&r, 0));
        let s = sent_on(&r, 1) as f64 / bytes as f64;
        assert!(s >= slow_share, "slow path carried {s:.3} of the bytes");
        assert!(r.goodput_mbps > 85.0, "goodput {}", r.goodput_mbps);
    }
}

#[test]
fn unequal_paths_beat_the_faster_one() {
    let cfg = mptcp(
        vec![
            PathSpec::new(100 * MBIT, ms(10)),
            PathSpec::new(20 * MBIT, ms(50)),
        ],
        64 * MIB,
        2,
    );
    let r = run_ok(&cfg);
    assert_intact(&r);
    assert!(!r.fallback);
    assert!(sent_on(&r, 1) > 0, "path 1 unused: {:?}", r.subflows);
    assert!(r.goodput_mbps >= 108.0, "goodput {} Mbit/s", r.goodput_mbps);
}

/// Goodput of plain TCP alone on `path` with the same buffers (a fixed receive buffer, or the
/// engine's autotuned ones): what MPTCP must not fall below.
fn tcp_alone(path: PathSpec, bytes: u64, recv_buffer: Option<usize>) -> f64 {
    let mut cfg = SimConfig::new(vec![path], bytes, 1);
    cfg.mode = Mode::Tcp;
    if let Some(n) = recv_buffer {
        cfg.endpoint.tcp.recv_buffer = n;
        cfg.endpoint.tcp.recv_buffer_max = n;
    }
    let r = run_ok(&cfg);
    assert_intact(&r);
    r.goodput_mbps
}

/// A receive buffer too small for both paths' delay: a slower subflow must not hold the window
/// the faster one needs (blocking estimation, opportunistic retransmission): MPTCP stays close
/// to TCP on the faster path alone.
#[test]
fn small_receive_buffer_does_not_fall_below_the_faster_path() {
    let fast = PathSpec::new(100 * MBIT, ms(10));
    let slow = PathSpec::new(20 * MBIT, ms(50));
    for rcvbuf in [512 * KIB, MIB] {
        let mut cfg = mptcp(vec![fast.clone(), slow.clone()], 32 * MIB, 2);
        cfg.endpoint.tcp.recv_buffer = rcvbuf as usize;
        cfg.endpoint.tcp.recv_buffer_max = rcvbuf as usize;
        let r = run_ok(&cfg);
        assert_intact(&r);
        let alone = tcp_alone(fast.clone(), 32 * MIB, Some(rcvbuf as usize));
        assert!(
            r.goodput_mbps >= 0.95 * alone,
            "rcvbuf {rcvbuf}: MPTCP {} Mbit/s, TCP on the fast path alone {alone}",
            r.goodput_mbps
        );
    }
}

/// The connection starts on a slow, long path; the fast path joins later. With the default
/// buffers the slow path's queue (400 ms of round trip) must not stall the fast one.
#[test]
fn slow_initial_path_does_not_stall_the_fast_one() {
    let slow = PathSpec::new(10 * MBIT, ms(100));
    let fast = PathSpec::new(100 * MBIT, ms(5));
    let cfg = mptcp(vec![slow, fast.clone()], 64 * MIB, 3);
    let r = run_ok(&cfg);
    assert_intact(&r);
    let alone = tcp_alone(fast, 64 * MIB, None);
    assert!(
        r.goodput_mbps >= 0.9 * alone,
        "MPTCP {} Mbit/s, TCP on the fast path alone {alone}",
        r.goodput_mbps
    );
}

#[test]
fn path_down_moves_the_transfer_to_the_other_path() {
    let mut p0 = PathSpec::new(100 * MBIT, ms(10));
    p0.down_at = Some(Duration::from_secs(2));
    let p1 = PathSpec::new(100 * MBIT, ms(10));
    // More than 2 s of path 0 alone can carry, so the end must go over path 1.
    let cfg = mptcp(vec![p0, p1], 64 * MIB, 3);
    let r = run_ok(&cfg);
    assert_intact(&r);
    assert!(!r.fallback);
    assert!(r.sim_seconds > 2.0);
    // Path 0 carried at most 2 s worth; the rest went over path 1.
    let path0_max = 2.0 * 100e6 / 8.0;
    assert!(
        (sent_on(&r, 0) as f64) < path0_max * 1.05,
        "{:?}",
        r.subflows
    );
    assert!(sent_on(&r, 1) as f64 >= r.bytes as f64 - path0_max);
    let down = r
        .links
        .iter()
        .filter(|l| l.path == 0)
        .map(|l| l.stats.down_drops)
        .sum::<u64>();
    assert!(down > 0, "nothing was lost when path 0 went down");
    eprintln!(
        "max stall with path 0 down at 2 s: {:.1} ms",
        r.max_stall_ms
    );
    assert!(r.max_stall_ms < 3000.0, "stalled {} ms", r.max_stall_ms);
}

/// One path with a middlebox: the connection falls back to TCP and the data arrives intact.
fn stripped_path_falls_back(strip: Strip, seed: u64) {
    let mut p = PathSpec::new(50 * MBIT, ms(10));
    p.strip = strip;
    let r = run_ok(&mptcp(vec![p], 4 * MIB, seed));
    assert_intact(&r);
    assert!(r.fallback, "fallback not reported");
    assert_eq!(r.subflows.len(), 1);
    let c2s = &r.links[0];
    assert_eq!(c2s.direction, Direction::ClientToServer);
    // The client offered MP_CAPABLE, and the middlebox took it out.
    assert!(
        c2s.stats.mptcp_stripped >= 1,
        "no MPTCP option reached the middlebox"
    );
}

#[test]
fn options_stripped_from_syns_fall_back_intact() {
    stripped_path_falls_back(Strip::Syn, 5);
}

#[test]
fn options_stripped_from_every_packet_fall_back_intact() {
    stripped_path_falls_back(Strip::All, 6);
}

#[test]
fn two_hundred_seeds_over_two_lossy_reordering_paths() {
    let mut failures = Vec::new();
    let mut fallbacks = 0;
    for seed in 0..200u64 {
        let mut r = Rng::new(seed ^ 0x6d70_7463_705f_7365);
        let path = |r: &mut Rng| {
            let mut p = PathSpec::new(
                (5 + r.below(96)) * MBIT,
                Duration::from_micros(1000 + r.below(40_000)),
            );
            p.loss = r.below(301) as f64 / 10_000.0; // up to 3%
            p.reorder = r.below(501) as f64 / 10_000.0; // up to 5%
            p.duplicate = r.below(101) as f64 / 10_000.0; // up to 1%
            p
        };
        let paths = vec![path(&mut r), path(&mut r)];
        let bytes = 16 * KIB + r.below(240 * KIB);
        let mut cfg = mptcp(paths, bytes, seed);
        cfg.time_limit = Duration::from_secs(120);
        let rep = run_ok(&cfg);
        fallbacks += usize::from(rep.fallback);
        if !(rep.completed && rep.intact) {
            failures.push(format!(
                "seed {seed}: {:?} completed={} intact={} fallback={} bytes={bytes} paths={:?}",
                rep.failure, rep.completed, rep.intact, rep.fallback, cfg.paths
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Without a middlebox only lost handshake packets may make a connection fall back.
    assert!(fallbacks <= 10, "{fallbacks} of 200 runs fell back to TCP");
}
