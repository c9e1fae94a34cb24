//! The control socket: a unix stream socket (default `/run/braid/COMMAND-PID.sock`) through
//! which `braid status`, `braid path` and `braid monitor` talk to a running braid.
//!
//! # Protocol (version 1): JSON lines
//!
//! Each request is one JSON object on one line; each answer one line:
//!
//! ```text
//! → {"id":1,"cmd":"hello"}
//! ← {"id":1,"ok":true,"result":{"protocol":1,"program":"braid proxy","pid":4242,"commands":["hello","status","path","monitor"]}}
//! → {"id":2,"cmd":"status"}
//! ← {"id":2,"ok":true,"result":{"program":"braid proxy","pid":4242,"paths":[...],"connections":[...],"counters":{...}}}
//! → {"id":3,"cmd":"path","op":"add","spec":"tun=bt2,local=10.77.3.1,peer=10.77.3.2/24"}
//! ← {"id":3,"ok":true,"result":{"tun":"bt2","local":"10.77.3.1","backup":false}}
//! → {"id":4,"cmd":"path","op":"set","name":"bt2","backup":true}
//! ← {"id":4,"ok":true,"result":{"tun":"bt2","local":"10.77.3.1","backup":true}}
//! → {"id":5,"cmd":"path","op":"del","name":"bt9"}
//! ← {"id":5,"ok":false,"error":"no path on device \"bt9\" (paths: bt0, bt1, bt2)"}
//! → {"id":6,"cmd":"monitor"}
//! ← {"id":6,"ok":true,"result":{"monitor":true}}
//! ← {"event":"sub_closed","time":1764636000.125,"conn":1,"local":"10.77.2.1:40001","remote":"10.77.1.2:5201","path":"bt1","reason":"local path gone"}
//! ← {"event":"lost","count":17}
//! ```
//!
//! `id` is optional and echoed. A client may send several requests on one connection; a
//! request is dispatched on `cmd` (more fields are the command's own).
//!
//! * `path`: `op` is `add` (`spec`: a path SPEC as `--path` takes it), `del` (`name`: the
//!   path's TUN device name) or `set` (`name`, `backup`: true or false). The result is the
//!   path's `tun`, `local` and `backup`. Errors name what was wrong (a bad SPEC, a device or
//!   address another path has, an unknown name).
//! * `monitor`: answers once, then writes one `{"event":NAME,...}` line per event on the same
//!   connection until the client closes it (later requests on it are not read). Events:
//!   `created`, `established`, `closed` (connection level: `conn`, `local`, `remote`; `closed`
//!   has `reason`), `announced` (`id`, `addr`, `port` or null), `removed` (`id`),
//!   `sub_established` and `sub_priority` (`local`, `remote`, `backup`), `sub_closed`
//!   (`reason`: `reset` with `reset_code`, `timeout`, `peer removed address`,
//!   `local path gone`, `closed`), and the paths' own `path_added`, `path_removed`,
//!   `path_down`, `path_up`, `path_gone`, `path_priority` (`tun`, `local`, `backup`). Every
//!   event has `time` (Unix seconds); connection events have `conn` (the id `status` shows)
//!   and `path` (the TUN name of the local address) where known. Each client has a queue of
//!   1024 events: a client that reads too slowly loses events, and is told how many by a
//!   `{"event":"lost","count":N}` line where they would have been.
//!
//! Lines longer than 64 KiB are refused and the connection closed.

use crate::info::ConnStatus;
use crate::stack::Stack;
use serde_json::{json, Value};
use std::collections::VecDeque;
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
/// Events queued for one monitor client; more are dropped and counted.
pub const MONITOR_QUEUE: usize = 1024;
/// How often an idle monitor client is looked at (closed by its client, server stopping).
const MONITOR_TICK: Duration = Duration::from_millis(200);
/// The commands of this protocol.
const COMMANDS: [&str; 4] = ["hello", "status", "path", "monitor"];

/// What a running command answers on its control socket.
pub trait ControlHandler: Send + Sync + 'static {
    /// The `status` result: connections with subflows, paths, counters.
    fn status(&self) -> io::Result<Value>;
    /// The `path` command: the path's `tun`, `local` and `backup`, or an error naming what was
    /// wrong.
    fn path(&self, req: &PathRequest) -> Result<Value, String> {
        let _ = req;
        Err("this braid cannot change its paths".to_string())
    }
    /// Where `monitor` clients get their events (None: no monitor).
    fn monitor(&self) -> Option<Arc<Monitor>> {
        None
    }
}

