//! The control socket: a unix stream socket (default `/run/braid/COMMAND-PID.sock`) through
//! which `braid status` (and later path and monitor commands) talk to a running braid.
//!
//! # Protocol (version 1): JSON lines
//!
//! Each request is one JSON object on one line; each answer one line:
//!
//! ```text
//! → {"id":1,"cmd":"hello"}
//! ← {"id":1,"ok":true,"result":{"protocol":1,"program":"braid proxy","pid":4242,"commands":["hello","status"]}}
//! → {"id":2,"cmd":"status"}
//! ← {"id":2,"ok":true,"result":{"program":"braid proxy","pid":4242,"paths":[...],"connections":[...],"counters":{...}}}
//! → {"id":3,"cmd":"path","op":"add"}
//! ← {"id":3,"ok":false,"error":"unknown command \"path\" (known: hello, status)"}
//! ```
//!
//! `id` is optional and echoed. A client may send several requests on one connection. Room to
//! grow: a request is dispatched on `cmd` (more fields are the command's own), so `path`
//! (add/del/set) fits as `{"cmd":"path","op":"add",...}`, and a streaming `monitor` answers
//! `{"ok":true}` and then writes `{"event":...}` lines on the same connection until it closes.
//! Lines longer than 64 KiB are refused and the connection closed.

use crate::info::ConnStatus;
use crate::stack::Stack;
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Protocol version in `hello`.
pub const PROTOCOL: u32 = 1;
/// Where control sockets live by default.
pub const RUN_DIR: &str = "/run/braid";
/// Longest request line.
const MAX_LINE: usize = 64 * 1024;
/// Clients served at once; more are answered with an error and closed.
const MAX_CLIENTS: usize = 32;
/// A client that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(60);

/// What a running command answers on its control socket.
pub trait ControlHandler: Send + Sync + 'static {
    /// The `status` result: connections with subflows, paths, counters.
    fn status(&self) -> io::Result<Value>;
}

/// The default socket path for `program` (e.g. "proxy") in this process.
pub fn default_path(program: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{program}-{}.sock", std::process::id()))
}

/// The control socket server: a thread accepting clients, one thread per client. The socket
/// file is removed when the server is dropped.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ControlServer {
    /// Binds `path` (its directory is created) and serves `handler`. A stale socket left by a
    /// braid that died is replaced; a live one is an error naming the path.
    pub fn bind(
        path: &Path,
        program: &str,
        handler: Arc<dyn ControlHandler>,
    ) -> io::Result<ControlServer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                io::Error::new(e.kind(), format!("creating {}: {e}", dir.display()))
            })?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another braid is serving it", path.display()),
                ));
            }
            let _ = std::fs::remove_file(path);
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("binding {}: {e}", path.display())))?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let program = program.to_string();
        let thread = std::thread::Builder::new()
            .name("braid-control".into())
            .spawn(move || serve(listener, st, program, handler))?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    program: String,
    h: Arc<dyn ControlHandler>,
) {
    let clients = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut conn) = conn else { continue };
        if clients.load(Ordering::SeqCst) >= MAX_CLIENTS {
            let _ = writeln!(
                conn,
                "{}",
                json!({"ok": false, "error": "too many clients"})
            );
            continue;
        }
        clients.fetch_add(1, Ordering::SeqCst);
        let (h, program, count, stop) = (h.clone(), program.clone(), clients.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("braid-control-client".into())
            .spawn(move || {
                let _ = client(conn, &program, &*h, &stop);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // The client's thread never ran: its slot is free again.
            clients.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn client(
    conn: UnixStream,
    program: &str,
    h: &dyn ControlHandler,
    stop: &AtomicBool,
) -> io::Result<()> {
    conn.set_read_timeout(Some(IDLE))?;
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            writeln!(
                out,
                "{}",
                json!({"ok": false, "error": "request line too long"})
            )?;
            return Ok(());
        }
        let answer = answer(&line, program, h);
        writeln!(out, "{answer}")?;
    }
}

/// The answer to one request line.
fn answer(line: &[u8], program: &str, h: &dyn ControlHandler) -> Value {
    let req: Value = match serde_json::from_slice(line) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return json!({"ok": false, "error": "a request is a JSON object"}),
        Err(e) => return json!({"ok": false, "error": format!("bad JSON: {e}")}),
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let reply = |r: Result<Value, String>| match r {
        Ok(v) => json!({"id": id, "ok": true, "result": v}),
        Err(e) => json!({"id": id, "ok": false, "error": e}),
    };
    match req.get("cmd").and_then(Value::as_str) {
        Some("hello") => reply(Ok(json!({
            "protocol": PROTOCOL,
            "program": program,
            "pid": std::process::id(),
            "commands": ["hello", "status"],
        }))),
        Some("status") => reply(
            h.status()
                .map(|mut v| {
                    if let Value::Object(m) = &mut v {
                        m.insert("program".into(), json!(program));
                        m.insert("pid".into(), json!(std::process::id()));
                    }
                    v
                })
                .map_err(|e| e.to_string()),
        ),
        Some(other) => reply(Err(format!(
            "unknown command {other:?} (known: hello, status)"
        ))),
        None => reply(Err("missing \"cmd\"".to_string())),
    }
}

/// The `status` result for a set of connections (shared by every command).
pub fn status_value(
    paths: &[braid_io::PathSpec],
    conns: &[ConnStatus],
    counters: &[(&'static str, u64)],
) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|p| {
            json!({
                "tun": p.tun,
                "local": p.local.to_string(),
                "peer": format!("{}/{}", p.peer, p.prefix),
                "netns": p.netns,
            })
        })
        .collect();
    let counters: serde_json::Map<String, Value> = counters
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "paths": paths,
        "connections": conns,
        "counters": counters,
    })
}

