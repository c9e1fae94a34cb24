//! Interop with the Linux kernel's MPTCP (RFC 8684) over two TUN paths, in throw-away network
//! namespaces.
//!
//! Each case: a namespace `braid-mp-<random>` (P), braid opens two TUN devices and moves both
//! into P: path 0 is 10.78.1.1 ↔ 10.78.1.2/24, path 1 is 10.78.2.1 ↔ 10.78.2.2/24 (IPv6 case:
//! fd00:78:1::1 ↔ fd00:78:1::2/64 and fd00:78:2::1 ↔ fd00:78:2::2/64). The Linux side is
//! tests/interop/mptcp_peer.py (an IPPROTO_MPTCP socket, or plain TCP) in P, with
//! `ip mptcp limits set subflows 4 add_addr_accepted 4` and the endpoints a case needs.
//!
//! Besides braid's --json report and the SHA-256 of the data, every case checks the kernel's own
//! view: the MPTcpExt counters of P (/proc/net/netstat), the subflows `ss -tni` lists in P while
//! the transfer runs (with the kernel's per-subflow byte counts), the byte counters of the links,
//! and braid's capture (--pcap) through tshark's MPTCP analysis. The same Linux side was checked
//! Linux ↔ Linux (two namespaces, two veth pairs; scripts/bench-interop.sh does it again): when a
//! case fails, braid is the suspect.
//!
//! Needs root: without it the tests are skipped loudly, except in CI (CI set), where they fail.
//! Cases run one at a time (a file-level lock), every process is killed at a deadline, and
//! namespaces and temporary files are removed on drop, even when a case fails.

mod common;
use common::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The Linux peer program.
const PEER_PY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/interop/mptcp_peer.py"
);
/// Bytes each way in the main case.
const BIG: u64 = 64 << 20;
/// Bytes each way in the other cases.
const SMALL: u64 = 16 << 20;
/// Longest any process of a case may run.
const DEADLINE: Duration = Duration::from_secs(120);
/// Kernel counters that must stay zero in a healthy MPTCP exchange: HMAC and token failures,
/// mapping/checksum errors, and every kind of fallback or abortive close.
const KERNEL_FAULTS: &[&str] = &[
    "MPJoinNoTokenFound",
    "MPJoinSynAckHMacFailure",
    "MPJoinAckHMacFailure",
    "DSSNotMatching",
    "DSSCorruptionFallback",
    "DSSCorruptionReset",
    "DSSNoMatchTCP",
    "DataCsumErr",
    "InfiniteMapRx",
    "MPCapableFallbackACK",
    "MPCapableFallbackSYNACK",
    "MPCapableDataFallback",
    "DssFallback",
    "FallbackFailed",
    "MPFastcloseRx",
];

/// True when the case can run: root, kernel MPTCP, python3, ss and tshark. Skips loudly
/// outside CI, fails inside it.
fn can_run(case: &str) -> bool {
    can_run_with(
        "MPTCP interop test",
        case,
        &[
            ("python3", "--version", "python3"),
            ("ss", "-V", "iproute2"),
            ("tshark", "--version", "tshark"),
        ],
    )
}

/// What `ss -tni` showed of one TCP connection (an MPTCP subflow or a plain TCP connection)
/// in P: the largest byte counts seen.
#[derive(Clone, Debug, Default)]
struct SsFlow {
    mptcp: bool,
    bytes_sent: u64,
    bytes_received: u64,
}

/// Samples `ss -tni` in a namespace every 100 ms while a transfer runs, keeping every TCP
/// connection with `port` on either end, keyed by "LOCAL PEER".
struct SsSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<KernelView>>,
}

