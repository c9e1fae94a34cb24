//! The endpoint: one host's TCP stack. Demultiplexes packets to connections, owns listeners,
//! answers segments for closed ports with RST, and hands out what to transmit and when to wake.

use crate::conn::{conn_timeout, drain_sub, fastclose, schedule, with_hooks, Conn, Env, Subflow};
use crate::counters::Counters;
use crate::hash::KeyedState;
use crate::mptcp::conn::{MpLevel, SubflowMp, DSS_RESERVE};
use crate::mptcp::crypto::{token_and_idsn, KeySource};
use crate::mptcp::pm;
use crate::mptcp::sched;
use crate::mptcp::{MpEvent, MptcpConfig, MptcpInfo, SubflowInfo};
use crate::rng::Rng;
use crate::tcp::tcb::{ev, ChallengeLimiter, Ctx, End, Tcb};
use crate::tcp::{BufferInfo, TcpConfig, TcpState};
use crate::time::Instant;
use braid_wire::mptcp::{MptcpOption, ResetReason};
use braid_wire::{IpRepr, TcpFlags, TcpRepr};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

mod cookie;
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
    /// Answer SYNs with SYN cookies (no state kept) when a listener's half-open queue is full,
    /// as Linux's `tcp_syncookies=1` (see `endpoint/cookie.rs`).
    pub syn_cookies: bool,
    /// Multipath TCP (RFC 8684).
    pub mptcp: MptcpConfig,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            tcp: TcpConfig::default(),
            backlog: 512,
            max_connections: 16384,
            syn_cookies: true,
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
    /// Something happened on the MPTCP side of a connection the application knows (a
    /// subflow opened or closed, the peer announced or removed an address, ...).
    Mptcp { conn: ConnHandle, event: MpEvent },
}

/// One packet to send: the IP packet is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub len: usize,
    /// 0: one packet. Else a TCP super-segment (only with [`TxOffload::tso`]): one header
    /// followed by more payload than this, standing for packets of `gso_size` payload bytes
    /// each (the last may be shorter), cut by the device or by [`braid_wire::vnet::split`].
    pub gso_size: u16,
    /// The TCP checksum field holds only the pseudo-header sum (with [`TxOffload::csum`]):
    /// the device completes it.
    pub csum_partial: bool,
}

/// What the device below the endpoint does for it on transmit (all off by default, as the
/// simulator wants: every packet complete and MTU-sized).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// The device completes TCP checksums ([`Transmit::csum_partial`]).
    pub csum: bool,
    /// The device cuts TCP super-segments: most payload bytes of one (0: none). Needs `csum`.
    pub tso: u32,
}

/// Largest payload of a super-segment: an IPv4 packet of 20 + 60 header bytes plus this, and
/// an IPv6 payload of 60 + this, stay within 65,535 bytes.
pub const TSO_MAX_PAYLOAD: u32 = 65_000;

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
    /// Memory of the send and receive buffers (TCP and MPTCP data level) and their sizes.
    pub buffers: BufferInfo,
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

/// A SYN/ACK carrying a SYN cookie, built and waiting to be sent.
#[derive(Debug)]
struct PendingCookie {
    src: IpAddr,
    dst: IpAddr,
    packet: Vec<u8>,
}

