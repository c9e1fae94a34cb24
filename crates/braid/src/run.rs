//! `braid run -- PROG [ARG...]`: runs an unmodified program with all its TCP carried by braid.
//!
//! PROG runs in a fresh network namespace whose default routes (IPv4 and IPv6) lead into a
//! braid capture device, and in a mount namespace where /etc/resolv.conf names braid's address
//! on that device: braid forwards those DNS queries to the host's own resolver (so a loopback
//! resolver such as 127.0.0.53 works) and relays any other UDP through host sockets. Each TCP
//! connection PROG opens is terminated by braid's TCP and carried over MPTCP on the paths (see
//! `relay.rs`). PROG runs as the invoking user (SUDO_UID/SUDO_GID), with braid's stdio, terminal
//! and process group; braid exits with PROG's status (128+N when PROG died of signal N, 127 when
//! it could not be started).

use crate::app::LoopControl;
use crate::relay::{Capture, EngineUpstream};
use braid_io::capture::{CaptureDev, BRAID_V4};
use braid_io::netns::{self, Netns};
use braid_io::{signal, Driver, DriverConfig, PathSpec};
use braid_proto::mptcp::crypto::KeySource;
use braid_proto::{Endpoint, EndpointConfig, Instant};
use clap::Args;
use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

pub const SPEC_HELP: &str = "\
SPEC  = tun=NAME,local=IP,peer=IP/PREFIX[,netns=NS][,delay=TIME][,loss=PCT][,rate=RATE][,queue=SIZE][,mtu=N]
        as for braid connect: braid's paths to the network, over which captured connections travel
        as Multipath TCP (the first path of the destination's family connects, the path manager
        adds subflows from the others).

Every captured connection is printed on stderr (unless --quiet). The application's SYN is answered
only once the MPTCP handshake towards its destination completed: a refused or unreachable
destination gets a RST, so connect() fails at once with \"connection refused\".";

/// Options of the capturing commands (`run`, `capture`).
#[derive(Args, Debug)]
pub struct CaptureNetArgs {
    /// A path over a TUN device (repeat for several).
    #[arg(long = "path", value_name = "SPEC", required = true, value_parser = parse_path_spec)]
    pub paths: Vec<PathSpec>,
    /// Congestion control (reno, cubic).
    #[arg(long, default_value = "cubic")]
    pub cc: String,
    /// MPTCP packet scheduler (minrtt, roundrobin, redundant).
    #[arg(long, default_value = "minrtt")]
    pub scheduler: String,
    /// MPTCP path manager (fullmesh: a subflow from every local address; none).
    #[arg(long, default_value = "fullmesh")]
    pub path_manager: String,
    /// Write every packet of every path, both directions, to this pcap file.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Print nothing on stderr but errors.
    #[arg(long)]
    pub quiet: bool,
    /// The control socket `braid status` talks to (default /run/braid/PROGRAM-PID.sock).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
}

/// Arguments of `braid run`.
#[derive(Args, Debug)]
#[command(after_help = SPEC_HELP)]
pub struct RunArgs {
    #[command(flatten)]
    pub net: CaptureNetArgs,
    /// Redirect connect() with an LD_PRELOAD shim instead of a network namespace.
    #[arg(long)]
    pub preload: bool,
    /// The program and its arguments (after `--`).
    #[arg(value_name = "PROG", required = true, trailing_var_arg = true, num_args = 1..)]
    pub command: Vec<String>,
}

fn parse_path_spec(s: &str) -> Result<PathSpec, String> {
    braid_io::spec::parse(s)
}

pub fn failure(msg: &str) -> ExitCode {
    eprintln!("braid: {msg}");
    ExitCode::from(1)
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}

/// The MPTCP engine on the paths (validated options) and a seed for the capture side.
pub fn open_upstream(net: &CaptureNetArgs) -> Result<(Driver, u64), ExitCode> {
    let seed = random_seed();
    let mut config = EndpointConfig::default();
    config.tcp.cc = net.cc.clone();
    config.mptcp.scheduler = net.scheduler.clone();
    config.mptcp.path_manager = net.path_manager.clone();
    if let Some(mtu) = net.paths.iter().map(|p| p.mtu).min() {
        config.tcp.mss = config
            .tcp
            .mss
            .min(mtu.saturating_sub(40).min(u16::MAX as u32) as u16);
    }
    if let Err(e) = Endpoint::validate_config(&config) {
        eprintln!("error: {e}");
        return Err(ExitCode::from(2));
    }
    let keys = KeySource::os().map_err(|e| failure(&format!("no secure random source: {e}")))?;
    let endpoint = Endpoint::with_key_source(config, seed, keys);
    let dc = DriverConfig {
        seed: seed.rotate_left(17) ^ 0x5eed,
        pcap: net.pcap.clone(),
        catch_signals: true,
    };
    let drv = Driver::open(endpoint, &net.paths, dc).map_err(|e| failure(&e.to_string()))?;
    Ok((drv, seed.rotate_left(31)))
}

