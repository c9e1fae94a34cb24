//! `braid connect` and `braid listen`: real transfers over TUN devices, with the Linux kernel
//! (or anything else) as the peer. The data plane is `braid-io`; this is the application on top.

use crate::trace::NetTracer;
use crate::units::{fmt_bytes, fmt_duration, parse_size, parse_time};
use braid_io::{Driver, DriverConfig, PathSpec};
use braid_proto::mptcp::crypto::KeySource;
use braid_proto::{
    ConnHandle, ConnInfo, Endpoint, EndpointConfig, Error as EngineError, Event, Instant, TcpState,
};
use clap::Args;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Help text shared by both commands.
const NET_HELP: &str = "\
SPEC  = tun=NAME,local=IP,peer=IP/PREFIX[,netns=NS][,delay=TIME][,loss=PCT][,rate=RATE][,queue=SIZE][,mtu=N][,backup]
        braid creates TUN device NAME and owns address `local`; the kernel side of the device gets
        `peer/PREFIX` (inside namespace NS when given: the device is moved there). delay, loss and
        rate are emulated by braid in each direction (delay is one-way: the RTT grows by twice it).
        `backup` (no value): a backup path (joins with the B bit, carries data only while no
        regular subflow works). The paths can change while braid runs: braid path add|del|set.
        e.g. tun=bt0,local=10.77.0.1,peer=10.77.0.2/24,netns=peer,delay=10ms,loss=1%
RATE  = N bit|kbit|mbit|gbit;  TIME = N us|ms|s;  PCT = 0..100, e.g. 1%
SIZE  = bytes, or N k|M|G|T (x1000) or N KiB|MiB|GiB|TiB (x1024), any case (10mib)

Needs root (CAP_NET_ADMIN) for the TUN devices; a device NAME that exists already is refused.
Ctrl-C closes connections with FIN and exits. connect sends stdin unless --in or --bytes.
Progress lines (stderr, once a second while a connection is open): `delivered` counts bytes the
peer acknowledged, `received` bytes braid read; the rate is theirs over the last interval.
The summary of each connection says whether MPTCP was used, its subflows and the bytes each one
carried. --json prints one object per connection instead: sha256 (of the bytes sent by connect /
received by listen; null with --no-hash), bytes (sent by connect / received by listen),
bytes_delivered (of those, acknowledged by the peer / read), seconds, goodput_mbps (delivered
bytes over seconds), subflows [{path, local, remote, bytes_sent, bytes_acked, bytes_received,
retransmitted_bytes, srtt_ms}], mptcp ({fallback, local_token, remote_token}, or null for plain
TCP), counters (engine and data plane, whole process) and error.
Multipath TCP is on unless --no-mptcp: the first path connects, the path manager adds subflows from
the other paths' addresses.

Exit status: 0 when every transfer completed, 1 when one did not, 2 for usage errors.";

/// Options both commands share.
#[derive(Args, Debug)]
pub struct NetArgs {
    /// A path over a TUN device (repeat for several; plain TCP uses the first that fits).
    #[arg(long = "path", value_name = "SPEC", required = true, value_parser = parse_path_spec)]
    pub(crate) paths: Vec<PathSpec>,
    /// Congestion control.
    #[arg(long, default_value = "cubic", value_parser = parse_cc,
          help = names_help("Congestion control (lia, olia, balia couple the MPTCP subflows)", &braid_proto::cc::names()))]
    pub(crate) cc: String,
    /// Plain TCP only: do not offer or accept Multipath TCP.
    #[arg(long)]
    pub(crate) no_mptcp: bool,
    /// MPTCP packet scheduler.
    #[arg(long, default_value = "minrtt", value_parser = parse_scheduler,
          help = names_help("MPTCP packet scheduler", &braid_proto::mptcp::sched::names()))]
    pub(crate) scheduler: String,
    /// MPTCP path manager (fullmesh: a subflow from every local address).
    #[arg(long, default_value = "fullmesh", value_parser = parse_path_manager,
          help = names_help("MPTCP path manager (fullmesh: a subflow from every local address)", &braid_proto::mptcp::pm::names()))]
    pub(crate) path_manager: String,
    /// Ask for MPTCP DSS checksums (RFC 8684 §3.3.1).
    #[arg(long)]
    pub(crate) checksum: bool,
    /// Write every packet of every path, both directions, to this pcap file.
    #[arg(long, value_name = "FILE")]
    pub(crate) pcap: Option<PathBuf>,
    /// Seed for initial sequence numbers, emulated loss and --bytes data (default: random).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Print one JSON object per connection on stdout (stderr when --out is -).
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Do not compute SHA-256 of the data (for benchmarks); the report's sha256 is null.
    #[arg(long)]
    pub(crate) no_hash: bool,
    /// Give up (exit 1) when the whole run takes longer than this.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) timeout: Option<Duration>,
    /// Control socket for `braid status` (default /run/braid/COMMAND-PID.sock).
    #[arg(long, value_name = "PATH")]
    pub(crate) control: Option<PathBuf>,
    /// Write every connection's time series (every 10 ms and at each event) to this file as
    /// JSON lines.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

/// The `--trace` writer, when asked for.
fn open_trace(net: &NetArgs, t0: Instant) -> Result<Option<NetTracer>, ExitCode> {
    net.trace
        .as_deref()
        .map(|p| NetTracer::create(p, t0))
        .transpose()
        .map_err(|e| failure(&e))
}

/// The number of the path (in `--path` order) whose local address is `ip`.
fn path_index(drv: &Driver, ip: IpAddr) -> Option<usize> {
    drv.paths().position(|p| p.local == ip)
}