impl SsSampler {
    fn start(ns: &str, port: u16) -> SsSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let ns = ns.to_string();
        let thread = thread::spawn(move || {
            let mut view = KernelView::default();
            let tag = format!(":{port}");
            while !s.load(Ordering::Relaxed) {
                let out = Command::new("ip")
                    .args(["netns", "exec", &ns, "ss", "-tniH"])
                    .output();
                if let Ok(out) = out {
                    parse_ss(&String::from_utf8_lossy(&out.stdout), &tag, &mut view.flows);
                }
                // braid's devices vanish when braid exits: their counters are read meanwhile.
                let out = Command::new("ip")
                    .args(["-n", &ns, "-s", "-j", "link", "show"])
                    .output();
                if let Ok(out) = out {
                    parse_links(&out.stdout, &mut view.links);
                }
                thread::sleep(Duration::from_millis(10));
            }
            view
        });
        SsSampler {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> KernelView {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// What P's kernel showed while a transfer ran.
#[derive(Debug, Default)]
struct KernelView {
    /// TCP connections and subflows by "LOCAL PEER" (see `parse_ss`).
    flows: HashMap<String, SsFlow>,
    /// Bytes received and sent per link of P, the largest seen.
    links: HashMap<String, (u64, u64)>,
}

impl KernelView {
    /// Bytes P received and sent on link `dev` (zero when never seen).
    fn link(&self, dev: &str) -> (u64, u64) {
        self.links.get(dev).copied().unwrap_or_default()
    }
}

/// Folds `ip -s -j link show` output into `links`.
fn parse_links(json: &[u8], links: &mut HashMap<String, (u64, u64)>) {
    let Ok(serde_json::Value::Array(list)) = serde_json::from_slice(json) else {
        return;
    };
    for l in list {
        let Some(name) = l["ifname"].as_str() else {
            continue;
        };
        let st = &l["stats64"];
        let rx = st["rx"]["bytes"].as_u64().unwrap_or(0);
        let tx = st["tx"]["bytes"].as_u64().unwrap_or(0);
        let e = links.entry(name.to_string()).or_default();
        *e = (e.0.max(rx), e.1.max(tx));
    }
}

impl Drop for SsSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Folds one `ss -tniH` listing into `flows`: a socket line "STATE RECVQ SENDQ LOCAL PEER",
/// then an indented line of details (bytes_sent:N bytes_received:N ... tcp-ulp-mptcp ...).
fn parse_ss(text: &str, port_tag: &str, flows: &mut HashMap<String, SsFlow>) {
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            let f: Vec<&str> = line.split_whitespace().collect();
            current = (f.len() >= 5 && (f[3].ends_with(port_tag) || f[4].ends_with(port_tag)))
                .then(|| format!("{} {}", f[3], f[4]));
            continue;
        }
        let Some(key) = &current else { continue };
        let flow = flows.entry(key.clone()).or_default();
        flow.mptcp |= line.contains("tcp-ulp-mptcp");
        for word in line.split_whitespace() {
            if let Some((k, v)) = word.split_once(':') {
                let v = v.parse::<u64>().unwrap_or(0);
                match k {
                    "bytes_sent" => flow.bytes_sent = flow.bytes_sent.max(v),
                    "bytes_received" => flow.bytes_received = flow.bytes_received.max(v),
                    _ => {}
                }
            }
        }
    }
}

/// The Linux peer's report (mptcp_peer.py).
#[derive(Debug)]
struct PeerReport {
    rx_bytes: u64,
    rx_sha256: String,
    tx_bytes: u64,
    tx_sha256: String,
    /// The kernel socket is MPTCP and did not fall back.
    mptcp: bool,
    /// Most extra subflows the kernel reported (MPTCP_INFO).
    extra_subflows: u64,
}

fn parse_peer(out: &str) -> PeerReport {
    let line = out.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("peer output {out:?}: {e}"));
    PeerReport {
        rx_bytes: v["rx_bytes"].as_u64().expect("rx_bytes"),
        rx_sha256: v["rx_sha256"].as_str().unwrap_or_default().to_string(),
        tx_bytes: v["tx_bytes"].as_u64().expect("tx_bytes"),
        tx_sha256: v["tx_sha256"].as_str().unwrap_or_default().to_string(),
        mptcp: v["mptcp"].as_bool().unwrap_or(false),
        extra_subflows: v["extra_subflows"].as_u64().unwrap_or(0),
    }
}

fn parse_report(out: &str) -> serde_json::Value {
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("braid --json output {out:?}: {e}"))
}

fn sha256_file(p: &Path) -> (u64, String) {
    let mut f = std::fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).expect("read");
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let hex = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    (n, hex)
}

/// Two paths from braid into one Linux namespace P.
struct Topo {
    ns: Netns,
    tuns: [String; 2],
    v6: bool,
    dir: TempDir,
    /// Emulation options appended to every `--path` (e.g. `,rate=100mbit`); empty by default.
    shape: String,
}

impl Topo {
    fn new(v6: bool) -> Topo {
        let r = random_u64();
        let ns = Netns::mptcp_peer(format!("braid-mp-{:08x}", r as u32));
        let topo = Topo {
            tuns: [
                format!("bm{:06x}a", (r >> 32) as u32 & 0xff_ffff),
                format!("bm{:06x}b", (r >> 32) as u32 & 0xff_ffff),
            ],
            v6,
            dir: TempDir(std::env::temp_dir().join(format!("braid-mp-interop-{r:016x}"))),
            ns,
            shape: String::new(),
        };
        std::fs::create_dir_all(&topo.dir.0).expect("temp dir");
        // Case b routes one subflow asymmetrically (Linux sends over path 1, braid answers from
        // its path-0 address over path 0): no reverse-path filter may drop those answers.
        for key in ["all", "default"] {
            let k = format!("net.ipv4.conf.{key}.rp_filter=0");
            run("ip", &["netns", "exec", &topo.ns.0, "sysctl", "-qw", &k]);
        }
        topo
    }

    /// `ip -n P ARGS`.
    fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.ns.0.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// braid's address and the kernel's on path `i`.
    fn addrs(&self, i: usize) -> (String, String) {
        let x = i + 1;
        if self.v6 {
            (format!("fd00:78:{x}::1"), format!("fd00:78:{x}::2"))
        } else {
            (format!("10.78.{x}.1"), format!("10.78.{x}.2"))
        }
    }

    fn path(&self, i: usize, extra: &str) -> String {
        let (local, peer) = self.addrs(i);
        let len = if self.v6 { 64 } else { 24 };
        format!(
            "tun={},local={local},peer={peer}/{len},netns={}{}{extra}",
            self.tuns[i], self.ns.0, self.shape
        )
    }

    /// "IP:PORT" of the kernel's address on path `i`.
    fn linux_target(&self, i: usize, port: u16) -> String {
        let (_, peer) = self.addrs(i);
        if self.v6 {
            format!("[{peer}]:{port}")
        } else {
            format!("{peer}:{port}")
        }
    }

    fn file(&self, name: &str) -> String {
        self.dir.0.join(name).to_str().unwrap().to_string()
    }