/// The paths' local addresses with their device names.
pub fn path_locals(drv: &Driver) -> Vec<(IpAddr, String)> {
    drv.paths().map(|p| (p.local, p.tun.clone())).collect()
}

/// Brings `locals` up to date after `braid path add|del` (new connections go from the paths
/// braid has now); true when they changed.
pub fn refresh_locals(drv: &Driver, locals: &mut Vec<(IpAddr, String)>) -> bool {
    let same = drv.paths().count() == locals.len()
        && drv
            .paths()
            .zip(locals.iter())
            .all(|(p, (a, d))| p.local == *a && p.tun == *d);
    if !same {
        *locals = path_locals(drv);
    }
    !same
}

/// The first `nameserver` of a resolv.conf text, and its `search`/`options` lines.
fn host_resolver(text: &str) -> (Option<IpAddr>, Vec<String>) {
    let mut ns = None;
    let mut keep = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") if ns.is_none() => {
                // A scoped IPv6 address (fe80::1%eth0) keeps only the address.
                ns = w
                    .next()
                    .and_then(|a| a.split('%').next())
                    .and_then(|a| a.parse().ok());
            }
            Some("search") | Some("domain") | Some("options") => keep.push(line.to_string()),
            _ => {}
        }
    }
    (ns, keep)
}

/// A directory of this run under /run/braid, removed on drop.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long captured connections may take to finish after PROG exited.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long PROG gets after a SIGTERM we passed on before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// Runs `braid run`; returns the process exit status.
pub fn main(args: RunArgs) -> ExitCode {
    if args.preload {
        return crate::preload::main(args);
    }
    let net = &args.net;
    let (mut drv, seed) = match open_upstream(net) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let pid = std::process::id();
    let ns = match Netns::create(&format!("braid-run-{pid}")) {
        Ok(ns) => ns,
        Err(e) => return failure(&format!("creating a network namespace: {e}")),
    };
    let dev = match CaptureDev::in_netns(&format!("brr{pid}"), ns.name()) {
        Ok(d) => d,
        Err(e) => return failure(&format!("setting up the capture device: {e}")),
    };
    let mut cap = Capture::new(dev, seed, net.quiet);
    // DNS: the namespace asks braid's address; braid asks the host's resolver.
    let host_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (resolver, keep) = host_resolver(&host_conf);
    let dir = RunDir(PathBuf::from(format!("/run/braid/run-{pid}")));
    let mut conf =
        format!("# braid run: DNS via braid to the host's resolver\nnameserver {BRAID_V4}\n");
    for l in keep {
        conf += &l;
        conf.push('\n');
    }
    let resolv = dir.0.join("resolv.conf");
    if let Err(e) = std::fs::create_dir_all(&dir.0).and_then(|_| std::fs::write(&resolv, conf)) {
        return failure(&format!("writing {}: {e}", resolv.display()));
    }
    let shown = SocketAddr::new(IpAddr::V4(BRAID_V4), 53);
    match resolver {
        Some(r) => cap.udp.redirect(shown, SocketAddr::new(r, 53)),
        None => {
            eprintln!("braid: the host's /etc/resolv.conf names no nameserver: no DNS for PROG")
        }
    }
    let who = netns::invoking_user();
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    let child = match netns::spawn_in(Some(&ns), Some(&resolv), who.as_ref(), &mut cmd) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("braid: cannot run {}: {e}", args.command[0]);
            return ExitCode::from(127);
        }
    };
    let cpid = child.id();
    if !net.quiet {
        let paths: Vec<String> = drv.paths().map(|p| p.tun.clone()).collect();
        eprintln!(
            "braid: running {} (pid {cpid}) in namespace {}: its TCP goes through {} over MPTCP on {}",
            args.command[0],
            ns.name(),
            cap.dev.name(),
            paths.join(", ")
        );
    }
    let mut locals = path_locals(&drv);
    let mut sup = Supervisor::new(child);
    let mut fds: Vec<RawFd> = Vec::new();
    let ctl = match LoopControl::open(net.control.as_deref(), net.quiet, "run", &mut drv) {
        Ok(c) => c,
        Err(code) => {
            sup.kill();
            return code;
        }
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
        refresh_locals(&drv, &mut locals);
        if sup.check(now, cap.active()) {
            break;
        }
        fds.clear();
        cap.fds(&mut fds);
        let mut max_wait = sup.max_wait(now, &mut fds);
        if let Some(t) = cap.poll_timeout() {
            max_wait = max_wait.min(t.saturating_duration_since(now));
        }
        if let Err(e) = drv.wait_fds(Some(max_wait), &fds) {
            eprintln!("braid: event loop: {e}");
            sup.kill();
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
            "braid: {} connections captured ({} refused), {} bytes to PROG, {} from it",
            s.connections, s.refused, s.bytes_down, s.bytes_up
        );
    }
    drop(cap);
    drop(ns);
    drop(dir);
    sup.exit_code()
}