/// Arguments of `braid listen`.
#[derive(Args, Debug)]
#[command(after_help = NET_HELP)]
pub struct ListenArgs {
    #[command(flatten)]
    net: NetArgs,
    /// TCP port to accept connections on (every path's local address).
    #[arg(long)]
    port: u16,
    /// Write received bytes to FILE (`-`: stdout); default: discard.
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
    /// Exit after this many connections have finished.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Relay every accepted connection to HOST:PORT over the host's own TCP (an MPTCP-to-TCP
    /// converter); runs until SIGINT/SIGTERM or --timeout.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["out", "count", "json"])]
    forward: Option<String>,
}

/// Arguments of `braid connect`.
#[derive(Args, Debug)]
#[command(after_help = NET_HELP)]
pub struct ConnectArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Where to connect: IP:PORT ([IPv6]:PORT).
    #[arg(value_name = "HOST:PORT", value_parser = parse_target)]
    target: SocketAddr,
    /// Send the bytes of FILE (`-`: stdin, the default).
    #[arg(long = "in", value_name = "FILE", conflicts_with = "bytes")]
    input: Option<String>,
    /// Send this many pseudo-random bytes (from --seed) instead of --in.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    bytes: Option<u64>,
    /// Write what the peer sends back to FILE (`-`: stdout); default: discard.
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
}

/// A help line that lists the names of an engine registry.
pub(crate) fn names_help(what: &str, names: &[&str]) -> String {
    format!("{what}: {}", names.join(", "))
}

/// `--cc`: a name of the engine's congestion-control registry.
pub(crate) fn parse_cc(s: &str) -> Result<String, String> {
    match braid_proto::cc::new_cc(s, 1460) {
        Some(_) => Ok(s.to_string()),
        None => Err(braid_proto::cc::unknown(s)),
    }
}

/// `--scheduler`: a name of the engine's scheduler registry.
pub(crate) fn parse_scheduler(s: &str) -> Result<String, String> {
    use braid_proto::mptcp::sched;
    sched::new_scheduler(s)
        .map(|_| s.to_string())
        .ok_or_else(|| sched::unknown(s))
}

/// `--path-manager`: a name (with its argument) of the engine's path-manager registry.
pub(crate) fn parse_path_manager(s: &str) -> Result<String, String> {
    braid_proto::mptcp::pm::new_path_manager(s).map(|_| s.to_string())
}

fn parse_path_spec(s: &str) -> Result<PathSpec, String> {
    braid_io::spec::parse(s)
}

fn parse_target(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!("bad address \"{s}\" (expected IP:PORT, e.g. 10.77.0.2:5000 or [fd00:77::2]:5000)")
    })
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn failure(msg: &str) -> ExitCode {
    eprintln!("braid: {msg}");
    ExitCode::from(1)
}

/// How long a closing connection may take after Ctrl-C before braid exits anyway.
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);
/// How long the emulation may take to deliver the last packets at exit.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);
const CHUNK: usize = 64 * 1024;

/// A random seed from the kernel, for runs without --seed (ISNs should be unpredictable).
fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}

/// The engine and data plane the arguments describe.
fn open(net: &NetArgs, seed: u64) -> Result<Driver, ExitCode> {
    let mut config = EndpointConfig::default();
    config.tcp.cc = net.cc.clone();
    config.mptcp.enabled = !net.no_mptcp;
    config.mptcp.scheduler = net.scheduler.clone();
    config.mptcp.path_manager = net.path_manager.clone();
    config.mptcp.checksum = net.checksum;
    // The engine's MSS is the IPv4 one (it takes 20 bytes off for IPv6 connections itself):
    // the smallest MTU of any path decides.
    if let Some(mtu) = net.paths.iter().map(|p| p.mtu).min() {
        config.tcp.mss = config
            .tcp
            .mss
            .min(mtu.saturating_sub(40).min(u16::MAX as u32) as u16);
    }
    if let Err(e) = Endpoint::validate_config(&config) {
        return Err(usage_error(&e.to_string()));
    }
    // MPTCP keys are secrets: from the operating system's CSPRNG, never from the seed.
    let keys = KeySource::os().map_err(|e| failure(&format!("no secure random source: {e}")))?;
    let endpoint = Endpoint::with_key_source(config, seed, keys);
    let dc = DriverConfig {
        seed: seed.rotate_left(17) ^ 0x5eed,
        pcap: net.pcap.clone(),
        catch_signals: true,
    };
    Driver::open(endpoint, &net.paths, dc).map_err(|e| failure(&e.to_string()))
}

/// Where received bytes go.
enum Sink {
    Discard,
    Stdout(io::Stdout),
    File(io::BufWriter<File>),
}

impl Sink {
    fn open(out: Option<&str>) -> Result<Sink, String> {
        match out {
            None => Ok(Sink::Discard),
            Some("-") => Ok(Sink::Stdout(io::stdout())),
            Some(p) => File::create(p)
                .map(|f| Sink::File(io::BufWriter::new(f)))
                .map_err(|e| format!("creating {p}: {e}")),
        }
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Sink::Discard => Ok(()),
            Sink::Stdout(s) => s.write_all(b),
            Sink::File(f) => f.write_all(b),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Discard => Ok(()),
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }

    fn is_stdout(&self) -> bool {
        matches!(self, Sink::Stdout(_))
    }
}

/// Where the bytes to send come from.
enum Source {
    /// Pseudo-random bytes, `left` to go: a seeded block, read at a shifting offset.
    Random {
        block: Vec<u8>,
        offset: usize,
        left: u64,
    },
    File(File),
    Stdin(io::Stdin),
}