    /// The Linux peer in P.
    fn peer(&self, name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.0, "python3", PEER_PY])
            .args(args);
        Proc::spawn(name, &mut cmd)
    }

    /// Waits until braid's devices are in P with the kernel's addresses.
    fn wait_devices(&self, braid: &Proc) {
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        for i in 0..2 {
            let (_, peer) = self.addrs(i);
            loop {
                let out = Command::new("ip")
                    .args(["-n", &self.ns.0, "-o", "addr", "show", "dev", &self.tuns[i]])
                    .output()
                    .expect("run ip");
                if String::from_utf8_lossy(&out.stdout).contains(&format!(" {peer}/")) {
                    break;
                }
                assert!(
                    waited < Duration::from_secs(20),
                    "device {} did not appear in {}; braid stderr: {}",
                    self.tuns[i],
                    self.ns.0,
                    braid.stderr()
                );
                thread::sleep(step);
                waited += step;
            }
        }
    }

    /// P's MPTcpExt counters.
    fn counters(&self) -> HashMap<String, u64> {
        self.ns.mptcp_counters()
    }
}

fn braid(name: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.args(args);
    Proc::spawn(name, &mut cmd)
}

/// A counter's value (0 when absent).
fn ctr(c: &HashMap<String, u64>, name: &str) -> u64 {
    c.get(name).copied().unwrap_or(0)
}

/// The counters that are not zero, for messages.
fn assert_no_kernel_faults(c: &HashMap<String, u64>) {
    for k in KERNEL_FAULTS {
        assert_eq!(ctr(c, k), 0, "kernel counter {k} in P: {}", nonzero(c));
    }
}

