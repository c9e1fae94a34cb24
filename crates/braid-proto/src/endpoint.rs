//! The endpoint: one host's TCP stack. Demultiplexes packets to connections, owns listeners,
//! answers segments for closed ports with RST, and hands out what to transmit and when to wake.

use crate::counters::Counters;
use crate::hash::KeyedState;
use crate::mptcp::{MptcpConfig, MptcpInfo};
use crate::rng::Rng;
use crate::tcp::tcb::{ev, ChallengeLimiter, Ctx, End, Tcb};
use crate::tcp::{TcpConfig, TcpState};
use crate::time::Instant;
use braid_wire::{IpRepr, TcpFlags, TcpRepr};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A connection, as the application names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnHandle(pub u64);

/// Endpoint settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointConfig {
    pub tcp: TcpConfig,
    /// Connections waiting in `accept` per listening port; SYNs beyond it are dropped and counted.
    pub backlog: usize,
    /// Upper bound on connections (all states) the endpoint keeps; beyond it SYNs are refused.
    pub max_connections: usize,
    /// Multipath TCP (RFC 8684).
    pub mptcp: MptcpConfig,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            tcp: TcpConfig::default(),
            backlog: 128,
            max_connections: 4096,
            mptcp: MptcpConfig::default(),
        }
    }
}

/// Errors from application calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such connection (never existed, or already released).
    UnknownConnection,
    /// Nothing can be done now; try after the next event.
    WouldBlock,
    /// The connection is not in a state that allows this call (e.g. send after shutdown).
    InvalidState(TcpState),
    /// The connection was reset by the peer.
    ConnectionReset,
    /// The connection was refused (RST in reply to our SYN).
    ConnectionRefused,
    /// The connection timed out (retransmissions exhausted, or keepalive unanswered).
    TimedOut,
    /// A port is already listening / an address is already in use.
    AddrInUse,
    /// The local address is not one of this endpoint's addresses, or the families differ.
    AddrNotAvailable,
    /// A configuration value was refused; the string names it.
    InvalidConfig(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::UnknownConnection => write!(f, "unknown connection"),
            Error::WouldBlock => write!(f, "operation would block"),
            Error::InvalidState(s) => write!(f, "not allowed in state {s:?}"),
            Error::ConnectionReset => write!(f, "connection reset by peer"),
            Error::ConnectionRefused => write!(f, "connection refused"),
            Error::TimedOut => write!(f, "connection timed out"),
            Error::AddrInUse => write!(f, "address in use"),
            Error::AddrNotAvailable => write!(f, "address not available"),
            Error::InvalidConfig(s) => write!(f, "invalid configuration: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides closed in order.
    Normal,
    Reset,
    Refused,
    TimedOut,
    /// Closed locally with `abort`.
    Aborted,
}

/// What the application should know about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An active open completed.
    Connected(ConnHandle),
    /// A passive open completed; the connection is waiting in `accept(port)`.
    Incoming { port: u16, conn: ConnHandle },
    /// New in-order data (or the peer's FIN) can be read.
    Readable(ConnHandle),
    /// Send buffer space became free.
    Writable(ConnHandle),
    /// The connection is gone; its handle stays valid for `conn_info` until `release`.
    Closed(ConnHandle, CloseReason),
}

/// One packet to send: the IP packet is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub len: usize,
}

/// What a user or a report wants to know about a connection.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnInfo {
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Payload bytes put on the wire, retransmissions included.
    pub bytes_sent: u64,
    pub bytes_retransmitted: u64,
    /// Payload bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// In-order payload bytes received.
    pub bytes_received: u64,
    pub segments_sent: u64,
    pub segments_received: u64,
    pub srtt: Option<Duration>,
    pub rto: Duration,
    pub cwnd: u32,
    pub ssthresh: u32,
    /// The peer's advertised window, scaled.
    pub peer_window: u32,
    pub mss: u16,
    pub cc: &'static str,
    /// The MPTCP side; `None` for a connection that never tried MPTCP.
    pub mptcp: Option<MptcpInfo>,
}

