//! Interop with the Linux kernel's TCP over TUN devices, in throw-away network namespaces.
//!
//! Each case: a namespace `braid-peer-<random>`, braid opens TUN `bt<random>` with
//! local=10.77.X.1 and peer=10.77.X.2/24 (or fd00:77:X::1 / fd00:77:X::2/64) and moves it into
//! the namespace, where python3's socket module is the Linux side. Traffic never leaves those
//! addresses. Needs root: without it the tests are skipped loudly, except in CI (CI set), where
//! they fail. Cases run one at a time (a file-level lock) and every process is killed on a
//! deadline; namespaces and temporary files are removed on drop, even when a case fails.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

/// Bytes moved by the main cases.
const SIZE: u64 = 16 << 20;
/// Longest any process of a case may run.
const DEADLINE: Duration = Duration::from_secs(90);

/// True when the case can run; skips loudly outside CI, fails inside it.
fn can_run(case: &str) -> bool {
    if is_root() {
        return true;
    }
    if in_ci() {
        panic!("interop test {case} needs root (network namespaces, TUN devices) and CI is set: failing instead of skipping");
    }
    skip(
        &format!("interop test {case}"),
        "not root (needs network namespaces and TUN devices)",
    );
    false
}

fn ip(args: &[&str]) {
    run("ip", args);
}

/// One case's namespace, device name, addresses and scratch directory.
struct Topo {
    ns: Netns,
    tun: String,
    subnet: u8,
    dir: TempDir,
}

impl Topo {
    fn new() -> Topo {
        let r = random_u64();
        let ns = Netns(format!("braid-peer-{:08x}", r as u32));
        ip(&["netns", "add", &ns.0]);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        let dir = std::env::temp_dir().join(format!("braid-interop-{:016x}", r));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Topo {
            ns,
            tun: format!("bt{:06x}", (r >> 32) as u32 & 0xff_ffff),
            subnet: 1 + ((r >> 56) as u8 % 254),
            dir: TempDir(dir),
        }
    }

    /// braid's address and the kernel's, as strings.
    fn addrs(&self, v6: bool) -> (String, String) {
        let x = self.subnet;
        if v6 {
            (format!("fd00:77:{x:x}::1"), format!("fd00:77:{x:x}::2"))
        } else {
            (format!("10.77.{x}.1"), format!("10.77.{x}.2"))
        }
    }

    fn path(&self, v6: bool, extra: &str) -> String {
        let (local, peer) = self.addrs(v6);
        let len = if v6 { 64 } else { 24 };
        format!(
            "tun={},local={local},peer={peer}/{len},netns={}{extra}",
            self.tun, self.ns.0
        )
    }

    fn python(&self, name: &str, script: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.0, "python3", "-c", script])
            .args(args);
        Proc::spawn(name, &mut cmd)
    }
}

fn braid(name: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.args(args);
    Proc::spawn(name, &mut cmd)
}

/// Linux server: accepts one connection, hashes everything until EOF, closes, prints
/// "BYTES SHA256". Bound to the wildcard address of its private namespace.
const PY_SERVER: &str = r#"
import socket, hashlib, sys
fam = socket.AF_INET6 if sys.argv[1] == '6' else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', int(sys.argv[2])))
s.listen(1)
print('ready', flush=True)
c, _ = s.accept()
c.settimeout(60)
h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b); n += len(b)
c.close()
print(n, h.hexdigest(), flush=True)
"#;

/// Linux client: connects (retrying until braid's device exists), sends SIZE random bytes,
/// shuts down, reads until EOF, prints "BYTES SHA256".
const PY_CLIENT: &str = r#"
import socket, hashlib, sys, time, os
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.time() + 30
while True:
    try:
        c = socket.create_connection((host, port), timeout=5)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.05)
c.settimeout(60)
h = hashlib.sha256(); n = 0
while n < size:
    b = os.urandom(min(1 << 20, size - n))
    c.sendall(b); h.update(b); n += len(b)
c.shutdown(socket.SHUT_WR)
while c.recv(65536):
    pass
c.close()
print(n, h.hexdigest(), flush=True)
"#;

