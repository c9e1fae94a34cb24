//! The endpoint: one host's TCP stack. Demultiplexes packets to connections, owns listeners,
//! answers segments for closed ports with RST, and hands out what to transmit and when to wake.

use crate::counters::Counters;
use crate::hash::KeyedState;
use crate::mptcp::conn::{MpLevel, Role, SubflowMp};
use crate::mptcp::crypto::{token_and_idsn, KeySource};
use crate::mptcp::{MptcpConfig, MptcpInfo, SubflowInfo};
use crate::rng::Rng;
use crate::tcp::tcb::{ev, ChallengeLimiter, Ctx, End, Tcb};
use crate::tcp::{TcpConfig, TcpState};
use crate::time::Instant;
use braid_wire::mptcp::{dss_checksum_ok, MptcpOption, ResetReason};
use braid_wire::{IpRepr, TcpFlags, TcpRepr};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

mod transparent;
pub use transparent::PendingId;

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
    /// A transparent endpoint holds a SYN from `remote` to `local` (the original destination)
    /// until `accept_pending`, `refuse_pending` or `forget_pending` (see `listen_transparent`).
    PendingSyn {
        id: PendingId,
        local: SocketAddr,
        remote: SocketAddr,
    },
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
    /// Bytes in flight (all subflows).
    pub inflight: u64,
    /// Bytes the application wrote that the peer has not acknowledged yet (at the MPTCP data
    /// level for MPTCP).
    pub send_queue: u64,
    /// Bytes received in order that the application has not read yet.
    pub recv_queue: u64,
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

/// One connection as the application names it: its subflows (one for plain TCP) and, for
/// MPTCP, the connection level.
#[derive(Debug)]
struct Conn {
    /// Subflow 0 is the initial one; closed subflows stay for `conn_info`.
    subs: Vec<Tcb>,
    /// The MPTCP connection level (RFC 8684); `None` for plain TCP.
    level: Option<Box<MpLevel>>,
    /// Subflow `poll_transmit` asks first (fair turns between subflows).
    tx_next: usize,
    /// The application was told the connection closed (MPTCP).
    closed_told: bool,
    /// The listening port it came from, until it is accepted.
    listener: Option<u16>,
    /// The application knows this handle (active open, or accepted / announced).
    visible: bool,
    /// In the transmit queue.
    queued: bool,
}

impl Conn {
    fn tcb(&self) -> &Tcb {
        &self.subs[0]
    }
    fn tcb_mut(&mut self) -> &mut Tcb {
        &mut self.subs[0]
    }
    /// Every subflow is closed.
    fn all_closed(&self) -> bool {
        self.subs.iter().all(|t| t.state == TcpState::Closed)
    }
    /// The state the application sees: the first live subflow's (subflow 0's once all closed).
    fn state(&self) -> TcpState {
        self.subs
            .iter()
            .map(|t| t.state)
            .find(|&s| s != TcpState::Closed)
            .unwrap_or(TcpState::Closed)
    }
}

/// Calls `f` on subflow `i` with the connection level lent to its TCB (a pointer swap), so the
/// TCB's MPTCP hooks reach both levels.
fn lend<R>(c: &mut Conn, i: usize, f: impl FnOnce(&mut Tcb) -> R) -> R {
    let t = &mut c.subs[i];
    t.level = c.level.take();
    let r = f(t);
    c.level = t.level.take();
    r
}

/// The packet scheduler (RFC 8684 leaves the choice to the implementation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sched {
    /// Lowest smoothed RTT among subflows with congestion window room (Linux's default).
    MinRtt,
    /// Subflows in turn.
    RoundRobin,
    /// Every chunk on every subflow.
    Redundant,
}

/// A RST for a segment that matched no connection (RFC 9293 §3.10.7.1).
#[derive(Clone, Copy, Debug)]
struct PendingRst {
    local: SocketAddr,
    remote: SocketAddr,
    seq: u32,
    ack: u32,
    with_ack: bool,
    /// MP_TCPRST reason to carry (RFC 8684 §3.6).
    mp_reason: Option<ResetReason>,
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
    /// (local, remote) of a subflow -> its connection and subflow index.
    demux: HashMap<(SocketAddr, SocketAddr), (ConnHandle, usize), KeyedState>,
    next_handle: u64,
    events: VecDeque<Event>,
    rsts: VecDeque<PendingRst>,
    tx_queue: VecDeque<ConnHandle>,
    limiter: ChallengeLimiter,
    /// Secret randomness for MPTCP keys, apart from the public `rng`.
    keys: KeySource,
    /// Local MPTCP tokens of live connections (RFC 8684 §3.2: MP_JOIN names the connection).
    tokens: HashMap<u32, ConnHandle, KeyedState>,
    sched: Sched,
    /// The client path manager opens subflows ("fullmesh"); "none" opens nothing.
    fullmesh: bool,
    /// Copy space between subflow and connection-level buffers.
    scratch: Vec<u8>,
    /// SYNs held for the application (`listen_transparent`); `None`: a normal endpoint.
    transparent: Option<Box<transparent::Transparent>>,
}

/// Shortest wait for the infinite mapping that answers our MP_FAIL (else 8 RTOs).
const FAIL_ANSWER_MIN_WAIT: Duration = Duration::from_secs(2);

/// Mixed into the seed for the deterministic key source of [`Endpoint::new`].
const KEY_SEED_MIX: u64 = 0x6d70_7463_705f_6b65;

impl Endpoint {
    /// `seed` drives initial sequence numbers, timestamp offsets and ephemeral ports (public
    /// randomness; RFC 6528 asks ISNs to be unpredictable: the driver seeds from a secure source).
    ///
    /// MPTCP keys come from `KeySource::deterministic(seed ^ constant)` so that the simulator is
    /// reproducible; such keys are predictable: real drivers must use
    /// [`Endpoint::with_key_source`] with `KeySource::os()`.
    pub fn new(config: EndpointConfig, seed: u64) -> Self {
        Self::with_key_source(config, seed, KeySource::deterministic(seed ^ KEY_SEED_MIX))
    }

    /// Like [`Endpoint::new`], with MPTCP keys (RFC 8684 §3.1) drawn from `keys`.
    pub fn with_key_source(config: EndpointConfig, seed: u64, keys: KeySource) -> Self {
        let mut rng = Rng::new(seed);
        let hash_key = KeyedState::new(rng.next_u64(), rng.next_u64());
        Endpoint {
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
            keys,
            tokens: HashMap::with_hasher(hash_key),
            sched: match config.mptcp.scheduler.as_str() {
                "roundrobin" => Sched::RoundRobin,
                "redundant" => Sched::Redundant,
                _ => Sched::MinRtt,
            },
            fullmesh: config.mptcp.path_manager != "none",
            scratch: vec![0; 64 << 10],
            transparent: None,
            config,
        }
    }

