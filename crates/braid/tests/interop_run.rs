//! `braid run` and `braid capture` with unmodified programs (curl, sh) against the Linux
//! kernel's MPTCP, in throw-away network namespaces.
//!
//! Each case: a namespace `braid-rn-<random>` (P) holds an HTTP server made MPTCP by
//! `mptcpize run python3 -m http.server`, with `ip mptcp limits set subflows 4
//! add_addr_accepted 4`; braid's two paths are TUN devices moved into P: 10.84.1.1 ↔ 10.84.1.2/24
//! and 10.84.2.1 ↔ 10.84.2.2/24. curl runs under braid (in braid's namespace for `run`, in the
//! host's for `capture`) and fetches 32 MiB of random bytes from 10.84.1.2. The judges: the
//! SHA-256 of what curl wrote, and P's own MPTcpExt counters (/proc/net/netstat) rising for
//! MP_CAPABLE and MP_JOIN (braid's second path joined).
//!
//! Needs root: without it the tests are skipped loudly, except in CI (CI set), where they fail.

mod common;
use common::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

const BIG: usize = 32 << 20;
const PORT: u16 = 8000;
/// A port nobody listens on in P.
const CLOSED_PORT: u16 = 8009;
const DEADLINE: Duration = Duration::from_secs(120);

fn can_run(case: &str) -> bool {
    can_run_with(
        "interop test",
        case,
        &[
            ("python3", "--version", "python3"),
            ("curl", "--version", "curl"),
            ("mptcpize", "--help", "mptcpize"),
        ],
    )
}

/// P with braid's two path addresses, an MPTCP HTTP server and a 32 MiB file.
struct Server {
    ns: Netns,
    tuns: [String; 2],
    dir: TempDir,
    sha: String,
    _http: Proc,
}

/// `n` pseudo-random bytes (xorshift64*).
fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(n);
    v
}

fn sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

impl Server {
    fn new() -> Server {
        let r = random_u64();
        let ns = Netns::mptcp_peer(format!("braid-rn-{:08x}", r as u32));
        let dir = TempDir(std::env::temp_dir().join(format!("braid-run-interop-{r:016x}")));
        let www = dir.0.join("www");
        std::fs::create_dir_all(&www).expect("temp dir");
        let data = pattern(BIG, r);
        let sha = sha256(&data);
        std::fs::write(www.join("big.bin"), &data).expect("write file");
        std::fs::write(www.join("hello.txt"), b"hello from the MPTCP server\n").expect("write");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.0, "mptcpize", "run", "python3", "-m"])
            .args(["http.server", &PORT.to_string(), "--bind", "0.0.0.0"])
            .arg("--directory")
            .arg(&www);
        let http = Proc::spawn("http.server", &mut cmd);
        let s = Server {
            tuns: [
                format!("bn{:06x}a", (r >> 32) as u32 & 0xff_ffff),
                format!("bn{:06x}b", (r >> 32) as u32 & 0xff_ffff),
            ],
            ns,
            dir,
            sha,
            _http: http,
        };
        s.wait_listening(PORT);
        s
    }

    fn wait_listening(&self, port: u16) {
        for _ in 0..250 {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.ns.0, "ss", "-Hltn"])
                .output()
                .expect("ss");
            if String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} ")) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("the HTTP server in {} did not start", self.ns.0);
    }

    /// `SUB --path ... --path ...`
    fn args(&self, sub: &str) -> Vec<String> {
        let mut a = vec![sub.to_string()];
        for (i, t) in self.tuns.iter().enumerate() {
            let x = i + 1;
            a.push("--path".to_string());
            a.push(format!(
                "tun={t},local=10.84.{x}.1,peer=10.84.{x}.2/24,netns={}",
                self.ns.0
            ));
        }
        a
    }

    fn file(&self, name: &str) -> String {
        self.dir.0.join(name).to_str().unwrap().to_string()
    }

    /// P's MPTcpExt counters.
    fn counters(&self) -> HashMap<String, u64> {
        self.ns.mptcp_counters()
    }
}