/// "BYTES SHA256" from a python peer.
fn parse_py(out: &str) -> (u64, String) {
    let line = out.lines().last().unwrap_or_default();
    let mut it = line.split_whitespace();
    let n = it.next().and_then(|v| v.parse().ok());
    let h = it.next().map(str::to_string);
    match (n, h) {
        (Some(n), Some(h)) => (n, h),
        _ => panic!("unexpected python output {out:?}"),
    }
}

fn parse_report(out: &str) -> serde_json::Value {
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("braid --json output {out:?}: {e}"))
}

/// braid connect → Linux server; returns braid's report.
fn braid_to_linux(
    topo: &Topo,
    v6: bool,
    extra: &str,
    size: u64,
    more: &[&str],
) -> serde_json::Value {
    let port = "5000";
    let mut server = topo.python(
        "python server",
        PY_SERVER,
        &[if v6 { "6" } else { "4" }, port],
    );
    server.expect_line("ready", Duration::from_secs(20));
    let (_, peer) = topo.addrs(v6);
    let target = if v6 {
        format!("[{peer}]:{port}")
    } else {
        format!("{peer}:{port}")
    };
    let path = topo.path(v6, extra);
    let bytes = size.to_string();
    let mut args = vec![
        "connect",
        "--path",
        &path,
        &target,
        "--bytes",
        &bytes,
        "--json",
        "--seed",
        "7",
        "--timeout",
        "80s",
    ];
    args.extend_from_slice(more);
    let mut client = braid("braid connect", &args);
    let (st, out) = client.finish(DEADLINE);
    assert!(
        st.success(),
        "braid connect failed: {st}; stdout: {out}; stderr: {}",
        client.stderr()
    );
    let report = parse_report(&out);
    let (st, sout) = server.finish(Duration::from_secs(20));
    assert!(
        st.success(),
        "python server failed: {st}; stderr: {}",
        server.stderr()
    );
    let (n, hash) = parse_py(&sout);
    assert_eq!(n, size, "Linux received {n} bytes");
    assert_eq!(report["bytes"], size);
    assert_eq!(
        report["sha256"], hash,
        "SHA-256 differs: braid sent {report}"
    );
    report
}

/// Linux client → braid listen; returns braid's report.
fn linux_to_braid(topo: &Topo, v6: bool, extra: &str, size: u64) -> serde_json::Value {
    let port = "5001";
    let path = topo.path(v6, extra);
    let mut server = braid(
        "braid listen",
        &[
            "listen",
            "--path",
            &path,
            "--port",
            port,
            "--json",
            "--seed",
            "9",
            "--timeout",
            "80s",
        ],
    );
    let (local, _) = topo.addrs(v6);
    let size_s = size.to_string();
    let mut client = topo.python("python client", PY_CLIENT, &[&local, port, &size_s]);
    let (st, cout) = client.finish(DEADLINE);
    assert!(
        st.success(),
        "python client failed: {st}; stderr: {}; braid stderr: {}",
        client.stderr(),
        server.stderr()
    );
    let (st, out) = server.finish(Duration::from_secs(20));
    assert!(
        st.success(),
        "braid listen failed: {st}; stdout: {out}; stderr: {}",
        server.stderr()
    );
    let report = parse_report(&out);
    let (n, hash) = parse_py(&cout);
    assert_eq!(n, size);
    assert_eq!(report["bytes"], size, "braid received {report}");
    assert_eq!(report["sha256"], hash, "SHA-256 differs: {report}");
    report
}

#[test]
fn braid_client_to_linux_server_ipv4() {
    let _g = serial();
    if !can_run("braid_client_to_linux_server_ipv4") {
        return;
    }
    let topo = Topo::new();
    let r = braid_to_linux(&topo, false, "", SIZE, &[]);
    assert_eq!(r["subflows"][0]["path"], topo.tun.as_str());
    assert!(r["subflows"][0]["bytes_sent"].as_u64().unwrap() >= SIZE);
}

#[test]
fn linux_client_to_braid_server_ipv4() {
    let _g = serial();
    if !can_run("linux_client_to_braid_server_ipv4") {
        return;
    }
    let topo = Topo::new();
    linux_to_braid(&topo, false, "", SIZE);
}