/// A `path` request.
#[derive(Clone, Debug, PartialEq)]
pub enum PathRequest {
    /// A new path (the SPEC of `--path`).
    Add(braid_io::PathSpec),
    /// Remove the path of this TUN device name.
    Del(String),
    /// Make the path a backup path (true) or a regular one.
    Set { name: String, backup: bool },
}

impl PathRequest {
    /// The request's fields (without `cmd` and `id`); `spec_text` is the SPEC as given.
    pub fn to_json(&self, spec_text: Option<&str>) -> Value {
        match self {
            PathRequest::Add(p) => json!({
                "op": "add",
                "spec": spec_text.map_or_else(|| spec_string(p), str::to_string),
            }),
            PathRequest::Del(n) => json!({"op": "del", "name": n}),
            PathRequest::Set { name, backup } => {
                json!({"op": "set", "name": name, "backup": backup})
            }
        }
    }

    /// Reads a request; the error names the field that is wrong.
    pub fn from_json(req: &Value) -> Result<PathRequest, String> {
        let name = || {
            req.get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| "path: missing \"name\" (the path's TUN device name)".to_string())
        };
        match req.get("op").and_then(Value::as_str) {
            Some("add") => {
                let spec = req
                    .get("spec")
                    .and_then(Value::as_str)
                    .ok_or_else(|| "path add: missing \"spec\"".to_string())?;
                spec.parse().map(PathRequest::Add)
            }
            Some("del") => Ok(PathRequest::Del(name()?)),
            Some("set") => {
                let backup = req
                    .get("backup")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| "path set: missing \"backup\" (true or false)".to_string())?;
                Ok(PathRequest::Set {
                    name: name()?,
                    backup,
                })
            }
            Some(op) => Err(format!("path: unknown op {op:?} (known: add, del, set)")),
            None => Err("path: missing \"op\" (add, del or set)".to_string()),
        }
    }
}

/// A path SPEC as text (what `--path` takes) for the fields a runtime path uses.
fn spec_string(p: &braid_io::PathSpec) -> String {
    let mut s = format!(
        "tun={},local={},peer={}/{}",
        p.tun, p.local, p.peer, p.prefix
    );
    if let Some(ns) = &p.netns {
        s += &format!(",netns={ns}");
    }
    if p.mtu != 1500 {
        s += &format!(",mtu={}", p.mtu);
    }
    if !p.offload {
        s += ",offload=off";
    }
    if p.backup {
        s += ",backup";
    }
    s
}

/// Carries out a `path` request on a data plane: the path made, removed or changed.
pub fn apply_path(
    drv: &mut braid_io::Driver,
    req: &PathRequest,
) -> Result<braid_io::PathSpec, String> {
    let r = match req {
        PathRequest::Add(spec) => drv.add_path(spec).map(|()| spec.clone()),
        PathRequest::Del(name) => drv.remove_path(name),
        PathRequest::Set { name, backup } => drv.set_backup(name, *backup).and_then(|()| {
            drv.paths()
                .find(|p| &p.tun == name)
                .cloned()
                .ok_or_else(|| io::Error::other("path vanished"))
        }),
    };
    r.map_err(|e| e.to_string())
}

/// The result of a `path` command for the path `spec`.
pub fn path_result(spec: &braid_io::PathSpec) -> Value {
    json!({"tun": spec.tun, "local": spec.local.to_string(), "backup": spec.backup})
}

/// Where events go to `monitor` clients: each client has its own bounded queue; a publisher
/// never blocks and never grows memory (a full queue drops the event and counts it).
#[derive(Debug, Default)]
pub struct Monitor {
    subs: Mutex<Vec<Arc<Subscriber>>>,
    count: AtomicUsize,
}

#[derive(Debug, Default)]
struct Subscriber {
    q: Mutex<SubQueue>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct SubQueue {
    events: VecDeque<Value>,
    lost: u64,
}

impl Monitor {
    pub fn new() -> Arc<Monitor> {
        Arc::new(Monitor::default())
    }

    /// True while a client is listening (events need not be built otherwise).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Hands `event` (an object with "event") to every client.
    pub fn publish(&self, event: Value) {
        if !self.active() {
            return;
        }
        let subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        for s in subs.iter() {
            let mut q = s.q.lock().unwrap_or_else(|e| e.into_inner());
            if q.events.len() >= MONITOR_QUEUE {
                q.lost += 1;
            } else {
                q.events.push_back(event.clone());
            }
            s.cv.notify_all();
        }
    }

    fn subscribe(&self) -> Arc<Subscriber> {
        let s = Arc::new(Subscriber::default());
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.push(s.clone());
        self.count.store(subs.len(), Ordering::Relaxed);
        s
    }

    fn unsubscribe(&self, s: &Arc<Subscriber>) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|x| !Arc::ptr_eq(x, s));
        self.count.store(subs.len(), Ordering::Relaxed);
    }
}

