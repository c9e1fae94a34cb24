//! Issue 10 (mobility) through the real engine: a path blackholed mid-transfer (stale subflow,
//! reinjection, recovery), failback after a long outage, a flapping path, backup paths, and a
//! local address that goes away and comes back. Every run checks the received bytes against
//! the sent stream (`intact`). Figures are printed; bounds are loose regression guards on
//! simulated (deterministic) time.

use braid_sim::{run, Mode, PathSpec, Report, SimConfig};
use std::time::Duration;

const MBIT: u64 = 1_000_000;
const MIB: u64 = 1 << 20;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn mptcp(paths: Vec<PathSpec>, bytes: u64, seed: u64) -> Report {
    let mut cfg = SimConfig::new(paths, bytes, seed);
    cfg.mode = Mode::Mptcp;
    let r = run(&cfg, None).expect("runnable config");
    assert!(r.completed, "not completed: {:?}", r.failure);
    assert!(
        r.intact,
        "not intact: first corrupt byte {:?}",
        r.first_corrupt_byte
    );
    assert!(!r.fallback);
    r
}

fn counter(r: &Report, name: &str) -> u64 {
    r.counters.client.get(name).copied().unwrap_or(0)
}

fn sent_on(r: &Report, path: usize) -> u64 {
    r.subflows
        .iter()
        .filter(|s| s.path == path)
        .map(|s| s.bytes_sent)
        .sum()
}

fn down(mut p: PathSpec, at: Duration, up: Option<Duration>) -> PathSpec {
    p.down_at = Some(at);
    p.up_at = up;
    p
}

#[test]
fn blackholed_path_hands_over_fast_and_intact() {
    for (d0, d1) in [(10, 20), (10, 10), (5, 40), (40, 5)] {
        let p0 = down(
            PathSpec::new(100 * MBIT, ms(d0)),
            Duration::from_secs(2),
            None,
        );
        let r = mptcp(vec![p0, PathSpec::new(100 * MBIT, ms(d1))], 64 * MIB, 1);
        eprintln!(
            "blackhole {d0}+{d1} ms: longest receiver pause {:.1} ms, stale {}, reinjections {}",
            r.max_stall_ms,
            counter(&r, "SubflowStale"),
            counter(&r, "Reinjections")
        );
        assert!(
            counter(&r, "SubflowStale") >= 1,
            "the silent subflow was never stale"
        );
        assert!(counter(&r, "Reinjections") >= 1);
        // Before stale detection the RTO (200 ms floor) set the pause: 230-260 ms here. The
        // goal (issue 10) is 100 ms; 40+5 was 120 ms while silence had to last an srtt after
        // the last ACK news.
        assert!(
            r.max_stall_ms < 100.0,
            "{d0}+{d1}: paused {} ms",
            r.max_stall_ms
        );
    }
}

#[test]
fn stale_subflow_recovers_when_its_path_returns() {
    let p0 = down(
        PathSpec::new(100 * MBIT, ms(10)),
        Duration::from_secs(2),
        Some(ms(2300)),
    );
    let r = mptcp(vec![p0, PathSpec::new(100 * MBIT, ms(20))], 96 * MIB, 2);
    assert!(counter(&r, "SubflowStale") >= 1);
    assert!(counter(&r, "SubflowRecover") >= 1, "never recovered");
    assert!(counter(&r, "Reinjections") >= 1);
    assert_eq!(r.returns.len(), 1);
    let back = r.returns[0]
        .first_data_ms
        .expect("path 0 carried data again");
    assert!(back < 1000.0, "path 0 idle {back} ms after its return");
    // It carried much after its return: at most 2 s of 100 Mbit/s (23.8 MiB) went before.
    assert!(sent_on(&r, 0) > 30 * MIB, "path 0 sent {}", sent_on(&r, 0));
}

#[test]
fn failback_after_a_long_outage_within_one_second() {
    let p0 = down(
        PathSpec::new(100 * MBIT, ms(10)),
        Duration::from_secs(2),
        Some(Duration::from_secs(20)),
    );
    let r = mptcp(vec![p0, PathSpec::new(10 * MBIT, ms(10))], 64 * MIB, 1);
    let back = r.returns[0]
        .first_data_ms
        .expect("path 0 carried data again");
    eprintln!("failback: path 0 carried data {back:.1} ms after its return");
    assert!(back < 1000.0, "failback took {back} ms");
    // After 20 s most bytes remain for the fast path.
    assert!(sent_on(&r, 0) > 20 * MIB);
}

