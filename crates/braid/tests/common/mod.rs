//! What the interop tests share: one case at a time, root/CI rules, throw-away namespaces and
//! directories, and child processes whose output is collected and which die with the test.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

static LOCK: Mutex<()> = Mutex::new(());

/// Cases run one at a time: they share the machine's namespaces and CPU.
pub fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

pub fn is_root() -> bool {
    // The effective uid is the second field of "Uid:".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Says that test `case` skipped and why, where the person running the tests sees it: straight
/// to the process's stderr (libtest captures only the print macros, and only shows what a
/// passing test printed with --nocapture), and as one line `case: why` appended to the file
/// that BRAID_SKIP_LOG names, when set (scripts/test.sh counts those lines for its summary).
pub fn skip(case: &str, why: &str) {
    use std::io::Write;
    let line = format!("\n*** SKIPPING {case}: {why} ***\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os("BRAID_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            // One write per line: concurrent tests append whole lines.
            let _ = f.write_all(format!("{case}: {why}\n").as_bytes());
        }
    }
}

/// The usual reason: not root. Panics instead in CI, where every test must run.
pub fn root_or_skip(case: &str) -> bool {
    if is_root() {
        return true;
    }
    if in_ci() {
        panic!("test {case} needs root (network namespaces, TUN devices) and CI is set: failing instead of skipping");
    }
    skip(case, "not root (needs network namespaces and TUN devices)");
    false
}

/// Whether `tool arg` runs (e.g. `tshark --version`).
pub fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether a `kind` interop case (e.g. "MPTCP interop test") can run: root, the kernel's MPTCP
/// and `tools` as (command, flag that makes it answer, Debian package). A case that cannot run
/// skips (counted by the test command), or fails under CI, where every test must run.
pub fn can_run_with(kind: &str, case: &str, tools: &[(&str, &str, &str)]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (network namespaces, TUN devices)".to_string());
    }
    let mptcp = std::fs::read_to_string("/proc/sys/net/mptcp/enabled");
    if mptcp.map(|s| s.trim() != "1").unwrap_or(true) {
        missing.push("kernel MPTCP (/proc/sys/net/mptcp/enabled = 1)".to_string());
    }
    for (tool, arg, package) in tools {
        if !have(tool, arg) {
            missing.push(format!("{tool} (apt-get install -y {package})"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if in_ci() {
        panic!("{kind} {case} needs {what} and CI is set: failing instead of skipping");
    }
    skip(&format!("{kind} {case}"), &format!("needs {what}"));
    false
}

/// A process's resident memory in KiB (VmRSS; 0 once it has gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// Runs a command to completion; panics with its stderr when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// A new namespace NAME, loopback up, as the kernel MPTCP peer of a test: its MPTCP limits
    /// raised to 4 subflows and 4 accepted ADD_ADDRs (the defaults accept no announcement).
    pub fn mptcp_peer(name: String) -> Netns {
        run("ip", &["netns", "add", &name]);
        let ns = Netns(name);
        run("ip", &["-n", &ns.0, "link", "set", "lo", "up"]);
        let limits = ["subflows", "4", "add_addr_accepted", "4"];
        let mut a = vec!["-n", ns.0.as_str(), "mptcp", "limits", "set"];
        a.extend_from_slice(&limits);
        run("ip", &a);
        ns
    }

    /// The namespace's MPTcpExt counters (/proc/net/netstat), by the kernel's names.
    pub fn mptcp_counters(&self) -> std::collections::HashMap<String, u64> {
        self.netstat("MPTcpExt")
    }

    /// One group of the namespace's /proc/net/netstat counters (`TcpExt`, `MPTcpExt`), by the
    /// kernel's names.
    pub fn netstat(&self, group: &str) -> std::collections::HashMap<String, u64> {
        let text = run(
            "ip",
            &["netns", "exec", &self.0, "cat", "/proc/net/netstat"],
        );
        let head = format!("{group}:");
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&head)).collect();
        assert_eq!(rows.len(), 2, "{group} lines in /proc/net/netstat: {text}");
        rows[0]
            .split_whitespace()
            .zip(rows[1].split_whitespace())
            .skip(1)
            .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0)))
            .collect()
    }

    /// The kernel's nonzero TcpExt and MPTcpExt counters in the namespace, sorted, for a
    /// failure message: what the Linux peer saw (drops, windows, reinjections).
    pub fn nonzero_counters(&self) -> String {
        ["TcpExt", "MPTcpExt"]
            .map(|g| format!("{g}: {}", nonzero(&self.netstat(g))))
            .join("; ")
    }
}

/// The nonzero counters of a set, sorted by name, as `Name=value` separated by spaces.
pub fn nonzero(c: &std::collections::HashMap<String, u64>) -> String {
    let mut v: Vec<_> = c.iter().filter(|(_, v)| **v > 0).collect();
    v.sort();
    v.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A temporary directory, removed on drop (kept, and named on stderr, when the environment
/// sets BRAID_KEEP_TEST_FILES: captures and logs to look at after a failure).
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("BRAID_KEEP_TEST_FILES").is_some() {
            eprintln!("kept test files in {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running process whose output is collected by threads; killed on drop.
pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let (tx, lines) = channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("piped stdout");
        let o = stdout.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = o.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let e = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            name: name.to_string(),
            child,
            lines,
            stdout,
            stderr,
        }
    }

    /// Waits for a stdout line equal to `want`.
    pub fn expect_line(&self, want: &str, timeout: Duration) {
        match self.lines.recv_timeout(timeout) {
            Ok(l) if l == want => {}
            other => panic!(
                "{}: expected \"{want}\", got {other:?}; stderr: {}",
                self.name,
                self.stderr()
            ),
        }
    }

    /// Waits for the exit (killing the process at the deadline); returns status and stdout.
    pub fn finish(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads see EOF.
                thread::sleep(Duration::from_millis(50));
                return (st, self.stdout.lock().unwrap().clone());
            }
            if waited >= timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not finish within {timeout:?}; stdout: {}; stderr: {}",
                    self.name,
                    self.stdout.lock().unwrap(),
                    self.stderr()
                );
            }
            thread::sleep(step);
            waited += step;
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (e.g. "INT", "TERM") with kill(1).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status();
    }

    /// Waits for a stdout line satisfying `f`, skipping others; panics at the deadline.
    pub fn wait_line(&self, f: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let step = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        loop {
            match self.lines.recv_timeout(step) {
                Ok(l) if f(&l) => return l,
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if waited < timeout => {
                    waited += step
                }
                Err(e) => panic!(
                    "{}: no such line ({e}); stderr: {}",
                    self.name,
                    self.stderr()
                ),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