/// Most RSTs waiting to be sent for segments that match no connection; beyond it they are dropped.
const MAX_PENDING_RSTS: usize = 64;
/// Ephemeral port range (Linux's default `ip_local_port_range`).
const EPHEMERAL: std::ops::Range<u16> = 32768..61000;

#[derive(Debug, Default)]
struct Listener {
    accept_queue: VecDeque<ConnHandle>,
    /// Connections of this listener in SYN_RECEIVED.
    half_open: usize,
}

#[derive(Debug)]
struct Conn {
    tcb: Tcb,
    /// The listening port it came from, until it is accepted.
    listener: Option<u16>,
    /// The application knows this handle (active open, or accepted / announced).
    visible: bool,
    /// In the transmit queue.
    queued: bool,
}

/// A RST for a segment that matched no connection (RFC 9293 §3.10.7.1).
#[derive(Clone, Copy, Debug)]
struct PendingRst {
    local: SocketAddr,
    remote: SocketAddr,
    seq: u32,
    ack: u32,
    with_ack: bool,
}

/// One host's TCP stack.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    counters: Counters,
    rng: Rng,
    local_addrs: Vec<IpAddr>,
    listeners: HashMap<u16, Listener>,
    conns: HashMap<ConnHandle, Conn, KeyedState>,
    demux: HashMap<(SocketAddr, SocketAddr), ConnHandle, KeyedState>,
    next_handle: u64,
    events: VecDeque<Event>,
    rsts: VecDeque<PendingRst>,
    tx_queue: VecDeque<ConnHandle>,
    limiter: ChallengeLimiter,
}

