//! Mobility against the Linux kernel's MPTCP: paths that braid removes and adds at run time
//! (`braid path`), addresses Linux removes (`ip mptcp endpoint flush`) or announces (with a
//! port, as a backup), a path blackholed mid-upload, and `braid monitor` seeing it all.
//!
//! Each case: a namespace P with the kernel MPTCP peer (tests/interop/mptcp_peer.py, server),
//! braid's two TUN devices moved into P: path 0 is 10.81.1.1 ↔ 10.81.1.2/24, path 1 is
//! 10.81.2.1 ↔ 10.81.2.2/24, each shaped to 40 Mbit/s by braid's emulation (so that an upload
//! lasts a few seconds: long enough to change paths in its middle). braid connects to
//! 10.81.1.2 and uploads random bytes; the Linux side's SHA-256 of what it read must be braid's.
//!
//! Needs root and kernel MPTCP: skipped loudly without them, failing in CI.
// Wall-clock waits for real processes (deadlines, how long braid takes to exit): no engine
// time here.
#![allow(clippy::disallowed_methods)]

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const PEER_PY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/interop/mptcp_peer.py"
);
/// Longest any process of a case may run.
const DEADLINE: Duration = Duration::from_secs(90);
/// Bytes uploaded: about 5 s over the two 40 Mbit/s paths.
const UPLOAD: &str = "24MiB";
const UPLOAD_BYTES: u64 = 24 << 20;

fn can_run(case: &str) -> bool {
    can_run_with(
        "mobility interop test",
        case,
        &[("python3", "--version", "python3")],
    )
}

struct Case {
    ns: Netns,
    tuns: [String; 2],
    dir: TempDir,
    port: u16,
}