    /// A fresh MPTCP key whose token no live connection uses (redrawn on collision).
    fn fresh_key(&mut self) -> u64 {
        loop {
            let key = self.keys.next_key();
            if !self.tokens.contains_key(&token_and_idsn(key).0) {
                return key;
            }
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
        if !["minrtt", "roundrobin", "redundant"].contains(&config.mptcp.scheduler.as_str()) {
            return Err(Error::InvalidConfig(format!(
                "unknown scheduler {:?} (known: minrtt, roundrobin, redundant)",
                config.mptcp.scheduler
            )));
        }
        if !["fullmesh", "none"].contains(&config.mptcp.path_manager.as_str()) {
            return Err(Error::InvalidConfig(format!(
                "unknown path manager {:?} (known: fullmesh, none)",
                config.mptcp.path_manager
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
        let l = self.pick_port(local, remote).ok_or(Error::AddrInUse)?;
        let (iss, ts) = initial_seq(&mut self.rng, &self.config.tcp);
        let mut tcb = Tcb::connect(&self.config.tcp, l, remote, iss, ts, now)
            .ok_or(Error::AddrNotAvailable)?;
        self.counters.active_opens += 1;
        let mut level = None;
        if self.config.mptcp.enabled {
            let key = self.fresh_key();
            tcb.mp = Some(Box::new(SubflowMp::initial()));
            level = Some(Box::new(MpLevel::client(
                key,
                &self.config.mptcp,
                self.config.tcp.send_buffer,
                self.config.tcp.recv_buffer,
            )));
            self.counters.mp_capable_syn_tx += 1;
        }
        let h = self.insert(tcb, level, None, true);
        Ok(h)
    }

    /// A free ephemeral port on `local` for a connection to `remote`.
    fn pick_port(&mut self, local: IpAddr, remote: SocketAddr) -> Option<SocketAddr> {
        let span = (EPHEMERAL.end - EPHEMERAL.start) as u64;
        let first = self.rng.below(span) as u16;
        for i in 0..span as u16 {
            let port = EPHEMERAL.start + (first + i) % span as u16;
            let l = SocketAddr::new(local, port);
            if !self.demux.contains_key(&(l, remote)) && !self.listeners.contains_key(&port) {
                return Some(l);
            }
        }
        None
    }

    fn insert(
        &mut self,
        tcb: Tcb,
        level: Option<Box<MpLevel>>,
        listener: Option<u16>,
        visible: bool,
    ) -> ConnHandle {
        let h = ConnHandle(self.next_handle);
        self.next_handle += 1;
        self.demux.insert((tcb.local, tcb.remote), (h, 0));
        if let Some(lv) = level.as_deref() {
            self.tokens.insert(lv.local_token, h);
        }
        self.conns.insert(
            h,
            Conn {
                subs: vec![tcb],
                level,
                tx_next: 0,
                closed_told: false,
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
        if !self.local_addrs.contains(&ip.dst()) && self.transparent.is_none() {
            self.counters.not_for_us += 1;
            return;
        }
        if seg.src_port == 0 || seg.dst_port == 0 {
            self.counters.bad_packets += 1;
            return;
        }
        let local = SocketAddr::new(ip.dst(), seg.dst_port);
        let remote = SocketAddr::new(ip.src(), seg.src_port);
        if let Some(&(h, i)) = self.demux.get(&(local, remote)) {
            if self.time_wait_reuse(h, i, &seg) {
                self.remove_subflow(h, i);
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
                lend(conn, i, |t| t.on_segment(&mut ctx, &seg));
                self.after_tcb(h, now);
                return;
            }
        }
        self.no_connection(now, &ip, &seg, local, remote);
    }

    /// RFC 6191 spirit: a SYN for a pair in TIME_WAIT with a higher sequence number (or newer
    /// timestamp) starts a new connection when someone listens.
    fn time_wait_reuse(&self, h: ConnHandle, i: usize, seg: &TcpRepr<'_>) -> bool {
        let Some(t) = self.conns.get(&h).and_then(|c| c.subs.get(i)) else {
            return false;
        };
        t.state == TcpState::TimeWait
            && seg.flags.syn()
            && !seg.flags.ack()
            && !seg.flags.rst()
            && self.listeners.contains_key(&seg.dst_port)
            && t.accepts_new_syn(seg)
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
            let mut mpc = None;
            if self.config.mptcp.enabled {
                for o in MptcpOption::parse_list(seg.options.mptcp).flatten() {
                    match o {
                        MptcpOption::MpCapable(m) if mpc.is_none() => mpc = Some(m),
                        MptcpOption::MpJoinSyn {
                            backup,
                            addr_id,
                            token,
                            nonce,
                        } => {
                            self.accept_join(
                                now, local, remote, seg, token, backup, addr_id, nonce,
                            );
                            return;
                        }
                        _ => {}
                    }
                }
            }
            if l.half_open + l.accept_queue.len() >= self.config.backlog
                || self.conns.len() >= self.config.max_connections
            {
                self.counters.listen_overflows += 1;
                return;
            }
            let (iss, ts) = initial_seq(&mut self.rng, &self.config.tcp);
            let Some(mut tcb) = Tcb::accept_syn(&self.config.tcp, local, remote, iss, ts, now, seg)
            else {
                return;
            };
            self.counters.passive_opens += 1;
            let mut level = None;
            if let Some(m) = mpc {
                self.counters.mp_capable_syn_rx += 1;
                // RFC 8684 §3.1: only version 1 is spoken; another version gets plain TCP.
                if m.version == braid_wire::mptcp::MPTCP_VERSION {
                    let key = self.fresh_key();
                    tcb.set_mptcp(SubflowMp::initial(), true);
                    level = Some(Box::new(MpLevel::server(
                        key,
                        &self.config.mptcp,
                        &m,
                        self.config.tcp.send_buffer,
                        self.config.tcp.recv_buffer,
                    )));
                }
            }
            if let Some(l) = self.listeners.get_mut(&seg.dst_port) {
                l.half_open += 1;
            }
            self.insert(tcb, level, Some(seg.dst_port), false);
            return;
        }
        if f.syn() && !f.ack() && self.hold_syn(_ip, seg, local, remote) {
            return;
        }
        if self.config.mptcp.enabled && f.syn() && !f.ack() {
            for o in MptcpOption::parse_list(seg.options.mptcp).flatten() {
                if let MptcpOption::MpJoinSyn {
                    backup,
                    addr_id,
                    token,
                    nonce,
                } = o
                {
                    self.accept_join(now, local, remote, seg, token, backup, addr_id, nonce);
                    return;
                }
            }
        }
        self.counters.no_socket += 1;
        let seg_len = seg.payload.len() as u32 + f.syn() as u32 + f.fin() as u32;
        if f.ack() {
            self.queue_rst(local, remote, seg.ack, 0, false);
        } else {
            self.queue_rst(local, remote, 0, seg.seq.wrapping_add(seg_len), true);
        }
    }

    /// An MP_JOIN SYN (RFC 8684 §3.2): the token names the connection; unknown tokens, and
    /// connections that cannot take another subflow, are refused with RST + MP_TCPRST (the
    /// connection the token names is not affected). A known token gets a new subflow whose
    /// SYN/ACK carries our HMAC; the third ACK's HMAC is checked before it carries data.
    #[allow(clippy::too_many_arguments)]
    fn accept_join(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpRepr<'_>,
        token: u32,
        backup: bool,
        addr_id: u8,
        nonce: u32,
    ) {
        self.counters.mp_join_syn_rx += 1;
        let max = self.config.mptcp.max_subflows;
        let Some(&h) = self.tokens.get(&token) else {
            self.refuse_join(local, remote, seg, false);
            return;
        };
        let Some(c) = self.conns.get_mut(&h) else {
            self.refuse_join(local, remote, seg, false);
            return;
        };
        let ok = c.level.as_deref().is_some_and(|l| {
            !l.fallback
                && !l.fail_pending
                && l.fully_established
                && !l.closing
                && !l.fastclose_rx
                && !l.fastclose_tx
        });
        let live = c
            .subs
            .iter()
            .filter(|t| t.state != TcpState::Closed)
            .count();
        if !ok || live >= max || c.subs.len() >= 4 * max.max(1) {
            self.refuse_join(local, remote, seg, true);
            return;
        }
        let (iss, ts) = initial_seq(&mut self.rng, &self.config.tcp);
        let Some(mut tcb) = Tcb::accept_syn(&self.config.tcp, local, remote, iss, ts, now, seg)
        else {
            return;
        };
        let our_id = if local.ip() == c.subs[0].local.ip() {
            0
        } else {
            self.local_addrs
                .iter()
                .position(|&a| a == local.ip())
                .map_or(0, |p| (p + 1).min(255) as u8)
        };
        let nonce_local = self.keys.next_nonce();
        tcb.set_mptcp(
            SubflowMp::join_responder(nonce_local, nonce, addr_id, our_id, backup),
            true,
        );
        c.subs.push(tcb);
        let i = c.subs.len() - 1;
        self.demux.insert((local, remote), (h, i));
        self.queue_tx(h);
    }

    /// Refuses a join SYN with RST + MP_TCPRST (RFC 8684 §3.6), counted.
    fn refuse_join(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpRepr<'_>,
        known: bool,
    ) {
        let reason = if known {
            self.counters.mp_subflows_too_many += 1;
            ResetReason::AdministrativelyProhibited
        } else {
            self.counters.mp_join_no_token_found += 1;
            ResetReason::MptcpError
        };
        self.counters.mp_rst_tx += 1;
        self.queue_rst_reason(
            local,
            remote,
            0,
            seg.seq.wrapping_add(1),
            true,
            Some(reason),
        );
    }

    /// Opens a subflow from `local` to `remote` joining connection `h` (RFC 8684 §3.2).
    fn open_join(&mut self, now: Instant, h: ConnHandle, local: IpAddr, remote: SocketAddr) {
        let Some(l) = self.pick_port(local, remote) else {
            return;
        };
        let (iss, ts) = initial_seq(&mut self.rng, &self.config.tcp);
        let Some(mut tcb) = Tcb::connect(&self.config.tcp, l, remote, iss, ts, now) else {
            return;
        };
        let addr_id = self
            .local_addrs
            .iter()
            .position(|&a| a == local)
            .map_or(0, |p| (p + 1).min(255) as u8);
        let mut mp = SubflowMp::join_initiator(self.keys.next_nonce(), addr_id, false);
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        // The peer's id of the address we join (0: its initial address) until its SYN/ACK
        // says, so that a REMOVE_ADDR finds the subflow while it opens (RFC 8684 §3.4.2).
        if let (Some(j), Some(lv)) = (mp.join.as_mut(), c.level.as_deref()) {
            j.remote_addr_id = lv
                .remote_addrs
                .iter()
                .find(|r| r.1 == remote.ip())
                .map_or(0, |r| r.0);
        }
        tcb.mp = Some(Box::new(mp));
        c.subs.push(tcb);
        let i = c.subs.len() - 1;
        self.demux.insert((l, remote), (h, i));
        self.counters.mp_join_syn_tx += 1;
        self.queue_tx(h);
    }

    fn queue_rst(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
        ack: u32,
        with_ack: bool,
    ) {
        self.queue_rst_reason(local, remote, seq, ack, with_ack, None);
    }

    fn queue_rst_reason(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
        ack: u32,
        with_ack: bool,
        mp_reason: Option<ResetReason>,
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
            mp_reason,
        });
    }

    /// Turns a connection's news into events, queues it for transmission, forgets it when done.
    fn after_tcb(&mut self, h: ConnHandle, now: Instant) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        if c.level.is_some() {
            self.mp_after(h, now);
            return;
        }
        let evs = std::mem::take(&mut c.tcb_mut().events);
        let closed = c.tcb().state == TcpState::Closed;
        self.tell(h, evs);
        let c = self.conns.get_mut(&h).expect("still there");
        if closed {
            let end = c.tcb().end.unwrap_or(End::Normal);
            self.demux.remove(&(c.tcb().local, c.tcb().remote));
            self.conn_closed(h, (evs & ev::CLOSED != 0).then_some(end));
            return;
        }
        self.queue_tx(h);
    }

    /// The passive open completed: into the accept queue, and the application is told.
    /// Turns a connection's TCB events into application events (a passive open first becomes
    /// acceptable; only connections the application knows report).
    fn tell(&mut self, h: ConnHandle, evs: u8) {
        if evs & ev::ESTABLISHED_PASSIVE != 0 {
            self.established_passive(h);
        }
        if !self.conns.get(&h).is_some_and(|c| c.visible) {
            return;
        }
        for (bit, e) in [
            (ev::CONNECTED, Event::Connected(h)),
            (ev::READABLE, Event::Readable(h)),
            (ev::WRITABLE, Event::Writable(h)),
        ] {
            if evs & bit != 0 {
                self.events.push_back(e);
            }
        }
    }

    fn established_passive(&mut self, h: ConnHandle) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        if let Some(port) = c.listener {
            if let Some(l) = self.listeners.get_mut(&port) {
                l.half_open = l.half_open.saturating_sub(1);
                l.accept_queue.push_back(h);
            }
            c.visible = true;
            self.events.push_back(Event::Incoming { port, conn: h });
        } else if c.visible && c.level.is_none() {
            // An accepted transparent SYN (`accept_pending`): the application holds the handle.
            self.events.push_back(Event::Connected(h));
        }
    }

    /// The connection is over (`tell`: why, for the application's Closed event).
    fn conn_closed(&mut self, h: ConnHandle, tell: Option<End>) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        let visible = c.visible;
        let released = c.tcb().released;
        if !visible {
            // Never reached the application: a failed passive open.
            if let Some(port) = c.listener {
                if let Some(l) = self.listeners.get_mut(&port) {
                    l.half_open = l.half_open.saturating_sub(1);
                }
            }
        } else if let Some(end) = tell {
            self.events.push_back(Event::Closed(h, close_reason(end)));
        }
        // It may still have a RST to send; keep it queued until the queue drains it.
        self.queue_tx(h);
        if !visible || released {
            self.reap_later(h);
        }
    }

    /// The MPTCP side of [`Endpoint::after_tcb`]: moves received data from the subflows to the
    /// connection level, handles DATA_ACKs, reinjection, the path manager, DATA_FIN and closing,
    /// schedules data onto subflows and turns all that into events.
    fn mp_after(&mut self, h: ConnHandle, now: Instant) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        let Some(mut lv) = c.level.take() else {
            return;
        };
        mp_control(&mut lv, &mut c.subs, &mut self.counters);
        mp_fail_answer(&mut lv, &mut c.subs, &mut self.counters);
        let mut evs = std::mem::take(&mut c.subs[0].events);
        for t in c.subs.iter_mut().skip(1) {
            t.events = 0;
        }
        // Receive: subflow bytes to their data offsets.
        let before = lv.recvbuf.in_order_end();
        let sole = c.subs.len() == 1;
        for t in c.subs.iter_mut() {
            drain_sub(&mut lv, t, sole, &mut self.scratch, &mut self.counters);
        }
        if lv.recvbuf.in_order_end() > before {
            evs |= ev::READABLE;
        }
        let recovered = lv.fail_pending
            && !lv.fallback
            && lv
                .fail_stash
                .as_ref()
                .is_some_and(|(d, b)| lv.recvbuf.in_order_end() >= d + b.len() as u64);
        if recovered {
            // The failed bytes came again under a mapping whose checksum passed (the sender's
            // data-level retransmission, our MP_FAIL having been lost): nothing is missing.
            lv.fail_pending = false;
            lv.fail_stash = None;
            for t in c.subs.iter_mut() {
                if let Some(mp) = t.mp.as_deref_mut() {
                    mp.fail_dsn = None;
                    mp.fail_ack_due = false;
                }
            }
        }
        if lv.fail_pending {
            // RFC 8684 §3.7: the peer answers MP_FAIL with an infinite mapping; without one
            // the stream cannot go on past the failed mapping.
            let rto = c.subs[0].rto();
            lv.fail_deadline
                .get_or_insert(now + (rto * 8).max(FAIL_ANSWER_MIN_WAIT));
        } else {
            lv.fail_deadline = None;
        }
        let eof = if lv.fallback {
            c.subs[0].fin_received() && c.subs[0].readable() == 0
        } else {
            lv.peer_fin_reached()
        };
        if eof && !lv.eof_signalled {
            lv.eof_signalled = true;
            evs |= ev::READABLE;
            // DATA_ACK the DATA_FIN at once.
            for t in c.subs.iter_mut().filter(|t| t.can_carry()) {
                t.force_ack();
            }
        }
        // Send side: DATA_ACK frees the data-level buffer (fallback: subflow 0's ACK of the
        // bytes from the fallback point on).
        if lv.fallback {
            let u = c.subs[0].snd_una_offset();
            if u >= lv.fb_tx.0 {
                lv.data_una = lv.data_una.max(lv.fb_tx.1 + (u - lv.fb_tx.0));
            }
        }
        let una = lv.data_una.min(lv.sendbuf.end());
        if una > lv.sendbuf.start() {
            lv.sendbuf.ack_to(una);
        }
        if lv.write_blocked && lv.sendbuf.free() > 0 && lv.local_fin.is_none() {
            lv.write_blocked = false;
            evs |= ev::WRITABLE;
        }
        if !lv.window_known {
            lv.snd_right = lv
                .snd_right
                .max(lv.data_una + c.subs[0].peer_window() as u64);
        }
        // Reinjection (RFC 8684 §3.3.6): the unacknowledged data of a subflow that died or
        // whose retransmission timer fired goes to the others as well (once per stall; the
        // receiver keeps the first copy). Reinjecting at the first RTO rather than the second
        // halves the stall when a path goes down (263 ms instead of 718 ms in the simulator).
        // Reinjection needs another subflow that can carry the data: without one the subflow's
        // own retransmissions are the only way, and a copy would only duplicate its stream.
        let usable = c
            .subs
            .iter()
            .filter(|t| t.state != TcpState::Closed && t.backoff() == 0)
            .count();
        for t in c.subs.iter_mut() {
            let dead = t.state == TcpState::Closed;
            let stalled = t.backoff() >= 1;
            let healthy = t.backoff() == 0;
            let (una, end) = (t.snd_una_offset(), t.send_end());
            let Some(mp) = t.mp.as_deref_mut() else {
                continue;
            };
            mp.prune_tx(una, lv.data_una);
            if lv.fallback {
                continue;
            }
            if (dead || stalled) && !mp.reinjected && usable > 0 {
                mp.reinjected = true;
                let mut any = false;
                for &(so, d, len) in mp.tx.iter() {
                    // A dead subflow's bytes count only once DATA_ACKed: the peer may have
                    // dropped what it acknowledged (a reset for a failed checksum, §3.7).
                    let a = if dead { so } else { so.max(una) };
                    let z = (so + len).min(end);
                    if a < z {
                        let da = (d + (a - so)).max(lv.data_una);
                        let dz = d + (z - so);
                        if da < dz {
                            lv.push_reinject(da, dz);
                            any = true;
                        }
                    }
                }
                if any {
                    self.counters.mp_reinjections += 1;
                }
            } else if !dead && healthy {
                mp.reinjected = false;
            }
        }
        // Path manager.
        let mut joins: Vec<(IpAddr, SocketAddr)> = Vec::new();
        if self.fullmesh
            && lv.fully_established
            && !lv.fallback
            && !lv.closing
            && !lv.fastclose_rx
            && !lv.fastclose_tx
        {
            let first = c.subs[0].local.ip();
            let remote0 = c.subs[0].remote;
            match lv.role {
                Role::Server if !lv.pm_started => {
                    // Announce our other addresses (Linux's `signal` endpoints, RFC 8684 §3.4.1).
                    lv.pm_started = true;
                    for (p, &a) in self.local_addrs.iter().enumerate() {
                        if a != first && a.is_ipv4() == first.is_ipv4() && lv.announce.len() < 8 {
                            lv.announce.push(((p + 1).min(255) as u8, a));
                        }
                    }
                    if !lv.announce.is_empty() {
                        lv.announce_due = true;
                        lv.announce_tries = 1;
                        c.subs[0].force_ack();
                    }
                }
                Role::Client => {
                    if lv.pm_join_at.is_none() {
                        // Time for the server's ADD_ADDR to arrive before joining its initial
                        // address from addresses no announced address pairs with.
                        let srtt = c.subs[0].srtt().unwrap_or(Duration::from_millis(100));
                        lv.pm_join_at = Some(now + (srtt * 2).max(Duration::from_millis(10)));
                    }
                    let late = lv.pm_join_at.is_some_and(|t| now >= t);
                    for &a in self.local_addrs.iter() {
                        if a == first || a.is_ipv4() != first.is_ipv4() || lv.pm_tried.contains(&a)
                        {
                            continue;
                        }
                        if c.subs.len() + joins.len() >= self.config.mptcp.max_subflows {
                            break;
                        }
                        let target = lv
                            .remote_addrs
                            .iter()
                            .find(|r| same_subnet(a, r.1))
                            .map(|r| SocketAddr::new(r.1, remote0.port()));
                        let target = match target {
                            Some(t) => t,
                            None if late => remote0,
                            None => continue,
                        };
                        lv.pm_tried.push(a);
                        joins.push((a, target));
                    }
                }
                _ => {}
            }
        }
        // DATA_FIN once everything is scheduled (RFC 8684 §3.3.3).
        if lv.fin_queued && lv.local_fin.is_none() && lv.data_nxt >= lv.sendbuf.end() {
            lv.local_fin = Some(lv.sendbuf.end());
            if lv.fallback {
                c.subs[0].shutdown(now);
            } else {
                for t in c.subs.iter_mut().filter(|t| t.can_carry()) {
                    t.force_ack();
                }
            }
        }
        // Once our data is all DATA_ACKed after the DATA_FIN, every subflow sends its FIN with
        // the DATA_FIN (RFC 8684 §3.3.3 allows combining them; the half-closed connection looks
        // like TCP's to the application). Subflows cannot carry data after that, so the FIN
        // waits until nothing may need reinjection.
        if !lv.fallback && lv.local_fin.is_some_and(|f| lv.data_una >= f) {
            for t in c.subs.iter_mut() {
                if t.can_carry() || t.state == TcpState::SynReceived {
                    t.shutdown(now);
                }
            }
        }
        if lv.local_fin_acked() && lv.peer_fin_reached() {
            lv.closing = true;
        }
        // Connection-level timer: DATA_FIN, ADD_ADDR and third-ACK retransmission, late joins,
        // data the subflows delivered but the peer never DATA_ACKed.
        let pending = lv.local_fin.is_some() && !lv.local_fin_acked() && !lv.fallback
            || data_unacked_at_data_level(&lv, &c.subs)
            || (!lv.announce.is_empty() && lv.announce_tries < 4)
            || c.subs.iter().any(|t| {
                t.state == TcpState::Established
                    && t.mp
                        .as_deref()
                        .is_some_and(|m| !m.ready && m.join.is_some())
            });
        if pending {
            if lv.timer.is_none() {
                let rto = c.subs[0].rto().max(Duration::from_millis(200));
                lv.timer = Some(now + rto * (1 << lv.timer_backoff.min(6)));
            }
        } else {
            lv.timer = None;
            lv.timer_backoff = 0;
        }
        if lv.role == Role::Client && lv.fully_established && !lv.fallback && self.fullmesh {
            if let Some(at) = lv.pm_join_at.filter(|&t| t > now) {
                let more = self
                    .local_addrs
                    .iter()
                    .any(|a| *a != c.subs[0].local.ip() && !lv.pm_tried.contains(a));
                if more {
                    lv.timer = Some(lv.timer.map_or(at, |t| t.min(at)));
                }
            }
        }
        c.level = Some(lv);
        schedule(self.sched, c, &mut self.scratch);
        if opportunistic(self.sched, c, now, &mut self.scratch) {
            self.counters.mp_opportunistic += 1;
        }
        // Closed subflows leave the demultiplexer.
        for (i, t) in c.subs.iter().enumerate() {
            if t.state == TcpState::Closed && self.demux.get(&(t.local, t.remote)) == Some(&(h, i))
            {
                self.demux.remove(&(t.local, t.remote));
            }
        }
        let all_closed = c.all_closed();
        let told = c.closed_told;
        let removed = |t: &Tcb| t.mp.as_deref().is_some_and(|m| m.removed);
        let end = if c.level.as_deref().is_some_and(|l| l.fastclose_rx) {
            End::Reset
        } else if c.level.as_deref().is_some_and(|l| l.closing) {
            End::Normal
        } else {
            // The first subflow's end, unless the peer removed its address (REMOVE_ADDR).
            c.subs
                .iter()
                .find(|t| t.end.is_some() && !removed(t))
                .and_then(|t| t.end)
                .or(c.subs[0].end)
                .or_else(|| c.subs.iter().rev().find_map(|t| t.end))
                .unwrap_or(End::Normal)
        };
        if all_closed {
            c.closed_told = true;
        }
        self.tell(h, evs);
        for (local, remote) in joins {
            self.open_join(now, h, local, remote);
        }
        if all_closed && !told {
            self.conn_closed(h, Some(end));
            return;
        }
        self.queue_tx(h);
    }

