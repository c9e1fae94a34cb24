//! What `braid connect` and `braid listen` tell their user, against the Linux kernel in a
//! throw-away namespace: the connecting and retry lines, silence while idle, progress lines that
//! count delivered bytes, summaries that say whether MPTCP was used and how the bytes split, and
//! per-subflow received bytes in `listen --json`. Root (skips, and says so, without it).

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// A namespace with MPTCP limits that allow a join, and two subnets' names.
struct Topo {
    ns: Netns,
    tag: String,
    subnet: u8,
}

impl Topo {
    fn new() -> Topo {
        let r = random_u64();
        let ns = Netns::mptcp_peer(format!("braid-rep-{:08x}", r as u32));
        Topo {
            ns,
            tag: format!("{:05x}", (r >> 32) as u32 & 0xf_ffff),
            subnet: 1 + ((r >> 56) as u8 % 120) * 2,
        }
    }

    /// Path `i` (0 or 1): its own device and subnet, emulated at `extra`.
    fn path(&self, i: u8, extra: &str) -> String {
        let x = self.subnet + i;
        format!(
            "tun=br{}{i},local=10.76.{x}.1,peer=10.76.{x}.2/24,netns={}{extra}",
            self.tag, self.ns.0
        )
    }

    fn local(&self, i: u8) -> String {
        format!("10.76.{}.1", self.subnet + i)
    }

    fn peer(&self, i: u8) -> String {
        format!("10.76.{}.2", self.subnet + i)
    }

    fn python(&self, script: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.0, "python3", "-c", script])
            .args(args);
        Proc::spawn("python", &mut cmd)
    }
}

fn braid(args: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.args(args);
    Proc::spawn("braid", &mut cmd)
}

/// Linux MPTCP server: prints "ready", reads one connection to EOF, prints the byte count.
const PY_MPTCP_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5000)); s.listen()
print("ready", flush=True)
c, _ = s.accept(); n = 0
while b := c.recv(1 << 16): n += len(b)
c.close()
print(n, flush=True)
"#;

/// Linux MPTCP client: connects to argv[1]:5000 (retrying until braid is there), sends
/// argv[2] bytes, shuts down, reads to EOF.
const PY_MPTCP_CLIENT: &str = r#"
import socket, sys, time, os
host, size = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 30
while True:
    try:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
        c.settimeout(5); c.connect((host, 5000)); break
    except OSError:
        c.close()
        if time.time() > deadline: raise
        time.sleep(0.05)
c.settimeout(60); n = 0
while n < size:
    b = os.urandom(min(1 << 20, size - n)); c.sendall(b); n += len(b)
c.shutdown(socket.SHUT_WR)
while c.recv(65536): pass
print(n, flush=True)
"#;

/// The Mbit/s of each progress line (`braid: T s  delivered X  received Y  R Mbit/s`).
fn progress_rates(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter(|l| l.starts_with("braid: ") && l.contains(" delivered "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.last(), Some(&"Mbit/s"), "{l}");
            w[w.len() - 2].parse::<f64>().expect("rate")
        })
        .collect()
}

/// stderr's lines without the first one, which must name the control socket (`braid status`).
fn without_control_line(err: &str) -> Vec<&str> {
    let mut lines = err.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with("braid: control socket /run/braid/"),
        "the first line names the control socket: {err}"
    );
    lines.collect()
}

#[test]
fn connect_says_it_is_connecting_and_retrying() {
    let _g = serial();
    if !root_or_skip("connect_says_it_is_connecting_and_retrying") {
        return;
    }
    let topo = Topo::new();
    // Nothing answers: the emulation drops every packet.
    let path = topo.path(0, ",loss=100%");
    let target = format!("{}:5000", topo.peer(0));
    let mut b = braid(&[
        "connect",
        "--path",
        &path,
        &target,
        "--bytes",
        "1KiB",
        "--timeout",
        "3500ms",
    ]);
    let (st, _) = b.finish(DEADLINE);
    let err = b.stderr();
    assert_eq!(st.code(), Some(1), "{err}");
    let lines = without_control_line(&err);
    assert_eq!(lines.len(), 4, "{err}");
    assert_eq!(
        lines[0],
        format!(
            "braid: connecting to {target} from {} (MPTCP, 1 path)",
            topo.local(0)
        )
    );
    // RTO 1 s, doubling: SYNs at 0, 1 and 3 s, each retry told within the second.
    for (line, n) in [(lines[1], 2), (lines[2], 3)] {
        let secs: f64 = line
            .strip_prefix(&format!("braid: no answer from {target} after "))
            .and_then(|r| r.strip_suffix(&format!(" s; SYN sent again ({n} so far)")))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?} in\n{err}"));
        let sent_at = if n == 2 { 1.0 } else { 3.0 };
        assert!((sent_at..sent_at + 1.1).contains(&secs), "{err}");
    }
    assert_eq!(
        lines[3],
        format!(
            "braid: stopped by --timeout 3500ms after 3.5 s before {target} answered (3 SYNs sent)"
        )
    );
}

