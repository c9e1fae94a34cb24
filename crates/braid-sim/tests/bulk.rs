//! End-to-end bulk transfers through the real engine, and the configuration checks.

mod common;

use braid_sim::{run, Mode, PathSpec, Report, SimConfig, SimError};
use common::ms;
use std::time::Duration;

const MBIT: u64 = 1_000_000;
const MIB: u64 = 1 << 20;

fn run_ok(cfg: &SimConfig) -> Report {
    let r = run(cfg, None).expect("runnable config");
    assert_eq!(r.bytes, cfg.bytes);
    assert_eq!(r.seed, cfg.seed);
    r
}

fn assert_intact(r: &Report) {
    assert!(r.completed, "not completed: {:?}", r.failure);
    assert!(r.intact, "completed but not intact: {r:?}");
    assert_eq!(r.bytes_received, r.bytes);
    assert!(r.failure.is_none());
    assert!(r.goodput_mbps > 0.0);
}

#[test]
fn clean_path_is_intact_and_near_line_rate() {
    let cfg = SimConfig::new(vec![PathSpec::new(100 * MBIT, ms(10))], 64 * MIB, 1);
    let r = run_ok(&cfg);
    assert_intact(&r);
    assert!(r.goodput_mbps >= 90.0, "goodput {} Mbit/s", r.goodput_mbps);
    assert_eq!(r.subflows.len(), 1);
    let sf = &r.subflows[0];
    assert_eq!(sf.path, 0);
    assert!(sf.bytes_sent >= r.bytes);
    assert!(
        sf.srtt_ms >= 20.0,
        "srtt {} below the 20 ms base RTT",
        sf.srtt_ms
    );
    let l = &r.links[0];
    assert_eq!(l.stats.mtu_drops, 0, "the engine sent packets over the MTU");
    assert!(l.stats.bytes_delivered > r.bytes);
    assert!(r.counters.client["PacketsOut"] > 0);
    assert!(r.counters.server["PacketsIn"] > 0);
    // sim time is at least the serialisation time of the payload plus one RTT.
    assert!(r.sim_seconds > (64 * MIB * 8) as f64 / 100e6 + 0.02);
}

/// 8 MiB at 100 Mbit/s with a 20 ms RTT: the handshake, the last byte's propagation and an
/// IW10 slow start bound the goodput near 88 Mbit/s, so 80 asks for a slow start that ends
/// without a retransmission timeout.
#[test]
fn short_clean_transfer_is_not_stalled_by_slow_start_losses() {
    let cfg = SimConfig::new(vec![PathSpec::new(100 * MBIT, ms(10))], 8 * MIB, 1);
    let r = run_ok(&cfg);
    assert_intact(&r);
    assert!(r.goodput_mbps >= 80.0, "goodput {} Mbit/s", r.goodput_mbps);
}

#[test]
fn lossy_path_is_intact() {
    let mut p = PathSpec::new(20 * MBIT, ms(20));
    p.loss = 0.01;
    let r = run_ok(&SimConfig::new(vec![p], 2 * MIB, 3));
    assert_intact(&r);
    assert!(r.links[0].stats.random_losses > 0);
    assert!(r.subflows[0].retransmitted_bytes > 0);
}

#[test]
fn reordering_path_is_intact() {
    let mut p = PathSpec::new(50 * MBIT, ms(10));
    p.reorder = 0.02;
    let r = run_ok(&SimConfig::new(vec![p], 4 * MIB, 4));
    assert_intact(&r);
    assert!(r.links[0].stats.reordered > 0);
}

#[test]
fn duplicating_path_is_intact() {
    let mut p = PathSpec::new(50 * MBIT, ms(10));
    p.duplicate = 0.05;
    let r = run_ok(&SimConfig::new(vec![p], 4 * MIB, 5));
    assert_intact(&r);
    assert!(r.links[0].stats.duplicated > 0);
}

#[test]
fn everything_at_once_with_a_small_mtu_is_intact() {
    let mut p = PathSpec::new(30 * MBIT, ms(15));
    p.loss = 0.005;
    p.reorder = 0.01;
    p.duplicate = 0.01;
    p.mtu = 1280;
    let mut cfg = SimConfig::new(vec![p], 2 * MIB, 6);
    cfg.cc = "reno".into();
    let r = run_ok(&cfg);
    assert_intact(&r);
    assert_eq!(
        r.links[0].stats.mtu_drops, 0,
        "segments must fit the 1280-byte MTU"
    );
    assert_eq!(r.links[1].stats.mtu_drops, 0);
}

