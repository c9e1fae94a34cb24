//! The engine thread: requests in, engine events out, bytes between the connections' shared
//! queues and the engine's buffers, then sleep in the data plane until something is due.

use crate::control::path_result;
use crate::core::{
    engine_error, fail_cmd, Cmd, ConnCore, ListenCore, Phase, StackShared, StoredError,
};
use crate::events;
use crate::info::{ConnStatus, StreamInfo};
use crate::plane::Plane;
use braid_proto::endpoint::CloseReason;
use braid_proto::{ConnHandle, Endpoint, Error as EngineError, Event, Instant};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

/// Accepted connections a listener keeps for the application; more are reset.
pub(crate) const ACCEPT_BACKLOG: usize = 1024;
/// Every connection is looked at this often even without an event (a safety net: events
/// drive the work).
const SWEEP: Duration = Duration::from_millis(250);
/// Copy space between the engine and the shared queues.
const CHUNK: usize = 64 * 1024;

/// A local address and the prefix its path routes (for choosing the source of a connection).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Route {
    pub local: IpAddr,
    pub peer: IpAddr,
    pub prefix: u8,
}

impl Route {
    fn covers(&self, ip: IpAddr) -> bool {
        match (self.peer, ip) {
            (IpAddr::V4(p), IpAddr::V4(d)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(p) & mask == u32::from(d) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(d)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(p) & mask == u128::from(d) & mask
            }
            _ => false,
        }
    }
}

/// The source address for `remote`: the path whose prefix covers it, else the first path of
/// its family (never `remote` itself).
pub(crate) fn pick_local(routes: &[Route], remote: IpAddr) -> Option<IpAddr> {
    let usable = || routes.iter().filter(move |r| r.local != remote);
    usable()
        .find(|r| r.covers(remote))
        .or_else(|| usable().find(|r| r.local.is_ipv4() == remote.is_ipv4()))
        .map(|r| r.local)
}

struct Entry {
    h: ConnHandle,
    core: Arc<ConnCore>,
    outgoing: bool,
    /// Give up the handshake at this time.
    connect_deadline: Option<Instant>,
    fin_sent: bool,
    /// The application dropped its last handle; released once its queued bytes are in.
    dropped: bool,
}

pub(crate) struct Engine {
    plane: Box<dyn Plane>,
    shared: Arc<StackShared>,
    wake_rx: UnixStream,
    routes: Vec<Route>,
    conns: HashMap<u64, Entry>,
    by_handle: HashMap<ConnHandle, u64>,
    listeners: HashMap<u16, Arc<ListenCore>>,
    /// Connections to look at in this round.
    dirty: HashSet<u64>,
    /// Connections with bytes waiting for send-buffer room (retried after every wake-up).
    tx_waiting: HashSet<u64>,
    scratch: Vec<u8>,
    next_sweep: Instant,
}

impl Engine {
    pub(crate) fn new(
        plane: Box<dyn Plane>,
        shared: Arc<StackShared>,
        wake_rx: UnixStream,
        routes: Vec<Route>,
    ) -> Self {
        let now = plane.now();
        Engine {
            plane,
            shared,
            wake_rx,
            routes,
            conns: HashMap::new(),
            by_handle: HashMap::new(),
            listeners: HashMap::new(),
            dirty: HashSet::new(),
            tx_waiting: HashSet::new(),
            scratch: vec![0; CHUNK],
            next_sweep: now + SWEEP,
        }
    }