fn ctr(c: &HashMap<String, u64>, k: &str) -> u64 {
    c.get(k).copied().unwrap_or(0)
}

/// The counters that rose from `a` to `b`, for messages.
fn rises(a: &HashMap<String, u64>, b: &HashMap<String, u64>) -> String {
    let mut v: Vec<String> = b
        .iter()
        .filter(|(k, v)| **v > ctr(a, k))
        .map(|(k, v)| format!("{k}+{}", v - ctr(a, k)))
        .collect();
    v.sort();
    v.join(" ")
}

/// The kernel saw MP_CAPABLE and an MP_JOIN completed between `a` and `b`, without faults.
fn assert_mptcp_with_join(a: &HashMap<String, u64>, b: &HashMap<String, u64>) {
    let d = |k: &str| ctr(b, k) - ctr(a, k);
    let msg = rises(a, b);
    assert!(d("MPCapableSYNRX") >= 1, "no MP_CAPABLE SYN: {msg}");
    assert!(d("MPCapableACKRX") >= 1, "no MP_CAPABLE ACK: {msg}");
    assert!(d("MPJoinSynRx") >= 1, "no MP_JOIN SYN: {msg}");
    assert!(d("MPJoinAckRx") >= 1, "no MP_JOIN ACK: {msg}");
    for k in [
        "MPJoinAckHMacFailure",
        "MPJoinNoTokenFound",
        "DSSNotMatching",
        "DataCsumErr",
        "DssFallback",
        "MPCapableFallbackACK",
        "MPFastcloseRx",
    ] {
        assert_eq!(d(k), 0, "kernel counter {k} rose: {msg}");
    }
}

fn braid_cmd(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.args(args);
    cmd
}

/// Nothing of braid's is left: no namespace braid-run-*, no capture device, no policy rule.
fn assert_nothing_left(pid: u32) {
    let ns = run("ip", &["netns", "list"]);
    assert!(
        !ns.contains(&format!("braid-run-{pid}")),
        "namespace left behind: {ns}"
    );
    let links = run("ip", &["-o", "link", "show"]);
    for dev in [format!("brr{pid}"), format!("brc{pid}")] {
        assert!(!links.contains(&dev), "device {dev} left behind: {links}");
    }
    let rules = run("ip", &["rule", "show"]);
    assert!(
        !rules.contains("ipproto tcp") && !rules.contains("10.84."),
        "policy rules left behind: {rules}"
    );
    assert!(
        !Path::new(&format!("/run/braid/run-{pid}")).exists(),
        "run directory left behind"
    );
}

/// Runs braid to completion; returns (exit code, stdout, stderr).
fn finish(name: &str, mut cmd: Command) -> (Option<i32>, String, String, u32) {
    let mut p = Proc::spawn(name, &mut cmd);
    let pid = p.pid();
    let (st, out) = p.finish(DEADLINE);
    (st.code(), out, p.stderr(), pid)
}

#[test]
fn run_curl_downloads_over_mptcp_with_a_joined_subflow() {
    let _g = serial();
    if !can_run("run_curl_downloads_over_mptcp_with_a_joined_subflow") {
        return;
    }
    let s = Server::new();
    let before = s.counters();
    let out = s.file("big.out");
    let mut a = s.args("run");
    a.extend(
        [
            "--",
            "curl",
            "-sS",
            "-o",
            &out,
            &format!("http://10.84.1.2:{PORT}/big.bin"),
        ]
        .map(String::from),
    );
    let (code, _, err, pid) = finish("braid run curl", braid_cmd(&a));
    assert_eq!(code, Some(0), "braid run curl failed: {err}");
    let got = std::fs::read(&out).expect("curl's output");
    assert_eq!(got.len(), BIG, "{err}");
    assert_eq!(sha256(&got), s.sha, "the bytes differ");
    assert!(
        err.contains("captured") && err.contains("10.84.1.2:8000"),
        "braid names the captured connection: {err}"
    );
    assert_mptcp_with_join(&before, &s.counters());
    assert_nothing_left(pid);
}