/// One host's TCP stack.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    counters: Counters,
    rng: Rng,
    local_addrs: Vec<IpAddr>,
    /// Addresses of `local_addrs` that went away (`remove_local_addr`): they keep their place
    /// (and address id) until they come back.
    gone_addrs: Vec<IpAddr>,
    /// Addresses whose subflows are backups (`add_local_addr_with`, `set_local_backup`).
    backup_addrs: Vec<IpAddr>,
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
    /// Copy space between subflow and connection-level buffers.
    scratch: Vec<u8>,
    /// SYNs held for the application (`listen_transparent`); `None`: a normal endpoint.
    transparent: Option<Box<transparent::Transparent>>,
    /// SYN cookies: the MAC secret (drawn from `keys` when the first cookie is sent) and the
    /// SYN/ACKs waiting to go out.
    cookie_secret: Option<[u8; 32]>,
    cookie_tx: VecDeque<PendingCookie>,
    offload: TxOffload,
}

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
            gone_addrs: Vec::new(),
            backup_addrs: Vec::new(),
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
            scratch: vec![0; 64 << 10],
            transparent: None,
            cookie_secret: None,
            cookie_tx: VecDeque::new(),
            offload: TxOffload::default(),
            config,
        }
    }

    /// Sets what the device does for the endpoint on transmit (checksums, segmentation);
    /// applies from the next [`Endpoint::poll_transmit`]. `tso` is capped at
    /// [`TSO_MAX_PAYLOAD`] and needs `csum`.
    pub fn set_tx_offload(&mut self, mut offload: TxOffload) {
        offload.tso = if offload.csum {
            offload.tso.min(TSO_MAX_PAYLOAD)
        } else {
            0
        };
        self.offload = offload;
    }

    pub fn tx_offload(&self) -> TxOffload {
        self.offload
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
        if t.recv_buffer_max > (65535usize << 14) {
            return Err(Error::InvalidConfig(format!(
                "receive buffer cap {} is above 1 GiB (the largest window TCP can advertise)",
                t.recv_buffer_max
            )));
        }
        if t.min_rto < Duration::from_millis(200) {
            return Err(Error::InvalidConfig(format!(
                "min_rto {:?} is below Linux's 200 ms floor",
                t.min_rto
            )));
        }
        if sched::new_scheduler(&config.mptcp.scheduler).is_none() {
            return Err(Error::InvalidConfig(sched::unknown(
                &config.mptcp.scheduler,
            )));
        }
        if let Err(e) = pm::new_path_manager(&config.mptcp.path_manager) {
            return Err(Error::InvalidConfig(e));
        }
        if crate::cc::new_cc(&t.cc, t.mss as u32).is_none() {
            return Err(Error::InvalidConfig(crate::cc::unknown(&t.cc)));
        }
        Ok(())
    }

    /// Adds an address this endpoint owns (packets to other addresses are dropped and counted).
    pub fn add_local_addr(&mut self, addr: IpAddr) {
        if !self.local_addrs.contains(&addr) {
            self.local_addrs.push(addr);
        }
    }

    /// Adds an address at any time (or brings back one that went away). Existing MPTCP
    /// connections react through their path manager: a client joins from it, a server
    /// announces it (ADD_ADDR). `backup`: subflows from it join with the B bit and our
    /// scheduler treats them as backup.
    pub fn add_local_addr_with(&mut self, now: Instant, addr: IpAddr, backup: bool) {
        let back = self.gone_addrs.contains(&addr);
        let new = !self.local_addrs.contains(&addr);
        self.add_local_addr(addr);
        self.gone_addrs.retain(|a| *a != addr);
        self.backup_addrs.retain(|a| *a != addr);
        if backup {
            self.backup_addrs.push(addr);
        }
        if !new && !back {
            return;
        }
        let hs: Vec<ConnHandle> = self.conns.keys().copied().collect();
        for h in hs {
            let Some(c) = self.conns.get_mut(&h) else {
                continue;
            };
            let Some(lv) = c.level.as_deref_mut() else {
                continue;
            };
            if lv.fallback {
                continue;
            }
            let id = self.local_id_of(h, addr);
            if let Some(lv) = self.conns.get_mut(&h).and_then(|c| c.level.as_deref_mut()) {
                lv.rm_out.retain(|&i| i != id);
            }
            if let Some(c) = self.conns.get_mut(&h) {
                c.pm_pending.push(pm::PmEvent::LocalAddressAdded { addr });
            }
            self.after_tcb(h, now);
        }
    }

    /// Our address id of `addr` in connection `h` (0: its initial subflow's address).
    fn local_id_of(&self, h: ConnHandle, addr: IpAddr) -> u8 {
        if self
            .conns
            .get(&h)
            .is_some_and(|c| c.subs[0].local.ip() == addr)
        {
            return 0;
        }
        self.local_addrs
            .iter()
            .position(|&a| a == addr)
            .map_or(0, |p| (p + 1).min(255) as u8)
    }

    /// The address went away (device down/removed): every subflow from it is closed (nothing
    /// more is sent from it), its unacknowledged data reinjected on the other subflows, and
    /// REMOVE_ADDR sent for its address id on the remaining subflows; the connection lives on
    /// if another subflow remains. Events `SubClosed { reason: LocalGone }`.
    pub fn remove_local_addr(&mut self, now: Instant, addr: IpAddr) {
        if !self.local_addrs.contains(&addr) || self.gone_addrs.contains(&addr) {
            return;
        }
        self.gone_addrs.push(addr);
        let hs: Vec<ConnHandle> = self.conns.keys().copied().collect();
        for h in hs {
            let id = self.local_id_of(h, addr);
            let Some(c) = self.conns.get_mut(&h) else {
                continue;
            };
            let mut hit = false;
            for t in c.subs.iter_mut() {
                if t.local.ip() != addr || t.state == TcpState::Closed {
                    continue;
                }
                hit = true;
                if let Some(mp) = t.mp.as_deref_mut() {
                    mp.local_gone = true;
                }
                // The address is gone: nothing can be sent from it, not even a RST.
                t.abandon(End::Reset);
            }
            if let Some(lv) = c.level.as_deref_mut().filter(|l| !l.fallback) {
                lv.announce.retain(|a| a.1 != addr);
                let others = c.subs.iter().any(|t| t.can_carry());
                if others && (hit || c.subs.iter().any(|t| t.local.ip() == addr)) {
                    if !lv.rm_out.contains(&id) && lv.rm_out.len() < 8 {
                        lv.rm_out.push(id);
                    }
                    lv.rm_tries = 2;
                    self.counters.mp_rm_addr_tx += 1;
                    for t in c.subs.iter_mut().filter(|t| t.can_carry()) {
                        t.force_ack();
                    }
                }
                c.pm_pending.push(pm::PmEvent::LocalAddressRemoved { addr });
            }
            if hit || c.level.is_some() {
                self.after_tcb(h, now);
            }
        }
    }

    /// Changes the backup flag of an address: MP_PRIO on every subflow from it, and our
    /// scheduler's treatment of it. Events `SubPriority`.
    pub fn set_local_backup(&mut self, now: Instant, addr: IpAddr, backup: bool) {
        self.backup_addrs.retain(|a| *a != addr);
        if backup {
            self.backup_addrs.push(addr);
        }
        let hs: Vec<ConnHandle> = self.conns.keys().copied().collect();
        for h in hs {
            let Some(c) = self.conns.get_mut(&h) else {
                continue;
            };
            if c.level.as_deref().is_none_or(|l| l.fallback) {
                continue;
            }
            let mut any = false;
            for t in c.subs.iter_mut() {
                if t.local.ip() != addr || t.state == TcpState::Closed {
                    continue;
                }
                let Some(mp) = t.mp.as_deref_mut() else {
                    continue;
                };
                if mp.backup != backup {
                    mp.set_backup(backup);
                    t.force_ack();
                    self.counters.mp_prio_tx += 1;
                    any = true;
                }
            }
            if any {
                self.after_tcb(h, now);
            }
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
        if !self.local_addrs.contains(&local)
            || self.gone_addrs.contains(&local)
            || local.is_ipv4() != remote.is_ipv4()
        {
            return Err(Error::AddrNotAvailable);
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(Error::AddrInUse);
        }
        let l = self.pick_port(local, remote).ok_or(Error::AddrInUse)?;
        let (iss, ts) = initial_seq(&mut self.rng, &self.config.tcp);
        let tcb = Tcb::connect(&self.config.tcp, l, remote, iss, ts, now)
            .ok_or(Error::AddrNotAvailable)?;
        self.counters.active_opens += 1;
        let mut level = None;
        let mut mp = None;
        if self.config.mptcp.enabled {
            let key = self.fresh_key();
            mp = Some(SubflowMp::initial());
            level = Some(Box::new(MpLevel::client(
                key,
                &self.config.mptcp,
                &self.config.tcp,
            )));
            self.counters.mp_capable_syn_tx += 1;
        }
        let h = self.insert(Subflow::new(tcb, mp), level, None, true);
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
        sub: Subflow,
        level: Option<Box<MpLevel>>,
        listener: Option<u16>,
        visible: bool,
    ) -> ConnHandle {
        let h = ConnHandle(self.next_handle);
        self.next_handle += 1;
        let sched = level.as_ref().map(|_| {
            sched::new_scheduler(&self.config.mptcp.scheduler)
                .unwrap_or_else(|| Box::new(sched::minrtt::MinRtt))
        });
        let pm = level.as_ref().map(|_| {
            pm::new_path_manager(&self.config.mptcp.path_manager)
                .unwrap_or_else(|_| Box::new(pm::fullmesh::FullMesh::default()))
        });
        self.demux.insert((sub.local, sub.remote), (h, 0));
        if let Some(lv) = level.as_deref() {
            self.tokens.insert(lv.local_token, h);
        }
        self.conns
            .insert(h, Conn::new(sub, level, listener, sched, pm));
        if let Some(c) = self.conns.get_mut(&h) {
            c.visible = visible;
        }
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
        self.handle(now, packet, true)
    }

    /// [`Endpoint::handle_packet`] for a packet whose TCP checksum the device vouches for: one
    /// the kernel handed over with `VIRTIO_NET_HDR_F_NEEDS_CSUM` (the field holds the
    /// pseudo-header sum only) or `F_DATA_VALID`; also a TCP super-segment (GSO) of up to 64 KiB,
    /// taken whole. Everything else is checked as there.
    pub fn handle_packet_trusted(&mut self, now: Instant, packet: &[u8]) {
        self.handle(now, packet, false)
    }

    fn handle(&mut self, now: Instant, packet: &[u8], verify: bool) {
        self.counters.packets_in += 1;
        let parsed = if verify {
            braid_wire::parse_ip_tcp(packet)
        } else {
            braid_wire::parse_ip_tcp_trusted(packet)
        };
        let (ip, seg) = match parsed {
            Ok(v) => v,
            Err(e) => {
                self.counters.bad_packets += 1;
                if e == braid_wire::Error::Checksum {
                    self.counters.bad_checksum += 1;
                }
                return;
            }
        };
        if (!self.local_addrs.contains(&ip.dst()) || self.gone_addrs.contains(&ip.dst()))
            && self.transparent.is_none()
        {
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
                self.segment_for(now, h, i, &seg);
                return;
            }
        }
        self.no_connection(now, &ip, &seg, local, remote);
    }

    /// Hands a segment to subflow `i` of connection `h`.
    fn segment_for(&mut self, now: Instant, h: ConnHandle, i: usize, seg: &TcpRepr<'_>) {
        let conn = self
            .conns
            .get_mut(&h)
            .expect("demux points at a live connection");
        let mut ctx = Ctx {
            now,
            counters: &mut self.counters,
            limiter: &mut self.limiter,
        };
        with_hooks(conn, i, |t, hk| t.on_segment(&mut ctx, seg, hk));
        self.after_tcb(h, now);
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
                if !f.syn() {
                    match self.accept_syn_cookie(now, local, remote, seg) {
                        cookie::CookieAck::Connection(h) => {
                            self.segment_for(now, h, 0, seg);
                            return;
                        }
                        cookie::CookieAck::Dropped => return,
                        cookie::CookieAck::Invalid => {}
                    }
                }
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
            if l.accept_queue.len() >= self.config.backlog
                || self.conns.len() >= self.config.max_connections
            {
                self.counters.listen_overflows += 1;
                return;
            }
            if l.half_open + l.accept_queue.len() >= self.config.backlog {
                if self.config.syn_cookies {
                    self.send_syn_cookie(now, local, remote, seg, mpc);
                } else {
                    self.counters.listen_overflows += 1;
                }
                return;
            }
            let (iss, ts) = initial_seq(&mut self.rng, &self.config.tcp);
            let Some(mut tcb) = Tcb::accept_syn(&self.config.tcp, local, remote, iss, ts, now, seg)
            else {
                return;
            };
            self.counters.passive_opens += 1;
            let mut level = None;
            let mut mp = None;
            if let Some(m) = mpc {
                self.counters.mp_capable_syn_rx += 1;
                // RFC 8684 §3.1: only version 1 is spoken; another version gets plain TCP.
                if m.version == braid_wire::mptcp::MPTCP_VERSION {
                    let key = self.fresh_key();
                    tcb.reserve_option_room(DSS_RESERVE);
                    mp = Some(SubflowMp::initial());
                    level = Some(Box::new(MpLevel::server(
                        key,
                        &self.config.mptcp,
                        &m,
                        &self.config.tcp,
                    )));
                }
            }
            if let Some(l) = self.listeners.get_mut(&seg.dst_port) {
                l.half_open += 1;
            }
            self.insert(Subflow::new(tcb, mp), level, Some(seg.dst_port), false);
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
        tcb.reserve_option_room(DSS_RESERVE);
        if let Some(lv) = c.level.as_deref_mut() {
            lv.removed_ids.retain(|&i| i != addr_id);
        }
        let mut mp = SubflowMp::join_responder(nonce_local, nonce, addr_id, our_id, backup);
        mp.backup = self.backup_addrs.contains(&local.ip());
        c.subs.push(Subflow::new(tcb, Some(mp)));
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
        let Some(tcb) = Tcb::connect(&self.config.tcp, l, remote, iss, ts, now) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        // The initial subflow's address keeps id 0 (more subflows over it: ndiffports).
        let addr_id = if local == c.subs[0].local.ip() {
            0
        } else {
            self.local_addrs
                .iter()
                .position(|&a| a == local)
                .map_or(0, |p| (p + 1).min(255) as u8)
        };
        let backup = self.backup_addrs.contains(&local);
        let mut mp = SubflowMp::join_initiator(self.keys.next_nonce(), addr_id, backup);
        // The peer's id of the address we join (0: its initial address) until its SYN/ACK
        // says, so that a REMOVE_ADDR finds the subflow while it opens (RFC 8684 §3.4.2).
        if let (Some(j), Some(lv)) = (mp.join.as_mut(), c.level.as_deref()) {
            j.remote_addr_id = lv
                .remote_addrs
                .iter()
                .find(|r| r.1 == remote.ip())
                .map_or(0, |r| r.0);
        }
        c.subs.push(Subflow::new(tcb, Some(mp)));
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

    /// The MPTCP side of [`Endpoint::after_tcb`]: the connection works, the endpoint routes
    /// what comes of it.
    fn mp_after(&mut self, h: ConnHandle, now: Instant) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        let mut env = Env {
            counters: &mut self.counters,
            scratch: &mut self.scratch,
            local_addrs: &self.local_addrs,
            gone: &self.gone_addrs,
            max_subflows: self.config.mptcp.max_subflows,
        };
        let Some(out) = c.after_mptcp(now, &mut env) else {
            return;
        };
        // Closed subflows leave the demultiplexer.
        for (i, t) in c.subs.iter().enumerate() {
            if t.state == TcpState::Closed && self.demux.get(&(t.local, t.remote)) == Some(&(h, i))
            {
                self.demux.remove(&(t.local, t.remote));
            }
        }
        self.tell(h, out.evs);
        if let Some(c) = self.conns.get_mut(&h).filter(|c| c.visible) {
            for event in c.events.drain(..) {
                self.events.push_back(Event::Mptcp { conn: h, event });
            }
        }
        for (local, remote) in out.joins {
            self.open_join(now, h, local, remote);
        }
        if let Some(end) = out.closed {
            self.conn_closed(h, Some(end));
            return;
        }
        self.queue_tx(h);
    }

    /// The connection-level timer of `h`.
    fn mp_tick(&mut self, h: ConnHandle, now: Instant) {
        if let Some(c) = self.conns.get_mut(&h) {
            c.tick(now, &mut self.counters);
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
                        with_hooks(c, i, |t, _| t.on_timeout(&mut ctx));
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
        if let Some(c) = self.cookie_tx.pop_front() {
            buf.clear();
            buf.extend_from_slice(&c.packet);
            self.counters.packets_out += 1;
            // Built by a connection that had no offload: a whole packet, checksum complete.
            return Some(Transmit {
                src: c.src,
                dst: c.dst,
                len: buf.len(),
                gso_size: 0,
                csum_partial: false,
            });
        }
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
                    gso_size: 0,
                    csum_partial: false,
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
                let offload = self.offload;
                if with_hooks(c, i, |t, hk| {
                    t.offload = offload;
                    t.poll_transmit(now, buf, hk)
                }) {
                    if n > 1 {
                        c.tx_next = (i + 1) % n;
                    }
                    let t = &c.subs[i].tcb;
                    self.counters.packets_out += u64::from(t.tx_packets);
                    if buf.len() > 33 && buf[0] >> 4 == 4 && buf[33] & TcpFlags::RST != 0 {
                        self.counters.rst_sent += 1;
                    }
                    let t = &c.subs[i];
                    return Some(Transmit {
                        src: t.local.ip(),
                        dst: t.remote.ip(),
                        len: buf.len(),
                        gso_size: t.tcb.tx_gso,
                        csum_partial: offload.csum,
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
            schedule(c, &mut self.scratch);
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
            buffers: {
                let (send, recv) = t.buffer_sizes();
                BufferInfo {
                    allocated: t.memory() as u64,
                    peak: t.memory_peak().max(t.memory()) as u64,
                    send_buffer: send as u64,
                    recv_buffer: recv as u64,
                }
            },
            mptcp: None,
        };
        if let Some(lv) = c.level.as_deref() {
            // Whole-connection byte counts over all subflows.
            let sum = |f: fn(&Subflow) -> u64| c.subs.iter().map(f).sum::<u64>();
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
            let now = lv.memory(&c.subs);
            info.buffers = BufferInfo {
                allocated: now as u64,
                peak: lv.mem_peak.max(now) as u64,
                send_buffer: lv.sendbuf.capacity() as u64,
                recv_buffer: lv.recvbuf.capacity() as u64,
            };
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