/// How long braid keeps running at exit so that released upstream connections finish their
/// closing handshakes (our last FIN or ACK retransmitted if lost).
pub const LINGER: Duration = Duration::from_millis(500);

/// Runs the engine until no connection is left or `limit` passed.
pub fn linger(drv: &mut Driver, limit: Duration) {
    let end = drv.now() + limit;
    while drv.endpoint.connection_count() > 0 {
        let now = drv.now();
        if now >= end
            || drv
                .wait(Some(end.saturating_duration_since(now)), None)
                .is_err()
        {
            break;
        }
    }
}

/// Watches PROG: its exit (through a pidfd), signals to pass on, the grace after its exit.
pub struct Supervisor {
    child: std::process::Child,
    pidfd: Option<std::os::fd::OwnedFd>,
    tty_sigint: bool,
    signals_seen: u64,
    term_end: Option<Instant>,
    status: Option<std::process::ExitStatus>,
    exit_end: Option<Instant>,
}

impl Supervisor {
    pub fn new(child: std::process::Child) -> Supervisor {
        Supervisor {
            pidfd: netns::pidfd(child.id()).ok(),
            child,
            tty_sigint: netns::terminal_sends_sigint(),
            signals_seen: signal::count(),
            term_end: None,
            status: None,
            exit_end: None,
        }
    }

    /// Looks after PROG; true when braid should stop: PROG exited and its connections
    /// (`active`) are done or had EXIT_GRACE to finish.
    pub fn check(&mut self, now: Instant, active: usize) -> bool {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                self.exit_end = Some(now + EXIT_GRACE);
            }
        }
        if self.status.is_none() && signal::count() > self.signals_seen {
            // Ctrl-C on the terminal reaches PROG itself (same process group); a SIGTERM or a
            // SIGINT sent to braid alone is passed on, and PROG gets TERM_GRACE to exit.
            self.signals_seen = signal::count();
            let sig = signal::last_signal().unwrap_or(libc::SIGTERM);
            if sig != libc::SIGINT || !self.tty_sigint {
                netns::kill(self.child.id(), sig);
                self.term_end.get_or_insert(now + TERM_GRACE);
            }
        }
        if self.status.is_none() && self.term_end.is_some_and(|t| now >= t) {
            let _ = self.child.kill();
        }
        self.status.is_some() && (active == 0 || self.exit_end.is_some_and(|t| now >= t))
    }

    /// Adds the pidfd to `fds`; the longest the loop may sleep.
    pub fn max_wait(&self, now: Instant, fds: &mut Vec<RawFd>) -> Duration {
        let mut m = match &self.pidfd {
            Some(p) => {
                fds.push(p.as_raw_fd());
                Duration::from_secs(1)
            }
            None => Duration::from_millis(50),
        };
        for t in [self.exit_end, self.term_end].into_iter().flatten() {
            m = m.min(t.saturating_duration_since(now));
        }
        m
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// PROG's status as braid's (waiting for it if it still runs).
    pub fn exit_code(mut self) -> ExitCode {
        let st = match self.status.take() {
            Some(s) => s,
            None => match self.child.wait() {
                Ok(s) => s,
                Err(_) => return ExitCode::from(1),
            },
        };
        exit_code(st)
    }
}

/// PROG's status as braid's: its exit code, or 128+N when signal N killed it.
pub fn exit_code(st: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(s)) => ExitCode::from((128 + s) as u8),
        _ => ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_resolver_takes_first_nameserver_and_search() {
        let (ns, keep) = host_resolver(
            "# comment\nnameserver 127.0.0.53\nnameserver 8.8.8.8\nsearch example.org\noptions edns0\n",
        );
        assert_eq!(ns, Some("127.0.0.53".parse().unwrap()));
        assert_eq!(keep, vec!["search example.org", "options edns0"]);
        assert_eq!(
            host_resolver("nameserver fe80::1%eth0\n").0,
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(host_resolver("").0, None);
    }
}
