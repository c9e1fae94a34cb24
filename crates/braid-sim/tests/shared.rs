//! Shared bottlenecks (`PathSpec::link`), competing TCP flows and the time series of a run.

mod common;

use braid_sim::{
    run, run_with, Hooks, Mode, PathSpec, Report, Sample, SampleEvent, SimConfig, SimError,
    SAMPLE_INTERVAL,
};
use common::ms;

const MBIT: u64 = 1_000_000;
const MIB: u64 = 1 << 20;

fn mptcp(paths: Vec<PathSpec>, bytes: u64) -> SimConfig {
    let mut cfg = SimConfig::new(paths, bytes, 1);
    cfg.mode = Mode::Mptcp;
    cfg
}

fn sharing(k: usize, rate: u64, delay: std::time::Duration) -> PathSpec {
    PathSpec {
        link: Some(k),
        ..PathSpec::new(rate, delay)
    }
}

fn run_ok(cfg: &SimConfig) -> Report {
    let r = run(cfg, None).expect("runnable config");
    assert!(r.completed && r.intact, "{:?}", r.failure);
    r
}

/// Two subflows over one 100 Mbit/s link get one link's rate between them, not two; over two
/// separate links they get nearly two. Both subflows carry data in both cases.
#[test]
fn a_shared_bottleneck_is_shared() {
    let shared = run_ok(&mptcp(
        vec![
            PathSpec::new(100 * MBIT, ms(10)),
            sharing(0, 100 * MBIT, ms(10)),
        ],
        48 * MIB,
    ));
    let separate = run_ok(&mptcp(
        vec![
            PathSpec::new(100 * MBIT, ms(10)),
            PathSpec::new(100 * MBIT, ms(10)),
        ],
        48 * MIB,
    ));
    assert_eq!(shared.subflows.len(), 2);
    for sf in &shared.subflows {
        assert!(sf.bytes_sent > 2 * MIB, "subflow on path {} idle", sf.path);
    }
    assert!(
        shared.goodput_mbps > 80.0 && shared.goodput_mbps < 100.0,
        "shared: {} Mbit/s",
        shared.goodput_mbps
    );
    assert!(
        separate.goodput_mbps > 150.0,
        "separate: {} Mbit/s",
        separate.goodput_mbps
    );
    // One pair of links, owned by path 0, carried everything.
    assert_eq!(shared.links.len(), 2);
    assert!(shared.links.iter().all(|l| l.path == 0));
    let sent: u64 = shared.subflows.iter().map(|s| s.bytes_sent).sum();
    assert!(shared.links[0].stats.bytes_delivered > sent);
    assert_eq!(separate.links.len(), 4);
}

/// A sharing path's only own property is its addresses: the queue is the other path's, so a
/// path that would otherwise have been clean suffers that link's losses.
#[test]
fn a_sharing_path_takes_the_links_loss() {
    let mut lossy = PathSpec::new(50 * MBIT, ms(5));
    lossy.loss = 0.02;
    let r = run(
        &mptcp(vec![lossy, sharing(0, 50 * MBIT, ms(5))], 4 * MIB),
        None,
    )
    .unwrap();
    assert!(r.intact);
    assert!(r.links[0].stats.random_losses > 0);
    let retx: Vec<u64> = r.subflows.iter().map(|s| s.retransmitted_bytes).collect();
    assert!(retx.iter().all(|&b| b > 0), "every subflow lost: {retx:?}");
}