impl Endpoint {
    /// `seed` drives initial sequence numbers, timestamp offsets and ephemeral ports (public
    /// randomness; RFC 6528 asks ISNs to be unpredictable: the driver seeds from a secure source).
    pub fn new(config: EndpointConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let hash_key = KeyedState::new(rng.next_u64(), rng.next_u64());
        Endpoint {
            config,
            counters: Counters::default(),
            rng,
            local_addrs: Vec::new(),
            listeners: HashMap::new(),
            conns: HashMap::with_hasher(hash_key),
            demux: HashMap::with_hasher(hash_key),
            next_handle: 1,
            events: VecDeque::new(),
            rsts: VecDeque::new(),
            tx_queue: VecDeque::new(),
            limiter: ChallengeLimiter::default(),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Checks a configuration; the error names the bad field.
    pub fn validate_config(config: &EndpointConfig) -> Result<(), Error> {
        let t = &config.tcp;
        if t.mss < 64 {
            return Err(Error::InvalidConfig(format!("mss {} is below 64", t.mss)));
        }
        if t.send_buffer < 2 * t.mss as usize {
            return Err(Error::InvalidConfig(format!(
                "send buffer {} is smaller than two segments",
                t.send_buffer
            )));
        }
        if t.recv_buffer < 2 * t.mss as usize || t.recv_buffer > (65535usize << 14) {
            return Err(Error::InvalidConfig(format!(
                "receive buffer {} must be between two segments and 1 GiB",
                t.recv_buffer
            )));
        }
        if t.min_rto < Duration::from_millis(200) {
            return Err(Error::InvalidConfig(format!(
                "min_rto {:?} is below Linux's 200 ms floor",
                t.min_rto
            )));
        }
        if crate::tcp::cc::new_cc(&t.cc, t.mss as u32).is_none() {
            return Err(Error::InvalidConfig(format!(
                "unknown congestion control {:?} (known: {})",
                t.cc,
                crate::tcp::cc::CC_NAMES.join(", ")
            )));
        }
        Ok(())
    }

    /// Adds an address this endpoint owns (packets to other addresses are dropped and counted).
    pub fn add_local_addr(&mut self, addr: IpAddr) {
        if !self.local_addrs.contains(&addr) {
            self.local_addrs.push(addr);
        }
    }

    pub fn listen(&mut self, port: u16) -> Result<(), Error> {
        if port == 0 || self.listeners.contains_key(&port) {
            return Err(Error::AddrInUse);
        }
        self.listeners.insert(port, Listener::default());
        Ok(())
    }

    /// Takes the next established connection waiting on `port`.
    pub fn accept(&mut self, port: u16) -> Option<ConnHandle> {
        let h = self.listeners.get_mut(&port)?.accept_queue.pop_front()?;
        if let Some(c) = self.conns.get_mut(&h) {
            c.listener = None;
            c.visible = true;
        }
        Some(h)
    }

    /// Active open from `local` (an address of this endpoint; an ephemeral port is chosen) to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        local: IpAddr,
        remote: SocketAddr,
    ) -> Result<ConnHandle, Error> {
        if !self.local_addrs.contains(&local) || local.is_ipv4() != remote.is_ipv4() {
            return Err(Error::AddrNotAvailable);
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(Error::AddrInUse);
        }
        let span = (EPHEMERAL.end - EPHEMERAL.start) as u64;
        let first = self.rng.below(span) as u16;
        let mut chosen = None;
        for i in 0..span as u16 {
            let port = EPHEMERAL.start + (first + i) % span as u16;
            let l = SocketAddr::new(local, port);
            if !self.demux.contains_key(&(l, remote)) && !self.listeners.contains_key(&port) {
                chosen = Some(l);
                break;
            }
        }
        let l = chosen.ok_or(Error::AddrInUse)?;
        let (iss, ts) = (self.rng.next_u32(), self.rng.next_u32());
        let tcb = Tcb::connect(&self.config.tcp, l, remote, iss, ts, now)
            .ok_or(Error::AddrNotAvailable)?;
        self.counters.active_opens += 1;
        let h = self.insert(tcb, None, true);
        Ok(h)
    }

    fn insert(&mut self, tcb: Tcb, listener: Option<u16>, visible: bool) -> ConnHandle {
        let h = ConnHandle(self.next_handle);
        self.next_handle += 1;
        self.demux.insert((tcb.local, tcb.remote), h);
        self.conns.insert(
            h,
            Conn {
                tcb,
                listener,
                visible,
                queued: false,
            },
        );
        self.queue_tx(h);
        h
    }

    fn queue_tx(&mut self, h: ConnHandle) {
        if let Some(c) = self.conns.get_mut(&h) {
            if !c.queued {
                c.queued = true;
                self.tx_queue.push_back(h);
            }
        }
    }

    /// One IP packet from the network.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.counters.packets_in += 1;
        let (ip, seg) = match braid_wire::parse_ip_tcp(packet) {
            Ok(v) => v,
            Err(e) => {
                self.counters.bad_packets += 1;
                if e == braid_wire::Error::Checksum {
                    self.counters.bad_checksum += 1;
                }
                return;
            }
        };
        if !self.local_addrs.contains(&ip.dst()) {
            self.counters.not_for_us += 1;
            return;
        }
        if seg.src_port == 0 || seg.dst_port == 0 {
            self.counters.bad_packets += 1;
            return;
        }
        let local = SocketAddr::new(ip.dst(), seg.dst_port);
        let remote = SocketAddr::new(ip.src(), seg.src_port);
        if let Some(&h) = self.demux.get(&(local, remote)) {
            if self.time_wait_reuse(h, &seg) {
                self.remove(h);
            } else {
                let conn = self
                    .conns
                    .get_mut(&h)
                    .expect("demux points at a live connection");
                let mut ctx = Ctx {
                    now,
                    counters: &mut self.counters,
                    limiter: &mut self.limiter,
                };
                conn.tcb.on_segment(&mut ctx, &seg);
                self.after_tcb(h, now);
                return;
            }
        }
        self.no_connection(now, &ip, &seg, local, remote);
    }