    /// The connection-level timer fired.
    fn mp_tick(&mut self, h: ConnHandle, now: Instant) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        let Some(lv) = c.level.as_deref_mut() else {
            return;
        };
        if lv.fail_deadline.is_some_and(|d| d <= now) {
            // No infinite mapping came in answer to our MP_FAIL: the connection is reset.
            lv.fail_deadline = None;
            lv.fail_pending = false;
            lv.fail_stash = None;
            for t in c.subs.iter_mut().filter(|t| t.state != TcpState::Closed) {
                if let Some(mp) = t.mp.as_deref_mut() {
                    mp.rst_reason = Some(ResetReason::MiddleboxInterference);
                    mp.fail_dsn = None;
                }
                self.counters.mp_rst_tx += 1;
                t.reset(End::Reset);
            }
            return;
        }
        if lv.timer.is_none_or(|t| t > now) {
            return;
        }
        lv.timer = None;
        lv.timer_backoff += 1;
        if !lv.announce.is_empty() && lv.announce_tries < 4 {
            lv.announce_tries += 1;
            lv.announce_due = true;
            c.subs[0].force_ack();
        }
        if data_unacked_at_data_level(lv, &c.subs) {
            // The data level's own retransmission (RFC 8684 §3.3.6; Linux's MPTCPRetrans): sent
            // again through the scheduler. A peer that is gone answers with a reset, or the
            // subflow's retransmissions time out: either way the connection ends.
            lv.push_reinject(lv.data_una, lv.data_nxt);
            self.counters.mp_retrans += 1;
        }
        let fin = lv.local_fin.is_some() && !lv.local_fin_acked();
        for t in c.subs.iter_mut() {
            let join_pending =
                t.mp.as_deref()
                    .is_some_and(|m| !m.ready && m.join.is_some());
            if (fin && t.can_carry()) || (join_pending && t.state == TcpState::Established) {
                t.force_ack();
            }
        }
    }

    fn reap_later(&mut self, h: ConnHandle) {
        if let Some(c) = self.conns.get_mut(&h) {
            c.tcb_mut().released = true;
        }
    }

    /// A subflow in TIME_WAIT gives way to a new connection (RFC 6191).
    fn remove_subflow(&mut self, h: ConnHandle, i: usize) {
        let single = self.conns.get(&h).is_some_and(|c| c.subs.len() == 1);
        if single {
            self.remove(h);
        } else if let Some(t) = self.conns.get(&h).and_then(|c| c.subs.get(i)) {
            let key = (t.local, t.remote);
            self.demux.remove(&key);
        }
    }

    fn remove(&mut self, h: ConnHandle) {
        if let Some(c) = self.conns.remove(&h) {
            if let Some(lv) = c.level.as_deref() {
                if self.tokens.get(&lv.local_token) == Some(&h) {
                    self.tokens.remove(&lv.local_token);
                }
            }
            for (i, t) in c.subs.iter().enumerate() {
                if self.demux.get(&(t.local, t.remote)) == Some(&(h, i)) {
                    self.demux.remove(&(t.local, t.remote));
                }
            }
            if let Some(port) = c.listener {
                if let Some(l) = self.listeners.get_mut(&port) {
                    if c.tcb().state == TcpState::SynReceived {
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
            .filter(|(_, c)| conn_timeout(c).is_some_and(|t| t <= now))
            .map(|(&h, _)| h)
            .collect();
        for h in due {
            if let Some(c) = self.conns.get_mut(&h) {
                let mut ctx = Ctx {
                    now,
                    counters: &mut self.counters,
                    limiter: &mut self.limiter,
                };
                for i in 0..c.subs.len() {
                    if c.subs[i].next_timeout().is_some_and(|t| t <= now) {
                        lend(c, i, |t| t.on_timeout(&mut ctx));
                    }
                }
                self.mp_tick(h, now);
                self.after_tcb(h, now);
            }
        }
    }

    /// The earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns.values().filter_map(conn_timeout).min()
    }

    /// Writes the next IP packet to send into `buf` (cleared first).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if let Some(r) = self.rsts.pop_front() {
            let mut seg = TcpRepr {
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
            let mut body = [0u8; 2];
            if let Some(reason) = r.mp_reason {
                let n = MptcpOption::MpTcpRst {
                    transient: false,
                    reason,
                }
                .emit(&mut body);
                seg.options
                    .mptcp
                    .push(braid_wire::tcp::kind::MPTCP, &body[..n]);
            }
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
            let n = c.subs.len();
            for k in 0..n {
                let i = (c.tx_next + k) % n;
                if lend(c, i, |t| t.poll_transmit(now, buf)) {
                    if n > 1 {
                        c.tx_next = (i + 1) % n;
                    }
                    self.counters.packets_out += 1;
                    if buf.len() > 33 && buf[0] >> 4 == 4 && buf[33] & TcpFlags::RST != 0 {
                        self.counters.rst_sent += 1;
                    }
                    let t = &c.subs[i];
                    return Some(Transmit {
                        src: t.local.ip(),
                        dst: t.remote.ip(),
                        len: buf.len(),
                    });
                }
            }
            c.queued = false;
            self.tx_queue.pop_front();
            if c.all_closed() && c.tcb().released {
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
        let sched = self.sched;
        let c = match self.conns.get_mut(&conn) {
            Some(c) if c.visible => c,
            _ => return Err(Error::UnknownConnection),
        };
        if let Some(lv) = c.level.as_deref_mut() {
            let open = c.subs.iter().any(|t| t.state != TcpState::Closed)
                && c.subs[0].state != TcpState::SynSent
                || c.subs[0].can_send();
            if lv.fin_queued || !open {
                return Err(end_error(&c.subs[0]));
            }
            if data.is_empty() {
                return Ok(0);
            }
            let n = lv.sendbuf.write(data);
            if n < data.len() {
                lv.write_blocked = true;
            }
            if n == 0 {
                return Err(Error::WouldBlock);
            }
            schedule(sched, c, &mut self.scratch);
            self.queue_tx(conn);
            return Ok(n);
        }
        if !c.tcb().can_send() {
            return Err(end_error(c.tcb()));
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = c.tcb_mut().send(data);
        if n == 0 {
            return Err(Error::WouldBlock);
        }
        self.queue_tx(conn);
        Ok(n)
    }

    /// Reads in-order bytes. `Ok(0)` (with a non-empty `buf`) means the peer closed and all was read.
    pub fn recv(&mut self, conn: ConnHandle, buf: &mut [u8]) -> Result<usize, Error> {
        let c = self.conns.get_mut(&conn).filter(|c| c.visible);
        let Some(c) = c else {
            return Err(Error::UnknownConnection);
        };
        if let Some(mut lv) = c.level.take() {
            let cap = lv.recvbuf.capacity();
            let w0 = lv.recv_window();
            let n = lv.recvbuf.read(buf);
            let mut res = Err(Error::WouldBlock);
            if n > 0 {
                // Bytes waiting in subflow buffers for window room.
                let sole = c.subs.len() == 1;
                for t in c.subs.iter_mut() {
                    drain_sub(&mut lv, t, sole, &mut self.scratch, &mut self.counters);
                }
                let w1 = lv.recv_window();
                if w0 < cap / 2 && w1 >= cap / 2 {
                    // The window opened a lot: tell the peer (RFC 9293 §3.8.6.2.2).
                    for t in c.subs.iter_mut().filter(|t| t.state != TcpState::Closed) {
                        t.force_ack();
                    }
                }
                res = Ok(n);
            } else if buf.is_empty()
                || lv.peer_fin_reached()
                || (lv.fallback && c.subs[0].fin_received() && c.subs[0].readable() == 0)
            {
                res = Ok(0);
            } else if c.all_closed() {
                res = Err(end_error(&c.subs[0]));
            }
            c.level = Some(lv);
            if res.is_ok() {
                self.queue_tx(conn);
            }
            return res;
        }
        match c.tcb_mut().recv(buf) {
            Some(n) => {
                self.queue_tx(conn);
                Ok(n)
            }
            None if c.tcb().state == TcpState::Closed => Err(end_error(c.tcb())),
            None => Err(Error::WouldBlock),
        }
    }

    /// No more data will be sent: a FIN (DATA_FIN for MPTCP) follows the queued bytes.
    pub fn shutdown(&mut self, now: Instant, conn: ConnHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        if c.all_closed() {
            return Err(end_error(c.tcb()));
        }
        if let Some(lv) = c.level.as_deref_mut() {
            lv.fin_queued = true;
            if c.subs[0].state == TcpState::SynSent {
                c.subs[0].shutdown(now);
            }
        } else {
            c.tcb_mut().shutdown(now);
        }
        self.after_tcb(conn, now);
        Ok(())
    }

    /// Resets the connection (RST) and forgets its data. An MPTCP connection's RSTs carry
    /// MP_FASTCLOSE with the peer's key on every subflow (RFC 8684 §3.5, option R).
    pub fn abort(&mut self, now: Instant, conn: ConnHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        let n = fastclose(c);
        for t in c.subs.iter_mut() {
            t.abort();
        }
        self.counters.mp_fastclose_tx += n;
        self.counters.mp_rst_tx += n;
        self.after_tcb(conn, now);
        Ok(())
    }

    /// Asks the peer to send on subflow `subflow` (index in [`MptcpInfo::subflows`]) of `conn`
    /// only when no regular subflow can (`backup`), or lifts that: our priority for the
    /// subflow, announced with MP_PRIO on it (RFC 8684 §3.3.8). Our scheduler honours it too.
    pub fn set_subflow_backup(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        subflow: usize,
        backup: bool,
    ) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        let state = c.state();
        if c.level.as_deref().is_none_or(|l| l.fallback) {
            return Err(Error::InvalidState(state));
        }
        let Some(t) = c.subs.get_mut(subflow) else {
            return Err(Error::InvalidState(state));
        };
        if t.state == TcpState::Closed {
            return Err(Error::InvalidState(TcpState::Closed));
        }
        let Some(mp) = t.mp.as_deref_mut() else {
            return Err(Error::InvalidState(state));
        };
        mp.set_backup(backup);
        t.force_ack();
        self.counters.mp_prio_tx += 1;
        self.after_tcb(conn, now);
        Ok(())
    }

    /// Forgets the handle. A connection still closing in order finishes on its own; one that
    /// never shut down is shut down now (like `close(2)` on a socket).
    pub fn release(&mut self, now: Instant, conn: ConnHandle) {
        let Ok(c) = self.conn_mut(conn) else { return };
        let unread = match c.level.as_deref() {
            Some(lv) => lv.recvbuf.readable() > 0,
            None => c.tcb().readable() > 0,
        };
        let mut n = 0;
        if unread && !c.all_closed() {
            // RFC 9293 §3.10.4 / Linux: closing with unread data resets the connection (MPTCP:
            // with MP_FASTCLOSE, as Linux does).
            n = fastclose(c);
            for t in c.subs.iter_mut() {
                t.abort();
            }
        } else if let Some(lv) = c.level.as_deref_mut() {
            lv.fin_queued = true;
            if c.subs[0].state == TcpState::SynSent {
                c.subs[0].shutdown(now);
            }
        } else {
            c.tcb_mut().shutdown(now);
        }
        for t in c.subs.iter_mut() {
            t.on_released(now);
        }
        self.counters.mp_fastclose_tx += n;
        self.counters.mp_rst_tx += n;
        self.after_tcb(conn, now);
    }

    pub fn conn_info(&self, conn: ConnHandle) -> Option<ConnInfo> {
        let c = self.conns.get(&conn)?;
        let t = c.tcb();
        let mut info = ConnInfo {
            state: c.state(),
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
            inflight: u64::from(t.inflight()),
            send_queue: t.send_queued() as u64,
            recv_queue: t.readable() as u64,
            mptcp: None,
        };
        if let Some(lv) = c.level.as_deref() {
            // Whole-connection byte counts over all subflows.
            let sum = |f: fn(&Tcb) -> u64| c.subs.iter().map(f).sum::<u64>();
            info.bytes_sent = sum(|t| t.stats.bytes_sent);
            info.bytes_retransmitted = sum(|t| t.stats.bytes_retransmitted);
            // Application bytes the peer acknowledged: the DATA_ACK (subflow counts would see
            // reinjected bytes twice), without our DATA_FIN.
            info.bytes_acked = if lv.fallback {
                c.subs.first().map_or(0, |t| t.stats.bytes_acked)
            } else {
                lv.data_una - lv.local_fin.is_some_and(|f| lv.data_una > f) as u64
            };
            info.segments_sent = sum(|t| t.stats.segments_sent);
            info.segments_received = sum(|t| t.stats.segments_received);
            info.bytes_received = lv.recvbuf.in_order_end();
            info.inflight = c.subs.iter().map(|t| u64::from(t.inflight())).sum();
            info.send_queue = lv.sendbuf.len() as u64;
            info.recv_queue = lv.recvbuf.readable() as u64;
            info.mptcp = Some(MptcpInfo {
                fallback: lv.fallback,
                local_token: lv.local_token,
                remote_token: lv.remote_token,
                subflows: c
                    .subs
                    .iter()
                    .map(|t| SubflowInfo {
                        local: t.local,
                        remote: t.remote,
                        state: t.state,
                        bytes_sent: t.stats.bytes_sent,
                        bytes_retransmitted: t.stats.bytes_retransmitted,
                        bytes_acked: t.stats.bytes_acked,
                        bytes_received: t.stats.bytes_received,
                        srtt: t.srtt(),
                        cwnd: t.cwnd(),
                        ssthresh: t.ssthresh(),
                        inflight: t.inflight(),
                        backup: t.mp.as_deref().is_some_and(|m| m.backup),
                        peer_backup: t.mp.as_deref().is_some_and(|m| m.peer_backup),
                        addr_id: t.mp.as_deref().map_or(0, |m| m.addr_id),
                        closed: t.state == TcpState::Closed,
                    })
                    .collect(),
            });
        }
        Some(info)
    }

    /// Bytes the application may write now without `WouldBlock`.
    pub fn send_capacity(&self, conn: ConnHandle) -> usize {
        self.conns
            .get(&conn)
            .map_or(0, |c| match c.level.as_deref() {
                Some(lv) => lv.sendbuf.free(),
                None => c.tcb().send_free(),
            })
    }

    /// Number of connections the endpoint holds (all states).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// A new subflow's initial sequence number and timestamp offset: random, or the ISN placed by
/// the [`TcpConfig::iss_base`] test hook.
fn initial_seq(rng: &mut Rng, cfg: &TcpConfig) -> (u32, u32) {
    let (iss, ts) = (rng.next_u32(), rng.next_u32());
    match cfg.iss_base {
        Some(b) => (b.wrapping_add(iss & 0xffff), ts),
        None => (iss, ts),
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

/// The earliest timer of a connection: its subflows' and the connection level's.
fn conn_timeout(c: &Conn) -> Option<Instant> {
    let subs = c.subs.iter().filter_map(|t| t.next_timeout());
    let level = c
        .level
        .as_deref()
        .into_iter()
        .flat_map(|l| [l.timer, l.fail_deadline])
        .flatten();
    subs.chain(level).min()
}

/// Marks an MPTCP connection about to be aborted so that its RSTs carry MP_FASTCLOSE (RFC 8684
/// §3.5); returns how many RSTs will (0 for plain TCP, fallback, or before the peer's key).
fn fastclose(c: &mut Conn) -> u64 {
    let Some(lv) = c.level.as_deref_mut() else {
        return 0;
    };
    if lv.fallback || lv.remote_key.is_none() {
        return 0;
    }
    lv.fastclose_tx = true;
    c.subs
        .iter()
        .filter(|t| {
            !matches!(
                t.state,
                TcpState::Closed | TcpState::Listen | TcpState::SynSent
            )
        })
        .count() as u64
}

/// Acts on the control options the subflows received (RFC 8684 §3.5, §3.4.2, §3.3.8) where
/// they concern other subflows than the one they came on; asks for the pure ACK that carries
/// a pending MP_PRIO of ours.
fn mp_control(lv: &mut MpLevel, subs: &mut [Tcb], counters: &mut Counters) {
    if lv.fastclose_rx {
        // RFC 8684 §3.5: every subflow is reset and the connection closed at once.
        for t in subs.iter_mut().filter(|t| t.state != TcpState::Closed) {
            t.reset(End::Reset);
        }
        lv.rm_pending.clear();
        lv.peer_prio.clear();
        return;
    }
    if !lv.rm_pending.is_empty() {
        // RFC 8684 §3.4.2: the subflows using a removed address of the peer are closed (with
        // RST and MP_TCPRST, as Linux does: the address is gone, a FIN would not arrive).
        // The last subflow able to carry data stays: closing it would end the connection,
        // which the peer did not ask for; if its address is really gone it times out.
        let ids = std::mem::take(&mut lv.rm_pending);
        let hit: Vec<bool> = subs
            .iter()
            .map(|t| {
                t.state != TcpState::Closed
                    && t.mp
                        .as_deref()
                        .is_some_and(|m| ids.contains(&m.remote_id()))
            })
            .collect();
        let ready =
            |t: &Tcb| t.state != TcpState::Closed && t.mp.as_deref().is_some_and(|m| m.ready);
        let survivor = subs.iter().zip(&hit).any(|(t, &h)| ready(t) && !h);
        let keep = if survivor {
            None
        } else {
            subs.iter().zip(&hit).position(|(t, &h)| ready(t) && h)
        };
        for (i, t) in subs.iter_mut().enumerate() {
            if !hit[i] || keep == Some(i) {
                continue;
            }
            if let Some(mp) = t.mp.as_deref_mut() {
                mp.removed = true;
                mp.rst_reason = Some(ResetReason::Unspecified);
            }
            counters.mp_rst_tx += 1;
            t.reset(End::Reset);
        }
    }
    for (id, backup) in std::mem::take(&mut lv.peer_prio) {
        for t in subs.iter_mut() {
            if let Some(mp) = t.mp.as_deref_mut().filter(|m| m.remote_id() == id) {
                mp.peer_backup = backup;
            }
        }
    }
    for t in subs.iter_mut() {
        let Some(mp) = t.mp.as_deref_mut() else {
            continue;
        };
        if mp.prio_pending.is_some() {
            if lv.fallback {
                mp.prio_pending = None;
            } else if mp.ready && lv.fully_established {
                t.force_ack();
            }
        }
    }
}

/// Answers the peer's MP_FAIL (RFC 8684 §3.7): on a connection that never had another
/// subflow, with an infinite mapping and fallback to TCP, sending again as regular TCP from
/// the failed DSN (the peer dropped the failed mapping; it places our bytes by the infinite
/// mapping's DSN); otherwise the subflow is reset and its data reinjected on the others
/// (`mp_after`).
fn mp_fail_answer(lv: &mut MpLevel, subs: &mut [Tcb], counters: &mut Counters) {
    let sole = subs.len() == 1;
    for t in subs.iter_mut() {
        let sub_off = t.send_end();
        let Some(mp) = t.mp.as_deref_mut() else {
            continue;
        };
        let Some(dsn) = mp.fail_rx.take() else {
            continue;
        };
        if lv.fallback || t.state == TcpState::Closed {
            continue;
        }
        if sole && mp.join.is_none() {
            // From the DSN the peer names (everything before it arrived in order), or from
            // the DATA_ACK when that DSN is not one of our unacknowledged bytes.
            let failed = dsn.wrapping_sub(lv.local_dsn(0));
            let restart = if (lv.data_una..=lv.data_nxt).contains(&failed) {
                failed
            } else {
                lv.data_una
            }
            .clamp(lv.sendbuf.start(), lv.sendbuf.end().max(lv.sendbuf.start()));
            // Our stream from `sub_off` on carries data from `restart` on; theirs goes on
            // where its last mapping ended (one subflow: nothing was out of sequence).
            lv.fallback = true;
            lv.fb_tx = (sub_off, restart);
            if !lv.fail_pending {
                lv.fb_rx = mp.rx_tail.unwrap_or((0, 0));
            }
            lv.data_nxt = restart;
            lv.reinject.clear();
            if lv.local_fin.is_some() && !lv.local_fin_acked() {
                // The DATA_FIN becomes the subflow's FIN after the data.
                lv.local_fin = None;
            }
            mp.inf_map = Some((sub_off, lv.local_dsn(restart)));
            counters.mp_infinite_map_tx += 1;
        } else {
            mp.rst_reason = Some(ResetReason::MiddleboxInterference);
            counters.mp_rst_tx += 1;
            t.reset(End::Reset);
        }
    }
}

/// Two addresses of one subnet (IPv4 /24, IPv6 /64): the path manager pairs a local address with
/// an announced address of its subnet.
fn same_subnet(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets()[..8] == b.octets()[..8],
        _ => false,
    }
}

/// What to do with the bytes at a subflow's read point ([`rx_step`]).
enum RxStep {
    /// Up to `n` bytes go to data offset `data`.
    Deliver { data: u64, n: u64 },
    /// `n` bytes no mapping covers: not part of the data stream (RFC 8684 §3.3).
    Skip(u64),
    /// More bytes (the rest of a mapping) must arrive first.
    Wait,
    /// The mapping at the read point failed (`csum`: its checksum was wrong or missing; else
    /// it cannot be verified, or the subflow filled up with unmapped bytes): `dsn` and
    /// `data` place its first byte, `skip` bytes of it are at hand.
    Fail {
        dsn: u64,
        data: u64,
        skip: u64,
        csum: bool,
    },
}

/// Decides what happens to the bytes at subflow `t`'s read point. A mapping with a checksum
/// is verified over all its bytes once they are all in order in the subflow (peeked into
/// `scratch`, not consumed; RFC 8684 §3.3.1 lets one mapping span many segments), then marked
/// verified: nothing of it is delivered before.
fn rx_step(
    lv: &MpLevel,
    t: &mut Tcb,
    fallback: bool,
    implicit: bool,
    scratch: &mut [u8],
) -> RxStep {
    let off = t.rcv_read_offset();
    let avail = t.readable() as u64;
    if fallback && off >= lv.fb_rx.0 {
        return RxStep::Deliver {
            data: lv.fb_rx.1 + (off - lv.fb_rx.0),
            n: u64::MAX,
        };
    }
    // Bytes before the fallback point still go by their mappings.
    let before_fb = if fallback { lv.fb_rx.0 - off } else { u64::MAX };
    let cap = t.rcv_capacity() as u64;
    let Some(mp) = t.mp.as_deref_mut() else {
        return RxStep::Wait;
    };
    let Some(k) = mp.rx_index(off) else {
        let next = mp.rx_next_start(off);
        return match next {
            _ if implicit => RxStep::Deliver {
                data: off,
                n: next.map_or(u64::MAX, |s| s - off),
            },
            None if lv.csum && !fallback => {
                // Under checksums no byte is delivered without its mapping. A subflow that
                // fills up with bytes no mapping covers is broken (RFC 8684 §3.7).
                if avail >= cap {
                    let data = lv.recvbuf.in_order_end();
                    RxStep::Fail {
                        dsn: lv.remote_dsn(data),
                        data,
                        skip: avail,
                        csum: false,
                    }
                } else {
                    RxStep::Wait
                }
            }
            _ => RxStep::Skip(next.map_or(avail, |s| s - off).min(before_fb)),
        };
    };
    let m = mp.rx[k];
    let rest = m.sub + m.len - off;
    let data = m.data + (off - m.sub);
    if let Some(ck) = m.csum {
        let fail = |csum| RxStep::Fail {
            dsn: ck.dsn.wrapping_add(off - m.sub),
            data,
            skip: rest.min(avail),
            csum,
        };
        if m.sub != off || rest > cap || rest > scratch.len() as u64 {
            // Part of it went by unverified, or it can never be whole in the subflow.
            return fail(false);
        }
        if avail < rest {
            return if rest > before_fb {
                // Crosses the fallback point: it will not be completed.
                RxStep::Skip(before_fb)
            } else {
                RxStep::Wait
            };
        }
        let got = t.peek(0, &mut scratch[..rest as usize]);
        let ok = ck
            .value
            .is_some_and(|v| dss_checksum_ok(ck.dsn, ck.ssn, ck.data_len, v, &scratch[..got]));
        if !ok {
            return fail(ck.value.is_some());
        }
        if let Some(mp) = t.mp.as_deref_mut() {
            mp.rx[k].csum = None;
        }
    }
    RxStep::Deliver {
        data,
        n: rest.min(before_fb),
    }
}

/// Moves a subflow's in-order bytes to their data offsets in the connection-level receive
/// buffer, as far as its window allows (the rest waits in the subflow).
///
/// On a connection that never had another subflow, bytes of the initial subflow that no
/// mapping covers continue its identity mapping (the single-subflow data sequence space is the
/// subflow's; RFC 8684 §3.3 asks a malformed DSS to be ignored, not the data) — unless DSS
/// checksums are in use: then every byte waits for its mapping and its verification.
///
/// A mapping that fails its checksum never reaches the data level (RFC 8684 §3.7): with other
/// subflows this one is reset with MP_FAIL and MP_TCPRST (the peer reinjects the data); on a
/// connection that never had another subflow, MP_FAIL goes out on ACKs and the connection
/// falls back to TCP when the peer's infinite mapping arrives.
fn drain_sub(lv: &mut MpLevel, t: &mut Tcb, sole: bool, scratch: &mut [u8], c: &mut Counters) {
    let Some(mp) = t.mp.as_deref() else {
        return;
    };
    let initial = mp.join.is_none();
    if mp.failed || (lv.fallback && !initial) {
        return;
    }
    // Fallen back, and not waiting for the answer to our own MP_FAIL: regular TCP.
    let fallback = lv.fallback && !lv.fail_pending;
    let implicit = sole && initial && !mp.rx_shifted && !lv.csum && !fallback;
    if fallback {
        if let Some((d, bytes)) = lv.fail_stash.take() {
            // The peer carried on after the failed mapping: its bytes as received are the
            // stream, as they would be over plain TCP.
            let win_end = lv.recvbuf.read_offset() + lv.recvbuf.capacity() as u64;
            let fit = win_end.saturating_sub(d).min(bytes.len() as u64) as usize;
            lv.recvbuf.write_at(d, &bytes[..fit]);
            if fit < bytes.len() {
                lv.fail_stash = Some((d + fit as u64, bytes[fit..].to_vec()));
            }
        }
    }
    loop {
        let avail = t.readable() as u64;
        if avail == 0 {
            break;
        }
        match rx_step(lv, t, fallback, implicit, scratch) {
            RxStep::Wait => break,
            RxStep::Skip(n) => {
                let n = n.min(avail).min(scratch.len() as u64) as usize;
                t.drain(&mut scratch[..n]);
                c.mp_dss_not_matching += 1;
            }
            RxStep::Deliver { data, n } => {
                let win_end = lv.recvbuf.read_offset() + lv.recvbuf.capacity() as u64;
                if data >= win_end {
                    break;
                }
                let n = avail.min(n).min(win_end - data).min(scratch.len() as u64) as usize;
                let got = t.drain(&mut scratch[..n]);
                if got == 0 {
                    break;
                }
                if data + got as u64 <= lv.recvbuf.in_order_end() {
                    c.mp_duplicate_data += 1;
                } else if data > lv.recvbuf.in_order_end() {
                    c.mp_ofo_queue += 1;
                }
                lv.recvbuf.write_at(data, &scratch[..got]);
            }
            RxStep::Fail {
                dsn,
                data,
                skip,
                csum,
            } => {
                if csum {
                    c.mp_data_csum_err += 1;
                } else {
                    c.mp_dss_not_matching += 1;
                }
                let n = skip.clamp(1, scratch.len() as u64) as usize;
                if fallback || lv.fail_pending {
                    // Already failed once: discarded, the peer's answer settles the rest.
                    t.drain(&mut scratch[..n]);
                } else if sole && initial {
                    // RFC 8684 §3.7, one subflow: MP_FAIL on the subflow ACK; the bytes wait
                    // for the peer's infinite mapping (sent again, or kept as plain TCP).
                    let got = t.drain(&mut scratch[..n]);
                    if csum {
                        lv.fail_stash = Some((data, scratch[..got].to_vec()));
                    }
                    lv.fail_pending = true;
                    if let Some(mp) = t.mp.as_deref_mut() {
                        mp.fail_dsn = Some(dsn);
                        mp.fail_ack_due = true;
                    }
                    c.mp_fail_tx += 1;
                } else {
                    // RFC 8684 §3.7, several subflows: this one is reset with MP_FAIL (and
                    // MP_TCPRST); the peer sends the data again on the others.
                    if let Some(mp) = t.mp.as_deref_mut() {
                        mp.fail_dsn = Some(dsn);
                        mp.rst_reason = Some(ResetReason::MiddleboxInterference);
                        mp.failed = true;
                    }
                    c.mp_fail_tx += 1;
                    c.mp_rst_tx += 1;
                    t.reset(End::Reset);
                    return;
                }
            }
        }
    }
    let off = t.rcv_read_offset();
    if let Some(mp) = t.mp.as_deref_mut() {
        mp.prune_rx(off);
    }
}

/// Copies data-level bytes onto subflows (RFC 8684 §3.3.1 mappings): reinjections first, then
/// new data within the peer's data-level window, on the subflow(s) the scheduler picks.
fn schedule(kind: Sched, c: &mut Conn, scratch: &mut [u8]) {
    let Some(lv) = c.level.as_deref_mut() else {
        return;
    };
    let subs = &mut c.subs;
    if lv.fallback {
        // Regular TCP over subflow 0: data offsets are its stream offsets.
        let t = &mut subs[0];
        while lv.data_nxt < lv.sendbuf.end() {
            let n = (lv.sendbuf.end() - lv.data_nxt)
                .min(t.send_free() as u64)
                .min(scratch.len() as u64) as usize;
            if n == 0 {
                break;
            }
            let got = lv.sendbuf.read_at(lv.data_nxt, &mut scratch[..n]);
            let w = t.send(&scratch[..got]);
            lv.data_nxt += w as u64;
            if w == 0 {
                break;
            }
        }
        return;
    }
    let usable = |t: &Tcb| t.can_carry() && t.mp.as_deref().is_some_and(|m| m.ready);
    loop {
        let (d_off, d_len, reinj) = if let Some(&(a, z)) = lv.reinject.front() {
            let a = a.max(lv.data_una).max(lv.sendbuf.start());
            if a >= z {
                lv.reinject.pop_front();
                continue;
            }
            (a, z - a, true)
        } else {
            // A closed data-level window with nothing in flight: one segment goes to a
            // subflow anyway, whose persist timer then probes the window (RFC 9293 §3.8.6.1).
            let probe = if lv.data_una >= lv.data_nxt { 1460 } else { 0 };
            let end = lv.sendbuf.end().min(lv.snd_right.max(lv.data_una + probe));
            if kind == Sched::Redundant {
                // New data goes to every subflow from its own cursor (below).
                redundant_fill(lv, subs, end, &usable, scratch);
                break;
            }
            if lv.data_nxt >= end {
                break;
            }
            (lv.data_nxt, end - lv.data_nxt, false)
        };
        // Prefer healthy (no RTO backoff), non-backup subflows when there are any.
        let any_healthy = subs.iter().any(|t| {
            usable(t) && t.backoff() == 0 && !t.mp.as_deref().is_some_and(|m| m.is_backup())
        });
        let any_nonbackup = subs
            .iter()
            .any(|t| usable(t) && !t.mp.as_deref().is_some_and(|m| m.is_backup()));
        let candidate = |t: &Tcb| {
            usable(t)
                && (!any_healthy
                    || (t.backoff() == 0 && !t.mp.as_deref().is_some_and(|m| m.is_backup())))
                && (!any_nonbackup || !t.mp.as_deref().is_some_and(|m| m.is_backup()))
                && t.sched_room() >= d_len.min(t.sched_chunk())
                && t.send_free() > 0
        };
        let pick = match kind {
            Sched::MinRtt | Sched::Redundant => subs
                .iter()
                .enumerate()
                .filter(|(_, t)| candidate(t))
                .min_by_key(|(_, t)| t.srtt().unwrap_or(Duration::MAX))
                .map(|(i, _)| i),
            Sched::RoundRobin => {
                let n = subs.len();
                (0..n)
                    .map(|k| (lv.rr + k) % n)
                    .find(|&i| candidate(&subs[i]))
            }
        };
        let Some(i) = pick else {
            break;
        };
        if kind == Sched::MinRtt && !reinj {
            let cands = candidate_all(subs, &usable);
            if slower_finishes_later(subs, i, &cands, lv)
                || blocks_faster(subs, i, &cands, lv, d_len.min(subs[i].sched_chunk()))
            {
                // Waiting for the fastest subflow delivers sooner (the ECF and BLEST ideas).
                break;
            }
        }
        if kind == Sched::RoundRobin {
            lv.rr = i + 1;
        }
        let t = &mut subs[i];
        let mut n = d_len
            .min(t.sched_room())
            .min(t.send_free() as u64)
            .min(scratch.len() as u64);
        if n < d_len {
            // Whole segments only: a cut mapping would end in a short segment.
            n = t.whole_segments(n, lv.csum);
        }
        if kind == Sched::RoundRobin {
            // One segment's worth per turn.
            n = n.min(t.smss() as u64);
        }
        let got = lv.sendbuf.read_at(d_off, &mut scratch[..n as usize]);
        let sub_off = t.send_end();
        let w = t.send(&scratch[..got]) as u64;
        if w == 0 {
            break;
        }
        if let Some(mp) = t.mp.as_deref_mut() {
            mp.push_tx(sub_off, d_off, w);
            mp.bytes_scheduled += w;
        }
        if reinj {
            if let Some(front) = lv.reinject.front_mut() {
                front.0 = d_off + w;
                if front.0 >= front.1 {
                    lv.reinject.pop_front();
                }
            }
        } else {
            lv.data_nxt += w;
        }
    }
}

/// The redundant scheduler's new data: every usable subflow sends every byte up to `end`, each
/// from its own cursor, as far as its window and buffer allow; a subflow that lags skips what the
/// peer has already DATA_ACKed (it cannot help any more). Backup subflows take part only when no
/// regular one can.
fn redundant_fill(
    lv: &mut MpLevel,
    subs: &mut [Tcb],
    end: u64,
    usable: &dyn Fn(&Tcb) -> bool,
    scratch: &mut [u8],
) {
    let is_backup = |t: &Tcb| t.mp.as_deref().is_some_and(|m| m.is_backup());
    let any_regular = subs.iter().any(|t| usable(t) && !is_backup(t));
    let floor = lv.data_una.max(lv.sendbuf.start());
    for t in subs.iter_mut() {
        if !usable(t) || (any_regular && is_backup(t)) {
            continue;
        }
        while let Some(mp) = t.mp.as_deref() {
            let from = mp.redundant_next.max(floor);
            if from >= end {
                break;
            }
            let want = end - from;
            let mut n = want
                .min(t.sched_room())
                .min(t.send_free() as u64)
                .min(scratch.len() as u64);
            if n < want {
                n = t.whole_segments(n, lv.csum);
            }
            if n == 0 {
                break;
            }
            let got = lv.sendbuf.read_at(from, &mut scratch[..n as usize]);
            let sub_off = t.send_end();
            let w = t.send(&scratch[..got]) as u64;
            let Some(mp) = t.mp.as_deref_mut() else { break };
            if w == 0 {
                break;
            }
            mp.push_tx(sub_off, from, w);
            mp.bytes_scheduled += w;
            mp.redundant_next = from + w;
            lv.data_nxt = lv.data_nxt.max(from + w);
        }
    }
}

/// Data is sent but not DATA_ACKed while every subflow has all it carried acknowledged: only
/// the data level's retransmission can move it (the DATA_ACK was lost, or the peer dropped the
/// data above its subflows).
fn data_unacked_at_data_level(lv: &MpLevel, subs: &[Tcb]) -> bool {
    !lv.fallback
        && lv.data_una < lv.data_nxt
        && lv.reinject.is_empty()
        && subs.iter().all(|t| t.snd_una_offset() >= t.send_end())
}

/// The fastest of `cands` when it is not `i`: (its index, its SRTT, SRTT of `i`).
fn fastest_other(subs: &[Tcb], i: usize, cands: &[usize]) -> Option<(usize, Duration, Duration)> {
    let f = cands
        .iter()
        .copied()
        .min_by_key(|&j| subs[j].srtt().unwrap_or(Duration::MAX))?;
    if f == i {
        return None;
    }
    Some((f, subs[f].srtt()?, subs[i].srtt()?))
}

/// Blocking estimation (the idea of BLEST, Ferlin et al., IFIP Networking 2016): while `n`
/// bytes sent now on the slower subflow `i` are in flight, the fastest subflow could send about
/// cwnd · SRTT(i) / SRTT(fastest). If that, what `i` already holds unacknowledged and `n` do
/// not fit in the peer's data-level window, the slower subflow would hold the window the
/// fastest one needs (head-of-line blocking at the receiver): better to wait for the fastest.
fn blocks_faster(subs: &[Tcb], i: usize, cands: &[usize], lv: &MpLevel, n: u64) -> bool {
    let Some((f, rf, rs)) = fastest_other(subs, i, cands) else {
        return false;
    };
    let fast =
        lv.blest_lambda * subs[f].cwnd() as f64 * rs.as_secs_f64() / rf.as_secs_f64().max(1e-6);
    let held = subs[i].send_end().saturating_sub(subs[i].snd_una_offset()) as f64;
    // What may be unacknowledged at once: the peer's window, and our own send buffer.
    let window = lv
        .snd_right
        .saturating_sub(lv.data_una)
        .min(lv.sendbuf.capacity() as u64) as f64;
    held + fast + n as f64 > window
}

/// How [`blocks_faster`]'s estimate adapts: up by a step each time a slower subflow held the
/// peer's full window for a round trip of the fastest, down slowly while DATA_ACKs advance
/// (per second).
const LAMBDA_STEP: f64 = 0.5;
const LAMBDA_DECAY: f64 = 0.1;
const LAMBDA_MAX: f64 = 3.0;

/// Opportunistic retransmission and penalisation (Raiciu et al., "How Hard Can It Be?
/// Designing and Implementing a Deployable Multipath TCP", NSDI 2012): the peer's data-level
/// window (or our send buffer) has no room for new data, the oldest unacknowledged data sits on a slower subflow
/// and has not been acknowledged for a round trip of the fastest subflow (it is being
/// recovered, or queued behind a long queue): the fastest subflow with room sends it again and
/// the slower subflow's window is reduced (once per its round trip). Once per DATA_ACK point;
/// the receiver keeps whichever copy arrives first. True when it sent.
fn opportunistic(kind: Sched, c: &mut Conn, now: Instant, scratch: &mut [u8]) -> bool {
    let Some(lv) = c.level.as_deref_mut() else {
        return false;
    };
    let a = lv.data_una;
    if lv.una_since.0 != a {
        let idle = now.saturating_duration_since(lv.una_since.1).as_secs_f64();
        lv.una_since = (a, now);
        lv.blest_lambda = (lv.blest_lambda - LAMBDA_DECAY * idle).max(1.0);
    }
    let subs = &mut c.subs;
    let usable = |t: &Tcb| {
        t.can_carry()
            && t.backoff() == 0
            && t.mp.as_deref().is_some_and(|m| m.ready && !m.is_backup())
    };
    let Some((f, rf)) = subs
        .iter()
        .enumerate()
        .filter(|(_, t)| usable(t))
        .filter_map(|(i, t)| t.srtt().map(|r| (i, r)))
        .min_by_key(|&(_, r)| r)
    else {
        return false;
    };
    // No new data may go: the peer's window is full, or our send buffer is (all it holds is
    // unacknowledged and the application waits for room).
    let mss = subs[f].smss() as u64;
    let window_full = lv.sendbuf.end() > lv.data_nxt && lv.snd_right < lv.data_nxt + mss;
    let buffer_full = lv.data_nxt >= lv.sendbuf.end() && lv.sendbuf.free() < mss as usize;
    let blocked =
        (window_full || buffer_full) && now.saturating_duration_since(lv.una_since.1) >= rf;
    if kind == Sched::Redundant
        || lv.fallback
        || !blocked
        || a >= lv.data_nxt
        || lv.opp_at == Some(a)
    {
        return false;
    }
    let holds = |t: &Tcb| {
        t.mp.as_deref()
            .and_then(|m| m.tx_of_data(a))
            .filter(|&(so, _)| so >= t.snd_una_offset())
    };
    let Some((j, left)) = subs
        .iter()
        .enumerate()
        .find_map(|(j, t)| holds(t).map(|(_, left)| (j, left)))
    else {
        return false;
    };
    let t = &subs[f];
    if j == f
        || holds(t).is_some()
        || subs[j].srtt().is_none_or(|r| r <= rf)
        || t.sched_room() < t.smss() as u64
        || t.send_free() == 0
    {
        return false;
    }
    lv.opp_at = Some(a);
    lv.blest_lambda = (lv.blest_lambda + LAMBDA_STEP).min(LAMBDA_MAX);
    let t = &mut subs[f];
    let mut n = left
        .min(t.sched_chunk())
        .min(t.sched_room())
        .min(t.send_free() as u64)
        .min(scratch.len() as u64);
    if n < left {
        n = t.whole_segments(n, lv.csum);
    }
    let got = lv.sendbuf.read_at(a, &mut scratch[..n as usize]);
    let sub_off = t.send_end();
    let w = t.send(&scratch[..got]) as u64;
    if w == 0 {
        return false;
    }
    if let Some(mp) = t.mp.as_deref_mut() {
        mp.push_tx(sub_off, a, w);
    }
    subs[j].penalize(now);
    true
}

/// Usable subflows (established, join complete), healthy ones only when there are any.
fn candidate_all(subs: &[Tcb], usable: &dyn Fn(&Tcb) -> bool) -> Vec<usize> {
    let healthy: Vec<usize> = (0..subs.len())
        .filter(|&i| usable(&subs[i]) && subs[i].backoff() == 0)
        .collect();
    if healthy.is_empty() {
        (0..subs.len()).filter(|&i| usable(&subs[i])).collect()
    } else {
        healthy
    }
}

/// Earliest-completion-first check (Lim et al., "ECF", CoNEXT 2017): subflow `i` is not the
/// fastest; would the bytes still to schedule be delivered sooner by waiting for the fastest
/// subflow's window than by sending on `i` now? Prevents the slow path from holding the tail.
fn slower_finishes_later(subs: &[Tcb], i: usize, cands: &[usize], lv: &MpLevel) -> bool {
    let Some((f, rf, rs)) = fastest_other(subs, i, cands) else {
        return false;
    };
    let k = lv.sendbuf.end().saturating_sub(lv.data_nxt) as f64;
    let cwnd = subs[f].cwnd().max(1) as f64;
    let wait = rf.as_secs_f64() * (1.0 + k / cwnd);
    wait < rs.as_secs_f64() * 1.25
}