#[test]
fn bad_link_references_are_refused() {
    let p = PathSpec::new(100 * MBIT, ms(10));
    let check = |paths: Vec<PathSpec>, needle: &str| {
        let e = run(&mptcp(paths, MIB), None).unwrap_err();
        assert!(matches!(e, SimError::InvalidConfig(_)), "{e:?}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
    };
    check(
        vec![sharing(0, 100 * MBIT, ms(10))],
        "path 0: link=0: the first path has a link of its own",
    );
    check(
        vec![p.clone(), sharing(1, 100 * MBIT, ms(10))],
        "path 1: link=1 must name an earlier path (0)",
    );
    check(
        vec![p.clone(), p.clone(), sharing(5, 100 * MBIT, ms(10))],
        "path 2: link=5 must name an earlier path (0..1)",
    );
    check(
        vec![p.clone(), sharing(0, 50 * MBIT, ms(10))],
        "path 1: crosses path 0's link, so its rate and delay are path 0's",
    );
    check(
        vec![
            p.clone(),
            PathSpec {
                loss: 0.01,
                ..sharing(0, 100 * MBIT, ms(10))
            },
        ],
        "are properties of that link (give them on path 0)",
    );
    let mut cfg = mptcp(vec![p], MIB);
    cfg.competing = braid_sim::MAX_COMPETING + 1;
    assert!(run(&cfg, None)
        .unwrap_err()
        .to_string()
        .contains("competing flows (at most"));
}

/// One competing TCP flow on a 100 Mbit/s link beside a braid TCP transfer: both move bytes,
/// the report's figures agree with each other and together they fill the link, no more.
#[test]
fn competing_flows_move_bytes_and_are_reported() {
    let mut cfg = SimConfig::new(vec![PathSpec::new(100 * MBIT, ms(10))], 32 * MIB, 1);
    cfg.competing = 1;
    let r = run_ok(&cfg);
    assert_eq!(r.competing.len(), 1);
    let c = &r.competing[0];
    assert!(c.bytes > 4 * MIB, "competing flow read {} bytes", c.bytes);
    let want = c.bytes as f64 * 8.0 / r.sim_seconds / 1e6;
    assert!((c.goodput_mbps - want).abs() < 1e-9);
    let total = r.goodput_mbps + c.goodput_mbps;
    assert!(total > 85.0 && total < 100.0, "together {total} Mbit/s");
    // The competing flow's packets crossed path 0's link: it carried more than braid's.
    assert!(r.links[0].stats.bytes_delivered > r.bytes + c.bytes);
    // Without competition the transfer is faster.
    cfg.competing = 0;
    let alone = run_ok(&cfg);
    assert!(alone.competing.is_empty());
    assert!(alone.goodput_mbps > r.goodput_mbps * 1.3);

    // Two flows, two entries, both busy; with MPTCP on two paths, only path 0 sees them.
    let mut cfg = mptcp(
        vec![
            PathSpec::new(100 * MBIT, ms(10)),
            PathSpec::new(100 * MBIT, ms(10)),
        ],
        32 * MIB,
    );
    cfg.competing = 2;
    let r = run_ok(&cfg);
    assert_eq!(r.competing.len(), 2);
    assert!(
        r.competing.iter().all(|c| c.bytes > MIB),
        "{:?}",
        r.competing
    );
    let braid_on = |p: usize| r.subflows.iter().find(|s| s.path == p).unwrap().bytes_sent;
    assert!(braid_on(1) > braid_on(0), "the free path carries more");
    assert!(r.links[2].stats.bytes_delivered < r.links[0].stats.bytes_delivered);
}

fn samples_of(cfg: &SimConfig) -> (Report, Vec<Sample>) {
    let mut samples = Vec::new();
    let mut keep = |s: &Sample| samples.push(s.clone());
    let r = run_with(
        cfg,
        Hooks {
            sample: Some(&mut keep),
            ..Hooks::default()
        },
    )
    .unwrap();
    (r, samples)
}

/// The time series: a tick every 10 ms of simulated time with growing counters, event samples
/// in between, an end sample that agrees with the report, and the same run as without it.
#[test]
fn time_series_ticks_and_events() {
    let mut cfg = mptcp(
        vec![
            PathSpec::new(100 * MBIT, ms(10)),
            sharing(0, 100 * MBIT, ms(10)),
        ],
        16 * MIB,
    );
    cfg.competing = 1;
    let (r, samples) = samples_of(&cfg);
    assert!(r.intact);
    // Watching changes nothing.
    let plain = run(&cfg, None).unwrap();
    assert_eq!(plain.trace_sha256, r.trace_sha256);
    assert_eq!(plain.sim_seconds, r.sim_seconds);
    assert_eq!(plain.competing, r.competing);
    let ticks: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.event == SampleEvent::Tick)
        .collect();
    let step = SAMPLE_INTERVAL.as_secs_f64();
    for (i, s) in ticks.iter().enumerate() {
        assert!((s.t - i as f64 * step).abs() < 1e-9, "tick {i} at {}", s.t);
    }
    assert!(ticks.len() as f64 >= r.sim_seconds / step - 1.0);
    for w in samples.windows(2) {
        assert!(w[1].t >= w[0].t);
        assert!(w[1].bytes_read >= w[0].bytes_read);
        for (a, b) in w[0].subflows.iter().zip(&w[1].subflows) {
            assert!(b.bytes_acked >= a.bytes_acked && b.bytes_sent >= a.bytes_sent);
            assert!(b.bytes_acked <= b.bytes_sent);
        }
    }
    let count = |e: SampleEvent| samples.iter().filter(|s| s.event == e).count();
    assert_eq!(
        count(SampleEvent::Subflow),
        2,
        "the initial subflow and the join"
    );
    assert!(count(SampleEvent::State) >= 2, "handshakes complete");
    assert!(
        count(SampleEvent::Congestion) >= 1,
        "a shared queue overflows"
    );
    let end = samples.last().unwrap();
    assert_eq!(end.event, SampleEvent::End);
    assert!((end.t - r.sim_seconds).abs() < 1e-9);
    assert_eq!(end.bytes_read, r.bytes);
    assert_eq!(end.competing.len(), 1);
    assert_eq!(end.competing[0].bytes, r.competing[0].bytes);
    let paths: Vec<usize> = end.subflows.iter().map(|s| s.path).collect();
    assert_eq!(paths, [0, 1]);
    let mid = ticks[ticks.len() / 2];
    assert!(mid
        .subflows
        .iter()
        .all(|s| s.state == "established" && s.cwnd > 0 && s.srtt_ms.is_some_and(|v| v >= 20.0)));
    assert!(mid.subflows.iter().any(|s| s.inflight > 0));
    assert!(mid.send_queue > 0, "the sender keeps its buffer full");
    assert!(samples
        .iter()
        .any(|s| s.subflows.iter().any(|f| f.ssthresh.is_some())));
}
