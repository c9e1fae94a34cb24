//! `braid capture --route PREFIX...`: system-wide capture. Every local program's TCP towards
//! PREFIX is routed (policy routing: a table of its own and an `ipproto tcp` rule, no netfilter)
//! into a braid capture device and carried over MPTCP on the paths (see `relay.rs`). Traffic to
//! braid's own path addresses keeps the main table, so the paths are never captured. Routes,
//! rules and the device are removed on exit (SIGINT/SIGTERM).

use crate::app::LoopControl;
use crate::relay::{Capture, EngineUpstream};
use crate::run::{
    failure, linger, open_upstream, path_locals, refresh_locals, CaptureNetArgs, LINGER, SPEC_HELP,
};
use braid_io::capture::{parse_prefix, CaptureDev, Prefix};
use clap::Args;
use std::os::fd::RawFd;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `braid capture`.
#[derive(Args, Debug)]
#[command(after_help = SPEC_HELP)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub net: CaptureNetArgs,
    /// Capture TCP towards this prefix: `default`, A.B.C.D/N or X:Y::/N (repeat for several).
    #[arg(long = "route", value_name = "PREFIX", required = true, value_parser = parse_route)]
    pub routes: Vec<Vec<Prefix>>,
}

fn parse_route(s: &str) -> Result<Vec<Prefix>, String> {
    parse_prefix(s)
}

/// Routing table and rule preference of this capture (one per process, so two captures can run).
fn table_and_pref() -> (u32, u32) {
    let k = std::process::id() % 5000;
    (20_000 + k, 20_000 + 2 * k)
}

pub fn main(args: CaptureArgs) -> ExitCode {
    let net = &args.net;
    let prefixes: Vec<Prefix> = args.routes.iter().flatten().copied().collect();
    let (mut drv, seed) = match open_upstream(net) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let mut locals = path_locals(&drv);
    let exclude: Vec<_> = locals.iter().map(|(a, _)| *a).collect();
    let (table, pref) = table_and_pref();
    let name = format!("brc{}", std::process::id());
    let dev = match CaptureDev::system(&name, &prefixes, &exclude, table, pref) {
        Ok(d) => d,
        Err(e) => return failure(&format!("setting up the capture: {e}")),
    };
    let mut cap = Capture::new(dev, seed, net.quiet);
    if !net.quiet {
        let p: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        let paths: Vec<String> = locals.iter().map(|(_, d)| d.clone()).collect();
        eprintln!(
            "braid: capturing TCP towards {} through {} (table {table}) over MPTCP on {}",
            p.join(", "),
            cap.dev.name(),
            paths.join(", ")
        );
    }
    let mut fds: Vec<RawFd> = Vec::new();
    let mut code = ExitCode::SUCCESS;
    let ctl = match LoopControl::open(net.control.as_deref(), net.quiet, "capture", &mut drv) {
        Ok(c) => c,
        Err(code) => return code,
    };
    loop {
        let now = drv.now();
        {
            let mut up = EngineUpstream {
                ep: &mut drv.endpoint,
                locals: &locals,
                seen: Vec::new(),
            };
            cap.service(now, &mut up);
            for ev in std::mem::take(&mut up.seen) {
                ctl.event(&drv, now, &ev);
            }
        }
        ctl.serve(&mut drv, &mut cap.upstream_handles(), true);
        if refresh_locals(&drv, &mut locals) {
            // A path added at run time: traffic to its address is never captured either.
            for (a, d) in &locals {
                if let Err(e) = cap.dev.keep_main(*a) {
                    eprintln!("braid: path {d}: keeping {a} out of the capture: {e}");
                }
            }
        }
        if drv.interrupted() {
            break;
        }
        fds.clear();
        cap.fds(&mut fds);
        let mut max_wait = Duration::from_millis(1000);
        if let Some(t) = cap.poll_timeout() {
            max_wait = max_wait.min(t.saturating_duration_since(now));
        }
        if let Err(e) = drv.wait_fds(Some(max_wait), &fds) {
            eprintln!("braid: event loop: {e}");
            code = ExitCode::from(1);
            break;
        }
    }
    let now = drv.now();
    {
        let mut up = EngineUpstream {
            ep: &mut drv.endpoint,
            locals: &locals,
            seen: Vec::new(),
        };
        cap.abort_all(now, &mut up);
    }
    linger(&mut drv, LINGER);
    let _ = drv.drain(Duration::from_millis(500));
    if let Err(e) = drv.finish_capture() {
        eprintln!("braid: writing capture: {e}");
    }
    if !net.quiet {
        let s = cap.stats;
        eprintln!(
            "braid: {} connections captured ({} refused), {} bytes in, {} out; routes and rules removed",
            s.connections, s.refused, s.bytes_down, s.bytes_up
        );
    }
    code
}