#[test]
fn braid_client_to_linux_server_ipv6() {
    let _g = serial();
    if !can_run("braid_client_to_linux_server_ipv6") {
        return;
    }
    let topo = Topo::new();
    braid_to_linux(&topo, true, "", SIZE, &[]);
}

#[test]
fn linux_client_to_braid_server_ipv6() {
    let _g = serial();
    if !can_run("linux_client_to_braid_server_ipv6") {
        return;
    }
    let topo = Topo::new();
    linux_to_braid(&topo, true, "", SIZE);
}

/// TUN offloads against Linux, both directions, IPv4 and IPv6: braid writes TCP super-segments
/// that the kernel cuts, takes the kernel's own super-segments whole, and the data arrives
/// intact; `offload=off` on the path moves the same data without either.
#[test]
fn tun_offloads_carry_super_segments_both_ways() {
    let _g = serial();
    if !can_run("tun_offloads_carry_super_segments_both_ways") {
        return;
    }
    let topo = Topo::new();
    let count = |r: &serde_json::Value, k: &str| r["counters"][k].as_u64().unwrap();
    for v6 in [false, true] {
        let r = braid_to_linux(&topo, v6, "", SIZE, &[]);
        assert!(count(&r, "TunTxSuper") > 0, "no super-segment written: {r}");
        // Each super-segment stands for several packets on the wire.
        assert!(
            count(&r, "TunTxPackets") > count(&r, "TunTxSuper") * 2,
            "{r}"
        );
        let r = linux_to_braid(&topo, v6, "", SIZE);
        assert!(
            count(&r, "TunRxSuper") > 0,
            "kernel handed no super-segment: {r}"
        );
        assert_eq!(count(&r, "BadChecksum"), 0, "{r}");
    }
    let r = braid_to_linux(&topo, false, ",offload=off", SIZE, &[]);
    assert_eq!(count(&r, "TunTxSuper"), 0, "{r}");
    let r = linux_to_braid(&topo, false, ",offload=off", SIZE);
    assert_eq!(count(&r, "TunRxSuper"), 0, "{r}");
    assert_eq!(count(&r, "BadChecksum"), 0, "{r}");
}