/// Streams `sub`'s events to `conn` until the client closes, a write fails or the server stops.
fn stream_events(conn: &UnixStream, sub: &Subscriber, stop: &AtomicBool) -> io::Result<()> {
    let mut out = conn;
    loop {
        let (events, lost) = {
            let mut q = sub.q.lock().unwrap_or_else(|e| e.into_inner());
            if q.events.is_empty() && q.lost == 0 {
                q = sub
                    .cv
                    .wait_timeout(q, MONITOR_TICK)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            (std::mem::take(&mut q.events), std::mem::take(&mut q.lost))
        };
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if events.is_empty() && lost == 0 {
            // Idle: has the client gone?
            conn.set_nonblocking(true)?;
            let mut b = [0u8; 256];
            let r = (&*conn).read(&mut b);
            conn.set_nonblocking(false)?;
            match r {
                Ok(0) => return Ok(()),
                // Requests after `monitor` are not answered: dropped.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        let mut text = String::new();
        for e in &events {
            text += &e.to_string();
            text.push('\n');
        }
        if lost > 0 {
            text += &json!({"event": "lost", "count": lost}).to_string();
            text.push('\n');
        }
        out.write_all(text.as_bytes())?;
    }
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
        if answer["result"]["monitor"] == true {
            if let Some(m) = h.monitor() {
                let sub = m.subscribe();
                let r = stream_events(reader.get_ref(), &sub, stop);
                m.unsubscribe(&sub);
                return r;
            }
        }
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
            "commands": COMMANDS,
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
        Some("path") => reply(PathRequest::from_json(&req).and_then(|r| h.path(&r))),
        Some("monitor") => reply(match h.monitor() {
            Some(_) => Ok(json!({"monitor": true})),
            None => Err("this braid has no event monitor".to_string()),
        }),
        Some(other) => reply(Err(format!(
            "unknown command {other:?} (known: {})",
            COMMANDS.join(", ")
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
                "backup": p.backup,
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
        let paths = self.current_paths()?;
        Ok(status_value(&paths, &conns, &counters))
    }

    fn path(&self, req: &PathRequest) -> Result<Value, String> {
        Stack::path(self, req)
    }

    fn monitor(&self) -> Option<Arc<Monitor>> {
        Some(Stack::monitor(self))
    }
}

/// For programs whose event loop owns the engine (not a [`Stack`]): the control thread
/// leaves the request here and wakes the loop through a socket pair the loop polls
/// ([`PolledControl::wake_fd`]); the loop answers in [`PolledControl::serve`]. Its
/// [`Monitor`] is where the loop publishes events.
pub struct PolledControl {
    slot: Mutex<PollSlot>,
    cv: Condvar,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    monitor: Arc<Monitor>,
}

/// A request for the loop.
#[derive(Clone, Debug, PartialEq)]
pub enum LoopRequest {
    Status,
    Path(PathRequest),
}

#[derive(Default)]
struct PollSlot {
    next: u64,
    /// Requests waiting for the loop, by number.
    asked: VecDeque<(u64, LoopRequest)>,
    answers: Vec<(u64, Result<Value, String>)>,
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
            monitor: Monitor::new(),
        }))
    }

    /// The descriptor the loop must watch for readability.
    pub fn wake_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.wake_rx.as_raw_fd()
    }

    /// Where the loop publishes events for `monitor` clients.
    pub fn events(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// Called by the loop on every turn: answers the waiting requests with `f`.
    pub fn serve(&self, mut f: impl FnMut(&LoopRequest) -> Result<Value, String>) {
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
        let asked: Vec<(u64, LoopRequest)> = {
            let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if s.asked.is_empty() {
                return;
            }
            s.asked.drain(..).collect()
        };
        let answers: Vec<_> = asked.iter().map(|(n, r)| (*n, f(r))).collect();
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        s.answers.extend(answers);
        self.cv.notify_all();
    }

    /// Hands `req` to the loop and waits (at most 5 s) for its answer.
    fn ask(&self, req: LoopRequest) -> Result<Value, String> {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        s.next += 1;
        let n = s.next;
        s.asked.push_back((n, req));
        let _ = (&self.wake_tx).write(&[1]);
        let end = crate::core::mono_now() + Duration::from_secs(5);
        loop {
            if let Some(i) = s.answers.iter().position(|(k, _)| *k == n) {
                return s.answers.swap_remove(i).1;
            }
            let left = end.saturating_duration_since(crate::core::mono_now());
            if left.is_zero() {
                s.asked.retain(|(k, _)| *k != n);
                return Err("the event loop did not answer".to_string());
            }
            s = self
                .cv
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl ControlHandler for PolledControl {
    fn status(&self) -> io::Result<Value> {
        self.ask(LoopRequest::Status)
            .map_err(|e| io::Error::new(io::ErrorKind::TimedOut, e))
    }

    fn path(&self, req: &PathRequest) -> Result<Value, String> {
        self.ask(LoopRequest::Path(req.clone()))
    }

    fn monitor(&self) -> Option<Arc<Monitor>> {
        Some(self.monitor.clone())
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
        let bad = request(&path, &json!({"cmd": "frob"})).unwrap();
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

    struct WithMonitor(Arc<Monitor>);
    impl ControlHandler for WithMonitor {
        fn status(&self) -> io::Result<Value> {
            Ok(json!({}))
        }
        fn monitor(&self) -> Option<Arc<Monitor>> {
            Some(self.0.clone())
        }
    }

    #[test]
    fn monitor_streams_events_and_a_slow_client_is_told_what_it_lost() {
        let dir = std::env::temp_dir().join(format!("braid-ctl-mon-{}", std::process::id()));
        let path = dir.join("m.sock");
        let m = Monitor::new();
        let server =
            ControlServer::bind(&path, "braid test", Arc::new(WithMonitor(m.clone()))).unwrap();
        assert!(!m.active());
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        writeln!(s, "{}", json!({"id": 9, "cmd": "monitor"})).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(
            (v["id"].as_u64(), v["ok"].as_bool()),
            (Some(9), Some(true)),
            "{l}"
        );
        for _ in 0..500 {
            if m.active() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(m.active());
        m.publish(json!({"event": "created", "conn": 1}));
        l.clear();
        r.read_line(&mut l).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&l).unwrap()["event"],
            "created"
        );
        // Far more than a queue holds, each event fat enough to fill the socket buffers while
        // nobody reads: the rest are dropped and counted, never queued.
        let pad = "x".repeat(4000);
        let total = 20 * MONITOR_QUEUE;
        for i in 0..total {
            m.publish(json!({"event": "sub_closed", "n": i, "pad": pad}));
        }
        let (mut got, mut lost) = (0usize, 0u64);
        let mut last = None;
        while got + (lost as usize) < total {
            l.clear();
            r.read_line(&mut l).unwrap();
            let v: Value = serde_json::from_str(&l).unwrap();
            match v["event"].as_str() {
                Some("lost") => lost += v["count"].as_u64().unwrap(),
                Some("sub_closed") => {
                    let n = v["n"].as_u64().unwrap();
                    assert!(last.is_none_or(|p| n > p), "events out of order");
                    last = Some(n);
                    got += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(lost > 0 && got >= MONITOR_QUEUE, "got {got} lost {lost}");
        assert_eq!(got + lost as usize, total);
        // A client that goes away is dropped from the monitor.
        drop(r);
        drop(s);
        for _ in 0..500 {
            if !m.active() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!m.active());
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn path_requests_parse_and_errors_name_the_field() {
        let add = PathRequest::from_json(
            &json!({"op": "add", "spec": "tun=bt2,local=10.0.2.1,peer=10.0.2.2/24,backup"}),
        )
        .unwrap();
        let PathRequest::Add(p) = &add else {
            panic!("{add:?}")
        };
        assert!(p.backup && p.tun == "bt2");
        assert_eq!(
            PathRequest::from_json(&add.to_json(None)).unwrap(),
            add,
            "round trip"
        );
        for (req, want) in [
            (json!({"op": "add"}), "missing \"spec\""),
            (json!({"op": "add", "spec": "tun=bt2"}), "missing local=IP"),
            (json!({"op": "del"}), "missing \"name\""),
            (json!({"op": "set", "name": "bt1"}), "missing \"backup\""),
            (json!({"op": "move"}), "unknown op \"move\""),
            (json!({}), "missing \"op\""),
        ] {
            let e = PathRequest::from_json(&req).unwrap_err();
            assert!(e.contains(want), "{req}: {e}");
        }
        // A braid that cannot change paths says so.
        let a = answer(br#"{"cmd":"path","op":"del","name":"bt1"}"#, "x", &Fixed);
        assert_eq!(a["ok"], false);
        assert!(
            a["error"].as_str().unwrap().contains("cannot change"),
            "{a}"
        );
    }

    #[test]
    fn polled_control_answers_from_the_loop() {
        let pc = PolledControl::new().unwrap();
        let p2 = pc.clone();
        let t = std::thread::spawn(move || p2.status().unwrap());
        // The loop's turn.
        let mut served = false;
        for _ in 0..500 {
            pc.serve(|r| {
                assert_eq!(*r, LoopRequest::Status);
                Ok(json!({"n": 1}))
            });
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