#[test]
fn run_curl_to_a_closed_port_is_refused() {
    let _g = serial();
    if !can_run("run_curl_to_a_closed_port_is_refused") {
        return;
    }
    let s = Server::new();
    let mut a = s.args("run");
    a.extend(
        [
            "--",
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            &format!("http://10.84.1.2:{CLOSED_PORT}/"),
        ]
        .map(String::from),
    );
    let (code, _, err, pid) = finish("braid run curl closed", braid_cmd(&a));
    assert_eq!(
        code,
        Some(7),
        "curl's exit status (7: could not connect): {err}"
    );
    assert!(err.contains("refused"), "{err}");
    assert_nothing_left(pid);
}

#[test]
fn run_passes_exit_status_and_runs_as_the_invoking_user() {
    let _g = serial();
    if !can_run("run_passes_exit_status_and_runs_as_the_invoking_user") {
        return;
    }
    let s = Server::new();
    let with = |tail: &[&str]| {
        let mut a = s.args("run");
        a.push("--quiet".into());
        a.push("--".into());
        a.extend(tail.iter().map(|x| x.to_string()));
        a
    };
    let (code, _, err, pid) = finish("exit 7", braid_cmd(&with(&["sh", "-c", "exit 7"])));
    assert_eq!(code, Some(7), "{err}");
    assert_nothing_left(pid);
    // A program killed by a signal: 128 + N, as a shell reports it.
    let (code, _, err, _) = finish("kill", braid_cmd(&with(&["sh", "-c", "kill -TERM $$"])));
    assert_eq!(code, Some(128 + 15), "{err}");
    let (code, _, err, pid) = finish("missing", braid_cmd(&with(&["/nonexistent/braid-prog"])));
    assert_eq!(code, Some(127), "{err}");
    assert!(
        err.contains("/nonexistent/braid-prog") && err.contains("No such file"),
        "{err}"
    );
    assert_nothing_left(pid);
    // Through sudo: the program runs as SUDO_UID/SUDO_GID, not as root; stdout passes through.
    let mut cmd = braid_cmd(&with(&["sh", "-c", "id -u; id -g; cat /etc/resolv.conf"]));
    cmd.env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .env_remove("SUDO_USER");
    let (code, out, err, _) = finish("sudo", cmd);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], &["65534", "65534"], "{out}");
    assert!(
        out.contains("nameserver 10.253.253.1"),
        "the namespace's resolv.conf names braid: {out}"
    );
}

/// A tiny DNS server for one name (A record), on a loopback address of the host: braid must
/// forward the namespace's queries to it through the host's stack.
const DNS_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
name, ip = sys.argv[2].encode(), socket.inet_aton(sys.argv[3])
print("ready", flush=True)
while True:
    q, a = s.recvfrom(512)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]]); i += 1 + q[i]
    qtype = q[i + 1:i + 3]; end = i + 5
    found = b".".join(labels).lower() == name and qtype == b"\x00\x01"
    flags = b"\x81\x80" if found or qtype != b"\x00\x01" else b"\x81\x83"
    ans = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + ip if found else b""
    s.sendto(q[:2] + flags + q[4:6] + (b"\x00\x01" if found else b"\x00\x00") + b"\x00\x00\x00\x00" + q[12:end] + ans, a)
"#;

#[test]
fn run_resolves_names_through_a_loopback_resolver_of_the_host() {
    let _g = serial();
    if !can_run("run_resolves_names_through_a_loopback_resolver_of_the_host") {
        return;
    }
    if !have("unshare", "--version") {
        skip(
            "interop test run_resolves_names_through_a_loopback_resolver_of_the_host",
            "unshare (util-linux) missing",
        );
        return;
    }
    let s = Server::new();
    // braid runs in a mount namespace whose /etc/resolv.conf names 127.0.0.153 (as
    // systemd-resolved's 127.0.0.53 would be), where the DNS server above answers.
    let conf = s.file("host-resolv.conf");
    std::fs::write(&conf, "nameserver 127.0.0.153\nsearch braid.test\n").unwrap();
    let dns = Proc::spawn(
        "dns",
        Command::new("python3").args([
            "-c",
            DNS_PY,
            "127.0.0.153",
            "mptcp-server.braid.test",
            "10.84.1.2",
        ]),
    );
    dns.expect_line("ready", Duration::from_secs(10));
    let mut a = vec![
        "-m".to_string(),
        "sh".into(),
        "-c".into(),
        format!(
            "mount --bind {conf} /etc/resolv.conf && exec {} \"$@\"",
            env!("CARGO_BIN_EXE_braid")
        ),
        "braid".into(),
    ];
    a.extend(s.args("run"));
    a.extend(
        [
            "--",
            "curl",
            "-sS",
            &format!("http://mptcp-server:{PORT}/hello.txt"),
        ]
        .map(String::from),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(&a);
    let (code, out, err, _) = finish("braid run curl by name", cmd);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "hello from the MPTCP server\n", "{err}");
}