#[test]
fn outage_is_survived() {
    let mut p = PathSpec::new(100 * MBIT, ms(5));
    p.down_at = Some(ms(200));
    p.up_at = Some(ms(700));
    let r = run_ok(&SimConfig::new(vec![p], 8 * MIB, 7));
    assert_intact(&r);
    assert!(r.links[0].stats.down_drops > 0);
    assert!(r.sim_seconds > 0.7);
}

#[test]
fn full_run_is_deterministic() {
    let mut p = PathSpec::new(40 * MBIT, ms(8));
    p.loss = 0.01;
    p.reorder = 0.01;
    let cfg = SimConfig::new(vec![p], 2 * MIB, 11);
    let a = run_ok(&cfg);
    let b = run_ok(&cfg);
    assert_intact(&a);
    assert_eq!(a.trace_sha256, b.trace_sha256);
    let strip = |r: &Report| Report {
        wall_seconds: 0.0,
        ..r.clone()
    };
    assert_eq!(strip(&a), strip(&b));
    let c = run_ok(&SimConfig { seed: 12, ..cfg });
    assert_ne!(a.trace_sha256, c.trace_sha256);
}

#[test]
fn unused_paths_stay_silent_in_tcp_mode() {
    let paths = vec![
        PathSpec::new(50 * MBIT, ms(5)),
        PathSpec::new(50 * MBIT, ms(5)),
    ];
    let r = run_ok(&SimConfig::new(paths, MIB, 2));
    assert_intact(&r);
    assert_eq!(r.links.len(), 4);
    assert_eq!(r.links[2].stats.packets_offered, 0);
    assert_eq!(r.links[3].stats.packets_offered, 0);
    assert_eq!(r.unroutable_packets, 0);
}

#[test]
fn time_limit_stops_an_unfinished_run() {
    let mut cfg = SimConfig::new(vec![PathSpec::new(10 * MBIT, ms(10))], 64 * MIB, 1);
    cfg.time_limit = Duration::from_secs(1);
    let r = run_ok(&cfg);
    assert!(!r.completed);
    assert!(!r.intact);
    assert_eq!(r.goodput_mbps, 0.0);
    assert_eq!(r.sim_seconds, 1.0);
    assert!(r.failure.as_deref().unwrap().contains("time limit"));
    assert!(r.bytes_received > 0 && r.bytes_received < r.bytes);
}

#[test]
fn zero_bytes_is_a_clean_open_and_close() {
    let r = run_ok(&SimConfig::new(
        vec![PathSpec::new(10 * MBIT, ms(10))],
        0,
        1,
    ));
    assert_intact_allowing_zero(&r);
}

fn assert_intact_allowing_zero(r: &Report) {
    assert!(r.completed, "{:?}", r.failure);
    assert!(r.intact);
    assert_eq!(r.bytes_received, 0);
}

#[test]
fn mptcp_mode_runs_over_one_path() {
    let mut cfg = SimConfig::new(vec![PathSpec::new(10 * MBIT, ms(10))], MIB, 1);
    cfg.mode = Mode::Mptcp;
    let r = run_ok(&cfg);
    assert_intact(&r);
    assert_eq!(r.mode, Mode::Mptcp);
    assert!(!r.fallback, "MPTCP was not negotiated on a clean path");
    assert_eq!(r.subflows.len(), 1);
    assert_eq!(r.subflows[0].path, 0);
    assert!(r.counters.client["MPCapableSYNTX"] >= 1);
    assert!(r.counters.server["MPCapableSYNRX"] >= 1);
}

#[test]
fn impossible_configs_are_refused() {
    let ok = PathSpec::new(10 * MBIT, ms(10));
    let check = |paths: Vec<PathSpec>, needle: &str| {
        let e = run(&SimConfig::new(paths, MIB, 1), None).unwrap_err();
        assert!(matches!(e, SimError::InvalidConfig(_)), "{e:?}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
    };
    check(vec![], "no paths");
    check(
        vec![PathSpec {
            rate_bps: 0,
            ..ok.clone()
        }],
        "rate",
    );
    check(
        vec![
            ok.clone(),
            PathSpec {
                loss: 1.5,
                ..ok.clone()
            },
        ],
        "path 1: loss",
    );
    check(
        vec![PathSpec {
            reorder: -0.1,
            ..ok.clone()
        }],
        "reorder",
    );
    check(
        vec![PathSpec {
            mtu: 40,
            ..ok.clone()
        }],
        "mtu",
    );
    check(
        vec![PathSpec {
            down_at: Some(ms(500)),
            up_at: Some(ms(100)),
            ..ok.clone()
        }],
        "not after",
    );
    check(
        vec![PathSpec {
            up_at: Some(ms(100)),
            ..ok
        }],
        "without a down",
    );
}
