//! `braid sim`: a bulk transfer through the deterministic network simulator.

use crate::units::{fmt_bytes, fmt_bytes_exact, fmt_path, parse_path, parse_size, parse_time};
use braid_sim::{Direction, Mode, PathSpec, Progress, Report, SimConfig, SimError};
use clap::{Args, ValueEnum};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Arguments of `braid sim`.
#[derive(Args, Debug)]
#[command(after_help = "\
SPEC  = RATE/DELAY[/loss=PCT][/queue=SIZE][/down=TIME][/up=TIME][/reorder=PCT][/dup=PCT][/mtu=N]
        [/strip=syn|all]   (strip: a middlebox removes MPTCP options from SYNs / every packet)
        [/link=K]   (crosses path K's link: one bottleneck; RATE/DELAY must be path K's)
        [/gone=TIME][/back=TIME]   (the client's address of the path goes away / comes back)
        [/backup]   (the client's subflows on it are backups: data only when no other works)
        down= and up= may repeat in time order: /down=2s/up=4s/down=6s/up=7s
        e.g. 100mbit/10ms  20mbit/40ms/loss=1%  100mbit/5ms/down=2s  100mbit/10ms/strip=syn
RATE  = N bit|kbit|mbit|gbit (decimal);  DELAY, TIME = N us|ms|s (DELAY is one-way)
SIZE  = bytes, or N k|M|G|T (x1000) or N KiB|MiB|GiB|TiB (x1024), any case, e.g. 64MiB, 10mib, 100000
PCT   = 0..100, e.g. 1%, 0.5%

Exit status: 0 when the transfer completed intact, 1 when it did not, 2 for usage errors.")]
pub struct SimArgs {
    /// Transport: Multipath TCP over all paths, or plain TCP over one path.
    #[arg(long, value_enum, default_value_t = ModeArg::Mptcp)]
    mode: ModeArg,
    /// A path between the two hosts (repeat for several); default: 100mbit/10ms and
    /// 50mbit/20ms in mptcp mode, 100mbit/10ms in tcp mode.
    #[arg(long = "path", value_name = "SPEC")]
    paths: Vec<String>,
    /// MPTCP packet scheduler.
    #[arg(long, default_value = "minrtt", value_parser = crate::net::parse_scheduler,
          help = crate::net::names_help("MPTCP packet scheduler", &braid_proto::mptcp::sched::names()))]
    scheduler: String,
    /// MPTCP path manager.
    #[arg(long, default_value = "fullmesh", value_parser = crate::net::parse_path_manager,
          help = crate::net::names_help("MPTCP path manager", &braid_proto::mptcp::pm::names()))]
    path_manager: String,
    /// Ask for MPTCP DSS checksums (RFC 8684 §3.3.1).
    #[arg(long)]
    checksum: bool,
    /// Application bytes to transfer.
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    bytes: String,
    /// Seed of every random choice: one seed, one run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Congestion control.
    #[arg(long, default_value = "cubic", value_parser = crate::net::parse_cc,
          help = crate::net::names_help("Congestion control (lia, olia, balia couple the MPTCP subflows)", &braid_proto::cc::names()))]
    cc: String,
    /// Print exactly one JSON object (the report) on stdout.
    #[arg(long)]
    json: bool,
    /// Also compute the SHA-256 of the bytes the receiver read (the report's sha256). The bytes
    /// are always compared exactly with what was sent; hashing only costs time.
    #[arg(long)]
    sha256: bool,
    /// Give up after this much simulated time.
    #[arg(long, value_name = "TIME", default_value = "600s")]
    time_limit: String,
    /// Send buffer of both hosts (default: the engine's).
    #[arg(long, value_name = "SIZE")]
    sndbuf: Option<String>,
    /// Receive buffer of both hosts (default: the engine's).
    #[arg(long, value_name = "SIZE")]
    rcvbuf: Option<String>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Write every packet the hosts send (all paths, both directions, before any loss, stamped
    /// with simulated time) to this pcap file.
    #[arg(long, value_name = "FILE")]
    pcap: Option<std::path::PathBuf>,
    /// Plain TCP bulk flows (CUBIC) between two further hosts across path 0's link, from the
    /// start until the transfer ends.
    #[arg(long, value_name = "N", default_value_t = 0)]
    competing: usize,
    /// Write the time series (every 10 ms of simulated time and at each event) to this file as
    /// JSON lines.
    #[arg(long, value_name = "FILE")]
    trace: Option<std::path::PathBuf>,
    /// Draw goodput, congestion window and smoothed RTT over time into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Tcp,
    Mptcp,
}