#[test]
fn run_exits_on_sigterm_leaving_nothing_behind() {
    let _g = serial();
    if !can_run("run_exits_on_sigterm_leaving_nothing_behind") {
        return;
    }
    let s = Server::new();
    let mut a = s.args("run");
    a.extend(["--", "sleep", "60"].map(String::from));
    let mut cmd = braid_cmd(&a);
    let mut p = Proc::spawn("braid run sleep", &mut cmd);
    let pid = p.pid();
    let ns = format!("braid-run-{pid}");
    for _ in 0..250 {
        if run("ip", &["netns", "list"]).contains(&ns) {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    run("kill", &["-TERM", &pid.to_string()]);
    let (st, _) = p.finish(Duration::from_secs(20));
    assert_eq!(
        st.code(),
        Some(128 + 15),
        "sleep died of SIGTERM: {}",
        p.stderr()
    );
    assert_nothing_left(pid);
}

#[test]
fn capture_carries_an_unmodified_client_over_mptcp() {
    let _g = serial();
    if !can_run("capture_carries_an_unmodified_client_over_mptcp") {
        return;
    }
    let s = Server::new();
    let before = s.counters();
    let mut a = s.args("capture");
    a.extend(["--route", "10.84.1.0/24"].map(String::from));
    let mut cmd = braid_cmd(&a);
    let mut braid = Proc::spawn("braid capture", &mut cmd);
    let pid = braid.pid();
    // Ready when its rule is in place.
    let mut ready = false;
    for _ in 0..500 {
        if run("ip", &["rule", "show"]).contains("ipproto tcp") {
            ready = true;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(ready, "no capture rule appeared: {}", braid.stderr());
    let out = s.file("cap.out");
    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o", &out])
        .arg(format!("http://10.84.1.2:{PORT}/big.bin"))
        .output()
        .expect("curl");
    assert!(
        curl.status.success(),
        "curl: {}; braid: {}",
        String::from_utf8_lossy(&curl.stderr),
        braid.stderr()
    );
    let got = std::fs::read(&out).expect("curl's output");
    assert_eq!(got.len(), BIG);
    assert_eq!(sha256(&got), s.sha, "the bytes differ");
    assert_mptcp_with_join(&before, &s.counters());
    run("kill", &["-TERM", &pid.to_string()]);
    let (st, _) = braid.finish(Duration::from_secs(20));
    assert_eq!(st.code(), Some(0), "{}", braid.stderr());
    // braid names what it captured; P's counters above show the bytes came over MPTCP from
    // braid's paths (not over any other route the host may have to 10.84.1.2).
    assert!(
        braid
            .stderr()
            .contains(&format!("-> 10.84.1.2:{PORT} over MPTCP")),
        "{}",
        braid.stderr()
    );
    assert_nothing_left(pid);
}

#[test]
fn bad_input_is_named() {
    // No root needed: arguments are checked first.
    let bin = env!("CARGO_BIN_EXE_braid");
    let path = "tun=bq0,local=10.85.1.1,peer=10.85.1.2/24";
    let out = Command::new(bin)
        .args(["capture", "--path", path, "--route", "10.0.0.0/33"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad prefix \"10.0.0.0/33\""), "{err}");
    let out = Command::new(bin)
        .args(["capture", "--path", path, "--route", "example.org"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("example.org"));
    let out = Command::new(bin)
        .args(["run", "--path", path])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no program given");
}

/// The shim next to the braid binary, built when `cargo test -p braid` did not build it.
fn ensure_shim() {
    let bin = Path::new(env!("CARGO_BIN_EXE_braid"));
    let dir = bin.parent().expect("binary dir");
    if dir.join("libbraid_preload.so").is_file() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "braid-preload"]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("cargo build -p braid-preload");
    assert!(st.success() && dir.join("libbraid_preload.so").is_file());
}

#[test]
fn preload_curl_downloads_over_mptcp_with_a_joined_subflow() {
    let _g = serial();
    if !can_run("preload_curl_downloads_over_mptcp_with_a_joined_subflow") {
        return;
    }
    ensure_shim();
    let s = Server::new();
    let before = s.counters();
    let out = s.file("big.out");
    let mut a = s.args("run");
    a.push("--preload".into());
    a.extend(
        [
            "--",
            "curl",
            "-sS",
            "-o",
            &out,
            "-w",
            "%{remote_ip}:%{remote_port}",
            &format!("http://10.84.1.2:{PORT}/big.bin"),
        ]
        .map(String::from),
    );
    let (code, stdout, err, pid) = finish("braid run --preload curl", braid_cmd(&a));
    assert_eq!(code, Some(0), "{err}");
    // curl asks getpeername(): the original destination, not braid's loopback listener.
    assert_eq!(stdout.trim(), format!("10.84.1.2:{PORT}"), "{err}");
    let got = std::fs::read(&out).expect("curl's output");
    assert_eq!(got.len(), BIG, "{err}");
    assert_eq!(sha256(&got), s.sha, "the bytes differ");
    assert_mptcp_with_join(&before, &s.counters());
    assert_nothing_left(pid);
    // A closed port: connect() fails with ECONNREFUSED, curl exits 7.
    let mut a = s.args("run");
    a.push("--preload".into());
    a.extend(
        [
            "--",
            "curl",
            "-sS",
            &format!("http://10.84.1.2:{CLOSED_PORT}/"),
        ]
        .map(String::from),
    );
    let (code, _, err, _) = finish("preload closed", braid_cmd(&a));
    assert_eq!(code, Some(7), "{err}");
}

/// A non-blocking connect() through the shim: EINPROGRESS, then writable with SO_ERROR 0,
/// getpeername() the original destination, and an HTTP exchange. An existing LD_PRELOAD stays.
const NONBLOCKING_PY: &str = r#"
import os, select, socket, sys
print("LD_PRELOAD", os.environ["LD_PRELOAD"])
s = socket.socket()
s.setblocking(False)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected at once")
except BlockingIOError:
    print("EINPROGRESS")
select.select([], [s], [], 10)
print("SO_ERROR", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
print("peer", "%s:%d" % s.getpeername())
s.setblocking(True)
s.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.split(b"\r\n\r\n", 1)[1].decode().strip())
"#;

#[test]
fn preload_non_blocking_connect_and_kept_ld_preload() {
    let _g = serial();
    if !can_run("preload_non_blocking_connect_and_kept_ld_preload") {
        return;
    }
    ensure_shim();
    let s = Server::new();
    let mut a = s.args("run");
    a.extend(
        [
            "--preload",
            "--quiet",
            "--",
            "python3",
            "-c",
            NONBLOCKING_PY,
            "10.84.1.2",
        ]
        .map(String::from),
    );
    a.push(PORT.to_string());
    // Another preload library the program had: kept, after braid's shim.
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib/libc.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    let mut cmd = braid_cmd(&a);
    if let Some(l) = libc {
        cmd.env("LD_PRELOAD", l);
    }
    let (code, out, err, _) = finish("preload python", cmd);
    assert_eq!(code, Some(0), "{out} {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("libbraid_preload.so"), "{out}");
    if let Some(l) = libc {
        assert!(lines[0].ends_with(&format!(":{l}")), "{out}");
    }
    assert_eq!(lines[1], "EINPROGRESS", "{out}");
    assert_eq!(lines[2], "SO_ERROR 0", "{out}");
    assert_eq!(lines[3], format!("peer 10.84.1.2:{PORT}"), "{out}");
    assert_eq!(lines[4], "hello from the MPTCP server", "{out}");
}

/// A statically linked client (no libc to preload, its own resolver-free connect): it fetches
/// /hello.txt with raw socket calls.
const STATIC_C: &str = r#"
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 3; }
    const char *req = "GET /hello.txt HTTP/1.0\r\n\r\n";
    write(s, req, strlen(req));
    shutdown(s, SHUT_WR);
    char buf[4096]; size_t n = 0; ssize_t k;
    while ((k = read(s, buf + n, sizeof buf - 1 - n)) > 0) n += k;
    buf[n] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    fputs(body ? body + 4 : buf, stdout);
    return 0;
}
"#;

#[test]
fn run_carries_a_static_binary() {
    let _g = serial();
    if !can_run("run_carries_a_static_binary") {
        return;
    }
    let s = Server::new();
    let src = s.file("client.c");
    let bin = s.file("client-static");
    std::fs::write(&src, format!("#include <stdlib.h>\n{STATIC_C}")).unwrap();
    let cc = Command::new("cc")
        .args(["-static", "-O1", "-o", &bin, &src])
        .output();
    match cc {
        Ok(o) if o.status.success() => {}
        other => {
            skip(
                "interop test run_carries_a_static_binary",
                &format!("no static C toolchain ({other:?})"),
            );
            return;
        }
    }
    let mut a = s.args("run");
    a.extend(["--", &bin, "10.84.1.2", &PORT.to_string()].map(String::from));
    let (code, out, err, _) = finish("braid run static", braid_cmd(&a));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "hello from the MPTCP server\n", "{err}");
    assert!(err.contains("over MPTCP"), "{err}");
}

/// An MPTCP server in P that reads until the client's FIN, then answers with the SHA-256 of what
/// it read and closes: the client's half-close must reach it, and its answer must come back
/// after that.
const HALF_CLOSE_SERVER: &str = r#"
import hashlib, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
c.sendall(("%d %s\n" % (n, h.hexdigest())).encode()); c.close()
"#;

const HALF_CLOSE_CLIENT: &str = r#"
import hashlib, os, socket, sys
data = os.urandom(3 << 20)
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
c.sendall(data); c.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = c.recv(65536)
    if not b: break
    got += b
want = "%d %s" % (len(data), hashlib.sha256(data).hexdigest())
print("ok" if got.decode().strip() == want else "mismatch: %r vs %r" % (got, want))
"#;

#[test]
fn run_relays_a_half_close() {
    let _g = serial();
    if !can_run("run_relays_a_half_close") {
        return;
    }
    let s = Server::new();
    let port = 8100u16;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &s.ns.0, "python3", "-c", HALF_CLOSE_SERVER])
        .arg(port.to_string());
    let server = Proc::spawn("half-close server", &mut cmd);
    server.expect_line("ready", Duration::from_secs(10));
    let mut a = s.args("run");
    a.extend(["--", "python3", "-c", HALF_CLOSE_CLIENT, "10.84.1.2"].map(String::from));
    a.push(port.to_string());
    let (code, out, err, _) = finish("braid run half-close", braid_cmd(&a));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "ok", "{err}");
}