#[test]
fn flapping_path_five_times_intact() {
    let mut p0 = PathSpec::new(100 * MBIT, ms(10));
    p0.down_at = Some(Duration::from_secs(1));
    p0.up_at = Some(ms(1500));
    for k in 2..=5u64 {
        p0.later_outages
            .push((Duration::from_secs(k), Some(ms(k * 1000 + 500))));
    }
    let p1 = PathSpec::new(100 * MBIT, ms(20));
    let r = mptcp(vec![p0, p1.clone()], 128 * MIB, 3);
    let calm = mptcp(vec![PathSpec::new(100 * MBIT, ms(10)), p1], 128 * MIB, 3);
    eprintln!(
        "flaps x5: goodput {:.1} Mbit/s (without flaps {:.1}), longest pause {:.1} ms",
        r.goodput_mbps, calm.goodput_mbps, r.max_stall_ms
    );
    let down_drops: u64 = r
        .links
        .iter()
        .filter(|l| l.path == 0)
        .map(|l| l.stats.down_drops)
        .sum();
    assert!(down_drops > 0, "the flaps dropped nothing");
    assert_eq!(r.returns.len(), 5);
    for ret in &r.returns {
        let t = ret.first_data_ms.expect("data after each return");
        assert!(t < 1000.0, "return at {} s: {t} ms", ret.at);
    }
    assert!(r.goodput_mbps > 0.5 * calm.goodput_mbps);
}

#[test]
fn backup_path_idle_while_the_regular_works_then_takes_over_and_hands_back() {
    let mut b = PathSpec::new(100 * MBIT, ms(10));
    b.backup = true;
    let r = mptcp(
        vec![PathSpec::new(100 * MBIT, ms(10)), b.clone()],
        64 * MIB,
        1,
    );
    assert!(
        (sent_on(&r, 1) as f64) < 0.01 * r.bytes as f64,
        "backup carried {} bytes",
        sent_on(&r, 1)
    );
    assert!(r
        .events
        .iter()
        .any(|e| e.host == "server" && e.event == "sub_established" && e.backup == Some(true)));

    let a = down(
        PathSpec::new(100 * MBIT, ms(10)),
        Duration::from_secs(2),
        Some(Duration::from_secs(4)),
    );
    let r = mptcp(vec![a, b], 96 * MIB, 1);
    eprintln!(
        "backup takeover: longest pause {:.1} ms, backup bytes {}",
        r.max_stall_ms,
        sent_on(&r, 1)
    );
    // About 2 s at 100 Mbit/s went over the backup, and path 0 took the data back after 4 s.
    assert!(sent_on(&r, 1) > 10 * MIB);
    assert!(sent_on(&r, 1) < 40 * MIB);
    assert!(r.returns[0].first_data_ms.is_some_and(|t| t < 1000.0));
    assert!(r.sim_seconds < 12.0, "took {} s", r.sim_seconds);
    // Neither the takeover nor the handback pauses the receiver beyond the handover goal
    // (the handback paused it 120 ms while new data queued behind path 0's retransmission
    // of what the backup had already carried).
    assert!(r.max_stall_ms < 100.0, "paused {} ms", r.max_stall_ms);
}

#[test]
fn local_address_gone_and_back() {
    let mut p1 = PathSpec::new(100 * MBIT, ms(20));
    p1.gone_at = Some(Duration::from_secs(2));
    p1.back_at = Some(Duration::from_secs(3));
    let r = mptcp(vec![PathSpec::new(50 * MBIT, ms(10)), p1], 96 * MIB, 4);
    assert!(counter(&r, "RmAddrTx") >= 1);
    assert!(r.counters.server.get("RmAddr").copied().unwrap_or(0) >= 1);
    let ev = |host: &str, name: &str, path: usize| {
        r.events
            .iter()
            .filter(|e| e.host == host && e.event == name && e.path == Some(path))
            .map(|e| e.t)
            .collect::<Vec<f64>>()
    };
    let gone = r
        .events
        .iter()
        .find(|e| e.host == "client" && e.event == "sub_closed" && e.path == Some(1))
        .expect("client sub_closed on path 1");
    assert_eq!(gone.reason.as_deref(), Some("local_gone"));
    assert!((gone.t - 2.0).abs() < 0.01);
    let srv = r
        .events
        .iter()
        .find(|e| e.host == "server" && e.event == "sub_closed" && e.path == Some(1))
        .expect("server sub_closed on path 1");
    assert_eq!(srv.reason.as_deref(), Some("peer_removed"));
    assert!(r
        .events
        .iter()
        .any(|e| e.host == "server" && e.event == "removed"));
    let est = ev("client", "sub_established", 1);
    assert_eq!(est.len(), 2, "{est:?}");
    assert!(est[1] >= 3.0 && est[1] < 3.5, "rejoined at {}", est[1]);
    let back = r.returns[0]
        .first_data_ms
        .expect("path 1 carried data again");
    assert!(back < 1000.0);
}