/// Runs `braid sim`; returns the process exit status.
pub fn main(args: SimArgs) -> ExitCode {
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    let show_progress = !args.quiet && (!args.json || std::io::stderr().is_terminal());
    let mut print_progress = |p: &Progress| {
        // Short runs stay quiet: only runs past ~2 s of wall time report progress.
        if p.wall_seconds >= 2.0 {
            // Rounded down, and the bytes to go when the rounded sizes look equal: a transfer
            // stuck a few bytes short must not show 100%.
            let pct = if p.bytes_total > 0 {
                (p.bytes_delivered as f64 * 1000.0 / p.bytes_total as f64).floor() / 10.0
            } else {
                100.0
            };
            let (done, total) = (fmt_bytes(p.bytes_delivered), fmt_bytes(p.bytes_total));
            let left = p.bytes_total.saturating_sub(p.bytes_delivered);
            let to_go = if left > 0 && done == total {
                format!(", {left} bytes to go")
            } else {
                String::new()
            };
            eprintln!(
                "[{:6.1} s] sim {:.3} s  {done} / {total} ({pct:.1}%{to_go})  {:.2} Mbit/s",
                p.wall_seconds,
                p.sim_time.as_secs_f64(),
                p.goodput_mbps
            );
        }
    };
    let progress: Option<&mut dyn FnMut(&Progress)> = if show_progress {
        Some(&mut print_progress)
    } else {
        None
    };
    let capture = match args.pcap.as_deref().map(braid_io::pcap::PcapWriter::create) {
        None => None,
        Some(Ok(w)) => Some(std::rc::Rc::new(std::cell::RefCell::new((w, None)))),
        Some(Err(e)) => {
            eprintln!(
                "error: cannot create pcap file {:?}: {e}",
                args.pcap.unwrap_or_default()
            );
            return ExitCode::from(1);
        }
    };
    let tap = capture.clone().map(|c| {
        braid_sim::Tap(Box::new(move |t, _link, pkt| {
            let (w, err) = &mut *c.borrow_mut();
            if err.is_none() {
                *err = w
                    .write_packet(t.saturating_duration_since(braid_proto::Instant::ZERO), pkt)
                    .err();
            }
        }))
    });
    let mut trace = match args.trace.as_deref().map(crate::trace::TraceWriter::create) {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let watch = trace.is_some() || args.plot.is_some();
    let mut samples = Vec::new();
    let mut on_sample = |s: &braid_sim::Sample| {
        if let Some(t) = trace.as_mut() {
            t.write(s);
        }
        if args.plot.is_some() {
            samples.push(s.clone());
        }
    };
    let hooks = braid_sim::Hooks {
        progress,
        tap,
        sample: if watch { Some(&mut on_sample) } else { None },
    };
    let result = braid_sim::run_with(&cfg, hooks);
    if let Some(e) = trace.take().and_then(|t| t.finish().err()) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    if let (Some(path), Ok(_)) = (&args.plot, &result) {
        let title = format!(
            "braid sim: {}, {}, cc {}, seed {}{}",
            match cfg.mode {
                Mode::Tcp => "tcp",
                Mode::Mptcp => "mptcp",
            },
            cfg.paths
                .iter()
                .map(fmt_path)
                .collect::<Vec<_>>()
                .join(" + "),
            cfg.cc,
            cfg.seed,
            match cfg.competing {
                0 => String::new(),
                n => format!(", {n} competing TCP"),
            }
        );
        if let Err(e) = crate::plot::write_svg(path, &title, &samples) {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    if let Some(c) = capture {
        let (w, err) = &mut *c.borrow_mut();
        if let Some(e) = err.take().or_else(|| w.flush().err()) {
            eprintln!(
                "error: writing pcap file {:?}: {e}",
                args.pcap.unwrap_or_default()
            );
            return ExitCode::from(1);
        }
    }
    let mut report = match result {
        Ok(r) => r,
        Err(e @ (SimError::Unsupported(_) | SimError::InvalidConfig(_))) => {
            return usage_error(&e.to_string())
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if !report.completed {
        // Goodput over what was delivered in the time the run took (the engine's report gives
        // none for an incomplete run).
        report.goodput_mbps = delivered_goodput(&report);
    }
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_string(&report)
            .map_err(std::io::Error::other)
            .and_then(|s| writeln!(out, "{s}"))
    } else {
        write!(out, "{}", summary(&cfg, &report))
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        eprintln!("error: writing the report: {e}");
        return ExitCode::from(1);
    }
    if report.completed && report.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// The simulation the arguments describe, or a message naming the bad argument.
fn config(args: &SimArgs) -> Result<SimConfig, String> {
    let paths: Vec<PathSpec> = if args.paths.is_empty() {
        let defaults: &[&str] = match args.mode {
            ModeArg::Mptcp => &["100mbit/10ms", "50mbit/20ms"],
            ModeArg::Tcp => &["100mbit/10ms"],
        };
        defaults
            .iter()
            .map(|s| parse_path(s))
            .collect::<Result<_, _>>()?
    } else {
        args.paths
            .iter()
            .map(|s| parse_path(s))
            .collect::<Result<_, _>>()?
    };
    if args.mode == ModeArg::Tcp && paths.len() > 1 {
        return Err(format!(
            "--mode tcp uses one path, but {} were given (plain TCP cannot use more; use \
             --mode mptcp for several paths)",
            paths.len()
        ));
    }
    if paths.len() > braid_sim::addr::MAX_PATHS {
        return Err(format!(
            "{} paths given (at most {})",
            paths.len(),
            braid_sim::addr::MAX_PATHS
        ));
    }
    let bytes = parse_size(&args.bytes).map_err(|e| format!("--bytes: {e}"))?;
    let mut cfg = SimConfig::new(paths, bytes, args.seed);
    cfg.mode = match args.mode {
        ModeArg::Tcp => Mode::Tcp,
        ModeArg::Mptcp => Mode::Mptcp,
    };
    cfg.cc = args.cc.clone();
    cfg.competing = args.competing;
    cfg.sha256 = args.sha256;
    cfg.endpoint.mptcp.scheduler = args.scheduler.clone();
    cfg.endpoint.mptcp.path_manager = args.path_manager.clone();
    cfg.endpoint.mptcp.checksum = args.checksum;
    cfg.time_limit = parse_time(&args.time_limit).map_err(|e| format!("--time-limit: {e}"))?;
    if let Some(s) = &args.sndbuf {
        // A fixed size, as SO_SNDBUF on Linux: no autotuning.
        let n = buffer_size(s).map_err(|e| format!("--sndbuf: {e}"))?;
        cfg.endpoint.tcp.send_buffer = n;
        cfg.endpoint.tcp.send_buffer_max = n;
    }
    if let Some(s) = &args.rcvbuf {
        let n = buffer_size(s).map_err(|e| format!("--rcvbuf: {e}"))?;
        cfg.endpoint.tcp.recv_buffer = n;
        cfg.endpoint.tcp.recv_buffer_max = n;
    }
    Ok(cfg)
}

/// A socket buffer size: positive and addressable.
fn buffer_size(s: &str) -> Result<usize, String> {
    let v = parse_size(s)?;
    if v == 0 {
        return Err(format!("buffer size \"{s}\" must be positive"));
    }
    usize::try_from(v).map_err(|_| format!("buffer size \"{s}\" is too large"))
}

/// Application bytes read over the simulated time the run took, in Mbit/s.
fn delivered_goodput(r: &Report) -> f64 {
    if r.sim_seconds > 0.0 {
        r.bytes_received as f64 * 8.0 / r.sim_seconds / 1e6
    } else {
        0.0
    }
}

/// Why an incomplete run ended, in the words of the command line.
fn incomplete_reason(cfg: &SimConfig, r: &Report) -> String {
    let failure = r.failure.as_deref().unwrap_or("unknown reason");
    if failure.starts_with("time limit") {
        format!(
            "stopped by --time-limit {} (simulated time) before the transfer finished",
            crate::units::fmt_duration(cfg.time_limit)
        )
    } else {
        failure.to_string()
    }
}

/// The human-readable report.
fn summary(cfg: &SimConfig, r: &Report) -> String {
    let mode = match r.mode {
        Mode::Tcp => "tcp",
        Mode::Mptcp => "mptcp",
    };
    let mut s = format!(
        "braid sim: {mode}, {} path{}, {}, seed {}, cc {}\n",
        cfg.paths.len(),
        if cfg.paths.len() == 1 { "" } else { "s" },
        fmt_bytes_exact(r.bytes),
        r.seed,
        cfg.cc
    );
    for (i, p) in cfg.paths.iter().enumerate() {
        s += &format!("  path {i}: {}\n", fmt_path(p));
    }
    let result = match (r.completed, r.intact) {
        (true, true) => "intact: yes".to_string(),
        (true, false) => "intact: NO (data differs from what was sent)".to_string(),
        // Exact counts: rounding would make 1 288 missing bytes look like none.
        (false, _) => format!(
            "intact: NO (incomplete: {}; {} of {} bytes read, {} missing)",
            incomplete_reason(cfg, r),
            r.bytes_received,
            r.bytes,
            r.bytes.saturating_sub(r.bytes_received)
        ),
    };
    s += &format!("{result}\n");
    if r.mode == Mode::Mptcp {
        s += &format!(
            "fallback:  {}\n",
            if r.fallback {
                "yes (the connection is plain TCP)"
            } else {
                "no"
            }
        );
    }
    if let Some(sha) = &r.sha256 {
        s += &format!("sha256:    {sha} (of the bytes read)\n");
    }
    s += &format!(
        "sim time:  {:.3} s   goodput {:.2} Mbit/s{}\n",
        r.sim_seconds,
        r.goodput_mbps,
        if r.completed {
            ""
        } else {
            " (of the bytes read, over the whole run)"
        }
    );
    let speed = if r.wall_seconds > 0.0 {
        r.bytes_received as f64 * 8.0 / r.wall_seconds / 1e9
    } else {
        0.0
    };
    s += &format!(
        "wall time: {:.3} s   simulation speed {speed:.2} Gbit/s\n",
        r.wall_seconds
    );
    s += &format!(
        "max stall: {:.3} ms (longest time without new bytes for the receiver)\n",
        r.max_stall_ms
    );
    for sf in &r.subflows {
        s += &format!(
            "subflow on path {}: sent {}, retransmitted {}, srtt {:.2} ms\n",
            sf.path,
            fmt_bytes(sf.bytes_sent),
            fmt_bytes(sf.retransmitted_bytes),
            sf.srtt_ms
        );
    }
    for (i, c) in r.competing.iter().enumerate() {
        s += &format!(
            "competing TCP flow {i}: {} read, goodput {:.2} Mbit/s\n",
            fmt_bytes(c.bytes),
            c.goodput_mbps
        );
    }
    for l in &r.links {
        let dir = match l.direction {
            Direction::ClientToServer => "client->server",
            Direction::ServerToClient => "server->client",
        };
        let st = &l.stats;
        s += &format!(
            "link path {} {dir}: {} pkts ({}) delivered; drops: queue {}, loss {}, mtu {}, down {}; reordered {}, duplicated {}{}\n",
            l.path,
            st.packets_delivered,
            fmt_bytes(st.bytes_delivered),
            st.queue_drops,
            st.random_losses,
            st.mtu_drops,
            st.down_drops,
            st.reordered,
            st.duplicated,
            if st.mptcp_stripped > 0 {
                format!("; MPTCP options stripped from {}", st.mptcp_stripped)
            } else {
                String::new()
            }
        );
    }
    if r.unroutable_packets > 0 {
        s += &format!("unroutable packets: {}\n", r.unroutable_packets);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Wrapper {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn cfg_of(argv: &[&str]) -> Result<SimConfig, String> {
        let w = Wrapper::try_parse_from(std::iter::once("sim").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        config(&w.sim)
    }

    #[test]
    fn defaults() {
        let ms = std::time::Duration::from_millis;
        let c = cfg_of(&[]).unwrap();
        assert_eq!(c.mode, Mode::Mptcp);
        assert_eq!(
            c.paths,
            [
                PathSpec::new(100_000_000, ms(10)),
                PathSpec::new(50_000_000, ms(20))
            ]
        );
        assert_eq!(c.endpoint.mptcp.scheduler, "minrtt");
        assert!(!c.endpoint.mptcp.checksum);
        let t = cfg_of(&["--mode", "tcp"]).unwrap();
        assert_eq!(t.mode, Mode::Tcp);
        assert_eq!(t.paths, [PathSpec::new(100_000_000, ms(10))]);
        // Given paths replace the defaults in either mode.
        let one = cfg_of(&["--path", "1mbit/1ms"]).unwrap();
        assert_eq!(one.paths, [PathSpec::new(1_000_000, ms(1))]);
        assert_eq!(c.bytes, 64 << 20);
        assert_eq!(c.seed, 1);
        assert_eq!(c.cc, "cubic");
        assert_eq!(c.time_limit, std::time::Duration::from_secs(600));
    }

    #[test]
    fn every_option() {
        for (name, want) in [("minrtt", "minrtt"), ("redundant", "redundant")] {
            let c = cfg_of(&["--scheduler", name]).unwrap();
            assert_eq!(c.endpoint.mptcp.scheduler, want);
        }
        let c = cfg_of(&[
            "--path",
            "1mbit/1ms/strip=syn",
            "--path",
            "1mbit/1ms/strip=all",
        ])
        .unwrap();
        assert_eq!(c.paths[0].strip, braid_sim::Strip::Syn);
        assert_eq!(c.paths[1].strip, braid_sim::Strip::All);
        let c = cfg_of(&[
            "--mode",
            "mptcp",
            "--path",
            "10mbit/5ms",
            "--path",
            "20mbit/40ms/loss=1%",
            "--bytes",
            "1GiB",
            "--seed",
            "9",
            "--cc",
            "reno",
            "--time-limit",
            "30s",
            "--sndbuf",
            "1MiB",
            "--rcvbuf",
            "2MB",
            "--json",
            "--quiet",
            "--scheduler",
            "roundrobin",
            "--checksum",
        ])
        .unwrap();
        assert_eq!(c.endpoint.mptcp.scheduler, "roundrobin");
        assert!(c.endpoint.mptcp.checksum);
        assert_eq!(c.mode, Mode::Mptcp);
        assert_eq!(c.paths.len(), 2);
        assert_eq!(c.paths[1].loss, 0.01);
        assert_eq!(c.bytes, 1 << 30);
        assert_eq!(c.seed, 9);
        assert_eq!(c.cc, "reno");
        assert_eq!(c.time_limit, std::time::Duration::from_secs(30));
        assert_eq!(c.endpoint.tcp.send_buffer, 1 << 20);
        assert_eq!(c.endpoint.tcp.recv_buffer, 2_000_000);
        // Given sizes are fixed (no autotuning), as SO_SNDBUF / SO_RCVBUF.
        assert_eq!(c.endpoint.tcp.send_cap(), 1 << 20);
        assert_eq!(c.endpoint.tcp.recv_cap(), 2_000_000);
    }

    #[test]
    fn bad_values_name_the_option() {
        let err = |argv: &[&str]| cfg_of(argv).unwrap_err();
        assert!(err(&["--bytes", "12x"]).starts_with("--bytes: bad size \"12x\""));
        assert!(err(&["--time-limit", "5"]).starts_with("--time-limit: bad time \"5\""));
        assert!(err(&["--sndbuf", "0"]).contains("--sndbuf: buffer size \"0\" must be positive"));
        assert!(err(&["--rcvbuf", "x"]).starts_with("--rcvbuf: bad size"));
        assert!(err(&["--path", "1mbit/1xs"]).contains("bad delay \"1xs\""));
        assert!(err(&["--cc", "vegas"]).contains("invalid value 'vegas'"));
        assert!(err(&["--mode", "udp"]).contains("invalid value 'udp'"));
        assert!(err(&["--scheduler", "blest"]).contains("invalid value 'blest'"));
        assert!(err(&["--path", "1mbit/1ms/strip=bogus"])
            .contains("strip: bad value \"bogus\" (known: syn, all)"));
        assert!(err(&["--seed", "-1"]).contains("unexpected argument"));
        assert!(err(&[
            "--mode",
            "tcp",
            "--path",
            "1mbit/1ms",
            "--path",
            "2mbit/1ms"
        ])
        .starts_with("--mode tcp uses one path, but 2 were given"));
        assert_eq!(cfg_of(&["--bytes", "10mib"]).unwrap().bytes, 10 << 20);
    }
}
