//! Many seeds, many paths: 200 bulk transfers over lossy, reordering and duplicating links, each
//! path derived from its seed, must all end intact. A failing seed is printed with its full
//! configuration and the `braid sim` command line that replays it.

use braid_proto::rng::Rng;
use braid_sim::{run, PathSpec, Report, SimConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Seeds `1..=SEEDS` are run.
const SEEDS: u64 = 200;
/// Worker threads (the machine has two cores).
const THREADS: usize = 2;
/// Salt that keeps the path choice apart from the simulator's own use of the seed.
const PATH_SALT: u64 = 0x7365_6564_5f70_6174;

/// One seed's scenario, with the exact values that `braid sim` would parse from
/// [`Scenario::command`].
#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    rate_kbit: u64,
    delay_us: u64,
    /// Probabilities in hundredths of a percent.
    loss_bp: u64,
    reorder_bp: u64,
    dup_bp: u64,
    mtu: u32,
    cc: &'static str,
    bytes: u64,
}

/// A value in `lo..=hi`.
fn between(r: &mut Rng, lo: u64, hi: u64) -> u64 {
    lo + r.below(hi - lo + 1)
}

impl Scenario {
    /// The scenario of `seed`: rate 10–100 Mbit/s, one-way delay 1–40 ms, loss 0–5%, reordering
    /// 0–10%, duplication 0–5%, MTU 1280 one time in four, CC alternating reno/cubic, and a
    /// transfer of 256 KiB–1 MiB.
    fn of(seed: u64) -> Self {
        let mut r = Rng::new(seed ^ PATH_SALT);
        Scenario {
            seed,
            rate_kbit: between(&mut r, 10_000, 100_000),
            delay_us: between(&mut r, 1_000, 40_000),
            loss_bp: between(&mut r, 0, 500),
            reorder_bp: between(&mut r, 0, 1000),
            dup_bp: between(&mut r, 0, 500),
            mtu: if r.below(4) == 0 { 1280 } else { 1500 },
            cc: if seed.is_multiple_of(2) {
                "reno"
            } else {
                "cubic"
            },
            bytes: between(&mut r, 256 << 10, 1 << 20),
        }
    }

    /// Hundredths of a percent as the probability the CLI parses from `"{n/100}.{n%100}%"`
    /// (both divisions are correctly rounded, so the two are the same `f64`).
    fn prob(bp: u64) -> f64 {
        (bp as f64 / 100.0) / 100.0
    }

    fn pct(bp: u64) -> String {
        format!("{}.{:02}%", bp / 100, bp % 100)
    }

    fn config(&self) -> SimConfig {
        let mut p = PathSpec::new(self.rate_kbit * 1000, Duration::from_micros(self.delay_us));
        p.loss = Self::prob(self.loss_bp);
        p.reorder = Self::prob(self.reorder_bp);
        p.duplicate = Self::prob(self.dup_bp);
        p.mtu = self.mtu;
        let mut cfg = SimConfig::new(vec![p], self.bytes, self.seed);
        cfg.cc = self.cc.to_string();
        // Worst case (1 MiB at 10 Mbit/s, 80 ms RTT, 5% loss) needs a few seconds; a stall
        // shows as a timeout rather than a hang.
        cfg.time_limit = Duration::from_secs(120);
        cfg
    }

    /// The `braid sim` command line that replays this scenario.
    fn command(&self) -> String {
        format!(
            "braid sim --path {}kbit/{}us/loss={}/reorder={}/dup={}/mtu={} --bytes {} --seed {} --cc {} --time-limit 120s",
            self.rate_kbit,
            self.delay_us,
            Self::pct(self.loss_bp),
            Self::pct(self.reorder_bp),
            Self::pct(self.dup_bp),
            self.mtu,
            self.bytes,
            self.seed,
            self.cc
        )
    }
}

/// Why `r` is not a clean, intact run (`None` when it is).
fn defect(r: &Report, cfg: &SimConfig) -> Option<String> {
    if !r.completed {
        return Some(format!(
            "not completed: {} ({} of {} bytes read)",
            r.failure.as_deref().unwrap_or("?"),
            r.bytes_received,
            r.bytes
        ));
    }
    if !r.intact || r.bytes_received != cfg.bytes {
        return Some(format!(
            "completed but not intact: {} of {} bytes read, first corrupt byte {:?}",
            r.bytes_received, r.bytes, r.first_corrupt_byte
        ));
    }
    if cfg.sha256 && r.sha256.as_ref().is_none_or(|h| h.len() != 64) {
        return Some(format!("bad sha256 {:?}", r.sha256));
    }
    if !cfg.sha256 && r.sha256.is_some() {
        return Some("a sha256 nobody asked for".into());
    }
    None
}

/// What the runs went through, summed over the seeds.
#[derive(Debug, Default)]
struct Totals {
    lost: u64,
    reordered: u64,
    duplicated: u64,
    retransmitted_bytes: u64,
    /// The longest run, simulated seconds.
    longest: f64,
}

