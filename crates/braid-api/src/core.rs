//! State shared between application threads and the engine thread.
//!
//! Each connection has one [`ConnCore`]: byte queues in each direction, its phase and error,
//! behind a mutex, with a condition variable for blocked std callers and wakers for async ones.
//! Application threads hand the engine requests through [`StackShared::send`]: a queue plus one
//! byte on a socket pair the engine thread sleeps on (written only when the engine has not been
//! woken already). The engine notifies a connection only when something changed for it.

use crate::control::{Monitor, PathRequest};
use crate::info::{ConnStatus, StreamInfo};
use braid_proto::Error as EngineError;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Handshake under way (outgoing connections).
    Connecting,
    Established,
    /// The engine's connection is gone (in order or not: see `error`).
    Closed,
}

/// An error kept as kind and message, handed out again on every later call.
#[derive(Clone, Debug)]
pub(crate) struct StoredError {
    pub kind: io::ErrorKind,
    pub msg: String,
}

impl StoredError {
    pub fn new(kind: io::ErrorKind, msg: impl Into<String>) -> Self {
        StoredError {
            kind,
            msg: msg.into(),
        }
    }

    pub fn to_io(&self) -> io::Error {
        io::Error::new(self.kind, self.msg.clone())
    }
}

/// The engine's error as an io::Error kind, with `what` (e.g. "connection to 1.2.3.4:80").
pub(crate) fn engine_error(e: &EngineError, what: &str) -> StoredError {
    let kind = match e {
        EngineError::ConnectionRefused => io::ErrorKind::ConnectionRefused,
        EngineError::ConnectionReset => io::ErrorKind::ConnectionReset,
        EngineError::TimedOut => io::ErrorKind::TimedOut,
        EngineError::AddrInUse => io::ErrorKind::AddrInUse,
        EngineError::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
        EngineError::InvalidConfig(_) => io::ErrorKind::InvalidInput,
        EngineError::WouldBlock => io::ErrorKind::WouldBlock,
        EngineError::UnknownConnection | EngineError::InvalidState(_) => {
            io::ErrorKind::NotConnected
        }
    };
    StoredError::new(kind, format!("{what}: {e}"))
}

/// The byte queues and state of one connection.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub phase: Phase,
    pub error: Option<StoredError>,
    /// Received bytes the application has not read yet.
    pub rx: VecDeque<u8>,
    pub rx_cap: usize,
    /// The peer's FIN was read from the engine: `rx` is all there will be.
    pub rx_eof: bool,
    /// shutdown(Read): reads return 0, arriving bytes are dropped.
    pub rx_shut: bool,
    /// The engine stopped reading because `rx` was full: the reader kicks it after freeing room.
    pub rx_starved: bool,
    /// The connection closed in order while the engine still held bytes the application has
    /// not read: reads wait for them (and the FIN) instead of ending at `Phase::Closed`.
    pub rx_after_close: bool,
    /// Bytes written by the application, not yet in the engine's send buffer.
    pub tx: VecDeque<u8>,
    pub tx_cap: usize,
    /// shutdown(Write) asked: a FIN follows `tx`.
    pub tx_shut: bool,
    pub local: Option<SocketAddr>,
    pub remote: SocketAddr,
    pub read_waker: Option<Waker>,
    pub write_waker: Option<Waker>,
}

/// One connection's shared core.
#[derive(Debug)]
pub(crate) struct ConnCore {
    pub id: u64,
    pub state: Mutex<ConnState>,
    pub cv: Condvar,
}