#[test]
fn run_ctrl_c_on_the_terminal_reaches_the_program() {
    let _g = serial();
    if !can_run("run_ctrl_c_on_the_terminal_reaches_the_program") {
        return;
    }
    if !have("script", "--version") {
        skip(
            "interop test run_ctrl_c_on_the_terminal_reaches_the_program",
            "script (util-linux) missing",
        );
        return;
    }
    let s = Server::new();
    // `script` gives braid a terminal; ETX typed into it is Ctrl-C for the foreground group.
    // `exec`: no shell of script's ($SHELL, dash in CI) stays in that group to die of the
    // SIGINT itself; `script -e` exits with braid's status.
    let inner = format!(
        "exec {} {} -- sh -c 'trap \"echo got-sigint; exit 42\" INT; echo started; sleep 30 & wait'",
        env!("CARGO_BIN_EXE_braid"),
        s.args("run").join(" ")
    );
    let mut child = Command::new("script")
        .args(["-qfec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().unwrap();
    let out = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        use std::io::Read;
        let mut s = String::new();
        let _ = std::io::BufReader::new(out).read_to_string(&mut s);
        s
    });
    thread::sleep(Duration::from_secs(2));
    use std::io::Write;
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    let mut waited = 0;
    while child.try_wait().unwrap().is_none() && waited < 200 {
        thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    let status = match child.try_wait().unwrap() {
        Some(st) => st.code(),
        None => {
            let _ = child.kill();
            None
        }
    };
    drop(stdin);
    let text = reader.join().unwrap();
    assert!(text.contains("started"), "{text}");
    assert!(
        text.contains("got-sigint"),
        "the program saw Ctrl-C: {text}"
    );
    assert_eq!(
        status,
        Some(42),
        "braid exits with the program's status: {text}"
    );
}

#[test]
fn run_curl_over_ipv6_paths() {
    let _g = serial();
    if !can_run("run_curl_over_ipv6_paths") {
        return;
    }
    let s = Server::new();
    let port = 8006u16;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &s.ns.0, "mptcpize", "run", "python3", "-m"])
        .args(["http.server", &port.to_string(), "--bind", "::"])
        .arg("--directory")
        .arg(s.dir.0.join("www"));
    let _http6 = Proc::spawn("http.server v6", &mut cmd);
    s.wait_listening(port);
    let before = s.counters();
    let mut a = vec!["run".to_string()];
    for (i, t) in s.tuns.iter().enumerate() {
        let x = i + 1;
        a.push("--path".into());
        a.push(format!(
            "tun={t},local=fd00:84:{x}::1,peer=fd00:84:{x}::2/64,netns={}",
            s.ns.0
        ));
    }
    let out = s.file("big6.out");
    a.extend(
        [
            "--",
            "curl",
            "-sS",
            "-g",
            "-o",
            &out,
            &format!("http://[fd00:84:1::2]:{port}/big.bin"),
        ]
        .map(String::from),
    );
    let (code, _, err, pid) = finish("braid run curl v6", braid_cmd(&a));
    assert_eq!(code, Some(0), "{err}");
    let got = std::fs::read(&out).expect("curl's output");
    assert_eq!(sha256(&got), s.sha, "the bytes differ");
    assert!(err.contains("-> [fd00:84:1::2]:8006 over MPTCP"), "{err}");
    assert_mptcp_with_join(&before, &s.counters());
    assert_nothing_left(pid);
}