/// A [`Stack`] answers for itself.
impl ControlHandler for Stack {
    fn status(&self) -> io::Result<Value> {
        let conns = self.connections()?;
        let counters = self.counters()?;
        Ok(status_value(self.paths(), &conns, &counters))
    }
}

/// For programs whose event loop owns the engine (not a [`Stack`]): the control thread
/// leaves the request here and wakes the loop through a socket pair the loop polls
/// ([`PolledControl::wake_fd`]); the loop answers in [`PolledControl::serve`].
pub struct PolledControl {
    slot: Mutex<PollSlot>,
    cv: Condvar,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

#[derive(Default)]
struct PollSlot {
    /// Requests waiting for the loop (a generation number each).
    asked: u64,
    answered: u64,
    answer: Option<Value>,
}

impl PolledControl {
    pub fn new() -> io::Result<Arc<PolledControl>> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Arc::new(PolledControl {
            slot: Mutex::new(PollSlot::default()),
            cv: Condvar::new(),
            wake_tx,
            wake_rx,
        }))
    }

    /// The descriptor the loop must watch for readability.
    pub fn wake_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.wake_rx.as_raw_fd()
    }

    /// Called by the loop on every turn: answers a waiting request with `status()`.
    pub fn serve(&self, status: impl FnOnce() -> Value) {
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if s.asked > s.answered {
            s.answer = Some(status());
            s.answered = s.asked;
            self.cv.notify_all();
        }
    }
}

impl ControlHandler for PolledControl {
    fn status(&self) -> io::Result<Value> {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        s.asked += 1;
        let want = s.asked;
        let _ = (&self.wake_tx).write(&[1]);
        let end = crate::core::mono_now() + Duration::from_secs(5);
        while s.answered < want {
            let left = end.saturating_duration_since(crate::core::mono_now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the event loop did not answer",
                ));
            }
            s = self
                .cv
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(s.answer.clone().unwrap_or(Value::Null))
    }
}

/// Sends one request to the socket at `path` and returns the answer object.
pub fn request(path: &Path, req: &Value) -> io::Result<Value> {
    let mut s = UnixStream::connect(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(s, "{req}")?;
    let mut line = String::new();
    BufReader::new(s).take(64 << 20).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: bad answer: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl ControlHandler for Fixed {
        fn status(&self) -> io::Result<Value> {
            Ok(json!({"connections": [], "paths": []}))
        }
    }

    #[test]
    fn json_lines_protocol() {
        let dir = std::env::temp_dir().join(format!("braid-ctl-test-{}", std::process::id()));
        let path = dir.join("t.sock");
        let server = ControlServer::bind(&path, "braid test", Arc::new(Fixed)).unwrap();
        let hello = request(&path, &json!({"id": 7, "cmd": "hello"})).unwrap();
        assert_eq!(hello["id"], 7);
        assert_eq!(hello["result"]["protocol"], PROTOCOL);
        let st = request(&path, &json!({"cmd": "status"})).unwrap();
        assert_eq!(st["ok"], true);
        assert_eq!(st["result"]["program"], "braid test");
        assert_eq!(st["result"]["pid"], std::process::id());
        let bad = request(&path, &json!({"cmd": "path", "op": "add"})).unwrap();
        assert_eq!(bad["ok"], false);
        assert!(bad["error"].as_str().unwrap().contains("unknown command"));
        // Garbage gets an error line, not a hang or a crash.
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"{{{ not json\n[1,2]\n").unwrap();
        let mut r = BufReader::new(s);
        for _ in 0..2 {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            let v: Value = serde_json::from_str(&l).unwrap();
            assert_eq!(v["ok"], false, "{l}");
        }
        // A second server on a live path is refused; dropping removes the file.
        assert!(ControlServer::bind(&path, "x", Arc::new(Fixed)).is_err());
        drop(server);
        assert!(!path.exists());
        // A stale file (no server) is replaced.
        std::fs::write(&path, b"").unwrap();
        let again = ControlServer::bind(&path, "x", Arc::new(Fixed)).unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn polled_control_answers_from_the_loop() {
        let pc = PolledControl::new().unwrap();
        let p2 = pc.clone();
        let t = std::thread::spawn(move || p2.status().unwrap());
        // The loop's turn.
        let mut served = false;
        for _ in 0..500 {
            pc.serve(|| json!({"n": 1}));
            if t.is_finished() {
                served = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(served);
        assert_eq!(t.join().unwrap()["n"], 1);
    }
}
