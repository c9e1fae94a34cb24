//! Buffer autotuning through the real engine on the default link shapes: very different RTTs
//! fill both paths without buffer settings, a lossy path beside a clean one does not make the
//! transfer slower than TCP on the clean path alone, and the memory this takes is reported.

mod common;

use braid_sim::{run, Mode, PathSpec, Report, SimConfig};
use common::ms;

const MBIT: u64 = 1_000_000;
const MIB: u64 = 1 << 20;
const CAP: u64 = braid_proto::tcp::DEFAULT_BUFFER_MAX as u64;

fn run_ok(cfg: &SimConfig) -> Report {
    let r = run(cfg, None).expect("runnable config");
    assert!(r.completed && r.intact, "{:?}", r.failure);
    r
}

fn mptcp(paths: Vec<PathSpec>, bytes: u64, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(paths, bytes, seed);
    cfg.mode = Mode::Mptcp;
    cfg
}

fn lossy(pct: f64) -> PathSpec {
    let mut p = PathSpec::new(100 * MBIT, ms(10));
    p.loss = pct / 100.0;
    p
}

/// 1 ms beside 100 ms one-way: the data level needs about 2 × 200 Mbit/s × the slow path's
/// loaded RTT of window, 25 times what the fast path alone needs. Slow start on the 200 ms
/// path takes over a second, so the transfer is long enough for it not to dominate.
#[test]
fn very_different_rtts_fill_both_paths_without_buffer_settings() {
    for seed in [1, 2] {
        let cfg = mptcp(
            vec![
                PathSpec::new(100 * MBIT, ms(1)),
                PathSpec::new(100 * MBIT, ms(100)),
            ],
            1024 * MIB,
            seed,
        );
        let r = run_ok(&cfg);
        assert!(
            r.goodput_mbps >= 180.0,
            "seed {seed}: {} Mbit/s",
            r.goodput_mbps
        );
        let m = r.memory;
        assert!(
            m.server.recv_buffer > 8 * MIB && m.server.recv_buffer <= CAP,
            "{m:?}"
        );
        assert!(
            m.client.send_buffer > 8 * MIB && m.client.send_buffer <= CAP,
            "{m:?}"
        );
        // Data level plus two subflows, each bounded by the cap (rings sized to their buffers).
        for c in [m.client, m.server] {
            assert!(
                c.peak_bytes <= 6 * CAP && c.final_bytes <= c.peak_bytes,
                "{m:?}"
            );
        }
    }
}

/// TCP alone on the clean path (same seed): what MPTCP with a lossy path beside it must not
/// fall below (RFC 6356 goal 1, and the reason to use MPTCP at all).
fn tcp_on_clean_path(bytes: u64, seed: u64) -> f64 {
    let mut cfg = SimConfig::new(vec![PathSpec::new(100 * MBIT, ms(10))], bytes, seed);
    cfg.mode = Mode::Tcp;
    run_ok(&cfg).goodput_mbps
}

#[test]
fn a_lossy_path_beside_a_clean_one_does_not_hurt() {
    for seed in [1, 2, 3] {
        let alone = tcp_on_clean_path(64 * MIB, seed);
        let r = run_ok(&mptcp(
            vec![lossy(5.0), PathSpec::new(100 * MBIT, ms(10))],
            64 * MIB,
            seed,
        ));
        assert!(
            r.goodput_mbps >= alone,
            "seed {seed}: MPTCP {} Mbit/s, TCP on the clean path alone {alone}",
            r.goodput_mbps
        );
        // Coupled (LIA: Reno-like increase on the clean path): within 2 %.
        let mut cfg = mptcp(
            vec![lossy(5.0), PathSpec::new(100 * MBIT, ms(10))],
            64 * MIB,
            seed,
        );
        cfg.cc = "lia".into();
        let r = run_ok(&cfg);
        assert!(
            r.goodput_mbps >= 0.98 * alone,
            "seed {seed}: MPTCP/LIA {} Mbit/s, TCP on the clean path alone {alone}",
            r.goodput_mbps
        );
    }
}

/// A short transfer keeps its buffers near the initial size: idle and small connections are
/// cheap; given buffer sizes stay fixed.
#[test]
fn small_transfers_stay_small_and_given_sizes_stay_fixed() {
    let r = run_ok(&mptcp(
        vec![PathSpec::new(100 * MBIT, ms(10))],
        256 << 10,
        1,
    ));
    for c in [r.memory.client, r.memory.server] {
        assert!(c.peak_bytes <= 4 * MIB, "{:?}", r.memory);
    }
    let mut cfg = mptcp(vec![PathSpec::new(100 * MBIT, ms(10))], 16 * MIB, 1);
    cfg.endpoint.tcp.fixed_buffers(MIB as usize, MIB as usize);
    let r = run_ok(&cfg);
    for c in [r.memory.client, r.memory.server] {
        assert_eq!((c.send_buffer, c.recv_buffer), (MIB, MIB), "{:?}", r.memory);
    }
}