/// braid's subflows (report "subflows") as (local, remote, bytes_sent).
fn braid_subflows(report: &serde_json::Value) -> Vec<(String, String, u64)> {
    report["subflows"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["local"].as_str().unwrap_or_default().to_string(),
                        s["remote"].as_str().unwrap_or_default().to_string(),
                        s["bytes_sent"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// braid's report says the connection fell back to TCP, or (before braid reported MPTCP
/// state) says nothing about it.
fn braid_fallback(report: &serde_json::Value) -> Option<bool> {
    report["mptcp"]["fallback"].as_bool()
}

/// The IP of "IP:PORT" / "[IP]:PORT" or of "IP:PORT" as ss prints it.
fn host_of(addr: &str) -> String {
    let h = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    h.trim_start_matches('[').trim_end_matches(']').to_string()
}

/// Runs tshark's MPTCP and TCP analysis over braid's capture: no malformed packet, no key
/// echoed wrongly, no data segment without a DSS mapping. Returns the number of MPTCP
/// connections and of TCP streams tshark found.
fn check_pcap(pcap: &str, port: u16) -> (usize, usize) {
    let tshark = |filter: &str, fields: &[&str]| {
        let decode = format!("tcp.port=={port},data");
        let mut args = vec![
            "-r",
            pcap,
            "-d",
            &decode,
            "-o",
            "mptcp.analyze_mptcp:TRUE",
            "-o",
            "mptcp.analyze_mappings:TRUE",
            "-o",
            "tcp.analyze_sequence_numbers:TRUE",
            "-Y",
            filter,
        ];
        if !fields.is_empty() {
            args.extend(["-T", "fields"]);
            for f in fields {
                args.extend(["-e", f]);
            }
        }
        let out = Command::new("tshark")
            .args(&args)
            .output()
            .expect("run tshark");
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // A segment that follows one the capture lacks (dropped by a shaped path's queue before
    // the capture point) can look unmapped to tshark, whose mapping context was in the lost
    // segment: the mapping check covers only the TCP streams with no segment missing.
    let mut lossy: Vec<String> = tshark("tcp.analysis.lost_segment", &["tcp.stream"])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lossy.sort();
    lossy.dedup();
    let unmapped = if lossy.is_empty() {
        "(mptcp.dss.missing_mapping && tcp.len > 0)".to_string()
    } else {
        format!(
            "(mptcp.dss.missing_mapping && tcp.len > 0 && !(tcp.stream in {{{}}}))",
            lossy.join(", ")
        )
    };
    let bad = tshark(
        &format!("_ws.malformed || mptcp.connection.echoed_key_mismatch || {unmapped}"),
        &[],
    );
    let shown: String = bad.lines().take(20).collect::<Vec<_>>().join("\n");
    assert!(
        bad.trim().is_empty(),
        "tshark found problems in {pcap} ({} packets):\n{shown}",
        bad.lines().count()
    );
    let distinct = |s: String| {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        v.sort();
        v.dedup();
        v.len()
    };
    let mptcp_conns = distinct(tshark("mptcp.stream", &["mptcp.stream"]));
    let tcp_streams = distinct(tshark("tcp.len > 0", &["tcp.stream"]));
    (mptcp_conns, tcp_streams)
}

/// One braid connect → Linux server run: both send `size` bytes; checks both directions'
/// SHA-256. Returns braid's report and the server's.
fn braid_to_linux(
    topo: &Topo,
    port: u16,
    size: u64,
    server_args: &[&str],
    pcap: &str,
) -> (serde_json::Value, PeerReport, KernelView) {
    braid_to_linux_with(topo, port, size, server_args, pcap, 2, &[])
}

/// [`braid_to_linux`] over braid's first `paths` paths, with more braid arguments.
fn braid_to_linux_with(
    topo: &Topo,
    port: u16,
    size: u64,
    server_args: &[&str],
    pcap: &str,
    paths: usize,
    braid_args: &[&str],
) -> (serde_json::Value, PeerReport, KernelView) {
    let port_s = port.to_string();
    let size_s = size.to_string();
    let mut sargs = vec!["server", "--port", &port_s, "--send", &size_s];
    if topo.v6 {
        sargs.push("--v6");
    }
    sargs.extend_from_slice(server_args);
    let mut server = topo.peer("Linux server", &sargs);
    server.expect_line("ready", Duration::from_secs(20));
    let sampler = SsSampler::start(&topo.ns.0, port);
    let (p0, p1) = (topo.path(0, ""), topo.path(1, ""));
    let target = topo.linux_target(0, port);
    let rx = topo.file("received.bin");
    let mut args: Vec<&str> = vec!["connect", "--path", &p0];
    if paths > 1 {
        args.extend(["--path", &p1]);
    }
    args.extend_from_slice(braid_args);
    args.extend([
        &target,
        "--bytes",
        &size_s,
        "--out",
        &rx,
        "--json",
        "--seed",
        "7",
        "--timeout",
        "100s",
        "--pcap",
        pcap,
    ]);
    let mut client = braid("braid connect", &args);
    let (st, out) = client.finish(DEADLINE);
    let view = sampler.finish();
    assert!(
        st.success(),
        "braid connect failed: {st}; stdout: {out}; stderr: {}; Linux server stderr: {}; \
         Linux counters: {}",
        client.stderr(),
        server.stderr(),
        topo.ns.nonzero_counters()
    );
    let report = parse_report(&out);
    // Shown with a failure below (or with --nocapture): what each side counted.
    eprintln!(
        "braid counters: {}\nLinux counters: {}",
        report["counters"],
        topo.ns.nonzero_counters()
    );
    let (st, sout) = server.finish(Duration::from_secs(30));
    assert!(
        st.success(),
        "Linux server failed: {st}; stderr: {}",
        server.stderr()
    );
    let peer = parse_peer(&sout);
    assert_eq!(
        peer.rx_bytes, size,
        "Linux received {} bytes",
        peer.rx_bytes
    );
    assert_eq!(report["bytes"], size, "braid's report: {report}");
    assert_eq!(
        report["sha256"], peer.rx_sha256,
        "SHA-256 braid → Linux differs: {report}"
    );
    let (n, hash) = sha256_file(Path::new(&rx));
    assert_eq!(n, size, "braid received {n} bytes");
    assert_eq!(peer.tx_bytes, size);
    assert_eq!(hash, peer.tx_sha256, "SHA-256 Linux → braid differs");
    (report, peer, view)
}

/// One Linux client → braid listen run: the client sends `size` bytes, braid none. `setup`
/// runs once braid's devices are in P (endpoints, routes). Returns braid's report and the
/// client's.
fn linux_to_braid(
    topo: &Topo,
    port: u16,
    size: u64,
    client_args: &[&str],
    setup: &dyn Fn(&Topo),
    pcap: &str,
) -> (serde_json::Value, PeerReport, KernelView) {
    linux_to_braid_with(topo, port, size, client_args, setup, pcap, &[])
}

/// [`linux_to_braid`] with more arguments for braid listen.
fn linux_to_braid_with(
    topo: &Topo,
    port: u16,
    size: u64,
    client_args: &[&str],
    setup: &dyn Fn(&Topo),
    pcap: &str,
    braid_args: &[&str],
) -> (serde_json::Value, PeerReport, KernelView) {
    let port_s = port.to_string();
    let size_s = size.to_string();
    let (p0, p1) = (topo.path(0, ""), topo.path(1, ""));
    let mut sargs: Vec<&str> = vec![
        "listen",
        "--path",
        &p0,
        "--path",
        &p1,
        "--port",
        &port_s,
        "--json",
        "--seed",
        "9",
        "--timeout",
        "100s",
        "--pcap",
        pcap,
    ];
    sargs.extend_from_slice(braid_args);
    let mut server = braid("braid listen", &sargs);
    topo.wait_devices(&server);
    setup(topo);
    let sampler = SsSampler::start(&topo.ns.0, port);
    let (braid_addr, _) = topo.addrs(0);
    let mut cargs = vec![
        "client",
        "--connect",
        &braid_addr,
        "--port",
        &port_s,
        "--send",
        &size_s,
    ];
    cargs.extend_from_slice(client_args);
    let mut client = topo.peer("Linux client", &cargs);
    let (st, cout) = client.finish(DEADLINE);
    let view = sampler.finish();
    assert!(
        st.success(),
        "Linux client failed: {st}; stderr: {}; braid stderr: {}; Linux counters: {}",
        client.stderr(),
        server.stderr(),
        topo.ns.nonzero_counters()
    );
    let (st, out) = server.finish(Duration::from_secs(30));
    assert!(
        st.success(),
        "braid listen failed: {st}; stdout: {out}; stderr: {}",
        server.stderr()
    );
    let report = parse_report(&out);
    let peer = parse_peer(&cout);
    assert_eq!(peer.tx_bytes, size);
    assert_eq!(report["bytes"], size, "braid received: {report}");
    assert_eq!(
        report["sha256"], peer.tx_sha256,
        "SHA-256 Linux → braid differs: {report}"
    );
    assert_eq!(peer.rx_bytes, 0, "braid listen sends nothing");
    (report, peer, view)
}

/// Subflows ss saw that carried at least `min` bytes towards or from Linux.
fn busy_flows(flows: &HashMap<String, SsFlow>, min: u64, received: bool) -> Vec<String> {
    let mut v: Vec<String> = flows
        .iter()
        .filter(|(_, f)| {
            f.mptcp
                && if received {
                    f.bytes_received >= min
                } else {
                    f.bytes_sent >= min
                }
        })
        .map(|(k, _)| k.clone())
        .collect();
    v.sort();
    v
}

/// Case a: braid client → Linux MPTCP server, 64 MiB each way. braid opens a second subflow
/// with MP_JOIN from its path-1 address, Linux accepts it, both subflows carry data.
#[test]
fn braid_client_to_linux_mptcp_server_two_subflows() {
    let _g = serial();
    if !can_run("braid_client_to_linux_mptcp_server_two_subflows") {
        return;
    }
    let topo = Topo::new(false);
    let pcap = topo.file("a.pcap");
    let (report, peer, view) = braid_to_linux(&topo, 5000, BIG, &[], &pcap);
    let flows = &view.flows;
    let c = topo.counters();
    assert!(peer.mptcp, "the Linux socket fell back to TCP: {peer:?}");
    assert!(ctr(&c, "MPCapableSYNRX") >= 1, "{}", nonzero(&c));
    assert!(ctr(&c, "MPCapableACKRX") >= 1, "{}", nonzero(&c));
    assert!(
        ctr(&c, "MPJoinSynRx") >= 1,
        "no MP_JOIN SYN: {}",
        nonzero(&c)
    );
    assert!(
        ctr(&c, "MPJoinAckRx") >= 1,
        "no MP_JOIN ACK: {}",
        nonzero(&c)
    );
    assert_no_kernel_faults(&c);
    assert!(peer.extra_subflows >= 1, "{peer:?}");
    // The kernel's view: data arrived on a subflow from each of braid's addresses.
    let busy = busy_flows(flows, 1 << 20, true);
    for (i, want) in ["10.78.1.1", "10.78.2.1"].iter().enumerate() {
        assert!(
            busy.iter()
                .any(|k| host_of(k.split(' ').nth(1).unwrap()) == *want),
            "no subflow from braid's path {i} ({want}) carried 1 MiB; ss saw {flows:?}"
        );
    }
    let (rx1, _) = view.link(&topo.tuns[1]);
    assert!(rx1 >= 1 << 20, "only {rx1} bytes arrived over path 1");
    // braid's view.
    let sf = braid_subflows(&report);
    let carrying = sf.iter().filter(|s| s.2 >= 1 << 20).count();
    assert!(
        carrying >= 2,
        "braid reports {carrying} subflows carrying data: {report}"
    );
    assert!(
        sf.iter().any(|s| host_of(&s.0) == "10.78.2.1"),
        "braid reports no subflow from 10.78.2.1: {report}"
    );
    assert_eq!(braid_fallback(&report), Some(false), "{report}");
    let (conns, streams) = check_pcap(&pcap, 5000);
    assert_eq!(conns, 1, "tshark: MPTCP connections in the capture");
    assert!(streams >= 2, "tshark: {streams} TCP streams carried data");
}

/// Case b: Linux MPTCP client → braid listen; Linux's `subflow` endpoint on 10.78.2.2 opens a
/// second subflow to braid (routed over path 1 by a source rule).
#[test]
fn linux_mptcp_client_to_braid_server_two_subflows() {
    let _g = serial();
    if !can_run("linux_mptcp_client_to_braid_server_two_subflows") {
        return;
    }
    let topo = Topo::new(false);
    let pcap = topo.file("b.pcap");
    let setup = |t: &Topo| {
        let dev = t.tuns[1].as_str();
        t.ip(&["rule", "add", "from", "10.78.2.2", "table", "102"]);
        t.ip(&["route", "add", "10.78.1.0/24", "dev", dev, "table", "102"]);
        t.ip(&[
            "mptcp",
            "endpoint",
            "add",
            "10.78.2.2",
            "dev",
            dev,
            "subflow",
        ]);
    };
    let (report, peer, view) = linux_to_braid(&topo, 5001, BIG, &[], &setup, &pcap);
    let flows = &view.flows;
    let c = topo.counters();
    assert!(peer.mptcp, "the Linux socket fell back to TCP: {peer:?}");
    assert!(ctr(&c, "MPCapableSYNACKRX") >= 1, "{}", nonzero(&c));
    assert!(ctr(&c, "MPJoinSynTx") >= 1, "{}", nonzero(&c));
    assert!(
        ctr(&c, "MPJoinSynAckRx") >= 1,
        "braid answered no MP_JOIN: {}",
        nonzero(&c)
    );
    assert_no_kernel_faults(&c);
    assert!(peer.extra_subflows >= 1, "{peer:?}");
    let busy = busy_flows(flows, 1, false);
    for want in ["10.78.1.2", "10.78.2.2"] {
        assert!(
            busy.iter()
                .any(|k| host_of(k.split(' ').next().unwrap()) == want),
            "Linux sent no data on a subflow from {want}; ss saw {flows:?}"
        );
    }
    let (_, tx1) = view.link(&topo.tuns[1]);
    assert!(tx1 > 0, "nothing left P over path 1");
    let sf = braid_subflows(&report);
    assert!(
        sf.len() >= 2,
        "braid reports {} subflows: {report}",
        sf.len()
    );
    assert!(
        sf.iter().any(|s| host_of(&s.1) == "10.78.2.2"),
        "braid reports no subflow from 10.78.2.2: {report}"
    );
    // The join from 10.78.2.2 to braid's first address came in over path 1, and Linux's
    // subflow is bound to that device: braid's answers go back over path 1 (before, they
    // left by path 0, the path of their source address, and Linux reset them).
    let cross = report["subflows"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            s["local"]
                .as_str()
                .is_some_and(|l| host_of(l) == "10.78.1.1")
                && s["remote"]
                    .as_str()
                    .is_some_and(|r| host_of(r) == "10.78.2.2")
                && s["bytes_received"].as_u64().unwrap_or(0) > 0
        });
    assert!(
        cross,
        "no data on the subflow 10.78.2.2 -> 10.78.1.1 over path 1: {report}"
    );
    assert_eq!(braid_fallback(&report), Some(false), "{report}");
    let (conns, streams) = check_pcap(&pcap, 5001);
    assert_eq!(conns, 1, "tshark: MPTCP connections in the capture");
    assert!(streams >= 2, "tshark: {streams} TCP streams carried data");
}

/// Case c: the Linux server announces 10.78.2.2 (ADD_ADDR from a `signal` endpoint); braid
/// echoes it and joins it.
#[test]
fn braid_client_joins_address_linux_announces() {
    let _g = serial();
    if !can_run("braid_client_joins_address_linux_announces") {
        return;
    }
    let topo = Topo::new(false);
    topo.ip(&["mptcp", "endpoint", "add", "10.78.2.2", "signal"]);
    let pcap = topo.file("c.pcap");
    let (report, peer, view) = braid_to_linux(&topo, 5002, SMALL, &[], &pcap);
    let flows = &view.flows;
    let c = topo.counters();
    assert!(
        peer.mptcp,
        "the Linux socket fell back to TCP: {peer:?}; P: {}",
        nonzero(&c)
    );
    assert!(
        ctr(&c, "AddAddrTx") >= 1,
        "Linux sent no ADD_ADDR: {}",
        nonzero(&c)
    );
    assert!(
        ctr(&c, "EchoAdd") >= 1,
        "braid did not echo the ADD_ADDR: {}",
        nonzero(&c)
    );
    assert!(ctr(&c, "MPJoinSynRx") >= 1, "{}", nonzero(&c));
    assert!(ctr(&c, "MPJoinAckRx") >= 1, "{}", nonzero(&c));
    assert_no_kernel_faults(&c);
    assert!(
        flows
            .keys()
            .any(|k| host_of(k.split(' ').next().unwrap()) == "10.78.2.2"),
        "ss saw no subflow to the announced 10.78.2.2: {flows:?}"
    );
    let sf = braid_subflows(&report);
    assert!(
        sf.iter().any(|s| host_of(&s.1) == "10.78.2.2"),
        "braid reports no subflow to the announced 10.78.2.2: {report}"
    );
    check_pcap(&pcap, 5002);
}

/// Path manager `ndiffports=4` over one path: braid opens 3 more subflows over the same address
/// pair from other source ports (MP_JOIN with address id 0); Linux (limit raised to 4 extra
/// subflows) accepts them all and the data is intact both ways.
#[test]
fn ndiffports_opens_four_subflows_linux_accepts() {
    let _g = serial();
    if !can_run("ndiffports_opens_four_subflows_linux_accepts") {
        return;
    }
    let topo = Topo::new(false);
    let pcap = topo.file("nd.pcap");
    let (report, peer, view) = braid_to_linux_with(
        &topo,
        5010,
        SMALL,
        &[],
        &pcap,
        1,
        &["--path-manager", "ndiffports=4"],
    );
    let c = topo.counters();
    assert!(peer.mptcp, "the Linux socket fell back to TCP: {peer:?}");
    assert!(
        ctr(&c, "MPJoinSynRx") >= 3 && ctr(&c, "MPJoinAckRx") >= 3,
        "Linux did not take 3 joins: {}",
        nonzero(&c)
    );
    assert_eq!(ctr(&c, "MPJoinRejected"), 0, "{}", nonzero(&c));
    assert_no_kernel_faults(&c);
    assert!(peer.extra_subflows >= 3, "{peer:?}");
    // The kernel's view: 4 MPTCP subflows from braid's one address, 4 source ports.
    let ports: std::collections::BTreeSet<String> = view
        .flows
        .iter()
        .filter(|(_, f)| f.mptcp)
        .filter_map(|(k, _)| k.split(' ').nth(1).map(str::to_string))
        .filter(|p| host_of(p) == "10.78.1.1")
        .collect();
    assert!(ports.len() >= 4, "ss saw subflows from {ports:?}");
    let sf = braid_subflows(&report);
    assert_eq!(sf.len(), 4, "braid's subflows: {report}");
    let locals: std::collections::BTreeSet<&str> = sf.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(locals.len(), 4, "source ports not distinct: {report}");
    assert!(sf
        .iter()
        .all(|s| host_of(&s.0) == "10.78.1.1" && host_of(&s.1) == "10.78.1.2"));
    assert!(
        sf.iter().filter(|s| s.2 > 0).count() >= 2,
        "fewer than 2 subflows carried data: {report}"
    );
    assert_eq!(braid_fallback(&report), Some(false), "{report}");
    let (conns, _) = check_pcap(&pcap, 5010);
    assert_eq!(conns, 1, "tshark: MPTCP connections in the capture");
}

/// braid listen with `--path-manager signal` announces its path-1 address (ADD_ADDR); the
/// Linux client (add_addr_accepted raised, no endpoints of its own) joins it.
#[test]
fn linux_client_joins_address_braid_signals() {
    let _g = serial();
    if !can_run("linux_client_joins_address_braid_signals") {
        return;
    }
    let topo = Topo::new(false);
    let pcap = topo.file("sig.pcap");
    let (report, peer, view) = linux_to_braid_with(
        &topo,
        5011,
        SMALL,
        &[],
        &|_| {},
        &pcap,
        &["--path-manager", "signal"],
    );
    let c = topo.counters();
    assert!(peer.mptcp, "the Linux socket fell back to TCP: {peer:?}");
    assert!(
        ctr(&c, "AddAddr") >= 1,
        "Linux received no ADD_ADDR: {}",
        nonzero(&c)
    );
    assert!(
        ctr(&c, "MPJoinSynAckRx") >= 1,
        "Linux joined nothing: {}",
        nonzero(&c)
    );
    assert_no_kernel_faults(&c);
    assert!(peer.extra_subflows >= 1, "{peer:?}");
    assert!(
        view.flows
            .iter()
            .any(|(k, f)| f.mptcp && host_of(k.split(' ').nth(1).unwrap()) == "10.78.2.1"),
        "ss saw no subflow to the announced 10.78.2.1: {:?}",
        view.flows
    );
    let sf = braid_subflows(&report);
    assert!(
        sf.iter().any(|s| host_of(&s.0) == "10.78.2.1"),
        "braid reports no subflow on its announced 10.78.2.1: {report}"
    );
    assert_eq!(braid_fallback(&report), Some(false), "{report}");
    check_pcap(&pcap, 5011);
}

/// Coupled congestion control (`--cc lia`, RFC 6356) braid → Linux on two paths: intact both
/// ways, both subflows carry data, nothing the kernel counts as a fault. Both paths are shaped
/// to 100 Mbit/s so that one path cannot carry the whole transfer alone: unshaped, a 16 MiB
/// transfer is over in 0.2 s and the lower-RTT subflow may rightly take nearly all of it.
#[test]
fn lia_braid_client_to_linux_two_paths() {
    let _g = serial();
    if !can_run("lia_braid_client_to_linux_two_paths") {
        return;
    }
    let mut topo = Topo::new(false);
    topo.shape = ",rate=100mbit".into();
    let pcap = topo.file("lia.pcap");
    let (report, peer, _view) =
        braid_to_linux_with(&topo, 5012, SMALL, &[], &pcap, 2, &["--cc", "lia"]);
    let c = topo.counters();
    assert!(peer.mptcp, "the Linux socket fell back to TCP: {peer:?}");
    assert_no_kernel_faults(&c);
    let sf = braid_subflows(&report);
    assert!(
        sf.iter().filter(|s| s.2 >= 1 << 20).count() >= 2,
        "braid reports fewer than 2 subflows carrying 1 MiB: {report}"
    );
    assert_eq!(braid_fallback(&report), Some(false), "{report}");
    let (conns, _) = check_pcap(&pcap, 5012);
    assert_eq!(conns, 1, "tshark: MPTCP connections in the capture");
}

/// MP_CAPABLE accepted both ways, one subflow at least: braid client → Linux MPTCP server over
/// IPv4 and Linux MPTCP client → braid listen over IPv6 (case e's family), data intact, the
/// kernel's connections did not fall back, no kernel fault counter moved, tshark finds the
/// capture clean and one MPTCP connection in it.
#[test]
fn mp_capable_both_ways_single_connection() {
    let _g = serial();
    if !can_run("mp_capable_both_ways_single_connection") {
        return;
    }
    let topo = Topo::new(false);
    let pcap = topo.file("cap1.pcap");
    let (_, peer, view) = braid_to_linux(&topo, 5006, SMALL, &[], &pcap);
    let flows = &view.flows;
    let c = topo.counters();
    assert!(peer.mptcp, "the Linux socket fell back to TCP: {peer:?}");
    assert!(ctr(&c, "MPCapableSYNRX") >= 1, "{}", nonzero(&c));
    assert!(ctr(&c, "MPCapableACKRX") >= 1, "{}", nonzero(&c));
    assert_no_kernel_faults(&c);
    // (peer.mptcp above is the kernel's own word; ss may miss a short transfer between samples.)
    assert!(
        flows.is_empty() || flows.values().any(|f| f.mptcp),
        "ss saw {flows:?}"
    );
    let (conns, _) = check_pcap(&pcap, 5006);
    assert_eq!(conns, 1, "tshark: MPTCP connections in the capture");

    let topo = Topo::new(true);
    let pcap = topo.file("cap2.pcap");
    let (_, peer, view) = linux_to_braid(&topo, 5007, SMALL, &[], &|_| {}, &pcap);
    let flows = &view.flows;
    let c = topo.counters();
    assert!(peer.mptcp, "the Linux socket fell back to TCP: {peer:?}");
    assert!(ctr(&c, "MPCapableSYNTX") >= 1, "{}", nonzero(&c));
    assert!(ctr(&c, "MPCapableSYNACKRX") >= 1, "{}", nonzero(&c));
    assert_no_kernel_faults(&c);
    // (peer.mptcp above is the kernel's own word; ss may miss a short transfer between samples.)
    assert!(
        flows.is_empty() || flows.values().any(|f| f.mptcp),
        "ss saw {flows:?}"
    );
    let (conns, _) = check_pcap(&pcap, 5007);
    assert_eq!(conns, 1, "tshark: MPTCP connections in the capture");
}

/// Case d, one way: a Linux client without MPTCP (plain TCP socket) → braid listen: plain TCP,
/// intact, one connection.
#[test]
fn plain_tcp_linux_client_to_braid_server() {
    let _g = serial();
    if !can_run("plain_tcp_linux_client_to_braid_server") {
        return;
    }
    let topo = Topo::new(false);
    let pcap = topo.file("d1.pcap");
    let (report, peer, view) = linux_to_braid(&topo, 5003, SMALL, &["--tcp"], &|_| {}, &pcap);
    let flows = &view.flows;
    assert!(!peer.mptcp);
    let c = topo.counters();
    assert_eq!(ctr(&c, "MPCapableSYNTX"), 0, "{}", nonzero(&c));
    assert_eq!(ctr(&c, "MPJoinSynRx"), 0, "{}", nonzero(&c));
    // ss samples the sockets: a short transfer may finish between two samples.
    assert!(flows.len() <= 1, "ss saw {flows:?}");
    assert!(flows.values().all(|f| !f.mptcp), "ss saw {flows:?}");
    assert!(braid_subflows(&report).len() <= 1, "{report}");
    // A plain TCP client never offered MPTCP: braid reports plain TCP or a fallback.
    assert_ne!(braid_fallback(&report), Some(false), "{report}");
    let (conns, streams) = check_pcap(&pcap, 5003);
    assert_eq!(
        (conns, streams),
        (0, 1),
        "tshark: MPTCP connections, streams"
    );
}

/// Case d, the other way: braid (offering MP_CAPABLE) → a plain TCP Linux server: braid falls
/// back to TCP (RFC 8684 §3.7), data intact, no join attempted.
#[test]
fn braid_client_to_plain_tcp_linux_server_falls_back() {
    let _g = serial();
    if !can_run("braid_client_to_plain_tcp_linux_server_falls_back") {
        return;
    }
    let topo = Topo::new(false);
    let pcap = topo.file("d2.pcap");
    let (report, peer, view) = braid_to_linux(&topo, 5004, SMALL, &["--tcp"], &pcap);
    let flows = &view.flows;
    assert!(!peer.mptcp);
    let c = topo.counters();
    assert_eq!(ctr(&c, "MPCapableSYNRX"), 0, "{}", nonzero(&c));
    assert_eq!(ctr(&c, "MPJoinSynRx"), 0, "{}", nonzero(&c));
    // ss samples the sockets: a short transfer may finish between two samples.
    assert!(
        flows.len() <= 1,
        "one TCP connection, no joins; ss saw {flows:?}"
    );
    assert!(braid_subflows(&report).len() <= 1, "{report}");
    // Once braid reports MPTCP state, it must say it fell back.
    assert_ne!(braid_fallback(&report), Some(false), "{report}");
    let (_, streams) = check_pcap(&pcap, 5004);
    assert_eq!(streams, 1, "tshark: TCP streams carrying data");
}

/// Case e: IPv6 on both paths: braid client → Linux MPTCP server on fd00:78:1::2, a join from
/// fd00:78:2::1, data intact both ways.
#[test]
fn ipv6_braid_client_to_linux_mptcp_server() {
    let _g = serial();
    if !can_run("ipv6_braid_client_to_linux_mptcp_server") {
        return;
    }
    let topo = Topo::new(true);
    let pcap = topo.file("e.pcap");
    let (report, peer, view) = braid_to_linux(&topo, 5005, SMALL, &[], &pcap);
    let flows = &view.flows;
    let c = topo.counters();
    assert!(peer.mptcp, "the Linux socket fell back to TCP: {peer:?}");
    assert!(ctr(&c, "MPCapableSYNRX") >= 1, "{}", nonzero(&c));
    assert!(ctr(&c, "MPJoinSynRx") >= 1, "{}", nonzero(&c));
    assert!(ctr(&c, "MPJoinAckRx") >= 1, "{}", nonzero(&c));
    assert_no_kernel_faults(&c);
    assert!(
        flows
            .keys()
            .any(|k| host_of(k.split(' ').nth(1).unwrap()) == "fd00:78:2::1"),
        "ss saw no subflow from fd00:78:2::1: {flows:?}"
    );
    assert!(
        braid_subflows(&report)
            .iter()
            .any(|s| host_of(&s.0) == "fd00:78:2::1"),
        "{report}"
    );
    let (conns, _) = check_pcap(&pcap, 5005);
    assert_eq!(conns, 1, "tshark: MPTCP connections in the capture");
}

#[test]
fn ss_parser_reads_subflows() {
    let text = "ESTAB 0 0 10.78.1.2:5000 10.78.1.1:33166\n\t cubic bytes_sent:10 bytes_received:1381000 tcp-ulp-mptcp flags:Mec\n\
                ESTAB 0 0 [fd00:78:1::2]:5000 [fd00:78:2::1]:41819\n\t bytes_sent:8008728 tcp-ulp-mptcp\n\
                ESTAB 0 0 10.0.0.1:22 10.0.0.2:4000\n\t bytes_sent:5\n";
    let mut flows = HashMap::new();
    parse_ss(text, ":5000", &mut flows);
    assert_eq!(flows.len(), 2);
    let f = &flows["10.78.1.2:5000 10.78.1.1:33166"];
    assert!(f.mptcp);
    assert_eq!((f.bytes_sent, f.bytes_received), (10, 1_381_000));
    let g = &flows["[fd00:78:1::2]:5000 [fd00:78:2::1]:41819"];
    assert_eq!(host_of("[fd00:78:2::1]:41819"), "fd00:78:2::1");
    assert_eq!(g.bytes_sent, 8_008_728);
}