#[test]
fn an_idle_listener_prints_no_progress() {
    let _g = serial();
    if !root_or_skip("an_idle_listener_prints_no_progress") {
        return;
    }
    let topo = Topo::new();
    let path = topo.path(0, "");
    let mut b = braid(&[
        "listen",
        "--path",
        &path,
        "--port",
        "5000",
        "--timeout",
        "3s",
    ]);
    let (st, _) = b.finish(DEADLINE);
    let err = b.stderr();
    assert_eq!(st.code(), Some(1), "{err}");
    assert_eq!(
        without_control_line(&err),
        [
            format!("braid: listening on port 5000 at {}", topo.local(0)).as_str(),
            "braid: stopped by --timeout 3s after 3.0 s",
        ],
        "{err}"
    );
}

/// Two 20 Mbit/s paths to Linux's MPTCP: progress never shows more than the paths carry (it
/// counts acknowledged bytes, not buffered ones), and the summary names MPTCP, both subflows
/// and the split.
#[test]
fn connect_progress_and_summary_tell_the_truth() {
    let _g = serial();
    if !root_or_skip("connect_progress_and_summary_tell_the_truth") {
        return;
    }
    let topo = Topo::new();
    let mut server = topo.python(PY_MPTCP_SERVER, &[]);
    server.expect_line("ready", Duration::from_secs(10));
    let (p0, p1) = (topo.path(0, ",rate=20mbit"), topo.path(1, ",rate=20mbit"));
    let target = format!("{}:5000", topo.peer(0));
    let mut b = braid(&[
        "connect", "--path", &p0, "--path", &p1, &target, "--bytes", "16MiB",
    ]);
    let (st, out) = b.finish(DEADLINE);
    let err = b.stderr();
    assert!(st.success(), "{out}\n{err}");
    let (_, got) = server.finish(DEADLINE);
    assert_eq!(got.lines().last(), Some("16777216"));

    assert!(
        err.lines().any(
            |l| l.starts_with(&format!("braid: connected to {target} in "))
                && l.ends_with(" (MPTCP)")
        ),
        "{err}"
    );
    let rates = progress_rates(&err);
    assert!(rates.len() >= 2, "{err}");
    for r in &rates {
        // 2 x 20 Mbit/s of IP packets: the payload rate stays below 40 Mbit/s (margin for
        // the interval's edges).
        assert!(
            *r <= 44.0,
            "progress shows {r} Mbit/s over 2 x 20 Mbit/s:\n{err}"
        );
    }

    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "connection {target}: sent 16.00 MiB (16777216 bytes) in "
        )),
        "{out}"
    );
    assert_eq!(lines[1], "  MPTCP: yes, 2 subflows, fallback: no", "{out}");
    let mut share = 0.0;
    for (i, l) in lines[2..].iter().enumerate() {
        let dev = format!("br{}{i}", topo.tag);
        assert!(
            l.starts_with(&format!("  path {dev} {}:", topo.local(i as u8))),
            "{out}"
        );
        let pct: f64 = l
            .split(" (")
            .nth(1)
            .and_then(|s| s.split('%').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no share in {l}"));
        // Two equal paths: each carries a fair part.
        assert!(pct > 25.0, "{out}");
        share += pct;
    }
    assert_eq!(lines.len(), 4, "{out}");
    assert!((share - 100.0).abs() < 0.2, "{out}");
}

/// A Linux MPTCP client with a second subflow: `listen --json` reports what each subflow
/// received (0 for every subflow before), and they add up to the transfer.
#[test]
fn listen_json_reports_bytes_received_per_subflow() {
    let _g = serial();
    if !root_or_skip("listen_json_reports_bytes_received_per_subflow") {
        return;
    }
    let topo = Topo::new();
    let (p0, p1) = (topo.path(0, ",rate=50mbit"), topo.path(1, ",rate=50mbit"));
    let mut b = braid(&[
        "listen", "--path", &p0, "--path", &p1, "--port", "5000", "--json",
    ]);
    // The kernel's second subflow goes out from the second path's address.
    let dev1 = format!("br{}1", topo.tag);
    let mut waited = 0;
    while !run("ip", &["-n", &topo.ns.0, "addr", "show"]).contains(&topo.peer(1)) {
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
        assert!(
            waited < 200,
            "braid never configured {dev1}: {}",
            b.stderr()
        );
    }
    run(
        "ip",
        &[
            "-n",
            &topo.ns.0,
            "mptcp",
            "endpoint",
            "add",
            &topo.peer(1),
            "dev",
            &dev1,
            "subflow",
        ],
    );
    let size = 16u64 << 20;
    let mut client = topo.python(PY_MPTCP_CLIENT, &[&topo.local(0), &size.to_string()]);
    let (cst, _) = client.finish(DEADLINE);
    assert!(cst.success(), "{}", client.stderr());
    let (st, out) = b.finish(DEADLINE);
    assert!(st.success(), "{out}\n{}", b.stderr());
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["bytes"], size);
    assert_eq!(v["bytes_delivered"], size);
    assert_eq!(v["mptcp"]["fallback"], false);
    let subflows = v["subflows"].as_array().unwrap();
    let received: Vec<u64> = subflows
        .iter()
        .map(|s| s["bytes_received"].as_u64().unwrap())
        .collect();
    assert!(
        received.iter().filter(|&&n| n > 0).count() >= 2,
        "both subflows carried data: {received:?}"
    );
    // Each byte arrives on some subflow (a reinjected one on two).
    assert!(received.iter().sum::<u64>() >= size, "{received:?}");
}