impl ConnCore {
    pub fn new(id: u64, phase: Phase, remote: SocketAddr, cap: usize) -> Arc<Self> {
        Arc::new(ConnCore {
            id,
            state: Mutex::new(ConnState {
                phase,
                error: None,
                rx: VecDeque::new(),
                rx_cap: cap,
                rx_eof: false,
                rx_shut: false,
                rx_starved: false,
                rx_after_close: false,
                tx: VecDeque::new(),
                tx_cap: cap,
                tx_shut: false,
                local: None,
                remote,
                read_waker: None,
                write_waker: None,
            }),
            cv: Condvar::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every waiter, blocked or async (call without the lock held, or with it: both work).
    pub fn notify(&self, st: &mut ConnState) {
        self.cv.notify_all();
        if let Some(w) = st.read_waker.take() {
            w.wake();
        }
        if let Some(w) = st.write_waker.take() {
            w.wake();
        }
    }

    /// Waits on the condition variable, at most `timeout` (None: forever). False on time-out.
    pub fn wait<'a>(
        &self,
        guard: MutexGuard<'a, ConnState>,
        timeout: Option<Duration>,
    ) -> (MutexGuard<'a, ConnState>, bool) {
        match timeout {
            None => (self.cv.wait(guard).unwrap_or_else(|e| e.into_inner()), true),
            Some(t) => {
                let (g, r) = self
                    .cv
                    .wait_timeout(guard, t)
                    .unwrap_or_else(|e| e.into_inner());
                (g, !r.timed_out())
            }
        }
    }
}

/// A listening port's queue of accepted connections.
#[derive(Debug)]
pub(crate) struct ListenState {
    pub queue: VecDeque<Arc<ConnCore>>,
    /// The stack stopped (or the listen failed): accept returns this.
    pub error: Option<StoredError>,
    pub waker: Option<Waker>,
}

#[derive(Debug)]
pub(crate) struct ListenCore {
    pub port: u16,
    pub state: Mutex<ListenState>,
    pub cv: Condvar,
}

impl ListenCore {
    pub fn lock(&self) -> MutexGuard<'_, ListenState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn notify(&self, st: &mut ListenState) {
        self.cv.notify_all();
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
}

/// A request from an application thread to the engine thread.
pub(crate) enum Cmd {
    Connect {
        core: Arc<ConnCore>,
        local: Option<IpAddr>,
        timeout: Duration,
    },
    Listen {
        core: Arc<ListenCore>,
        reply: SyncSender<Result<(), StoredError>>,
    },
    /// The application queued bytes, freed receive room or asked for a shutdown.
    Kick(u64),
    /// Reset the connection now (RST; MP_FASTCLOSE for MPTCP).
    Abort(u64),
    /// The last handle was dropped.
    Release(u64),
    CloseListener(u16),
    Info(u64, SyncSender<Option<StreamInfo>>),
    List(SyncSender<Vec<ConnStatus>>),
    Counters(SyncSender<Vec<(&'static str, u64)>>),
    /// A `path` request of the control socket.
    Path(PathRequest, SyncSender<Result<Value, String>>),
    /// The paths now.
    Paths(SyncSender<Vec<braid_io::PathSpec>>),
    /// Close everything (gracefully for up to the duration) and end the engine thread.
    Stop(Duration),
}

/// What every handle of one stack shares.
#[derive(Debug)]
pub(crate) struct StackShared {
    pub cmds: Mutex<Vec<Cmd>>,
    wake_tx: UnixStream,
    /// A wake byte is on its way and the engine has not taken the queue since.
    wake_pending: AtomicBool,
    pub next_id: AtomicU64,
    /// The engine thread has ended: requests are not served any more.
    pub stopped: AtomicBool,
    /// SIGINT/SIGTERM arrived (stacks made with `catch_signals`).
    pub interrupted: Mutex<bool>,
    pub interrupt_cv: Condvar,
    pub buffer: usize,
    pub connect_timeout: Duration,
    /// Where the engine thread publishes events for `monitor` clients.
    pub monitor: Arc<Monitor>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Cmd::Connect { .. } => "Connect",
            Cmd::Listen { .. } => "Listen",
            Cmd::Kick(_) => "Kick",
            Cmd::Abort(_) => "Abort",
            Cmd::Release(_) => "Release",
            Cmd::CloseListener(_) => "CloseListener",
            Cmd::Info(..) => "Info",
            Cmd::List(_) => "List",
            Cmd::Counters(_) => "Counters",
            Cmd::Path(..) => "Path",
            Cmd::Paths(_) => "Paths",
            Cmd::Stop(_) => "Stop",
        };
        f.write_str(name)
    }
}

impl StackShared {
    pub fn new(wake_tx: UnixStream, buffer: usize, connect_timeout: Duration) -> Self {
        StackShared {
            cmds: Mutex::new(Vec::new()),
            wake_tx,
            wake_pending: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            stopped: AtomicBool::new(false),
            interrupted: Mutex::new(false),
            interrupt_cv: Condvar::new(),
            buffer,
            connect_timeout,
            monitor: Monitor::new(),
        }
    }

    /// Queues a request and wakes the engine thread if it is not awake for one already. A
    /// stopped stack fails the request at once.
    pub fn send(&self, cmd: Cmd) {
        self.cmds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cmd);
        if self.is_stopped() {
            for cmd in self.take() {
                fail_cmd(cmd, "braid stack stopped");
            }
            return;
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            // A full socket buffer means wake bytes are already waiting: nothing is lost.
            let _ = (&self.wake_tx).write(&[1]);
        }
    }

    /// The engine takes the queued requests (clearing the wake flag first, so a request queued
    /// after the take writes a new wake byte).
    pub fn take(&self) -> Vec<Cmd> {
        self.wake_pending.store(false, Ordering::Release);
        std::mem::take(&mut *self.cmds.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// Answers a request the stopped engine will never serve.
pub(crate) fn fail_cmd(cmd: Cmd, why: &str) {
    let err = StoredError::new(io::ErrorKind::ConnectionAborted, why);
    match cmd {
        Cmd::Connect { core, .. } => {
            let mut st = core.lock();
            st.phase = Phase::Closed;
            st.error = Some(err);
            core.notify(&mut st);
        }
        Cmd::Listen { reply, .. } => {
            let _ = reply.send(Err(err));
        }
        Cmd::Info(_, reply) => {
            let _ = reply.send(None);
        }
        Cmd::List(reply) => {
            let _ = reply.send(Vec::new());
        }
        Cmd::Counters(reply) => {
            let _ = reply.send(Vec::new());
        }
        Cmd::Path(_, reply) => {
            let _ = reply.send(Err(why.to_string()));
        }
        Cmd::Paths(reply) => {
            let _ = reply.send(Vec::new());
        }
        _ => {}
    }
}

/// The monotonic clock, for application-side time-outs (the engine itself gets its time from
/// the data plane's clock). The one place braid-api reads it.
#[allow(clippy::disallowed_methods)]
pub(crate) fn mono_now() -> std::time::Instant {
    std::time::Instant::now()
}