/// `braid status` of a running `braid run` (both modes): the captured connection's MPTCP side,
/// two live subflows, while a rate-limited curl downloads; the socket is gone afterwards.
#[test]
fn run_shows_its_connections_in_braid_status() {
    let _g = serial();
    if !can_run("run_shows_its_connections_in_braid_status") {
        return;
    }
    let s = Server::new();
    for preload in [false, true] {
        if preload {
            ensure_shim();
        }
        let control = s.file(&format!("ctl-{preload}.sock"));
        let mut a = s.args("run");
        a.extend(["--control".to_string(), control.clone()]);
        if preload {
            a.push("--preload".into());
        }
        a.extend(
            [
                "--",
                "curl",
                "-sS",
                "--limit-rate",
                "8M",
                "-o",
                "/dev/null",
                &format!("http://10.84.1.2:{PORT}/big.bin"),
            ]
            .map(String::from),
        );
        let mut p = Proc::spawn("braid run slow curl", &mut braid_cmd(&a));
        let mut seen = String::new();
        let mut tries = 0;
        let two = loop {
            let out = Command::new(env!("CARGO_BIN_EXE_braid"))
                .args(["status", "--control", &control, "--json"])
                .output()
                .expect("run braid status");
            if out.status.success() {
                let v: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("status JSON");
                let ok = v["connections"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["remote"] == format!("10.84.1.2:{PORT}").as_str()
                            && c["mptcp"] == true
                            && c["subflows"].as_array().is_some_and(|sf| {
                                sf.iter().filter(|s| s["closed"] == false).count() >= 2
                            })
                    })
                });
                seen = v.to_string();
                if ok {
                    break true;
                }
            }
            tries += 1;
            if tries > 300 {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            two,
            "preload {preload}: braid status never showed two subflows: {seen}"
        );
        let (st, _) = p.finish(DEADLINE);
        assert_eq!(st.code(), Some(0), "preload {preload}: {}", p.stderr());
        assert!(
            !Path::new(&control).exists(),
            "preload {preload}: control socket left behind"
        );
    }
}