    /// RFC 6191 spirit: a SYN for a pair in TIME_WAIT with a higher sequence number (or newer
    /// timestamp) starts a new connection when someone listens.
    fn time_wait_reuse(&self, h: ConnHandle, seg: &TcpRepr<'_>) -> bool {
        let Some(c) = self.conns.get(&h) else {
            return false;
        };
        c.tcb.state == TcpState::TimeWait
            && seg.flags.syn()
            && !seg.flags.ack()
            && !seg.flags.rst()
            && self.listeners.contains_key(&seg.dst_port)
            && c.tcb.accepts_new_syn(seg)
    }

    /// A segment for no connection: listeners take SYNs, the rest gets a RST (RFC 9293 §3.10.7.1-2).
    fn no_connection(
        &mut self,
        now: Instant,
        _ip: &IpRepr,
        seg: &TcpRepr<'_>,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        let f = seg.flags;
        if f.rst() {
            return;
        }
        if let Some(l) = self.listeners.get(&seg.dst_port) {
            if f.ack() {
                self.queue_rst(local, remote, seg.ack, 0, false);
                return;
            }
            if !f.syn() {
                return;
            }
            if l.half_open + l.accept_queue.len() >= self.config.backlog
                || self.conns.len() >= self.config.max_connections
            {
                self.counters.listen_overflows += 1;
                return;
            }
            let (iss, ts) = (self.rng.next_u32(), self.rng.next_u32());
            let Some(tcb) = Tcb::accept_syn(&self.config.tcp, local, remote, iss, ts, now, seg)
            else {
                return;
            };
            self.counters.passive_opens += 1;
            if let Some(l) = self.listeners.get_mut(&seg.dst_port) {
                l.half_open += 1;
            }
            self.insert(tcb, Some(seg.dst_port), false);
            return;
        }
        self.counters.no_socket += 1;
        let seg_len = seg.payload.len() as u32 + f.syn() as u32 + f.fin() as u32;
        if f.ack() {
            self.queue_rst(local, remote, seg.ack, 0, false);
        } else {
            self.queue_rst(local, remote, 0, seg.seq.wrapping_add(seg_len), true);
        }
    }

    fn queue_rst(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
        ack: u32,
        with_ack: bool,
    ) {
        if self.rsts.len() >= MAX_PENDING_RSTS {
            self.counters.rst_dropped += 1;
            return;
        }
        self.rsts.push_back(PendingRst {
            local,
            remote,
            seq,
            ack,
            with_ack,
        });
    }