/// Size of the pseudo-random block --bytes data is cut from.
const RANDOM_BLOCK: usize = 1 << 20;

impl Source {
    /// `len` pseudo-random bytes from `seed` (xorshift64*).
    fn random(seed: u64, len: u64) -> Source {
        let mut state = seed | 1;
        let mut block = Vec::with_capacity(RANDOM_BLOCK + CHUNK);
        while block.len() < RANDOM_BLOCK + CHUNK {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            block.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        Source::Random {
            block,
            offset: 0,
            left: len,
        }
    }

    /// The descriptor to poll before reading, if reading may block.
    fn poll_fd(&self) -> Option<RawFd> {
        match self {
            Source::Stdin(s) => Some(s.as_raw_fd()),
            _ => None,
        }
    }

    /// Fills `buf` (cleared first) with the next bytes; empty at the end.
    fn fill(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        match self {
            Source::Random {
                block,
                offset,
                left,
            } => {
                let n = (*left).min(CHUNK as u64) as usize;
                buf.extend_from_slice(&block[*offset..*offset + n]);
                // Odd steps through the block: consecutive chunks never repeat a period.
                *offset = (*offset + n + 1) % RANDOM_BLOCK;
                *left -= n as u64;
                Ok(())
            }
            Source::File(f) => read_chunk(f, buf),
            Source::Stdin(s) => read_chunk(&mut s.lock(), buf),
        }
    }
}

fn read_chunk(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.resize(CHUNK, 0);
    loop {
        match r.read(buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One connection's transfer and what the report says about it.
struct Transfer {
    h: ConnHandle,
    /// When the connection was established.
    start: Instant,
    end: Option<Instant>,
    sent_hash: Sha256,
    sent: u64,
    recv_hash: Sha256,
    received: u64,
    /// The peer's FIN was read.
    eof: bool,
    /// Our FIN is queued.
    shut: bool,
    /// The last `conn_info` seen (kept after the handle is released).
    info: Option<ConnInfo>,
    error: Option<String>,
    /// Hash the data (off with --no-hash).
    hash: bool,
}

impl Transfer {
    fn new(h: ConnHandle, start: Instant, hash: bool) -> Self {
        Transfer {
            h,
            start,
            end: None,
            sent_hash: Sha256::new(),
            sent: 0,
            recv_hash: Sha256::new(),
            received: 0,
            eof: false,
            shut: false,
            info: None,
            error: None,
            hash,
        }
    }

    fn done(&self) -> bool {
        self.end.is_some()
    }

    /// Reads everything readable into `sink`.
    fn pump_recv(
        &mut self,
        ep: &mut Endpoint,
        buf: &mut [u8],
        sink: &mut Sink,
    ) -> Result<(), String> {
        while !self.eof {
            match ep.recv(self.h, buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    if self.hash {
                        self.recv_hash.update(&buf[..n]);
                    }
                    self.received += n as u64;
                    sink.write(&buf[..n])
                        .map_err(|e| format!("writing output: {e}"))?;
                }
                Err(EngineError::WouldBlock) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// The exchange is complete: the peer's FIN was read and ours was acknowledged.
    fn check_complete(&mut self, ep: &Endpoint, now: Instant) {
        if self.end.is_some() || !self.eof || !self.shut {
            return;
        }
        if let Some(info) = ep.conn_info(self.h) {
            let acked = matches!(info.state, TcpState::TimeWait | TcpState::Closed);
            self.info = Some(info);
            if acked {
                self.end = Some(now);
            }
        }
    }

    fn seconds(&self) -> f64 {
        self.end
            .unwrap_or(self.start)
            .saturating_duration_since(self.start)
            .as_secs_f64()
    }
}

/// Prints reports to stdout, or stderr when stdout carries data.
struct Reporter {
    json: bool,
    to_stderr: bool,
}

impl Reporter {
    fn print(&self, drv: &Driver, t: &Transfer, sent_side: bool) {
        let (digest, bytes) = if sent_side {
            (&t.sent_hash, t.sent)
        } else {
            (&t.recv_hash, t.received)
        };
        // What reached the other application: on the sending side what the peer acknowledged
        // (all of it when the transfer completed), on the receiving side what braid read.
        let acked = t.info.as_ref().map_or(0, |i| i.bytes_acked);
        let delivered = if sent_side { acked.min(bytes) } else { bytes };
        let hash = t.hash.then(|| hex(digest.clone().finalize().as_slice()));
        let secs = t.seconds();
        let mbps = if secs > 0.0 {
            delivered as f64 * 8.0 / secs / 1e6
        } else {
            0.0
        };
        let subflows = subflow_rows(drv, t.info.as_ref());
        let line = if self.json {
            let mut mptcp = Value::Null;
            if let Some(m) = t.info.as_ref().and_then(|i| i.mptcp.as_ref()) {
                mptcp = json!({
                    "fallback": m.fallback,
                    "local_token": m.local_token,
                    "remote_token": m.remote_token,
                });
            }
            let subflows: Vec<Value> = subflows
                .iter()
                .map(|r| {
                    let mut v = json!({
                        "path": r.path,
                        "local": r.local.to_string(),
                        "remote": r.remote.to_string(),
                        "bytes_sent": r.bytes_sent,
                        "bytes_acked": r.bytes_acked,
                        "bytes_received": r.bytes_received,
                        "retransmitted_bytes": r.retransmitted,
                        "srtt_ms": r.srtt.map(|d| d.as_secs_f64() * 1e3),
                    });
                    if let Some((backup, closed)) = r.mp {
                        v["backup"] = Value::from(backup);
                        v["closed"] = Value::from(closed);
                    }
                    v
                })
                .collect();
            let mut counters = Map::new();
            for (k, v) in drv.endpoint.counters().iter().chain(drv.stats().iter()) {
                counters.insert(k.to_string(), Value::from(v));
            }
            json!({
                "sha256": hash,
                "bytes": bytes,
                "bytes_delivered": delivered,
                "seconds": secs,
                "goodput_mbps": mbps,
                "bytes_received": t.received,
                "bytes_sent": t.sent,
                "bytes_acked": acked,
                "subflows": subflows,
                "mptcp": mptcp,
                "counters": counters,
                "error": t.error,
            })
            .to_string()
        } else {
            human_summary(t, sent_side, bytes, delivered, secs, mbps, hash, &subflows)
        };
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// One subflow (or the one TCP connection) as the reports show it.
struct SubflowRow {
    /// The TUN device of the path it runs on.
    path: Option<String>,
    local: SocketAddr,
    remote: SocketAddr,
    bytes_sent: u64,
    bytes_acked: u64,
    bytes_received: u64,
    retransmitted: u64,
    srtt: Option<Duration>,
    /// MPTCP subflows: (backup, closed).
    mp: Option<(bool, bool)>,
}

fn subflow_rows(drv: &Driver, info: Option<&ConnInfo>) -> Vec<SubflowRow> {
    let path = |ip: std::net::IpAddr| drv.path_of(ip).map(|p| p.tun.clone());
    match info.map(|i| (i, i.mptcp.as_ref())) {
        Some((_, Some(m))) => m
            .subflows
            .iter()
            .map(|sf| SubflowRow {
                path: path(sf.local.ip()),
                local: sf.local,
                remote: sf.remote,
                bytes_sent: sf.bytes_sent,
                bytes_acked: sf.bytes_acked,
                bytes_received: sf.bytes_received,
                retransmitted: sf.bytes_retransmitted,
                srtt: sf.srtt,
                mp: Some((sf.backup, sf.closed)),
            })
            .collect(),
        Some((i, None)) => vec![SubflowRow {
            path: path(i.local.ip()),
            local: i.local,
            remote: i.remote,
            bytes_sent: i.bytes_sent,
            bytes_acked: i.bytes_acked,
            bytes_received: i.bytes_received,
            retransmitted: i.bytes_retransmitted,
            srtt: i.srtt,
            mp: None,
        }],
        None => Vec::new(),
    }
}

/// The human report of one connection: the transfer, whether MPTCP was used, and how the
/// bytes split over the paths.
#[allow(clippy::too_many_arguments)]
fn human_summary(
    t: &Transfer,
    sent_side: bool,
    bytes: u64,
    delivered: u64,
    secs: f64,
    mbps: f64,
    hash: Option<String>,
    subflows: &[SubflowRow],
) -> String {
    let peer = t
        .info
        .as_ref()
        .map_or_else(String::new, |i| format!(" {}", i.remote));
    let what = if sent_side {
        if delivered == bytes {
            format!("sent {} ({bytes} bytes)", fmt_bytes(bytes))
        } else {
            // Exact counts: an incomplete transfer must not round to a complete one.
            format!(
                "wrote {bytes} bytes, the peer acknowledged {delivered} ({} missing)",
                bytes - delivered
            )
        }
    } else {
        format!("received {} ({bytes} bytes)", fmt_bytes(bytes))
    };
    let mut s = format!(
        "connection{peer}: {what} in {secs:.3} s, {mbps:.1} Mbit/s, sha256 {}",
        hash.as_deref().unwrap_or("not computed")
    );
    if let Some(e) = &t.error {
        s += &format!(", FAILED: {e}");
    }
    let mptcp = t.info.as_ref().map(|i| i.mptcp.as_ref());
    let live = subflows
        .iter()
        .filter(|r| !matches!(r.mp, Some((_, true))))
        .count();
    s += &match mptcp {
        None => String::new(),
        Some(None) if sent_side => "\n  MPTCP: no (plain TCP, --no-mptcp)".to_string(),
        Some(None) => "\n  MPTCP: no (plain TCP: the client did not offer MPTCP)".to_string(),
        Some(Some(m)) if m.fallback => "\n  MPTCP: no, fell back to plain TCP (the peer did not \
             take MPTCP up, or a middlebox removed it: RFC 8684 §3.7), 1 subflow"
            .to_string(),
        Some(Some(m)) => {
            let n = m.subflows.len();
            format!(
                "\n  MPTCP: yes, {n} subflow{}{}, fallback: no",
                if n == 1 { "" } else { "s" },
                if live == n {
                    String::new()
                } else {
                    format!(" ({} closed)", n - live)
                }
            )
        }
    };
    // The split: payload each subflow carried in our direction of the transfer.
    let carried = |r: &SubflowRow| {
        if sent_side {
            r.bytes_sent
        } else {
            r.bytes_received
        }
    };
    let total: u64 = subflows.iter().map(carried).sum();
    for r in subflows {
        let share = if total > 0 {
            carried(r) as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let mut flags = String::new();
        if let Some((backup, closed)) = r.mp {
            if backup {
                flags += ", backup";
            }
            if closed {
                flags += if r.srtt.is_none() && carried(r) == 0 {
                    ", closed (never established)"
                } else {
                    ", closed"
                };
            }
        }
        s += &format!(
            "\n  path {} {} -> {}: {} {} ({share:.1}%), retransmitted {}, srtt {}{flags}",
            r.path.as_deref().unwrap_or("?"),
            r.local,
            r.remote,
            if sent_side { "sent" } else { "received" },
            fmt_bytes(carried(r)),
            fmt_bytes(r.retransmitted),
            r.srtt.map_or_else(
                || "-".to_string(),
                |d| format!("{:.1} ms", d.as_secs_f64() * 1e3)
            )
        );
    }
    s
}

/// A short elapsed time for messages: `3.2 ms`, `12.5 s`.
fn fmt_elapsed(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Once-a-second progress on stderr. It counts bytes that reached the other application —
/// acknowledged by the peer (delivered), read by braid (received) — not bytes merely handed to
/// the engine's buffers; and it is silent while nothing is going on.
struct Progress {
    enabled: bool,
    start: Instant,
    next: Instant,
    last: Instant,
    last_bytes: u64,
}

impl Progress {
    fn new(enabled: bool, now: Instant) -> Self {
        Progress {
            enabled,
            start: now,
            next: now + Duration::from_secs(1),
            last: now,
            last_bytes: 0,
        }
    }

    /// `busy`: a connection is open (a stalled one is news; an idle listener is not).
    fn tick(&mut self, now: Instant, delivered: u64, received: u64, busy: bool) {
        if !self.enabled || now < self.next {
            return;
        }
        let total = delivered + received;
        let moved = total.saturating_sub(self.last_bytes);
        self.next = now + Duration::from_secs(1);
        if moved == 0 && !busy {
            self.last = now;
            return;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        let mbps = if dt > 0.0 {
            moved as f64 * 8.0 / dt / 1e6
        } else {
            0.0
        };
        eprintln!(
            "braid: {:>6.1} s  delivered {:>10}  received {:>10}  {mbps:>7.1} Mbit/s",
            now.saturating_duration_since(self.start).as_secs_f64(),
            fmt_bytes(delivered),
            fmt_bytes(received)
        );
        self.last_bytes = total;
        self.last = now;
    }

    fn wait(&self) -> Option<Duration> {
        self.enabled.then_some(Duration::from_secs(1))
    }
}

/// What `connect` says while its SYN goes unanswered.
struct Connecting {
    enabled: bool,
    target: SocketAddr,
    start: Instant,
    next: Instant,
    syns: u64,
}

impl Connecting {
    /// Looks once a second at the connection still in SYN-SENT and tells about each SYN sent
    /// again.
    fn tick(&mut self, ep: &Endpoint, h: ConnHandle, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + Duration::from_secs(1);
        let Some(info) = ep.conn_info(h) else {
            return;
        };
        if info.state != TcpState::SynSent {
            return;
        }
        if info.segments_sent > self.syns {
            self.syns = info.segments_sent;
            if self.enabled && self.syns > 1 {
                eprintln!(
                    "braid: no answer from {} after {:.1} s; SYN sent again ({} so far)",
                    self.target,
                    now.saturating_duration_since(self.start).as_secs_f64(),
                    self.syns
                );
            }
        }
    }
}

/// Runs `braid connect`; returns the process exit status.
pub fn connect(args: ConnectArgs) -> ExitCode {
    let net = &args.net;
    let seed = net.seed.unwrap_or_else(random_seed);
    let Some(local) = net
        .paths
        .iter()
        .find(|p| p.local.is_ipv4() == args.target.is_ipv4())
        .map(|p| p.local)
    else {
        return usage_error(&format!(
            "no path has a local address of the family of {}",
            args.target
        ));
    };
    if net.no_mptcp && net.paths.len() > 1 && !net.quiet {
        let unused: Vec<&str> = net
            .paths
            .iter()
            .filter(|p| p.local != local)
            .map(|p| p.tun.as_str())
            .collect();
        eprintln!(
            "braid: note: --no-mptcp: plain TCP runs over one path ({local}); {} carr{} nothing",
            unused.join(", "),
            if unused.len() == 1 { "ies" } else { "y" }
        );
    }
    let mut source = match (&args.bytes, args.input.as_deref()) {
        (Some(n), _) => Source::random(seed, *n),
        (None, None | Some("-")) => Source::Stdin(io::stdin()),
        (None, Some(p)) => match File::open(p) {
            Ok(f) => Source::File(f),
            Err(e) => return failure(&format!("opening {p}: {e}")),
        },
    };
    let mut sink = match Sink::open(args.out.as_deref()) {
        Ok(s) => s,
        Err(e) => return failure(&e),
    };
    let mut drv = match open(net, seed) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let ctl =
        match crate::app::LoopControl::open(net.control.as_deref(), net.quiet, "connect", &mut drv)
        {
            Ok(c) => c,
            Err(code) => return code,
        };
    let reporter = Reporter {
        json: net.json,
        to_stderr: sink.is_stdout(),
    };
    let h = match drv.endpoint.connect(drv.now(), local, args.target) {
        Ok(h) => h,
        Err(e) => return failure(&format!("connect to {}: {e}", args.target)),
    };
    let t0 = drv.now();
    ctl.created(&drv, t0, h);
    let mut tracer = match open_trace(net, t0) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let deadline = net.timeout.map(|d| t0 + d);
    let chatty = !net.json && !net.quiet;
    if chatty {
        eprintln!(
            "braid: connecting to {} from {local} ({})",
            args.target,
            if net.no_mptcp {
                "plain TCP".to_string()
            } else {
                format!(
                    "MPTCP, {} path{}",
                    net.paths.len(),
                    if net.paths.len() == 1 { "" } else { "s" }
                )
            }
        );
    }
    let mut connecting = Connecting {
        enabled: chatty,
        target: args.target,
        start: t0,
        next: t0,
        syns: 0,
    };
    let mut progress = Progress::new(chatty, t0);
    let mut t: Option<Transfer> = None;
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut pos = 0usize;
    let mut source_eof = false;
    let mut rbuf = vec![0u8; CHUNK];
    let mut app_ready = false;
    let mut interrupt_end: Option<Instant> = None;
    let mut error: Option<String> = None;

    loop {
        let now = drv.now();
        ctl.serve(&mut drv, &mut std::iter::once(h), true);
        while let Some(ev) = drv.endpoint.poll_event() {
            ctl.event(&drv, now, &ev);
            match ev {
                Event::Connected(c) if c == h => {
                    if chatty {
                        let how = match drv.endpoint.conn_info(h).and_then(|i| i.mptcp) {
                            None => "plain TCP",
                            Some(m) if m.fallback => "the peer answered without MPTCP: plain TCP",
                            Some(_) => "MPTCP",
                        };
                        eprintln!(
                            "braid: connected to {} in {} ({how})",
                            args.target,
                            fmt_elapsed(now.saturating_duration_since(t0))
                        );
                    }
                    t = Some(Transfer::new(h, now, !net.no_hash));
                }
                Event::Closed(c, reason) if c == h => {
                    // The end can come in the same batch of packets as the peer's last data
                    // and FIN (a RST answering our ACK in TIME_WAIT): read what the engine
                    // still holds before judging.
                    let mut read_err = None;
                    if let Some(tr) = t.as_mut() {
                        read_err = tr.pump_recv(&mut drv.endpoint, &mut rbuf, &mut sink).err();
                    }
                    let complete = t.as_ref().is_some_and(|t| t.eof && t.shut);
                    if !complete {
                        let e = read_err.unwrap_or_else(|| {
                            drv.endpoint
                                .recv(h, &mut rbuf)
                                .err()
                                .map_or_else(|| format!("{reason:?}"), |e| e.to_string())
                        });
                        if t.is_none() {
                            // Never connected: say to what, and how hard braid tried.
                            error.get_or_insert(format!(
                                "connect to {}: {e} (after {}, {} SYN{} sent)",
                                args.target,
                                fmt_elapsed(now.saturating_duration_since(t0)),
                                connecting.syns.max(1),
                                if connecting.syns > 1 { "s" } else { "" }
                            ));
                        }
                        error.get_or_insert(format!("connection closed: {e}"));
                    }
                }
                _ => {}
            }
        }
        if error.is_none() {
            if let Some(tr) = t.as_mut() {
                // Send: keep the engine's send buffer full.
                let mut send_err = None;
                while interrupt_end.is_none() && !tr.shut {
                    if pos == pending.len() {
                        if source_eof {
                            break;
                        }
                        if drv.endpoint.send_capacity(h) == 0 {
                            break;
                        }
                        if source.poll_fd().is_some() && !app_ready {
                            break;
                        }
                        app_ready = false;
                        if let Err(e) = source.fill(&mut pending) {
                            send_err = Some(format!("reading input: {e}"));
                            break;
                        }
                        pos = 0;
                        if pending.is_empty() {
                            source_eof = true;
                            break;
                        }
                    }
                    match drv.endpoint.send(h, &pending[pos..]) {
                        Ok(n) => {
                            if tr.hash {
                                tr.sent_hash.update(&pending[pos..pos + n]);
                            }
                            tr.sent += n as u64;
                            pos += n;
                        }
                        Err(EngineError::WouldBlock) => break,
                        Err(e) => {
                            send_err = Some(e.to_string());
                            break;
                        }
                    }
                }
                if send_err.is_none() && !tr.shut && (source_eof || interrupt_end.is_some()) {
                    tr.shut = true;
                    if let Err(e) = drv.endpoint.shutdown(now, h) {
                        send_err = Some(e.to_string());
                    }
                }
                if let Err(e) = tr.pump_recv(&mut drv.endpoint, &mut rbuf, &mut sink) {
                    send_err.get_or_insert(e);
                }
                tr.check_complete(&drv.endpoint, now);
                if let Some(e) = send_err {
                    error = Some(e);
                }
                if progress.enabled && now >= progress.next {
                    let acked = drv.endpoint.conn_info(h).map_or(0, |i| i.bytes_acked);
                    progress.tick(now, acked.min(tr.sent), tr.received, true);
                }
            } else {
                connecting.tick(&drv.endpoint, h, now);
            }
        }
        if let Some(tracer) = tracer.as_mut() {
            tracer.observe(now, &drv.endpoint, &[h], &|ip| path_index(&drv, ip));
        }
        if error.is_some() || t.as_ref().is_some_and(Transfer::done) {
            break;
        }
        if interrupt_end.is_none() && drv.interrupted() {
            interrupt_end = Some(now + INTERRUPT_GRACE);
            if t.is_none() {
                break;
            }
            continue;
        }
        if interrupt_end.is_some_and(|e| now >= e) {
            break;
        }
        if deadline.is_some_and(|d| now >= d) {
            error = Some(format!(
                "stopped by --timeout {} after {:.1} s{}",
                fmt_duration(net.timeout.unwrap_or_default()),
                now.saturating_duration_since(t0).as_secs_f64(),
                if t.is_none() {
                    format!(
                        " before {} answered ({} SYN{} sent)",
                        args.target,
                        connecting.syns.max(1),
                        if connecting.syns > 1 { "s" } else { "" }
                    )
                } else {
                    String::new()
                }
            ));
            break;
        }
        let want_input = t.as_ref().is_some_and(|tr| !tr.shut)
            && pos == pending.len()
            && !source_eof
            && !app_ready
            && drv.endpoint.send_capacity(h) > 0;
        let fd = if want_input { source.poll_fd() } else { None };
        let mut max_wait = progress.wait();
        if let Some(tracer) = &tracer {
            let left = tracer.wait(now);
            max_wait = Some(max_wait.map_or(left, |m| m.min(left)));
        }
        // While the SYN goes unanswered, look once a second (for the retry messages).
        let watch = t.is_none().then_some(connecting.next);
        for end in [deadline, interrupt_end, watch].into_iter().flatten() {
            let left = end.saturating_duration_since(now);
            max_wait = Some(max_wait.map_or(left, |m| m.min(left)));
        }
        match drv.wait(max_wait, fd) {
            Ok(w) => app_ready |= w.app_ready,
            Err(e) => {
                error = Some(format!("event loop: {e}"));
                break;
            }
        }
    }
    let interrupted = interrupt_end.is_some();
    let now = drv.now();
    if let Some(tr) = t.as_mut() {
        if tr.info.is_none() || tr.end.is_none() {
            tr.info = drv.endpoint.conn_info(h).or(tr.info.take());
        }
        if tr.end.is_none() {
            tr.end = Some(now);
        }
        tr.error = error
            .clone()
            .or(interrupted.then(|| "interrupted".to_string()));
    }
    if let Some(mut tracer) = tracer.take() {
        tracer.end(now, &drv.endpoint, h, &|ip| path_index(&drv, ip));
        if let Err(e) = tracer.finish() {
            error.get_or_insert(e);
        }
    }
    if error.is_some() || interrupted {
        let _ = drv.endpoint.abort(now, h);
    } else {
        drv.endpoint.release(now, h);
    }
    let _ = drv.drain(DRAIN_LIMIT);
    let _ = sink.flush();
    if let Err(e) = drv.finish_capture() {
        error.get_or_insert(format!("writing capture: {e}"));
    }
    if let Some(tr) = &t {
        reporter.print(&drv, tr, true);
    }
    match (error, interrupted) {
        (Some(e), _) => failure(&e),
        (None, true) => failure("interrupted"),
        (None, false) => ExitCode::SUCCESS,
    }
}

/// Runs `braid listen`; returns the process exit status.
pub fn listen(args: ListenArgs) -> ExitCode {
    let net = &args.net;
    if let Some(target) = &args.forward {
        return crate::forward::main(net, args.port, target);
    }
    if args.count == 0 {
        return usage_error("--count must be at least 1");
    }
    if args.port == 0 {
        return usage_error("--port must be 1..65535");
    }
    let seed = net.seed.unwrap_or_else(random_seed);
    let mut sink = match Sink::open(args.out.as_deref()) {
        Ok(s) => s,
        Err(e) => return failure(&e),
    };
    let mut drv = match open(net, seed) {
        Ok(d) => d,
        Err(code) => return code,
    };
    if let Err(e) = drv.endpoint.listen(args.port) {
        return failure(&format!("listen on port {}: {e}", args.port));
    }
    let ctl = match crate::app::LoopControl::open(
        net.control.as_deref(),
        net.quiet,
        "listen",
        &mut drv,
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let reporter = Reporter {
        json: net.json,
        to_stderr: sink.is_stdout(),
    };
    if !net.quiet && !net.json {
        let addrs: Vec<String> = drv.paths().map(|p| p.local.to_string()).collect();
        eprintln!(
            "braid: listening on port {} at {}",
            args.port,
            addrs.join(", ")
        );
    }
    let t0 = drv.now();
    let mut tracer = match open_trace(net, t0) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let deadline = net.timeout.map(|d| t0 + d);
    let mut progress = Progress::new(!net.json && !net.quiet, t0);
    let mut active: HashMap<ConnHandle, Transfer> = HashMap::new();
    // Connections to look at in this round: those an event named, and those finishing (their
    // FIN is out and may be acknowledged without an event). Idle ones cost nothing per wake-up.
    let mut touched: HashSet<ConnHandle> = HashSet::new();
    let mut next_round: Vec<ConnHandle> = Vec::new();
    // And every connection once a second, in case a change came without an event.
    let mut sweep_at = t0;
    let mut finished = 0u64;
    let mut failed = 0u64;
    let mut rbuf = vec![0u8; CHUNK];
    let mut interrupt_end: Option<Instant> = None;
    let mut fatal: Option<String> = None;
    let (mut total_rx, mut total_tx) = (0u64, 0u64);

    loop {
        let now = drv.now();
        ctl.serve(&mut drv, &mut active.keys().copied(), false);
        while let Some(ev) = drv.endpoint.poll_event() {
            ctl.event(&drv, now, &ev);
            match ev {
                Event::Incoming { port, .. } => {
                    while let Some(h) = drv.endpoint.accept(port) {
                        if finished + active.len() as u64 >= args.count || interrupt_end.is_some() {
                            let _ = drv.endpoint.abort(now, h);
                            drv.endpoint.release(now, h);
                        } else {
                            if !net.quiet && !net.json {
                                if let Some(i) = drv.endpoint.conn_info(h) {
                                    eprintln!(
                                        "braid: connection from {} to {}{}",
                                        i.remote,
                                        i.local,
                                        if i.mptcp.is_some() { " (MPTCP)" } else { "" }
                                    );
                                }
                            }
                            ctl.created(&drv, now, h);
                            active.insert(h, Transfer::new(h, now, !net.no_hash));
                            touched.insert(h);
                        }
                    }
                }
                Event::Readable(h) | Event::Writable(h) => {
                    touched.insert(h);
                }
                Event::Closed(h, reason) => {
                    touched.insert(h);
                    if let Some(tr) = active.get_mut(&h) {
                        tr.info = drv.endpoint.conn_info(h).or(tr.info.take());
                        if !(tr.eof && tr.shut) {
                            tr.error = Some(format!("connection closed: {reason:?}"));
                            tr.end = Some(now);
                        }
                    }
                }
                _ => {}
            }
        }
        if now >= sweep_at {
            sweep_at = now + Duration::from_secs(1);
            touched.extend(active.keys().copied());
        }
        let mut done = Vec::new();
        for h in std::mem::take(&mut touched) {
            let Some(tr) = active.get_mut(&h) else {
                continue;
            };
            if tr.error.is_none() {
                let before = tr.received;
                if let Err(e) = tr.pump_recv(&mut drv.endpoint, &mut rbuf, &mut sink) {
                    tr.error = Some(e);
                    tr.end = Some(now);
                }
                total_rx += tr.received - before;
                if tr.eof && !tr.shut {
                    tr.shut = true;
                    if let Err(e) = drv.endpoint.shutdown(now, h) {
                        tr.error = Some(e.to_string());
                        tr.end = Some(now);
                    }
                }
                tr.check_complete(&drv.endpoint, now);
            }
            if tr.done() {
                done.push(h);
            } else if tr.eof && tr.shut {
                next_round.push(h);
            }
        }
        touched.extend(next_round.drain(..));
        if let Some(tracer) = tracer.as_mut() {
            let mut conns: Vec<ConnHandle> = active.keys().copied().collect();
            conns.sort();
            tracer.observe(now, &drv.endpoint, &conns, &|ip| path_index(&drv, ip));
        }
        for h in done {
            if let Some(tracer) = tracer.as_mut() {
                tracer.end(now, &drv.endpoint, h, &|ip| path_index(&drv, ip));
            }
            let Some(mut tr) = active.remove(&h) else {
                continue;
            };
            if tr.info.is_none() {
                tr.info = drv.endpoint.conn_info(h);
            }
            total_tx += tr.info.as_ref().map_or(0, |i| i.bytes_acked);
            if tr.error.is_some() {
                failed += 1;
                let _ = drv.endpoint.abort(now, h);
            }
            drv.endpoint.release(now, h);
            finished += 1;
            reporter.print(&drv, &tr, false);
        }
        if progress.enabled && now >= progress.next {
            let acked: u64 = active
                .keys()
                .filter_map(|h| drv.endpoint.conn_info(*h))
                .map(|i| i.bytes_acked)
                .sum();
            progress.tick(now, total_tx + acked, total_rx, !active.is_empty());
        }
        if finished >= args.count {
            break;
        }
        if interrupt_end.is_none() && drv.interrupted() {
            interrupt_end = Some(now + INTERRUPT_GRACE);
            for (h, tr) in active.iter_mut() {
                touched.insert(*h);
                if !tr.shut {
                    tr.shut = true;
                    let _ = drv.endpoint.shutdown(now, *h);
                }
            }
            continue;
        }
        if interrupt_end.is_some_and(|e| now >= e || active.is_empty()) {
            break;
        }
        if deadline.is_some_and(|d| now >= d) {
            fatal = Some(format!(
                "stopped by --timeout {} after {:.1} s",
                fmt_duration(net.timeout.unwrap_or_default()),
                now.saturating_duration_since(t0).as_secs_f64()
            ));
            break;
        }
        let mut max_wait = progress.wait();
        if let Some(tracer) = &tracer {
            let left = tracer.wait(now);
            max_wait = Some(max_wait.map_or(left, |m| m.min(left)));
        }
        for end in [deadline, interrupt_end].into_iter().flatten() {
            let left = end.saturating_duration_since(now);
            max_wait = Some(max_wait.map_or(left, |m| m.min(left)));
        }
        if let Err(e) = drv.wait(max_wait, None) {
            fatal = Some(format!("event loop: {e}"));
            break;
        }
    }
    let interrupted = interrupt_end.is_some();
    let now = drv.now();
    let mut leftovers: Vec<_> = active.drain().collect();
    leftovers.sort_by_key(|(h, _)| *h);
    for (h, mut tr) in leftovers {
        if let Some(tracer) = tracer.as_mut() {
            tracer.end(now, &drv.endpoint, h, &|ip| path_index(&drv, ip));
        }
        tr.info = drv.endpoint.conn_info(h).or(tr.info.take());
        tr.end.get_or_insert(now);
        tr.error
            .get_or_insert_with(|| fatal.clone().unwrap_or_else(|| "interrupted".to_string()));
        failed += 1;
        let _ = drv.endpoint.abort(now, h);
        drv.endpoint.release(now, h);
        reporter.print(&drv, &tr, false);
    }
    let _ = drv.drain(DRAIN_LIMIT);
    if let Some(e) = tracer.take().and_then(|t| t.finish().err()) {
        fatal.get_or_insert(e);
    }
    if let Err(e) = sink.flush() {
        fatal.get_or_insert(format!("writing output: {e}"));
    }
    if let Err(e) = drv.finish_capture() {
        fatal.get_or_insert(format!("writing capture: {e}"));
    }
    if let Some(e) = fatal {
        return failure(&e);
    }
    if interrupted {
        return failure("interrupted");
    }
    if failed > 0 {
        return failure(&format!("{failed} of {finished} connections failed"));
    }
    ExitCode::SUCCESS
}