    /// The thread's body: runs until a Stop request (or every handle is gone).
    pub(crate) fn run(mut self) {
        let mut stop: Option<(Duration, Instant)> = None;
        let mut result: io::Result<()> = Ok(());
        loop {
            let now = self.plane.now();
            for cmd in self.shared.take() {
                if let Cmd::Stop(grace) = cmd {
                    if stop.is_none() {
                        stop = Some((grace, now + grace));
                        self.close_all(now, grace.is_zero());
                    }
                } else {
                    self.command(now, cmd);
                }
            }
            self.path_events();
            self.events(now);
            self.timeouts(now);
            if now >= self.next_sweep {
                self.dirty.extend(self.conns.keys().copied());
                self.next_sweep = now + SWEEP;
            }
            self.dirty.extend(self.tx_waiting.iter().copied());
            let mut rounds = 0;
            while !self.dirty.is_empty() && rounds < 4 {
                let dirty: Vec<u64> = self.dirty.drain().collect();
                for id in dirty {
                    self.pump(now, id);
                }
                self.events(now);
                rounds += 1;
            }
            if let Some((_, end)) = stop {
                if now >= end || self.plane.endpoint().connection_count() == 0 {
                    break;
                }
            }
            let mut max_wait = self.next_sweep.saturating_duration_since(now);
            if let Some(d) = self.conns.values().filter_map(|e| e.connect_deadline).min() {
                max_wait = max_wait.min(d.saturating_duration_since(now));
            }
            if let Some((_, end)) = stop {
                max_wait = max_wait.min(end.saturating_duration_since(now));
            }
            if !self.dirty.is_empty() {
                max_wait = Duration::ZERO;
            }
            match self.plane.wait(Some(max_wait), &self.wake_rx) {
                Ok(true) => {
                    let mut i = self
                        .shared
                        .interrupted
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    if !*i {
                        *i = true;
                        self.shared.interrupt_cv.notify_all();
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.plane.drain(Duration::from_millis(500));
        let capture = self.plane.finish();
        let why = match (&result, &capture) {
            (Err(e), _) => format!("braid stack stopped: event loop failed: {e}"),
            (_, Err(e)) => format!("braid stack stopped (writing capture failed: {e})"),
            _ => "braid stack stopped".to_string(),
        };
        if let Err(e) = capture {
            eprintln!("braid: writing capture: {e}");
        }
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
        // Fail whatever is still waiting, and everything asked after this point.
        for cmd in self.shared.take() {
            fail_cmd(cmd, &why);
        }
        for e in self.conns.values() {
            let mut st = e.core.lock();
            if st.phase != Phase::Closed {
                st.phase = Phase::Closed;
                st.error.get_or_insert_with(|| {
                    StoredError::new(io::ErrorKind::ConnectionAborted, &why)
                });
            }
            e.core.notify(&mut st);
        }
        for l in self.listeners.values() {
            let mut st = l.lock();
            st.error = Some(StoredError::new(io::ErrorKind::ConnectionAborted, &why));
            l.notify(&mut st);
        }
        // Wake anyone waiting for a signal.
        self.shared.interrupt_cv.notify_all();
        // The plane (TUN devices) closes when `self` is dropped here.
    }

    fn ep(&mut self) -> &mut Endpoint {
        self.plane.endpoint()
    }

    fn command(&mut self, now: Instant, cmd: Cmd) {
        match cmd {
            Cmd::Connect {
                core,
                local,
                timeout,
            } => self.connect(now, core, local, timeout),
            Cmd::Listen { core, reply } => {
                let port = core.port;
                let r = if self.listeners.contains_key(&port) {
                    Err(StoredError::new(
                        io::ErrorKind::AddrInUse,
                        format!("port {port} is already listening"),
                    ))
                } else {
                    // The engine keeps a listener once made: re-listening after a close reuses it.
                    match self.ep().listen(port) {
                        Ok(()) | Err(EngineError::AddrInUse) => {
                            self.listeners.insert(port, core);
                            Ok(())
                        }
                        Err(e) => Err(engine_error(&e, &format!("listen on port {port}"))),
                    }
                };
                let _ = reply.send(r);
            }
            Cmd::Kick(id) => {
                self.dirty.insert(id);
            }
            Cmd::Abort(id) => {
                if let Some((h, core)) = self.conns.get(&id).map(|e| (e.h, e.core.clone())) {
                    let _ = self.ep().abort(now, h);
                    let mut st = core.lock();
                    st.tx.clear();
                    st.error.get_or_insert_with(|| {
                        StoredError::new(io::ErrorKind::ConnectionAborted, "connection aborted")
                    });
                    core.notify(&mut st);
                }
            }
            Cmd::Release(id) => {
                if let Some(e) = self.conns.get_mut(&id) {
                    e.dropped = true;
                    self.dirty.insert(id);
                }
            }
            Cmd::CloseListener(port) => {
                if let Some(l) = self.listeners.remove(&port) {
                    let pending: Vec<_> = l.lock().queue.drain(..).collect();
                    for c in pending {
                        if let Some(e) = self.conns.get_mut(&c.id) {
                            e.dropped = true;
                            self.dirty.insert(c.id);
                        }
                    }
                }
            }
            Cmd::Info(id, reply) => {
                let info = self.conns.get(&id).map(|e| e.h);
                let info = info
                    .and_then(|h| self.ep().conn_info(h))
                    .map(|c| StreamInfo::from_conn_info(&c));
                let _ = reply.send(info);
            }
            Cmd::List(reply) => {
                let mut ids: Vec<u64> = self.conns.keys().copied().collect();
                ids.sort_unstable();
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let (h, outgoing) = {
                        let e = &self.conns[&id];
                        (e.h, e.outgoing)
                    };
                    if let Some(c) = self.ep().conn_info(h) {
                        out.push(ConnStatus {
                            id,
                            direction: if outgoing { "connect" } else { "accept" },
                            info: StreamInfo::from_conn_info(&c),
                        });
                    }
                }
                let _ = reply.send(out);
            }
            Cmd::Counters(reply) => {
                let mut v: Vec<_> = self.ep().counters().iter().collect();
                // Connections the engine still holds, closing ones (TIME_WAIT...) included.
                v.push(("EngineConnections", self.ep().connection_count() as u64));
                v.push(("StackConnections", self.conns.len() as u64));
                let _ = reply.send(v);
            }
            Cmd::Path(req, reply) => {
                let r = self.plane.path(&req).map(|spec| path_result(&spec));
                self.refresh_routes();
                self.path_events();
                let _ = reply.send(r);
            }
            Cmd::Paths(reply) => {
                let _ = reply.send(self.plane.paths());
            }
            Cmd::Stop(_) => {}
        }
    }

    /// New connections choose their source among the paths there are now.
    fn refresh_routes(&mut self) {
        let paths = self.plane.paths();
        if paths.is_empty() && self.routes.iter().all(|r| r.prefix >= 32) {
            // A loopback stack: its addresses never change.
            return;
        }
        self.routes = paths
            .iter()
            .map(|p| Route {
                local: p.local,
                peer: p.peer,
                prefix: p.prefix,
            })
            .collect();
    }

    /// Publishes the data plane's path changes (and follows them in the routes).
    fn path_events(&mut self) {
        let evs = self.plane.path_events();
        if evs.is_empty() {
            return;
        }
        self.refresh_routes();
        if self.shared.monitor.active() {
            for ev in evs {
                let v = events::path_event(self.plane.wall(ev.at), &ev);
                self.shared.monitor.publish(v);
            }
        }
    }

    /// Publishes a connection-level event.
    fn conn_event(
        &self,
        now: Instant,
        name: &str,
        id: Option<u64>,
        h: ConnHandle,
        reason: Option<&str>,
    ) {
        if !self.shared.monitor.active() {
            return;
        }
        let ep = &self.plane;
        let Some(info) = self.plane_info(h) else {
            return;
        };
        let mut m = events::conn_event(name, ep.wall(now), id, Some(info.0), info.1, &|ip| {
            self.plane.path_name(ip)
        });
        if let Some(r) = reason {
            m.insert("reason".into(), serde_json::json!(r));
        }
        self.shared.monitor.publish(Value::Object(m));
    }

    /// A connection's local and remote address.
    fn plane_info(&self, h: ConnHandle) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.ep_ref().conn_info(h).map(|i| (i.local, i.remote))
    }

    fn ep_ref(&self) -> &Endpoint {
        self.plane.endpoint_ref()
    }

    fn connect(&mut self, now: Instant, core: Arc<ConnCore>, local: Option<IpAddr>, t: Duration) {
        let remote = core.lock().remote;
        let fail = |core: &ConnCore, e: StoredError| {
            let mut st = core.lock();
            st.phase = Phase::Closed;
            st.error = Some(e);
            core.notify(&mut st);
        };
        let Some(local) = local.or_else(|| pick_local(&self.routes, remote.ip())) else {
            let fam = if remote.is_ipv4() { "IPv4" } else { "IPv6" };
            return fail(
                &core,
                StoredError::new(
                    io::ErrorKind::NetworkUnreachable,
                    format!("connection to {remote}: network unreachable (no {fam} path)"),
                ),
            );
        };
        match self.ep().connect(now, local, remote) {
            Ok(h) => {
                let id = core.id;
                self.conn_event(now, "created", Some(id), h, None);
                self.by_handle.insert(h, id);
                self.conns.insert(
                    id,
                    Entry {
                        h,
                        core,
                        outgoing: true,
                        connect_deadline: Some(now + t),
                        fin_sent: false,
                        dropped: false,
                    },
                );
            }
            Err(e) => fail(&core, engine_error(&e, &format!("connection to {remote}"))),
        }
    }

    fn events(&mut self, now: Instant) {
        while let Some(ev) = self.ep().poll_event() {
            match ev {
                Event::Incoming { port, .. } => self.accept(now, port),
                Event::Connected(h) => {
                    if let Some(&id) = self.by_handle.get(&h) {
                        let local = self.ep().conn_info(h).map(|i| i.local);
                        if let Some(e) = self.conns.get_mut(&id) {
                            e.connect_deadline = None;
                            let mut st = e.core.lock();
                            if st.phase == Phase::Connecting {
                                st.phase = Phase::Established;
                                st.local = local;
                            }
                            e.core.notify(&mut st);
                            self.dirty.insert(id);
                        }
                    }
                }
                Event::Readable(h) | Event::Writable(h) => {
                    if let Some(&id) = self.by_handle.get(&h) {
                        self.dirty.insert(id);
                    }
                }
                Event::Closed(h, reason) => {
                    let id = self.by_handle.get(&h).copied();
                    if self.shared.monitor.active() {
                        // The engine may have forgotten the connection: its addresses are
                        // the application's.
                        let addrs = id.and_then(|id| self.conns.get(&id)).map(|e| {
                            let st = e.core.lock();
                            (st.local, st.remote)
                        });
                        if let Some((local, remote)) = addrs {
                            let mut m = events::conn_event(
                                "closed",
                                self.plane.wall(now),
                                id,
                                local,
                                remote,
                                &|ip| self.plane.path_name(ip),
                            );
                            m.insert(
                                "reason".into(),
                                serde_json::json!(events::close_reason(reason)),
                            );
                            self.shared.monitor.publish(Value::Object(m));
                        }
                    }
                    if let Some(id) = id {
                        self.closed(now, id, reason);
                    }
                }
                Event::Mptcp { conn, event } => {
                    if self.shared.monitor.active() {
                        let id = self.by_handle.get(&conn).copied();
                        let addrs = self.plane_info(conn);
                        let v = events::mp_event(self.plane.wall(now), id, &event, addrs, &|ip| {
                            self.plane.path_name(ip)
                        });
                        self.shared.monitor.publish(v);
                    }
                }
                // Only transparent endpoints hold SYNs; a Stack never makes one.
                Event::PendingSyn { .. } => {}
            }
        }
    }

    fn accept(&mut self, now: Instant, port: u16) {
        while let Some(h) = self.ep().accept(port) {
            let listener = self.listeners.get(&port).cloned();
            let room = listener
                .as_ref()
                .is_some_and(|l| l.lock().queue.len() < ACCEPT_BACKLOG);
            let info = self.ep().conn_info(h);
            let (Some(l), true, Some(info)) = (listener, room, info) else {
                let _ = self.ep().abort(now, h);
                self.ep().release(now, h);
                continue;
            };
            let id = self.shared.new_id();
            self.conn_event(now, "created", Some(id), h, None);
            let core = ConnCore::new(id, Phase::Established, info.remote, self.shared.buffer);
            core.lock().local = Some(info.local);
            self.by_handle.insert(h, id);
            self.conns.insert(
                id,
                Entry {
                    h,
                    core: core.clone(),
                    outgoing: false,
                    connect_deadline: None,
                    fin_sent: false,
                    dropped: false,
                },
            );
            self.dirty.insert(id);
            let mut st = l.lock();
            st.queue.push_back(core);
            l.notify(&mut st);
        }
    }

    fn closed(&mut self, now: Instant, id: u64, reason: CloseReason) {
        // Whatever was received before the end is still readable.
        self.pump(now, id);
        let Some(e) = self.conns.get_mut(&id) else {
            return;
        };
        e.connect_deadline = None;
        let mut st = e.core.lock();
        let what = if st.phase == Phase::Connecting {
            format!("connection to {}", st.remote)
        } else {
            format!("connection with {}", st.remote)
        };
        let err = match reason {
            CloseReason::Normal => None,
            CloseReason::Refused => Some(StoredError::new(
                io::ErrorKind::ConnectionRefused,
                format!("{what}: connection refused"),
            )),
            CloseReason::Reset => Some(StoredError::new(
                io::ErrorKind::ConnectionReset,
                format!("{what}: connection reset by peer"),
            )),
            CloseReason::TimedOut => Some(StoredError::new(
                io::ErrorKind::TimedOut,
                format!("{what}: timed out"),
            )),
            CloseReason::Aborted => Some(StoredError::new(
                io::ErrorKind::ConnectionAborted,
                format!("{what}: aborted"),
            )),
        };
        if st.error.is_none() {
            st.error = err;
        }
        if reason == CloseReason::Normal && st.phase == Phase::Connecting {
            st.error = Some(StoredError::new(
                io::ErrorKind::ConnectionAborted,
                format!("{what}: closed during the handshake"),
            ));
        }
        // An orderly end can come while received bytes still wait in the engine (its buffer
        // is read as the application makes room): they stay readable, up to the FIN.
        st.rx_after_close = reason == CloseReason::Normal && !st.rx_eof && !st.rx_shut;
        st.phase = Phase::Closed;
        st.tx.clear();
        e.core.notify(&mut st);
        drop(st);
        self.tx_waiting.remove(&id);
        self.dirty.insert(id);
    }

    fn timeouts(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, e)| e.connect_deadline.is_some_and(|d| d <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(e) = self.conns.get_mut(&id) else {
                continue;
            };
            e.connect_deadline = None;
            let h = e.h;
            let core = e.core.clone();
            let _ = self.ep().abort(now, h);
            let mut st = core.lock();
            if st.phase == Phase::Connecting {
                let t = self.shared.connect_timeout;
                st.phase = Phase::Closed;
                st.error = Some(StoredError::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "connection to {}: timed out (no answer within {:.1} s)",
                        st.remote,
                        t.as_secs_f64()
                    ),
                ));
                core.notify(&mut st);
            }
        }
    }

    /// Moves bytes both ways for one connection; releases it when the application is done.
    fn pump(&mut self, now: Instant, id: u64) {
        let Some(e) = self.conns.get_mut(&id) else {
            return;
        };
        let h = e.h;
        let core = e.core.clone();
        let ep = self.plane.endpoint();
        let mut st = core.lock();
        let mut changed = false;
        if st.phase == Phase::Established {
            // Application → engine.
            while !st.tx.is_empty() {
                let (a, _) = st.tx.as_slices();
                match ep.send(h, a) {
                    Ok(0) => break,
                    Ok(n) => {
                        st.tx.drain(..n);
                        changed = true;
                    }
                    Err(EngineError::WouldBlock) => break,
                    Err(err) => {
                        let what = format!("sending to {}", st.remote);
                        st.error.get_or_insert(engine_error(&err, &what));
                        st.tx.clear();
                        changed = true;
                    }
                }
            }
            if st.tx.is_empty() && st.tx_shut && !e.fin_sent {
                e.fin_sent = true;
                let _ = ep.shutdown(now, h);
            }
        }
        if st.tx.is_empty() {
            self.tx_waiting.remove(&id);
        } else {
            self.tx_waiting.insert(id);
        }
        // Engine → application.
        if st.phase != Phase::Connecting {
            loop {
                if st.rx_eof {
                    break;
                }
                let room = if st.rx_shut {
                    CHUNK
                } else {
                    st.rx_cap.saturating_sub(st.rx.len()).min(CHUNK)
                };
                if room == 0 {
                    st.rx_starved = true;
                    break;
                }
                match ep.recv(h, &mut self.scratch[..room]) {
                    Ok(0) => {
                        st.rx_eof = true;
                        st.rx_after_close = false;
                        changed = true;
                    }
                    Ok(n) => {
                        if !st.rx_shut {
                            st.rx.extend(&self.scratch[..n]);
                            changed = true;
                        }
                    }
                    Err(EngineError::WouldBlock) => break,
                    Err(_) => {
                        // Closed: the Closed event says why; nothing more will come.
                        if st.rx_after_close {
                            st.rx_after_close = false;
                            changed = true;
                        }
                        break;
                    }
                }
            }
        }
        if changed {
            core.notify(&mut st);
        }
        // Released by the application: hand the connection back to the engine once every
        // queued byte is in its send buffer (or nothing can be sent any more).
        if e.dropped && (st.tx.is_empty() || st.phase != Phase::Established || st.error.is_some()) {
            let unread = !st.rx.is_empty() && !st.rx_shut;
            drop(st);
            if unread {
                let _ = ep.abort(now, h);
            }
            ep.release(now, h);
            self.conns.remove(&id);
            self.by_handle.remove(&h);
            self.tx_waiting.remove(&id);
        }
    }

    /// Stop: every connection is shut down (in order) or reset, and every listener closed.
    fn close_all(&mut self, now: Instant, abort: bool) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            let (h, core) = {
                let e = &self.conns[&id];
                (e.h, e.core.clone())
            };
            if abort {
                let _ = self.ep().abort(now, h);
            } else {
                let _ = self.ep().shutdown(now, h);
            }
            self.ep().release(now, h);
            let mut st = core.lock();
            st.phase = Phase::Closed;
            st.error.get_or_insert_with(|| {
                StoredError::new(io::ErrorKind::ConnectionAborted, "braid stack stopped")
            });
            core.notify(&mut st);
        }
        self.conns.clear();
        self.by_handle.clear();
        self.tx_waiting.clear();
        for l in self.listeners.values() {
            let mut st = l.lock();
            st.queue.clear();
            st.error = Some(StoredError::new(
                io::ErrorKind::ConnectionAborted,
                "braid stack stopped",
            ));
            l.notify(&mut st);
        }
        self.listeners.clear();
    }
}