impl Case {
    fn new(port: u16) -> Case {
        let r = random_u64();
        let ns = Netns::mptcp_peer(format!("braid-mob-{:08x}", r as u32));
        for key in ["all", "default"] {
            let k = format!("net.ipv4.conf.{key}.rp_filter=0");
            run("ip", &["netns", "exec", &ns.0, "sysctl", "-qw", &k]);
        }
        let tag = (r >> 32) as u32 & 0xff_ffff;
        let c = Case {
            tuns: [format!("bo{tag:06x}a"), format!("bo{tag:06x}b")],
            dir: TempDir(std::env::temp_dir().join(format!("braid-mob-{r:016x}"))),
            ns,
            port,
        };
        std::fs::create_dir_all(&c.dir.0).expect("temp dir");
        c
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.ns.0.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    fn path(&self, i: usize) -> String {
        let x = i + 1;
        format!(
            "tun={},local=10.81.{x}.1,peer=10.81.{x}.2/24,netns={},rate=40mbit",
            self.tuns[i], self.ns.0
        )
    }

    fn control(&self) -> String {
        self.dir.0.join("c.sock").to_str().unwrap().to_string()
    }

    /// The Linux server; returns once it listens.
    fn server(&self) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.0, "python3", PEER_PY])
            .args(["server", "--port", &self.port.to_string()]);
        let p = Proc::spawn("linux server", &mut cmd);
        p.expect_line("ready", Duration::from_secs(10));
        p
    }

    /// braid connect uploading UPLOAD bytes to 10.81.1.2, with its control socket.
    fn connect(&self) -> Proc {
        let target = format!("10.81.1.2:{}", self.port);
        let (p0, p1, ctl) = (self.path(0), self.path(1), self.control());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
        cmd.args(["connect", "--path", &p0, "--path", &p1, "--bytes", UPLOAD])
            .args(["--json", "--timeout", "80s", "--control", &ctl, &target]);
        let p = Proc::spawn("braid connect", &mut cmd);
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&ctl).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no control socket {ctl}; braid stderr: {}",
                p.stderr()
            );
            thread::sleep(Duration::from_millis(10));
        }
        p
    }

    /// `braid monitor --json` on the connection's control socket.
    fn monitor(&self) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
        cmd.args(["monitor", "--json", "--control", &self.control()]);
        Proc::spawn("braid monitor", &mut cmd)
    }

    /// `braid path ARGS` on the connection; panics with its stderr when it fails.
    fn braid_path(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_braid"))
            .arg("path")
            .args(args)
            .args(["--control", &self.control()])
            .output()
            .expect("run braid path");
        assert!(
            out.status.success(),
            "braid path {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `braid status` shows a live, established subflow whose (local, remote)
    /// satisfies `f`.
    fn wait_subflow(&self, braid: &Proc, what: &str, f: impl Fn(&str, &str) -> bool) {
        let t0 = Instant::now();
        loop {
            let out = Command::new(env!("CARGO_BIN_EXE_braid"))
                .args(["status", "--json", "--control", &self.control()])
                .output()
                .expect("run braid status");
            let st: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let found = st["connections"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["subflows"].as_array().into_iter().flatten())
                .any(|s| {
                    s["closed"] == false
                        && s["state"] == "Established"
                        && f(
                            s["local"].as_str().unwrap_or(""),
                            s["remote"].as_str().unwrap_or(""),
                        )
                });
            if found {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "no subflow {what}; last status: {st}; braid stderr: {}",
                braid.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn counters(&self) -> HashMap<String, u64> {
        self.ns.mptcp_counters()
    }
}

fn ctr(c: &HashMap<String, u64>, k: &str) -> u64 {
    c.get(k).copied().unwrap_or(0)
}

fn json_line(out: &str, who: &str, p: &Proc) -> Value {
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{who} output {out:?}: {e}; stderr: {}", p.stderr()))
}

/// Waits for the monitor's next event matching `f`.
fn wait_event(m: &Proc, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let line = m.wait_line(
        |l| serde_json::from_str::<Value>(l).is_ok_and(|v| f(&v)),
        Duration::from_secs(20),
    );
    let v: Value = serde_json::from_str(&line).unwrap();
    eprintln!("monitor ({what}): {line}");
    v
}

/// Both ends finish; the Linux side read exactly what braid sent. Returns braid's report.
fn finish_intact(braid: &mut Proc, server: &mut Proc) -> Value {
    let (st, out) = braid.finish(DEADLINE);
    let report = json_line(&out, "braid", braid);
    assert!(
        st.success(),
        "braid connect failed: {report}; stderr: {}",
        braid.stderr()
    );
    let (_, pout) = server.finish(DEADLINE);
    let peer = json_line(&pout, "linux server", server);
    assert_eq!(peer["rx_bytes"].as_u64(), Some(UPLOAD_BYTES), "{peer}");
    assert_eq!(
        peer["rx_sha256"].as_str(),
        report["sha256"].as_str(),
        "the Linux side read other bytes than braid sent"
    );
    assert_eq!(peer["mptcp"], true, "{peer}");
    report
}

/// Bytes braid sent on subflows whose remote is `host` (any port), and in all.
fn bytes_to(report: &Value, host: &str) -> (u64, u64) {
    let mut to = 0;
    let mut all = 0;
    for s in report["subflows"].as_array().into_iter().flatten() {
        let n = s["bytes_sent"].as_u64().unwrap_or(0);
        all += n;
        if s["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with(&format!("{host}:")))
        {
            to += n;
        }
    }
    (to, all)
}

/// `braid path del` mid-upload: braid closes the path's subflow and tells Linux (its RmAddr
/// counter rises), the monitor says `sub_closed` (local path gone); `braid path add` of the
/// same path joins again (`sub_established` on it); the data arrives intact.
#[test]
fn path_del_and_add_mid_transfer_linux_counts_rm_addr_monitor_sees_both() {
    let _g = serial();
    if !can_run("path_del_and_add_mid_transfer") {
        return;
    }
    let case = Case::new(5601);
    let mut server = case.server();
    let mut braid = case.connect();
    let mon = case.monitor();
    let tun1 = case.tuns[1].clone();
    let on_tun1 = |v: &Value, ev: &str| v["event"] == ev && v["path"] == tun1.as_str();
    case.wait_subflow(&braid, "from path 1", |l, _| l.starts_with("10.81.2.1:"));
    thread::sleep(Duration::from_millis(500));
    let rm_before = ctr(&case.counters(), "RmAddr");
    let out = case.braid_path(&["del", &tun1]);
    assert!(out.contains(&format!("removed path {tun1}")), "{out}");
    let closed = wait_event(&mon, "path 1 removed", |v| on_tun1(v, "sub_closed"));
    assert_eq!(closed["reason"], "local path gone", "{closed}");
    let t0 = Instant::now();
    let rm_after = loop {
        let n = ctr(&case.counters(), "RmAddr");
        if n > rm_before || t0.elapsed() > Duration::from_secs(3) {
            break n;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        rm_after > rm_before,
        "Linux's RmAddr stayed {rm_before}: braid sent no REMOVE_ADDR it took"
    );
    thread::sleep(Duration::from_millis(500));
    let out = case.braid_path(&["add", &case.path(1)]);
    assert!(out.contains(&format!("added path {tun1}")), "{out}");
    wait_event(&mon, "path 1 back", |v| on_tun1(v, "sub_established"));
    let report = finish_intact(&mut braid, &mut server);
    // Path 1 carried data before its removal and after its return.
    let on1: Vec<u64> = report["subflows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["local"]
                .as_str()
                .is_some_and(|l| l.starts_with("10.81.2.1:"))
        })
        .map(|s| s["bytes_sent"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        on1.len() >= 2 && on1.iter().all(|&n| n > 0),
        "path 1's subflows (before and after): {on1:?}; {report}"
    );
}

/// Linux removes its announced address mid-upload (`ip mptcp endpoint flush`: REMOVE_ADDR):
/// braid closes its subflow to it and the transfer completes over the first one, intact.
#[test]
fn linux_endpoint_flush_mid_transfer_braid_closes_that_subflow() {
    let _g = serial();
    if !can_run("linux_endpoint_flush_mid_transfer") {
        return;
    }
    let case = Case::new(5602);
    case.ip(&["mptcp", "endpoint", "add", "10.81.2.2", "signal"]);
    let mut server = case.server();
    let mut braid = case.connect();
    let mon = case.monitor();
    let to_announced = |v: &Value, ev: &str| {
        v["event"] == ev
            && v["remote"]
                .as_str()
                .is_some_and(|r| r.starts_with("10.81.2.2:"))
    };
    case.wait_subflow(&braid, "to 10.81.2.2", |_, r| r.starts_with("10.81.2.2:"));
    thread::sleep(Duration::from_millis(700));
    case.ip(&["mptcp", "endpoint", "flush"]);
    wait_event(&mon, "REMOVE_ADDR", |v| v["event"] == "removed");
    let closed = wait_event(&mon, "subflow to 10.81.2.2 closed", |v| {
        to_announced(v, "sub_closed")
    });
    eprintln!("closed: {closed}");
    let report = finish_intact(&mut braid, &mut server);
    let (to, all) = bytes_to(&report, "10.81.2.2");
    assert!(to > 0 && to < all, "bytes to 10.81.2.2: {to} of {all}");
}

/// A Linux `backup` endpoint: braid's subflow to it carries (almost) nothing while the first
/// subflow works.
#[test]
fn linux_backup_endpoint_carries_no_data_while_the_other_works() {
    let _g = serial();
    if !can_run("linux_backup_endpoint") {
        return;
    }
    let case = Case::new(5603);
    case.ip(&["mptcp", "endpoint", "add", "10.81.2.2", "signal", "backup"]);
    let mut server = case.server();
    let mut braid = case.connect();
    let report = finish_intact(&mut braid, &mut server);
    let (to, all) = bytes_to(&report, "10.81.2.2");
    let joined = report["subflows"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            s["remote"]
                .as_str()
                .is_some_and(|r| r.starts_with("10.81.2.2:"))
        });
    assert!(joined, "braid never joined the backup address: {report}");
    assert!(
        to * 100 < all,
        "the subflows to Linux's backup address carried {to} of {all} bytes"
    );
}

/// Linux announces an address with a port (`ip mptcp endpoint add ADDR port P signal`, made
/// while the connection runs): braid joins that address and port.
#[test]
fn linux_announcing_an_address_with_a_port_braid_joins_it() {
    let _g = serial();
    if !can_run("linux_announces_address_with_port") {
        return;
    }
    let case = Case::new(5604);
    let mut server = case.server();
    let mut braid = case.connect();
    // Linux listens on the port when the endpoint is made: the address must be there, and the
    // connection that exists by then is told with ADD_ADDR.
    case.wait_subflow(&braid, "from path 0", |l, _| l.starts_with("10.81.1.1:"));
    let mon = case.monitor();
    thread::sleep(Duration::from_millis(200));
    case.ip(&[
        "mptcp",
        "endpoint",
        "add",
        "10.81.2.2",
        "port",
        "5999",
        "signal",
    ]);
    let ann = wait_event(&mon, "ADD_ADDR", |v| v["event"] == "announced");
    assert_eq!(
        (ann["addr"].as_str(), ann["port"].as_u64()),
        (Some("10.81.2.2"), Some(5999)),
        "{ann}"
    );
    case.wait_subflow(&braid, "to 10.81.2.2:5999", |_, r| r == "10.81.2.2:5999");
    let report = finish_intact(&mut braid, &mut server);
    let c = case.counters();
    assert!(ctr(&c, "MPJoinAckRx") >= 1, "{c:?}");
    let (to, _) = bytes_to(&report, "10.81.2.2");
    assert!(to > 0, "nothing went to 10.81.2.2:5999: {report}");
}

/// Path 1 is silently blackholed mid-upload (the kernel's answers to braid's path-1 address are
/// dropped by a blackhole route): every byte still arrives, and `braid connect` exits within a
/// few seconds of the Linux side having read it all (issue 10, item 0).
#[test]
fn blackholed_path_connect_exits_soon_after_the_data_is_done() {
    let _g = serial();
    if !can_run("blackholed_path_connect_exits") {
        return;
    }
    let case = Case::new(5605);
    let mut server = case.server();
    let mut braid = case.connect();
    case.wait_subflow(&braid, "from path 1", |l, _| l.starts_with("10.81.2.1:"));
    thread::sleep(Duration::from_millis(1000));
    case.ip(&["route", "add", "blackhole", "10.81.2.1/32"]);
    let (_, pout) = server.finish(DEADLINE);
    let server_done = Instant::now();
    let peer = json_line(&pout, "linux server", &server);
    let (st, out) = braid.finish(DEADLINE);
    let lag = server_done.elapsed();
    let report = json_line(&out, "braid", &braid);
    assert_eq!(peer["rx_bytes"].as_u64(), Some(UPLOAD_BYTES), "{peer}");
    assert_eq!(peer["rx_sha256"].as_str(), report["sha256"].as_str());
    assert!(st.success(), "braid: {report}; {}", braid.stderr());
    eprintln!(
        "braid exited {:.2} s after the Linux side was done",
        lag.as_secs_f64()
    );
    assert!(
        lag < Duration::from_secs(5),
        "braid connect exited {:.1} s after the Linux side had read everything",
        lag.as_secs_f64()
    );
}