/// delay=10ms,loss=1% in braid's emulation, both directions of the path: data stays intact and
/// the emulation really dropped packets. braid's sender runs at the loss-limited rate of a Reno
/// style window (about 4 Mbit/s at 20 ms RTT), so it moves less than the Linux sender.
#[test]
fn emulated_delay_and_loss_keep_data_intact() {
    let _g = serial();
    if !can_run("emulated_delay_and_loss_keep_data_intact") {
        return;
    }
    let topo = Topo::new();
    let emu = ",delay=10ms,loss=1%";
    let r = linux_to_braid(&topo, false, emu, SIZE);
    assert!(r["counters"]["EmuLost"].as_u64().unwrap() > 0, "{r}");
    let srtt = r["subflows"][0]["srtt_ms"].as_f64().unwrap();
    assert!(srtt >= 19.0, "srtt {srtt} ms with 2 x 10 ms delay");
    let r = braid_to_linux(&topo, false, emu, 2 << 20, &[]);
    assert!(r["counters"]["EmuLost"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["subflows"][0]["retransmitted_bytes"].as_u64().unwrap() > 0,
        "{r}"
    );
    assert!(r["subflows"][0]["srtt_ms"].as_f64().unwrap() >= 19.0, "{r}");
}

/// A capture of one run decodes in tshark without malformed packets or errors.
#[test]
fn pcap_capture_is_well_formed() {
    let _g = serial();
    if !can_run("pcap_capture_is_well_formed") {
        return;
    }
    let have_tshark = Command::new("tshark").arg("--version").output().is_ok();
    if !have_tshark {
        if in_ci() {
            panic!("tshark is not installed: .ci/run must install it (apt-get install -y tshark)");
        }
        skip(
            "interop test pcap_capture_is_well_formed",
            "tshark is not installed",
        );
        return;
    }
    let topo = Topo::new();
    let pcap = topo.dir.0.join("run.pcap");
    let pcap_s = pcap.to_str().unwrap().to_string();
    braid_to_linux(&topo, false, "", 4 << 20, &["--pcap", &pcap_s]);
    // The payload is random: decode it as plain data, or port-based dissectors (port 5000 is
    // registered to some) report their own "malformed" packets.
    let tshark = |filter: &str| {
        let out = Command::new("tshark")
            .args(["-r", &pcap_s, "-d", "tcp.port==5000,data", "-Y", filter])
            .output()
            .expect("run tshark");
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let bad = tshark("_ws.malformed || _ws.expert.severity >= error");
    assert!(bad.trim().is_empty(), "tshark found problems:\n{bad}");
    // With offloads on, super-segments are cut before the capture: every frame is a real
    // packet of at most the MTU, with a TCP checksum that verifies.
    let big = tshark("frame.len > 1500");
    assert!(big.trim().is_empty(), "frames beyond the MTU:\n{big}");
    let out = Command::new("tshark")
        .args(["-r", &pcap_s, "-o", "tcp.check_checksum:TRUE"])
        .args([
            "-d",
            "tcp.port==5000,data",
            "-Y",
            "tcp.checksum.status != 1",
        ])
        .output()
        .expect("run tshark");
    let unverified = String::from_utf8_lossy(&out.stdout);
    assert!(
        unverified.trim().is_empty(),
        "TCP checksums that do not verify:\n{unverified}"
    );
    let syns = tshark("tcp.flags.syn == 1").lines().count();
    let fins = tshark("tcp.flags.fin == 1").lines().count();
    let data = tshark("tcp.len > 0").lines().count();
    assert!(syns >= 2, "SYN and SYN-ACK captured ({syns})");
    assert!(fins >= 2, "both FINs captured ({fins})");
    assert!(data >= (4 << 20) / 1500, "{data} data segments captured");
}

/// `braid connect --trace` against Linux: JSON lines about every 10 ms of run time, the
/// connection's subflow with real RTTs and counters, and an end line with every byte acked.
#[test]
fn connect_trace_samples_the_connection() {
    let _g = serial();
    if !can_run("connect_trace_samples_the_connection") {
        return;
    }
    let topo = Topo::new();
    let trace = topo.dir.0.join("trace.jsonl");
    let trace_s = trace.to_str().unwrap().to_string();
    let size = 8u64 << 20;
    braid_to_linux(&topo, false, ",delay=10ms", size, &["--trace", &trace_s]);
    let text = std::fs::read_to_string(&trace).expect("trace written");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let ticks: Vec<f64> = lines
        .iter()
        .filter(|l| l["event"] == "tick")
        .map(|l| l["t"].as_f64().unwrap())
        .collect();
    assert!(ticks.len() > 20, "{} ticks", ticks.len());
    // One tick per 10 ms slot at most (the first wake-up in it); a loop that woke late skips
    // the slots it missed.
    let slot = |t: f64| (t / 0.01).floor() as u64;
    for w in ticks.windows(2) {
        assert!(slot(w[1]) > slot(w[0]), "ticks at {} and {}", w[0], w[1]);
    }
    let on_time = ticks
        .iter()
        .filter(|&&t| t - slot(t) as f64 * 0.01 < 0.005)
        .count();
    assert!(
        on_time * 2 > ticks.len(),
        "most ticks come on time: {ticks:?}"
    );
    assert!(lines.iter().all(|l| l["conn"] == 0));
    assert!(lines.iter().any(|l| l["event"] == "state"), "the handshake");
    let end = lines.last().unwrap();
    assert_eq!(end["event"], "end");
    let sf = &end["subflows"][0];
    assert_eq!(sf["path"], 0);
    assert!(sf["bytes_acked"].as_u64().unwrap() >= size, "{end}");
    assert!(sf["srtt_ms"].as_f64().unwrap() >= 19.0, "{end}");
    assert!(lines
        .iter()
        .any(|l| l["subflows"][0]["inflight"].as_u64() > Some(0)));
    assert!(lines.iter().any(|l| l["send_queue"].as_u64() > Some(0)));
}