/// `braid path add` and `braid path del` on a running `braid run` (both modes) and `braid
/// capture`: braid starts with path 1 only, path 2 is added and path 1 removed while the
/// program waits; its connection made afterwards goes out on path 2 (10.84.2.1), the only one
/// braid has left, and arrives.
#[test]
fn run_and_capture_follow_paths_added_and_removed_at_run_time() {
    let _g = serial();
    if !can_run("run_and_capture_follow_paths_added_and_removed_at_run_time") {
        return;
    }
    let s = Server::new();
    let spec = |x: usize| {
        format!(
            "tun={},local=10.84.{x}.1,peer=10.84.{x}.2/24,netns={}",
            s.tuns[x - 1],
            s.ns.0
        )
    };
    let url = format!("http://10.84.2.2:{PORT}/hello.txt");
    for mode in ["run", "preload", "capture"] {
        if mode == "preload" {
            ensure_shim();
        }
        let control = s.file(&format!("paths-{mode}.sock"));
        let flag = s.file(&format!("go-{mode}"));
        let out = s.file(&format!("hello-{mode}.out"));
        let sub = if mode == "capture" { "capture" } else { "run" };
        let mut a: Vec<String> = [sub, "--control", &control, "--path", &spec(1)]
            .map(String::from)
            .to_vec();
        if mode == "preload" {
            a.push("--preload".into());
        }
        if mode == "capture" {
            a.extend(["--route", "10.84.0.0/16"].map(String::from));
        } else {
            let script = format!(
                "while [ ! -e {flag} ]; do sleep 0.05; done; exec curl -sS --max-time 30 -o {out} {url}"
            );
            a.extend(["--", "sh", "-c", &script].map(String::from));
        }
        let mut braid = Proc::spawn(&format!("braid {mode}"), &mut braid_cmd(&a));
        let mut up = false;
        for _ in 0..500 {
            if Path::new(&control).exists() {
                up = true;
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        assert!(up, "{mode}: no control socket: {}", braid.stderr());
        let path = |args: &[&str]| {
            let o = Command::new(env!("CARGO_BIN_EXE_braid"))
                .arg("path")
                .args(args)
                .args(["--control", &control])
                .output()
                .expect("run braid path");
            assert!(
                o.status.success(),
                "{mode}: braid path {args:?}: {}; braid: {}",
                String::from_utf8_lossy(&o.stderr),
                braid.stderr()
            );
        };
        path(&["add", &spec(2)]);
        path(&["del", &s.tuns[0]]);
        if mode == "capture" {
            let curl = Command::new("curl")
                .args(["-sS", "--max-time", "30", "-o", &out, &url])
                .output()
                .expect("curl");
            assert!(
                curl.status.success(),
                "capture: curl: {}; braid: {}",
                String::from_utf8_lossy(&curl.stderr),
                braid.stderr()
            );
            run("kill", &["-TERM", &braid.pid().to_string()]);
        } else {
            std::fs::write(&flag, b"").expect("flag");
        }
        let (st, _) = braid.finish(DEADLINE);
        assert_eq!(st.code(), Some(0), "{mode}: {}", braid.stderr());
        let got = std::fs::read(&out).unwrap_or_default();
        assert_eq!(
            got,
            b"hello from the MPTCP server\n",
            "{mode}: {}",
            braid.stderr()
        );
        assert!(
            braid.stderr().contains("10.84.2.2:8000"),
            "{mode}: braid names the connection: {}",
            braid.stderr()
        );
        assert_nothing_left(braid.pid());
    }
}