impl Totals {
    fn add(&mut self, r: &Report) {
        for l in &r.links {
            self.lost += l.stats.random_losses;
            self.reordered += l.stats.reordered;
            self.duplicated += l.stats.duplicated;
        }
        self.retransmitted_bytes += r
            .subflows
            .iter()
            .map(|s| s.retransmitted_bytes)
            .sum::<u64>();
        self.longest = self.longest.max(r.sim_seconds);
    }
}

#[test]
fn two_hundred_random_paths_all_end_intact() {
    let next = AtomicU64::new(1);
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new(Totals::default());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed > SEEDS {
                    break;
                }
                let sc = Scenario::of(seed);
                let cfg = sc.config();
                let problem = match run(&cfg, None) {
                    Err(e) => Some(format!("refused: {e}")),
                    Ok(r) => {
                        totals.lock().unwrap().add(&r);
                        defect(&r, &cfg)
                    }
                };
                if let Some(p) = problem {
                    failures.lock().unwrap().push((seed, p, sc, cfg));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| f.0);
    let report: Vec<String> = failures
        .iter()
        .map(|(seed, p, sc, cfg)| {
            format!(
                "seed {seed}: {p}\n  replay: {}\n  config: {cfg:?}",
                sc.command()
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {SEEDS} seeds failed:\n{}",
        failures.len(),
        report.join("\n")
    );
    let t = totals.into_inner().unwrap();
    eprintln!("{SEEDS} seeds: {t:?}");
    // The paths really were hostile, and the engine really had to repair them.
    assert!(t.lost > 1000 && t.reordered > 1000 && t.duplicated > 500);
    assert!(t.retransmitted_bytes > 0);
}

/// Two runs of one seed are the same run; the digest is that of the data alone.
#[test]
fn seeds_are_reproducible_and_the_digest_follows_the_data() {
    for seed in [3, 100, 177] {
        let cfg = SimConfig {
            sha256: true,
            ..Scenario::of(seed).config()
        };
        let a = run(&cfg, None).unwrap();
        let b = run(&cfg, None).unwrap();
        assert_eq!(defect(&a, &cfg), None, "seed {seed}");
        assert_eq!(a.trace_sha256, b.trace_sha256, "seed {seed}");
        assert_eq!(a.sha256, b.sha256, "seed {seed}");
        assert_eq!(
            Report {
                wall_seconds: 0.0,
                ..a.clone()
            },
            Report {
                wall_seconds: 0.0,
                ..b
            },
            "seed {seed}"
        );

        // The same stream (same seed and size) over a clean, different path: another trace,
        // the same received bytes, so the same digest.
        let clean = SimConfig {
            paths: vec![PathSpec::new(200_000_000, Duration::from_millis(2))],
            ..cfg.clone()
        };
        let c = run(&clean, None).unwrap();
        assert_eq!(defect(&c, &clean), None, "seed {seed}, clean path");
        assert_ne!(a.trace_sha256, c.trace_sha256);
        assert_eq!(a.sha256, c.sha256, "seed {seed}");

        // Another seed's stream hashes differently.
        let other = SimConfig {
            seed: seed + 1000,
            ..clean
        };
        let d = run(&other, None).unwrap();
        assert_eq!(defect(&d, &other), None, "seed {}", other.seed);
        assert_ne!(a.sha256, d.sha256);
    }
}

/// The scenario derivation covers the ranges it promises (a guard against a generator that
/// silently stops producing hostile paths).
#[test]
fn scenarios_cover_their_ranges() {
    let all: Vec<Scenario> = (1..=SEEDS).map(Scenario::of).collect();
    let span = |f: &dyn Fn(&Scenario) -> u64| {
        let v: Vec<u64> = all.iter().map(f).collect();
        (*v.iter().min().unwrap(), *v.iter().max().unwrap())
    };
    let (lo, hi) = span(&|s| s.rate_kbit);
    assert!((10_000..15_000).contains(&lo) && (95_001..=100_000).contains(&hi));
    let (lo, hi) = span(&|s| s.delay_us);
    assert!((1_000..3_000).contains(&lo) && (38_001..=40_000).contains(&hi));
    let (lo, hi) = span(&|s| s.loss_bp);
    assert!(lo < 20 && hi <= 500 && hi > 450);
    let (_, hi) = span(&|s| s.reorder_bp);
    assert!(hi <= 1000 && hi > 900);
    let (_, hi) = span(&|s| s.dup_bp);
    assert!(hi <= 500 && hi > 450);
    let (lo, hi) = span(&|s| s.bytes);
    assert!(lo >= 256 << 10 && hi <= 1 << 20 && hi - lo > 600 << 10);
    let small_mtu = all.iter().filter(|s| s.mtu == 1280).count();
    assert!(
        (20..=80).contains(&small_mtu),
        "{small_mtu} of {SEEDS} at MTU 1280"
    );
    assert!(all.iter().any(|s| s.cc == "reno") && all.iter().any(|s| s.cc == "cubic"));
    // The replay line is what the CLI parses back to the same numbers.
    let s = &all[0];
    assert!(s
        .command()
        .contains(&format!("--bytes {} --seed 1 ", s.bytes)));
    assert_eq!(Scenario::prob(123), "1.23".parse::<f64>().unwrap() / 100.0);
}