    /// Turns a TCB's news into events, queues it for transmission, forgets it when done.
    fn after_tcb(&mut self, h: ConnHandle, now: Instant) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        let evs = std::mem::take(&mut c.tcb.events);
        let closed = c.tcb.state == TcpState::Closed;
        if evs & ev::ESTABLISHED_PASSIVE != 0 {
            if let Some(port) = c.listener {
                if let Some(l) = self.listeners.get_mut(&port) {
                    l.half_open = l.half_open.saturating_sub(1);
                    l.accept_queue.push_back(h);
                }
                c.visible = true;
                self.events.push_back(Event::Incoming { port, conn: h });
            }
        }
        let c = self.conns.get_mut(&h).expect("still there");
        if c.visible {
            if evs & ev::CONNECTED != 0 {
                self.events.push_back(Event::Connected(h));
            }
            if evs & ev::READABLE != 0 {
                self.events.push_back(Event::Readable(h));
            }
            if evs & ev::WRITABLE != 0 {
                self.events.push_back(Event::Writable(h));
            }
        }
        if closed {
            let end = c.tcb.end.unwrap_or(End::Normal);
            let visible = c.visible;
            let released = c.tcb.released;
            self.demux.remove(&(c.tcb.local, c.tcb.remote));
            if !visible {
                // Never reached the application: a failed passive open.
                if let Some(port) = c.listener {
                    if let Some(l) = self.listeners.get_mut(&port) {
                        l.half_open = l.half_open.saturating_sub(1);
                    }
                }
            } else if evs & ev::CLOSED != 0 {
                self.events.push_back(Event::Closed(h, close_reason(end)));
            }
            // It may still have a RST to send; keep it queued until the queue drains it.
            self.queue_tx(h);
            if !visible || released {
                self.reap_later(h);
            }
            let _ = now;
            return;
        }
        self.queue_tx(h);
    }

    fn reap_later(&mut self, h: ConnHandle) {
        if let Some(c) = self.conns.get_mut(&h) {
            c.tcb.released = true;
        }
    }

    fn remove(&mut self, h: ConnHandle) {
        if let Some(c) = self.conns.remove(&h) {
            if self.demux.get(&(c.tcb.local, c.tcb.remote)) == Some(&h) {
                self.demux.remove(&(c.tcb.local, c.tcb.remote));
            }
            if let Some(port) = c.listener {
                if let Some(l) = self.listeners.get_mut(&port) {
                    if c.tcb.state == TcpState::SynReceived {
                        l.half_open = l.half_open.saturating_sub(1);
                    }
                    l.accept_queue.retain(|&x| x != h);
                }
            }
        }
    }

    /// Runs every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ConnHandle> = self
            .conns
            .iter()
            .filter(|(_, c)| c.tcb.next_timeout().is_some_and(|t| t <= now))
            .map(|(&h, _)| h)
            .collect();
        for h in due {
            if let Some(c) = self.conns.get_mut(&h) {
                let mut ctx = Ctx {
                    now,
                    counters: &mut self.counters,
                    limiter: &mut self.limiter,
                };
                c.tcb.on_timeout(&mut ctx);
                self.after_tcb(h, now);
            }
        }
    }

    /// The earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| c.tcb.next_timeout())
            .min()
    }

    /// Writes the next IP packet to send into `buf` (cleared first).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if let Some(r) = self.rsts.pop_front() {
            let seg = TcpRepr {
                src_port: r.local.port(),
                dst_port: r.remote.port(),
                seq: r.seq,
                ack: r.ack,
                flags: TcpFlags(if r.with_ack {
                    TcpFlags::RST | TcpFlags::ACK
                } else {
                    TcpFlags::RST
                }),
                ..Default::default()
            };
            if let Some(ip) = IpRepr::new_tcp(r.local.ip(), r.remote.ip(), 0) {
                let len = braid_wire::emit_ip_tcp(&ip, &seg, buf);
                self.counters.rst_sent += 1;
                self.counters.packets_out += 1;
                return Some(Transmit {
                    src: r.local.ip(),
                    dst: r.remote.ip(),
                    len,
                });
            }
        }
        while let Some(&h) = self.tx_queue.front() {
            let Some(c) = self.conns.get_mut(&h) else {
                self.tx_queue.pop_front();
                continue;
            };
            if c.tcb.poll_transmit(now, buf) {
                self.counters.packets_out += 1;
                if buf.len() > 33 && buf[0] >> 4 == 4 && buf[33] & TcpFlags::RST != 0 {
                    self.counters.rst_sent += 1;
                }
                return Some(Transmit {
                    src: c.tcb.local.ip(),
                    dst: c.tcb.remote.ip(),
                    len: buf.len(),
                });
            }
            c.queued = false;
            self.tx_queue.pop_front();
            if c.tcb.state == TcpState::Closed && c.tcb.released {
                self.remove(h);
            }
        }
        None
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn conn_mut(&mut self, conn: ConnHandle) -> Result<&mut Conn, Error> {
        match self.conns.get_mut(&conn) {
            Some(c) if c.visible => Ok(c),
            _ => Err(Error::UnknownConnection),
        }
    }

    /// Queues bytes for sending; returns how many fit in the send buffer (WouldBlock if none).
    pub fn send(&mut self, conn: ConnHandle, data: &[u8]) -> Result<usize, Error> {
        let c = self.conn_mut(conn)?;
        if !c.tcb.can_send() {
            return Err(end_error(&c.tcb));
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = c.tcb.send(data);
        if n == 0 {
            return Err(Error::WouldBlock);
        }
        self.queue_tx(conn);
        Ok(n)
    }

    /// Reads in-order bytes. `Ok(0)` (with a non-empty `buf`) means the peer closed and all was read.
    pub fn recv(&mut self, conn: ConnHandle, buf: &mut [u8]) -> Result<usize, Error> {
        let c = self.conn_mut(conn)?;
        match c.tcb.recv(buf) {
            Some(n) => {
                self.queue_tx(conn);
                Ok(n)
            }
            None if c.tcb.state == TcpState::Closed => Err(end_error(&c.tcb)),
            None => Err(Error::WouldBlock),
        }
    }

    /// No more data will be sent: a FIN follows the queued bytes.
    pub fn shutdown(&mut self, now: Instant, conn: ConnHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        if c.tcb.state == TcpState::Closed {
            return Err(end_error(&c.tcb));
        }
        c.tcb.shutdown(now);
        self.after_tcb(conn, now);
        Ok(())
    }

    /// Resets the connection (RST) and forgets its data.
    pub fn abort(&mut self, now: Instant, conn: ConnHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        c.tcb.abort();
        self.after_tcb(conn, now);
        Ok(())
    }

    /// Forgets the handle. A connection still closing in order finishes on its own; one that
    /// never shut down is shut down now (like `close(2)` on a socket).
    pub fn release(&mut self, now: Instant, conn: ConnHandle) {
        let Ok(c) = self.conn_mut(conn) else { return };
        if c.tcb.readable() > 0 && c.tcb.state != TcpState::Closed {
            // RFC 9293 §3.10.4 / Linux: closing with unread data resets the connection.
            c.tcb.abort();
        } else {
            c.tcb.shutdown(now);
        }
        c.tcb.on_released(now);
        self.after_tcb(conn, now);
    }

    pub fn conn_info(&self, conn: ConnHandle) -> Option<ConnInfo> {
        let c = self.conns.get(&conn)?;
        let t = &c.tcb;
        Some(ConnInfo {
            state: t.state,
            local: t.local,
            remote: t.remote,
            bytes_sent: t.stats.bytes_sent,
            bytes_retransmitted: t.stats.bytes_retransmitted,
            bytes_acked: t.stats.bytes_acked,
            bytes_received: t.stats.bytes_received,
            segments_sent: t.stats.segments_sent,
            segments_received: t.stats.segments_received,
            srtt: t.srtt(),
            rto: t.rto(),
            cwnd: t.cwnd(),
            ssthresh: t.ssthresh(),
            peer_window: t.peer_window(),
            mss: t.smss() as u16,
            cc: t.cc_name(),
            mptcp: None,
        })
    }

    /// Bytes the application may write now without `WouldBlock`.
    pub fn send_capacity(&self, conn: ConnHandle) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.tcb.send_free())
    }

    /// Number of connections the endpoint holds (all states).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

fn close_reason(e: End) -> CloseReason {
    match e {
        End::Normal => CloseReason::Normal,
        End::Reset => CloseReason::Reset,
        End::Refused => CloseReason::Refused,
        End::TimedOut => CloseReason::TimedOut,
        End::Aborted => CloseReason::Aborted,
    }
}

fn end_error(t: &Tcb) -> Error {
    match t.end {
        Some(End::Reset) => Error::ConnectionReset,
        Some(End::Refused) => Error::ConnectionRefused,
        Some(End::TimedOut) => Error::TimedOut,
        _ => Error::InvalidState(t.state),
    }
}
