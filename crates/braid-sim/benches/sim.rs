//! Simulator speed: whole `braid sim` runs (engine, links, payload generation and the receiver's
//! check), in simulated bytes per wall second. One fast path (10 Gbit/s, 1 ms: the engine's
//! cost per byte dominates) and the default MPTCP two-path run (100 Mbit/s 10 ms and
//! 50 Mbit/s 20 ms).

use braid_sim::{run, Mode, PathSpec, SimConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

const BYTES: u64 = 32 << 20;

fn config(paths: Vec<PathSpec>) -> SimConfig {
    let mut cfg = SimConfig::new(paths, BYTES, 1);
    cfg.mode = Mode::Mptcp;
    cfg
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.throughput(Throughput::Bytes(BYTES));
    g.sample_size(10);
    let cases = [
        (
            "10gbit_1ms",
            vec![PathSpec::new(10_000_000_000, Duration::from_millis(1))],
        ),
        (
            "mptcp_default_two_paths",
            vec![
                PathSpec::new(100_000_000, Duration::from_millis(10)),
                PathSpec::new(50_000_000, Duration::from_millis(20)),
            ],
        ),
    ];
    for (name, paths) in cases {
        let cfg = config(paths);
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = run(&cfg, None).expect("valid configuration");
                assert!(r.intact, "{name}: {:?}", r.failure);
                r
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
