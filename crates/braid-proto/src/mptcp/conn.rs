//! The MPTCP connection level (RFC 8684) and the per-subflow MPTCP state.
//!
//! [`MpLevel`] belongs to the connection: keys, tokens, the data-level send and receive buffers
//! (offset 0 = DSN IDSN+1), DATA_ACK / window / DATA_FIN state, reinjection ranges and the path
//! manager's address lists. [`SubflowMp`] lives beside each subflow's TCB (`conn::Subflow`):
//! join handshake state, address id and the tx / rx mappings between subflow stream offsets and
//! data offsets.
//!
//! The TCB knows nothing of MPTCP: for each call the connection hands it [`MpHooks`] (the
//! subflow state with its connection level) as `tcp::hooks::SubflowHooks` — options read
//! before it handles a segment, options written while it builds one, segments bounded by the
//! mappings. A plain TCP connection passes `NoHooks`.
//!
//! The connection does the rest (`conn`, `Conn::after_mptcp`): it drains each subflow's in-order
//! bytes through the rx mappings into the data-level buffer, schedules data-level bytes onto
//! subflows as the scheduler (`sched`) picks, reinjects a subflow's unacknowledged data when it
//! dies or its RTO fires, and tells the path manager (`pm`) what happened. ADD_ADDR goes out
//! with its HMAC (RFC 8684 §3.4.1) on a pure ACK, repeated up to 4 times until echoed.

use super::api::MptcpConfig;
use super::crypto::{add_addr_hmac, join_ack_hmac, join_synack_hmac, token_and_idsn};
use super::event::MpEvent;
use crate::counters::Counters;
use crate::tcp::hooks::{InAction, InSeg, OutSeg, SubflowHooks};
use crate::tcp::recvbuf::RecvBuffer;
use crate::tcp::sendbuf::SendBuffer;
use crate::tcp::tune::{grow_step, moderate, sndbuf_for, RcvSpace};
use crate::tcp::TcpConfig;
use crate::time::Instant;
use braid_wire::mptcp::{
    dss_checksum, AddAddr, CapableFlags, DataSeq, Dss, DssMapping, MpCapable, MptcpOption,
    ResetReason, MPTCP_VERSION,
};
use braid_wire::{TcpFlags, TcpRepr};
use std::collections::VecDeque;
use std::net::IpAddr;

/// Option bytes a data segment's DSS needs (4-byte DATA_ACK and 8-byte DSN mapping as Linux
/// sends them, checksum or padding to 4): the subflow's MSS is reduced by this much.
pub(crate) const DSS_RESERVE: u32 = 24;
/// Option bytes of a DSS carrying only a 4-octet DATA_ACK.
pub(crate) const DSS_ACK_LEN: u32 = 8;
/// Longest mapping we send: one DSS mapping covers up to this many data bytes, carried by the
/// first segment of the mapping only (RFC 8684 §3.3.1 lets a mapping span segments; Linux maps
/// whole TSO bursts the same way). The data-level length field has 16 bits.
pub(crate) const MAX_MAP_LEN: u64 = 63 * 1024;
/// Most rx mappings a subflow keeps, at the least (beyond: dropped and counted).
const MAX_MAPS: usize = 4096;
/// Receive buffer bytes per rx mapping a subflow may keep beyond [`MAX_MAPS`]: with checksums
/// every segment's mapping stays apart until verified, so a large window needs more.
const BYTES_PER_MAP: usize = 512;
/// Most addresses a peer may announce to one connection.
const MAX_REMOTE_ADDRS: usize = 8;
/// Most pending reinjection ranges.
const MAX_REINJECT: usize = 1024;

/// Which end opened the MPTCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// The connection level of an MPTCP connection.
#[derive(Debug)]
pub(crate) struct MpLevel {
    pub role: Role,
    pub local_key: u64,
    pub local_token: u32,
    local_idsn: u64,
    pub remote_key: Option<u64>,
    pub remote_token: u32,
    remote_idsn: u64,
    /// [`MptcpConfig::idsn_base`] (a test hook).
    idsn_base: Option<u64>,
    want_csum: bool,
    /// DSS checksums are in use (either side asked, RFC 8684 §3.1).
    pub csum: bool,
    /// The connection fell back to regular TCP over subflow 0 (RFC 8684 §3.7).
    pub fallback: bool,
    /// Client: the server's first DSS arrived. Server: the client's key arrived.
    pub fully_established: bool,
    /// Data-level send buffer; offset 0 is DSN local IDSN + 1.
    pub sendbuf: SendBuffer,
    /// Data-level receive buffer; offset 0 is DSN remote IDSN + 1.
    pub recvbuf: RecvBuffer,
    /// Autotuning caps of the two buffers ([`TcpConfig::send_cap`], [`TcpConfig::recv_cap`]).
    send_cap: usize,
    recv_cap: usize,
    /// Receive-buffer autotuning at the data level (over the largest subflow RTT).
    rcv_space: RcvSpace,
    /// The in-order end at the data level and since when it is there (a hole's age).
    ioe_since: (u64, Instant),
    /// Most bytes the connection's buffers (data level and subflows) held at once, as sampled
    /// after each input.
    pub mem_peak: usize,
    /// The endpoint is short of buffer memory (see `Tcb::set_memory_pressure`).
    mem_pressure: bool,
    /// Data offset acknowledged by DATA_ACK (our DATA_FIN counts one).
    pub data_una: u64,
    /// Next new data offset to schedule on a subflow.
    pub data_nxt: u64,
    /// Right edge of the peer's data-level window (offset), RFC 8684 §3.3.4.
    pub snd_right: u64,
    /// A DATA_ACK (hence a data-level window) arrived.
    pub window_known: bool,
    /// The application shut down: a DATA_FIN follows the data.
    pub fin_queued: bool,
    /// Data offset of our DATA_FIN once assigned.
    pub local_fin: Option<u64>,
    /// Data offset of the peer's DATA_FIN once seen.
    pub peer_fin: Option<u64>,
    /// The application was told about the end of the stream.
    pub eof_signalled: bool,
    /// A subflow took received bytes straight into the receive buffer since the last pass
    /// ([`MpHooks`]'s `land`): the in-order end may have moved before the pass looked.
    pub landed: bool,
    /// The subflows were told to close (both DATA_FINs done).
    pub closing: bool,
    /// Data ranges (offsets) to send again on another subflow (RFC 8684 §3.3.6).
    pub reinject: VecDeque<(u64, u64)>,
    /// Our addresses to announce with ADD_ADDR (id, address) until echoed.
    pub announce: Vec<(u8, IpAddr)>,
    /// The announcements go out on the next pure ACK.
    pub announce_due: bool,
    pub announce_tries: u32,
    /// The server's addresses announced to us (id, address).
    pub remote_addrs: Vec<(u8, IpAddr)>,
    /// Echoes of announcements to send (RFC 8684 §3.4.1).
    pub echo: VecDeque<AddAddr>,
    /// The path manager was told the connection is fully established.
    pub pm_started: bool,
    /// When the path manager asked to be woken.
    pub pm_wake: Option<Instant>,
    /// Connection-level timer: DATA_FIN / ADD_ADDR retransmission, delayed joins.
    pub timer: Option<Instant>,
    pub timer_backoff: u32,
    /// The data level's retransmission timer (RFC 8684 §3.3.6; Linux's MPTCPRetrans): armed
    /// while the oldest unacknowledged data is in flight on no working subflow; its backoff,
    /// reset when the DATA_ACK moves past `rtx_una` (the point last sent again).
    pub rtx_at: Option<Instant>,
    pub rtx_backoff: u32,
    pub rtx_una: u64,
    /// The application wrote less than it wanted.
    pub write_blocked: bool,
    /// The DATA_ACK point and when it was reached (opportunistic retransmission waits one
    /// round trip of the fastest subflow), and the point last sent again (once per point).
    pub una_since: (u64, Instant),
    pub opp_at: Option<u64>,
    /// Scale of the scheduler's blocking estimate (BLEST's λ), 1 to 3.
    pub blest_lambda: f64,
    /// Peer's address ids removed by REMOVE_ADDR whose subflows the endpoint closes (§3.4.2).
    pub rm_pending: Vec<u8>,
    /// MP_PRIO naming an address id: (peer's address id, backup), for the endpoint to apply to
    /// every subflow to that address (RFC 6824's form, still parsed by RFC 8684 hosts).
    pub peer_prio: Vec<(u8, bool)>,
    /// An MP_FASTCLOSE with our key arrived: every subflow is reset (RFC 8684 §3.5).
    pub fastclose_rx: bool,
    /// We abort: every RST carries MP_FASTCLOSE with the peer's key (RFC 8684 §3.5).
    pub fastclose_tx: bool,
    /// A mapping failed its checksum on the sole subflow: we sent MP_FAIL and wait for the
    /// peer's infinite mapping (RFC 8684 §3.7). No join is accepted meanwhile.
    pub fail_pending: bool,
    /// The bytes of that mapping (data offset, bytes; at most one mapping, 64 KiB), held until
    /// the infinite mapping says whether the peer sends them again (it starts at or before
    /// them) or carries on after them (they become regular TCP data, as without MPTCP).
    pub fail_stash: Option<(u64, Vec<u8>)>,
    /// When a peer that never answers our MP_FAIL gets the connection reset.
    pub fail_deadline: Option<Instant>,
    /// In fallback: subflow 0 offset from which the peer's bytes are the data stream, and the
    /// data offset of that byte (its infinite mapping, RFC 8684 §3.7; identity by default).
    pub fb_rx: (u64, u64),
    /// In fallback: subflow 0 offset from which our bytes are the data stream, and the data
    /// offset sent there (our infinite mapping after an MP_FAIL; identity by default).
    pub fb_tx: (u64, u64),
    /// Events for the application (Announced, Removed) waiting to be taken (at most
    /// [`MAX_EVENTS`]; beyond, dropped).
    pub events: VecDeque<MpEvent>,
    /// `MpEvent::Established` was told.
    pub est_told: bool,
    /// Ports the peer announced with its addresses (address id, port).
    pub remote_ports: Vec<(u8, u16)>,
    /// Our address ids to remove with REMOVE_ADDR (RFC 8684 §3.4.2), and the pure ACKs that
    /// still carry them.
    pub rm_out: Vec<u8>,
    pub rm_tries: u32,
    /// When a subflow may next turn stale (`conn::health`).
    pub health_at: Option<Instant>,
    /// When subflows still open after the DATA_FIN exchange completed are reset.
    pub close_deadline: Option<Instant>,
    /// The peer's address ids last removed (REMOVE_ADDR), so that each removal is told once.
    pub removed_ids: Vec<u8>,
}

/// Most MPTCP events a connection holds for the application.
pub(crate) const MAX_EVENTS: usize = 256;

impl MpLevel {
    /// Queues an event for the application (dropped beyond [`MAX_EVENTS`]).
    pub fn push_event(&mut self, e: MpEvent) {
        if self.events.len() < MAX_EVENTS {
            self.events.push_back(e);
        }
    }

    fn new(role: Role, key: u64, cfg: &MptcpConfig, tcp: &TcpConfig) -> Self {
        let (token, idsn) = token_and_idsn(key);
        let want_csum = cfg.checksum;
        MpLevel {
            role,
            local_key: key,
            local_token: token,
            local_idsn: placed_idsn(idsn, cfg.idsn_base),
            idsn_base: cfg.idsn_base,
            remote_key: None,
            remote_token: 0,
            remote_idsn: 0,
            want_csum,
            csum: want_csum,
            fallback: false,
            fully_established: false,
            sendbuf: SendBuffer::new(tcp.send_buffer),
            recvbuf: RecvBuffer::new(tcp.recv_buffer),
            send_cap: tcp.send_cap(),
            recv_cap: tcp.recv_cap(),
            rcv_space: RcvSpace::new(Instant::ZERO, tcp.mss as u32),
            ioe_since: (0, Instant::ZERO),
            mem_peak: 0,
            mem_pressure: false,
            data_una: 0,
            data_nxt: 0,
            snd_right: 0,
            window_known: false,
            fin_queued: false,
            local_fin: None,
            peer_fin: None,
            eof_signalled: false,
            landed: false,
            closing: false,
            reinject: VecDeque::new(),
            announce: Vec::new(),
            announce_due: false,
            announce_tries: 0,
            remote_addrs: Vec::new(),
            echo: VecDeque::new(),
            pm_started: false,
            pm_wake: None,
            timer: None,
            timer_backoff: 0,
            rtx_at: None,
            rtx_backoff: 0,
            rtx_una: 0,
            write_blocked: false,
            una_since: (0, Instant::ZERO),
            opp_at: None,
            blest_lambda: 1.0,
            rm_pending: Vec::new(),
            peer_prio: Vec::new(),
            fastclose_rx: false,
            fastclose_tx: false,
            fail_pending: false,
            fail_stash: None,
            fail_deadline: None,
            fb_rx: (0, 0),
            fb_tx: (0, 0),
            events: VecDeque::new(),
            est_told: false,
            remote_ports: Vec::new(),
            rm_out: Vec::new(),
            rm_tries: 0,
            health_at: None,
            close_deadline: None,
            removed_ids: Vec::new(),
        }
    }

    /// The active opener: its SYN offers MP_CAPABLE.
    pub fn client(key: u64, cfg: &MptcpConfig, tcp: &TcpConfig) -> Self {
        Self::new(Role::Client, key, cfg, tcp)
    }

    /// The passive opener, from the peer's MP_CAPABLE SYN.
    pub fn server(key: u64, cfg: &MptcpConfig, syn: &MpCapable, tcp: &TcpConfig) -> Self {
        let mut c = Self::new(Role::Server, key, cfg, tcp);
        c.csum = cfg.checksum || syn.flags.checksum_required();
        c
    }

    fn set_remote_key(&mut self, key: u64) {
        let (token, idsn) = token_and_idsn(key);
        self.remote_key = Some(key);
        self.remote_token = token;
        self.remote_idsn = placed_idsn(idsn, self.idsn_base);
    }

    fn flags(&self) -> CapableFlags {
        let mut f = CapableFlags::HMAC_SHA256;
        if self.csum || self.want_csum {
            f |= CapableFlags::CHECKSUM_REQUIRED;
        }
        CapableFlags(f)
    }

    /// The peer's DATA_FIN is the next thing in the data stream.
    pub fn peer_fin_reached(&self) -> bool {
        self.peer_fin == Some(self.recvbuf.in_order_end())
    }

    /// Our DATA_FIN was acknowledged.
    pub fn local_fin_acked(&self) -> bool {
        self.local_fin.is_some_and(|f| self.data_una > f)
    }

    /// The DATA_ACK we send (absolute DSN; the peer's DATA_FIN counted once in order).
    fn data_ack(&self) -> u64 {
        let next = self.recvbuf.in_order_end() + self.peer_fin_reached() as u64;
        self.remote_idsn.wrapping_add(1).wrapping_add(next)
    }

    /// (DATA_ACK, right edge of the receive window) as we would advertise them now.
    fn ack_edge(&self) -> (u64, u64) {
        let a = self.data_ack();
        (a, a.wrapping_add(self.recv_window() as u64))
    }

    /// The peer's 64-bit DSN of data offset `off`.
    pub fn remote_dsn(&self, off: u64) -> u64 {
        self.remote_idsn.wrapping_add(1).wrapping_add(off)
    }

    /// Our 64-bit DSN of data offset `off`.
    pub fn local_dsn(&self, off: u64) -> u64 {
        self.local_idsn.wrapping_add(1).wrapping_add(off)
    }

    /// Window we advertise on every subflow: the data-level receive window (RFC 8684 §3.3.4).
    pub fn recv_window(&self) -> usize {
        self.recvbuf.window()
    }

    /// Buffer autotuning at the data level, after each input (Linux's
    /// `mptcp_rcv_space_adjust` and the sum of its subflows' send buffers):
    ///
    /// * receive: dynamic right-sizing over the largest RTT of the subflows (a byte sent on
    ///   the slowest arrives that late, and the window must cover what all of them deliver
    ///   meanwhile), twice TCP's size: the data level also holds what the other subflows
    ///   deliver while one recovers a loss (with TCP's size two subflows sharing a bottleneck
    ///   with a TCP flow got 39 instead of 51 Mbit/s under LIA); every subflow's receive
    ///   buffer follows the data level's, so that its out-of-order data and what waits for
    ///   the data-level window fit;
    /// * send: twice the aggregate rate (Σ cwnd / SRTT) over the largest SRTT, so that the
    ///   bytes the slowest subflow holds unacknowledged and what the others send meanwhile fit.
    ///
    /// A subflow's hole (a lost segment it recovers, or data on a slow path) holds back the
    /// data level while the others go on: both buffers must cover what they deliver meanwhile,
    /// up to a retransmission timeout of the lossy subflow — more than any round-trip measure
    /// shows. So while such a hole fills a buffer (the receiver's window is mostly
    /// out-of-order data; the sender's buffer is full of data not DATA_ACKed for a round trip
    /// of the fastest subflow) it grows to twice the rate over the hole's age plus a round
    /// trip: the rate the receiver read at (DRS's last round trip), or the subflows' Σ cwnd /
    /// SRTT at the sender.
    ///
    /// Both grow only, up to the configured caps. Records the memory peak, and frees the
    /// data-level rings once the connection is over.
    pub(crate) fn tune_buffers(&mut self, now: Instant, subs: &mut [crate::conn::Subflow]) {
        let live = || {
            subs.iter()
                .filter(|t| t.state != crate::tcp::TcpState::Closed)
        };
        if self.recvbuf.capacity() < self.recv_cap && !self.mem_pressure {
            // A subflow that has carried no data to us yet counts with its handshake RTT: a
            // window sized for the fastest alone would keep the slower ones from ever being
            // used (the scheduler waits rather than block the window).
            let rtt = live().filter_map(|t| t.rcv_rtt().or(t.srtt())).max();
            let mss = subs.first().map_or(1460, |t| t.rcv_mss_now());
            let read = self.recvbuf.read_offset();
            let cap = self.recvbuf.capacity();
            if let Some(c) = self
                .rcv_space
                .adjust(now, read, rtt, mss, cap, self.recv_cap)
            {
                self.recvbuf
                    .set_capacity(c.saturating_mul(2).min(self.recv_cap));
            }
            let ioe = self.recvbuf.in_order_end();
            if ioe != self.ioe_since.0 {
                self.ioe_since = (ioe, now);
            }
            let ahead = self.recvbuf.held_end() - ioe;
            let wnd = self.recv_window() as u64;
            if let Some(r) = rtt.filter(|_| self.recvbuf.readable() == 0 && ahead * 4 >= wnd * 3) {
                let age = now.saturating_duration_since(self.ioe_since.1) + r;
                let rate = self.rcv_space.rate(r);
                let want = (2.0 * rate * age.as_secs_f64()) as usize;
                let cap = self.recvbuf.capacity();
                if let Some(c) = grow_step(cap, want, self.recv_cap) {
                    self.recvbuf.set_capacity(c);
                }
            }
        }
        let cap = self.recvbuf.capacity();
        for t in subs.iter_mut() {
            t.grow_rcvbuf(cap);
            t.grow_sndbuf_to_cwnd();
        }
        if self.sendbuf.capacity() < self.send_cap && self.write_blocked && !self.mem_pressure {
            let carrying = || {
                subs.iter()
                    .filter(|t| t.can_carry() && t.mp.as_deref().is_some_and(|m| m.ready))
            };
            let max_rtt = carrying().filter_map(|t| t.srtt()).max();
            let mut want = 0u64;
            for t in carrying() {
                let cwnd = t.cwnd() as u64;
                let bytes = match (t.srtt(), max_rtt) {
                    (Some(r), Some(m)) if !r.is_zero() => {
                        (cwnd as f64 * m.as_secs_f64() / r.as_secs_f64()) as u64
                    }
                    _ => cwnd,
                };
                want = want.saturating_add(bytes);
            }
            let mss = subs.first().map_or(1460, |t| t.smss());
            let mut want = sndbuf_for(want, mss, self.send_cap);
            let min_rtt = carrying().filter_map(|t| t.srtt()).min();
            let age = now.saturating_duration_since(self.una_since.1);
            if min_rtt.is_some_and(|r| age >= r)
                && self.una_since.0 == self.data_una
                && self.data_una < self.data_nxt
                && self.sendbuf.free() < mss as usize
                // The peer's window is open: not a reader that stopped, a hole.
                && self.snd_right >= self.data_nxt + mss as u64
            {
                let rate: f64 = carrying()
                    .filter_map(|t| {
                        t.srtt()
                            .map(|r| t.cwnd() as f64 / r.as_secs_f64().max(1e-6))
                    })
                    .sum();
                let span = age + max_rtt.unwrap_or_default();
                want = want.max((2.0 * rate * span.as_secs_f64()) as usize);
            }
            if let Some(c) = grow_step(self.sendbuf.capacity(), want, self.send_cap) {
                self.sendbuf.set_capacity(c);
            }
        }
        self.mem_peak = self.mem_peak.max(self.memory(subs));
        if self.closing {
            self.sendbuf.release();
            self.recvbuf.release();
        }
    }

    /// Memory pressure starts (again) or ends, for the data level and every subflow: as
    /// `Tcb::set_memory_pressure`, the data-level window closing towards the same size.
    pub(crate) fn set_memory_pressure(&mut self, on: bool, subs: &mut [crate::conn::Subflow]) {
        self.mem_pressure = on;
        for t in subs.iter_mut() {
            t.set_memory_pressure(on);
        }
        if !on {
            self.recvbuf.shrink_towards(None);
            return;
        }
        moderate(&mut self.sendbuf, &mut self.recvbuf);
    }

    /// Bytes the connection's rings hold now: the data level's and every subflow's.
    pub(crate) fn memory(&self, subs: &[crate::conn::Subflow]) -> usize {
        let own = self.sendbuf.allocated() + self.recvbuf.allocated();
        own + subs.iter().map(|t| t.memory()).sum::<usize>()
    }

    /// Queues a data range for reinjection (merged with the last one when adjacent).
    pub fn push_reinject(&mut self, a: u64, z: u64) {
        if a >= z {
            return;
        }
        if let Some(last) = self.reinject.back_mut() {
            if last.1 == a {
                last.1 = z;
                return;
            }
        }
        if self.reinject.len() < MAX_REINJECT {
            self.reinject.push_back((a, z));
        }
    }
}

/// The MP_JOIN handshake of an additional subflow (RFC 8684 §3.2).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Join {
    pub initiator: bool,
    pub local_nonce: u32,
    pub remote_nonce: u32,
    pub remote_addr_id: u8,
}

/// The DSS checksum a received mapping must pass before its bytes are delivered: the
/// pseudo-header fields as the option carried them (RFC 8684 §3.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MapCsum {
    /// 64-bit DSN of the mapping's first byte.
    pub dsn: u64,
    /// Relative subflow sequence number of the mapping.
    pub ssn: u32,
    /// Data-level length as sent (a DATA_FIN counted).
    pub data_len: u16,
    /// The checksum; `None` when it was missing although negotiated (the mapping then fails).
    pub value: Option<u16>,
}

/// One mapping received on a subflow (RFC 8684 §3.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RxMap {
    /// Subflow stream offset of the first byte.
    pub sub: u64,
    /// Data offset of the first byte.
    pub data: u64,
    /// Bytes of data (a DATA_FIN not counted).
    pub len: u64,
    /// Checksum still to verify over the whole mapping; `None`: none, or verified.
    pub csum: Option<MapCsum>,
}

/// A received mapping's length and the checksum it must pass, for [`SubflowMp::push_rx`].
type RxMapIn = (u64, Option<MapCsum>);

/// The MPTCP state of one subflow.
#[derive(Debug, Default)]
pub(crate) struct SubflowMp {
    pub join: Option<Join>,
    /// Our address id for this subflow (0: the initial subflow).
    pub addr_id: u8,
    pub backup: bool,
    /// The subflow may carry data (initial subflow, or join complete: RFC 8684 §3.2).
    pub ready: bool,
    /// (subflow offset, data offset, length) of data queued on this subflow: one entry is one
    /// DSS mapping on the wire, sent with the entry's first segment.
    pub tx: VecDeque<(u64, u64, u64)>,
    /// Subflow offset up to which payload went on the wire (a mapping already sent is frozen).
    pub tx_emitted: u64,
    /// (DATA_ACK, right window edge) last sent on this subflow: data segments repeat the
    /// DATA_ACK only when it changed (pure ACKs always carry it).
    pub ack_sent: Option<(u64, u64)>,
    /// Mappings received, in arrival order.
    pub rx: VecDeque<RxMap>,
    /// End (subflow offset, data offset) of the received mapping reaching farthest into the
    /// subflow: where the peer's stream goes on when it falls back without saying more.
    pub rx_tail: Option<(u64, u64)>,
    /// MP_TCPRST reason to put on our RST.
    pub rst_reason: Option<ResetReason>,
    /// The data this subflow holds was queued for reinjection (reset when it recovers).
    pub reinjected: bool,
    /// Subflow offset up to which a stalled subflow's data was queued for reinjection: once it
    /// recovers it must still retransmit that backlog (the peer's copy came from the others),
    /// and new data waits neither behind it nor for it (see `conn::send::sched_view`).
    pub reinjected_to: u64,
    /// Ask the TCB for an immediate ACK (the join's 4th ACK).
    pub ack_now: bool,
    /// Payload bytes first sent on this subflow for the data level.
    pub bytes_scheduled: u64,
    /// The redundant scheduler: data offset this subflow sends next.
    pub redundant_next: u64,
    /// Some rx mapping was not the identity (subflow offset != data offset).
    pub rx_shifted: bool,
    /// The peer asked us to send on this subflow only when no regular one can (B bit of its
    /// MP_JOIN, or MP_PRIO: RFC 8684 §3.2, §3.3.8). Apart from `backup`, our own request.
    pub peer_backup: bool,
    /// MP_PRIO to send on the next pure ACK (our `backup` changed, RFC 8684 §3.3.8).
    pub prio_pending: Option<bool>,
    /// Closed because the peer removed its address (REMOVE_ADDR, RFC 8684 §3.4.2).
    pub removed: bool,
    /// MP_FAIL to send (DSN of the mapping that failed, RFC 8684 §3.7): on our RST when the
    /// subflow is reset, or on pure ACKs while the connection waits for the infinite mapping.
    pub fail_dsn: Option<u64>,
    /// A pure ACK is due to carry the MP_FAIL (data segments have no room for it).
    pub fail_ack_due: bool,
    /// The peer's MP_FAIL arrived on this subflow (its DSN), for the endpoint to act on.
    pub fail_rx: Option<u64>,
    /// Reset after a failed checksum: its bytes never reach the data level.
    pub failed: bool,
    /// Our infinite mapping (RFC 8684 §3.7): (subflow offset, DSN) of the first byte of the
    /// regular TCP stream; the segment starting there carries it, also when retransmitted.
    pub inf_map: Option<(u64, u64)>,
    /// The MP_TCPRST reason code of the peer's RST on this subflow.
    pub rst_rx_reason: Option<u8>,
    /// Closed because our address of it went away (`Endpoint::remove_local_addr`).
    pub local_gone: bool,
    /// Closed by us after the connection's data was done (its FIN never acknowledged).
    pub abandoned: bool,
    /// Events told: SubEstablished (with the backup flag told last), SubClosed.
    pub est_told: Option<bool>,
    pub closed_told: bool,
    /// Stale (`conn::health`): no ACK news for too long while another subflow worked; since
    /// when, and since when data has been outstanding without a check seeing it all acked.
    pub stale: bool,
    pub stale_at: Instant,
    pub out_since: Option<Instant>,
}

/// The control options of one incoming segment (RFC 8684 §3.3.8, §3.4.2, §3.5).
#[derive(Default)]
struct Control<'a> {
    remove: Option<&'a [u8]>,
    prio: Option<(bool, Option<u8>)>,
    fastclose: Option<u64>,
}

impl SubflowMp {
    /// The initial subflow (MP_CAPABLE).
    pub fn initial() -> Self {
        SubflowMp {
            ready: true,
            ..Default::default()
        }
    }

    /// An MP_JOIN subflow we open.
    pub fn join_initiator(nonce: u32, addr_id: u8, backup: bool) -> Self {
        SubflowMp {
            join: Some(Join {
                initiator: true,
                local_nonce: nonce,
                remote_nonce: 0,
                remote_addr_id: 0,
            }),
            addr_id,
            backup,
            ..Default::default()
        }
    }

    /// An MP_JOIN subflow the peer opens; `peer_backup` is the B bit of its SYN (a request for
    /// our sending; our SYN/ACK carries our own, not an echo of it).
    pub fn join_responder(
        nonce: u32,
        peer_nonce: u32,
        peer_addr_id: u8,
        addr_id: u8,
        peer_backup: bool,
    ) -> Self {
        SubflowMp {
            join: Some(Join {
                initiator: false,
                local_nonce: nonce,
                remote_nonce: peer_nonce,
                remote_addr_id: peer_addr_id,
            }),
            addr_id,
            peer_backup,
            ..Default::default()
        }
    }

    /// The scheduler sends on this subflow only when no regular one can: we or the peer asked
    /// for it (Linux checks both directions too).
    pub fn is_backup(&self) -> bool {
        self.backup || self.peer_backup
    }

    /// The peer's address id of this subflow (0: the address of the initial subflow, §3.4.1).
    pub fn remote_id(&self) -> u8 {
        self.join.map_or(0, |j| j.remote_addr_id)
    }

    /// Our priority for this subflow changed: MP_PRIO goes out on the next pure ACK (§3.3.8).
    pub fn set_backup(&mut self, backup: bool) {
        self.backup = backup;
        self.prio_pending = Some(backup);
    }

    /// Every MPTCP option of an outgoing segment: [`SubflowMp::write_options`] plus the control
    /// options: MP_FASTCLOSE on the RSTs of an abort (RFC 8684 §3.5, with MP_TCPRST as Linux
    /// sends it) and a pending MP_PRIO beside the DSS of a pure ACK (§3.3.8, as Linux sends it).
    pub fn options(
        &mut self,
        lv: &mut MpLevel,
        s: &OutSeg<'_>,
        out: &mut [[u8; 40]; 2],
    ) -> [usize; 2] {
        if s.flags & TcpFlags::RST != 0 && lv.fastclose_tx && !lv.fallback {
            if let Some(receiver_key) = lv.remote_key {
                let reason = self.rst_reason.unwrap_or(ResetReason::Unspecified);
                return [
                    MptcpOption::MpFastclose { receiver_key }.emit(&mut out[0]),
                    MptcpOption::MpTcpRst {
                        transient: false,
                        reason,
                    }
                    .emit(&mut out[1]),
                ];
            }
        }
        let mut lens = self.write_options(lv, s, out);
        let pure_ack = s.flags & (TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST | TcpFlags::ACK)
            == TcpFlags::ACK
            && s.payload.is_empty();
        if pure_ack {
            self.fail_ack_due = false;
            if let Some(dsn) = self.fail_dsn.filter(|_| lv.fail_pending && !lv.fallback) {
                // RFC 8684 §3.7: MP_FAIL on the subflow-level ACK (beside the DSS: 8 + 12
                // option bytes; SACK blocks give way).
                let i = if lens[0] == 0 { 0 } else { 1 };
                if lens[i] == 0 {
                    lens[i] = MptcpOption::MpFail { dsn }.emit(&mut out[i]);
                }
            }
        }
        if let Some(backup) = self.prio_pending {
            let o = MptcpOption::MpPrio {
                backup,
                addr_id: None,
            };
            // Room: 40 option bytes less 12 for timestamps; no SACK blocks.
            let used: usize = lens.iter().filter(|&&l| l > 0).map(|&l| l + 2).sum();
            if pure_ack
                && !s.sack
                && lens[1] == 0
                && used + o.emit_len() + 2 <= 28
                && self.ready
                && lv.fully_established
                && !lv.fallback
            {
                lens[1] = o.emit(&mut out[1]);
                self.prio_pending = None;
            }
        }
        lens
    }

    /// Records data queued on the subflow: merged into the last mapping when contiguous in both
    /// spaces, not yet on the wire and short enough; else mappings of at most [`MAX_MAP_LEN`].
    pub fn push_tx(&mut self, mut sub_off: u64, mut data_off: u64, mut len: u64) {
        if let Some(l) = self.tx.back_mut() {
            if l.0 + l.2 == sub_off && l.1 + l.2 == data_off && self.tx_emitted <= l.0 {
                let n = len.min(MAX_MAP_LEN.saturating_sub(l.2));
                l.2 += n;
                (sub_off, data_off, len) = (sub_off + n, data_off + n, len - n);
            }
        }
        while len > 0 {
            let n = len.min(MAX_MAP_LEN);
            self.tx.push_back((sub_off, data_off, n));
            (sub_off, data_off, len) = (sub_off + n, data_off + n, len - n);
        }
    }

    /// Records data queued on the subflow after fallback (regular TCP: no mapping goes on the
    /// wire any more): one entry as long as the bytes are contiguous in both spaces, so that
    /// segments are bounded only where the stream really jumps.
    pub fn push_tx_fallback(&mut self, sub_off: u64, data_off: u64, len: u64) {
        match self.tx.back_mut() {
            Some(l) if l.0 + l.2 == sub_off && l.1 + l.2 == data_off => l.2 += len,
            _ => self.tx.push_back((sub_off, data_off, len)),
        }
    }

    /// MPTCP option bytes a data segment starting at subflow offset `off` carries: a whole DSS
    /// (or MP_CAPABLE with data) on the first segment of a mapping, the DATA_ACK alone when it
    /// changed, else none. The TCB sizes the segment's payload with it.
    pub fn data_opt_len(&self, lv: &MpLevel, off: u64) -> u32 {
        if lv.fallback {
            return if self.inf_map.is_some_and(|m| m.0 == off) {
                DSS_RESERVE
            } else {
                0
            };
        }
        let starts_mapping = self
            .tx
            .get(self.tx.partition_point(|m| m.0 + m.2 <= off))
            .is_none_or(|m| m.0 == off);
        // With checksums every data segment carries the mapping of its own payload.
        if starts_mapping
            || lv.csum
            || !self.ready
            || (lv.role == Role::Client && !lv.fully_established)
        {
            DSS_RESERVE
        } else if self.ack_sent != Some(lv.ack_edge()) {
            DSS_ACK_LEN
        } else {
            0
        }
    }

    /// May a super-segment start at subflow offset `off`? Only where each packet cut from it
    /// may repeat one DSS mapping that covers it all (RFC 8684 §3.3.1 allows repeating a
    /// mapping; Linux's TSO does the same): not with DSS checksums (a mapping per packet), not
    /// before the connection is fully established (MP_CAPABLE carries the first data), not
    /// where the infinite mapping goes; and never for control options, which only pure ACKs
    /// carry.
    pub fn burst_ok(&self, lv: &MpLevel, off: u64) -> bool {
        if lv.fallback {
            return self.inf_map.is_none();
        }
        !lv.csum
            && self.ready
            && (lv.role != Role::Client || lv.fully_established)
            && self.tx_lookup(off).is_some()
    }

    /// Where data offset `d` sits on this subflow: (subflow offset, bytes to its mapping's end).
    pub fn tx_of_data(&self, d: u64) -> Option<(u64, u64)> {
        self.tx
            .iter()
            .find(|m| m.1 <= d && d < m.1 + m.2)
            .map(|m| (m.0 + (d - m.1), m.1 + m.2 - d))
    }

    /// Splits the tx mapping holding subflow offset `off` so that one starts there.
    fn split_tx_at(&mut self, off: u64) {
        let i = self.tx.partition_point(|m| m.0 + m.2 <= off);
        if let Some(&(a, d, n)) = self.tx.get(i) {
            if a < off {
                self.tx[i] = (a, d, off - a);
                self.tx.insert(i + 1, (off, d + (off - a), n - (off - a)));
            }
        }
    }

    /// Forgets tx mappings wholly below the subflow's acknowledged offset `una` whose data is
    /// DATA_ACKed too (below `data_una`): until then a subflow reset may ask for them again
    /// (RFC 8684 §3.3.6: only the DATA_ACK makes data safe; §3.7: MP_FAIL).
    pub fn prune_tx(&mut self, una: u64, data_una: u64) {
        while self
            .tx
            .front()
            .is_some_and(|m| m.0 + m.2 <= una && m.1 + m.2 <= data_una)
        {
            self.tx.pop_front();
        }
    }

    /// The tx mapping holding subflow offset `off`: (data offset of `off`, bytes to its end).
    pub(crate) fn tx_lookup(&self, off: u64) -> Option<(u64, u64)> {
        let i = self.tx.partition_point(|m| m.0 + m.2 <= off);
        let m = self.tx.get(i)?;
        (m.0 <= off).then(|| (m.1 + (off - m.0), m.0 + m.2 - off))
    }

    /// Largest segment that may start at subflow offset `off` (one mapping per segment).
    pub fn seg_limit(&self, off: u64) -> u64 {
        self.tx_lookup(off).map_or(u64::MAX, |(_, n)| n)
    }

    /// Index of the rx mapping holding subflow offset `off` (the first received, when
    /// mappings overlap).
    pub fn rx_index(&self, off: u64) -> Option<usize> {
        self.rx
            .iter()
            .position(|m| m.sub <= off && off < m.sub + m.len)
    }

    /// Start of the first rx mapping beyond `off`.
    pub fn rx_next_start(&self, off: u64) -> Option<u64> {
        self.rx.iter().filter(|m| m.sub > off).map(|m| m.sub).min()
    }

    /// Forgets rx mappings wholly below `off` (already drained): those at the front at once,
    /// any others once they reach it (until then lookups pass over them).
    pub fn prune_rx(&mut self, off: u64) {
        while self.rx.front().is_some_and(|m| m.sub + m.len <= off) {
            self.rx.pop_front();
        }
    }

    /// Records a received mapping of `len` data bytes (bounded by [`MAX_MAPS`] or one per
    /// [`BYTES_PER_MAP`] of `i`'s receive buffer: beyond, it is dropped and counted). A mapping
    /// inside one already known with the same placement is a retransmission; mappings without
    /// a checksum to verify merge when contiguous.
    fn push_rx(&mut self, c: &mut Counters, i: &InSeg, sub_off: u64, data_off: u64, rx: RxMapIn) {
        let (len, csum) = rx;
        self.rx_shifted |= sub_off != data_off;
        let (end, dend) = (sub_off + len, data_off + len);
        // Only a mapping not beyond all known ones can repeat one (the common case is not).
        let known = self.rx_tail.is_some_and(|t| sub_off < t.0);
        if self.rx_tail.is_none_or(|t| t.0 < end) {
            self.rx_tail = Some((end, dend));
        }
        if known
            && self.rx.iter().any(|m| {
                m.sub <= sub_off && end <= m.sub + m.len && m.data + (sub_off - m.sub) == data_off
            })
        {
            return;
        }
        if let Some(l) = self.rx.back_mut() {
            if l.sub + l.len == sub_off
                && l.data + l.len == data_off
                && l.csum.is_none()
                && csum.is_none()
            {
                l.len += len;
                return;
            }
        }
        if self.rx.len() >= MAX_MAPS.max(i.rcv_capacity / BYTES_PER_MAP) {
            c.mp_dss_not_matching += 1;
            return;
        }
        self.rx.push_back(RxMap {
            sub: sub_off,
            data: data_off,
            len,
            csum,
        });
    }

    /// Writes the MPTCP option bodies this segment carries into `out`; returns their lengths.
    pub fn write_options(
        &mut self,
        lv: &mut MpLevel,
        s: &OutSeg<'_>,
        out: &mut [[u8; 40]; 2],
    ) -> [usize; 2] {
        let mut lens = [0, 0];
        if s.flags & TcpFlags::RST != 0 {
            if let Some(reason) = self.rst_reason {
                lens[0] = MptcpOption::MpTcpRst {
                    transient: false,
                    reason,
                }
                .emit(&mut out[0]);
            }
            if let Some(dsn) = self.fail_dsn {
                // RFC 8684 §3.7: the subflow reset for a failed checksum says where.
                let i = (lens[0] > 0) as usize;
                lens[i] = MptcpOption::MpFail { dsn }.emit(&mut out[i]);
            }
            return lens;
        }
        if lv.fallback {
            if let Some((off, dsn)) = self.inf_map {
                if s.off == off && !s.payload.is_empty() {
                    // RFC 8684 §3.7: the infinite mapping (data-level length 0) on the first
                    // segment of the regular TCP stream, in answer to MP_FAIL.
                    let d = Dss {
                        data_fin: false,
                        data_ack: Some(DataSeq::narrow(lv.data_ack() as u32)),
                        mapping: Some(DssMapping {
                            dsn: DataSeq::wide(dsn),
                            subflow_seq: s.rel_seq,
                            data_len: 0,
                            checksum: lv.csum.then(|| dss_checksum(dsn, s.rel_seq, 0, &[])),
                        }),
                    };
                    lens[0] = MptcpOption::Dss(d).emit(&mut out[0]);
                }
            }
            return lens;
        }
        let syn = s.flags & TcpFlags::SYN != 0;
        let ack = s.flags & TcpFlags::ACK != 0;
        if let Some(j) = self.join {
            let opt = if syn && !ack {
                MptcpOption::MpJoinSyn {
                    backup: self.backup,
                    addr_id: self.addr_id,
                    token: lv.remote_token,
                    nonce: j.local_nonce,
                }
            } else if syn {
                MptcpOption::MpJoinSynAck {
                    backup: self.backup,
                    addr_id: self.addr_id,
                    hmac: join_synack_hmac(
                        lv.local_key,
                        lv.remote_key.unwrap_or_default(),
                        j.local_nonce,
                        j.remote_nonce,
                    ),
                    nonce: j.local_nonce,
                }
            } else if j.initiator && !self.ready {
                // RFC 8684 §3.2: the third ACK (repeated until the peer acknowledges it).
                MptcpOption::MpJoinAck {
                    hmac: join_ack_hmac(
                        lv.local_key,
                        lv.remote_key.unwrap_or_default(),
                        j.local_nonce,
                        j.remote_nonce,
                    ),
                }
            } else {
                return self.dss_and_addr(lv, s, out);
            };
            lens[0] = opt.emit(&mut out[0]);
            return lens;
        }
        let opt = if syn && !ack {
            // RFC 8684 §3.1: the v1 SYN carries no key.
            MptcpOption::MpCapable(MpCapable::syn(lv.flags()))
        } else if syn {
            MptcpOption::MpCapable(MpCapable::syn_ack(lv.flags(), lv.local_key))
        } else {
            let Some(remote_key) = lv.remote_key else {
                return lens;
            };
            let len = s.payload.len();
            if lv.role == Role::Client && !lv.fully_established && s.flags & TcpFlags::FIN == 0 {
                if len == 0 {
                    // Third ACK, repeated on pure ACKs until the server's first DSS (§3.1).
                    MptcpOption::MpCapable(MpCapable::ack(lv.flags(), lv.local_key, remote_key))
                } else if s.off == 0
                    && len <= u16::MAX as usize
                    && self.tx_lookup(0).is_some_and(|(d, _)| d == 0)
                {
                    // Its data-level length maps this segment only: the rest of the first
                    // mapping becomes a mapping of its own, sent with the next segment.
                    self.split_tx_at(len as u64);
                    self.tx_emitted = self.tx_emitted.max(len as u64);
                    // The first data carries both keys and its data-level length (§3.1).
                    let csum = lv.csum.then(|| {
                        dss_checksum(lv.local_idsn.wrapping_add(1), 1, len as u16, s.payload)
                    });
                    MptcpOption::MpCapable(MpCapable::ack_with_data(
                        lv.flags(),
                        lv.local_key,
                        remote_key,
                        len as u16,
                        csum,
                    ))
                } else {
                    return self.dss_and_addr(lv, s, out);
                }
            } else {
                return self.dss_and_addr(lv, s, out);
            }
        };
        lens[0] = opt.emit(&mut out[0]);
        lens
    }

    /// DSS (DATA_ACK, the mapping of this segment's payload, DATA_FIN) plus, on pure ACKs, an
    /// ADD_ADDR announcement or echo when there is room.
    fn dss_and_addr(
        &mut self,
        lv: &mut MpLevel,
        s: &OutSeg<'_>,
        out: &mut [[u8; 40]; 2],
    ) -> [usize; 2] {
        let mut lens = [0, 0];
        let mut d = Dss {
            data_fin: false,
            // A 4-octet DATA_ACK, as Linux sends until the peer uses 8 octets (RFC 8684 §3.3).
            data_ack: Some(DataSeq::narrow(lv.data_ack() as u32)),
            mapping: None,
        };
        let len = s.payload.len();
        let fin_pending = lv.local_fin.filter(|&f| lv.data_una <= f);
        if len > 0 {
            self.tx_emitted = self.tx_emitted.max(s.off + len as u64);
            let i = self.tx.partition_point(|m| m.0 + m.2 <= s.off);
            let Some(&(m_sub, m_data, m_len)) = self.tx.get(i).filter(|m| m.0 <= s.off) else {
                return self.dss_ack_only(lv, d, s, out);
            };
            let data_off = m_data + (s.off - m_sub);
            let dsn = lv.local_idsn.wrapping_add(1).wrapping_add(data_off);
            if lv.csum {
                // With checksums every segment carries the mapping of exactly its payload, so
                // the checksum covers bytes at hand (RFC 8684 §3.3.1 allows either).
                let data_len = len as u16;
                d.mapping = Some(DssMapping {
                    dsn: DataSeq::wide(dsn),
                    subflow_seq: s.rel_seq,
                    data_len,
                    checksum: Some(dss_checksum(dsn, s.rel_seq, data_len, s.payload)),
                });
            } else if m_sub == s.off || s.gso {
                // The first segment of a mapping carries it for all of the mapping's bytes; so
                // does a super-segment, whose every packet repeats the same mapping.
                let back = s.off - m_sub;
                d.mapping = Some(DssMapping {
                    dsn: DataSeq::wide(dsn.wrapping_sub(back)),
                    subflow_seq: s.rel_seq.wrapping_sub(back as u32),
                    data_len: m_len as u16,
                    checksum: None,
                });
            } else {
                return self.dss_ack_only(lv, d, s, out);
            }
            self.ack_sent = Some(lv.ack_edge());
        } else if let Some(f) = fin_pending {
            // RFC 8684 §3.3.3 / Linux: a DATA_FIN alone has subflow sequence number 0.
            let dsn = lv.local_idsn.wrapping_add(1).wrapping_add(f);
            d.mapping = Some(DssMapping {
                dsn: DataSeq::wide(dsn),
                subflow_seq: 0,
                data_len: 1,
                checksum: lv.csum.then(|| dss_checksum(dsn, 0, 1, &[])),
            });
            d.data_fin = true;
        }
        if len == 0 {
            self.ack_sent = Some(lv.ack_edge());
        }
        lens[0] = MptcpOption::Dss(d).emit(&mut out[0]);
        if len == 0
            && d.mapping.is_none()
            && !s.sack
            && !lv.fail_pending
            && lv.rm_tries > 0
            && !lv.rm_out.is_empty()
        {
            // REMOVE_ADDR of our addresses that went away (RFC 8684 §3.4.2).
            lv.rm_tries -= 1;
            let mut ids = [0u8; 8];
            let n = lv.rm_out.len().min(8);
            ids[..n].copy_from_slice(&lv.rm_out[..n]);
            let o = MptcpOption::RemoveAddr {
                addr_ids: &ids[..n],
            };
            if o.emit_len() + lens[0] + 2 <= 28 {
                lens[1] = o.emit(&mut out[1]);
            } else {
                lens[0] = o.emit(&mut out[0]);
            }
            if lv.rm_tries == 0 {
                lv.rm_out.clear();
            }
            return lens;
        }
        if len == 0 && d.mapping.is_none() && !s.sack && !lv.fail_pending {
            let addr = if let Some(e) = lv.echo.front().copied() {
                lv.echo.pop_front();
                Some(e)
            } else if lv.announce_due && !lv.announce.is_empty() {
                let (id, ip) = lv.announce[0];
                lv.announce.rotate_left(1);
                if lv.announce.first().is_some_and(|a| a.0 <= id) {
                    lv.announce_due = false;
                }
                let hmac = add_addr_hmac(
                    lv.local_key,
                    lv.remote_key.unwrap_or_default(),
                    id,
                    ip,
                    None,
                );
                Some(AddAddr {
                    addr_id: id,
                    addr: ip,
                    port: None,
                    hmac: Some(hmac),
                })
            } else {
                None
            };
            if let Some(a) = addr {
                let o = MptcpOption::AddAddr(a);
                if o.emit_len() + lens[0] + 2 <= 28 {
                    lens[1] = o.emit(&mut out[1]);
                } else {
                    // No room beside the DSS (IPv6): the ADD_ADDR goes alone.
                    lens[0] = o.emit(&mut out[0]);
                }
            }
        }
        lens
    }

    /// A data segment inside a mapping already sent: the DATA_ACK alone when it changed since
    /// this subflow last carried it and the segment has room, else no MPTCP option at all.
    fn dss_ack_only(
        &mut self,
        lv: &MpLevel,
        d: Dss,
        s: &OutSeg<'_>,
        out: &mut [[u8; 40]; 2],
    ) -> [usize; 2] {
        let edge = lv.ack_edge();
        if self.ack_sent == Some(edge) || s.room < DSS_ACK_LEN {
            return [0, 0];
        }
        self.ack_sent = Some(edge);
        [MptcpOption::Dss(d).emit(&mut out[0]), 0]
    }

    /// The join handshake of this subflow failed (RFC 8684 §3.2): RST with MP_TCPRST.
    fn join_failed(&mut self, c: &mut Counters) -> InAction {
        self.rst_reason = Some(ResetReason::MptcpError);
        c.mp_rst_tx += 1;
        InAction::Reset
    }

    /// Handles the MPTCP options of an incoming segment before the TCB does.
    pub fn on_input(
        &mut self,
        lv: &mut MpLevel,
        c: &mut Counters,
        seg: &TcpRepr<'_>,
        i: &InSeg,
    ) -> InAction {
        // After fallback the peer's options mean nothing, unless we still wait for the answer
        // to our own MP_FAIL (both directions failed at once).
        if lv.fallback && self.join.is_none() && !lv.fail_pending {
            return InAction::Continue;
        }
        let f = seg.flags;
        let mut fail = None;
        let mut mpc = None;
        let mut dss = None;
        let mut join_synack = None;
        let mut join_ack = None;
        let mut ctl = Control::default();
        let mut any_opt = false;
        // RFC 8684 §3: a malformed MPTCP option is ignored.
        for o in MptcpOption::parse_list(seg.options.mptcp).flatten() {
            any_opt = true;
            match o {
                MptcpOption::MpCapable(m) if mpc.is_none() => mpc = Some(m),
                MptcpOption::Dss(d) if dss.is_none() => dss = Some(d),
                MptcpOption::MpJoinSynAck {
                    backup,
                    addr_id,
                    hmac,
                    nonce,
                } => join_synack = Some((backup, addr_id, hmac, nonce)),
                MptcpOption::MpJoinAck { hmac } => join_ack = Some(hmac),
                MptcpOption::AddAddr(a) => {
                    if a.is_echo() {
                        c.mp_echo_add += 1;
                        lv.announce
                            .retain(|&(id, ip)| !(id == a.addr_id && ip == a.addr));
                    } else if lv.remote_key.is_some() && !f.syn() {
                        let want = add_addr_hmac(
                            lv.remote_key.unwrap_or_default(),
                            lv.local_key,
                            a.addr_id,
                            a.addr,
                            a.port,
                        );
                        if a.hmac == Some(want) {
                            c.mp_add_addr += 1;
                            if !lv.remote_addrs.iter().any(|r| r.1 == a.addr)
                                && lv.remote_addrs.len() < MAX_REMOTE_ADDRS
                            {
                                lv.remote_addrs.push((a.addr_id, a.addr));
                                lv.removed_ids.retain(|&i| i != a.addr_id);
                                lv.remote_ports.retain(|p| p.0 != a.addr_id);
                                if let Some(port) = a.port {
                                    lv.remote_ports.push((a.addr_id, port));
                                }
                                lv.push_event(MpEvent::Announced {
                                    id: a.addr_id,
                                    addr: a.addr,
                                    port: a.port,
                                });
                            }
                            if lv.echo.len() < MAX_REMOTE_ADDRS {
                                lv.echo.push_back(a.echo());
                            }
                            self.ack_now = true;
                        }
                    }
                }
                MptcpOption::RemoveAddr { addr_ids } => ctl.remove = Some(addr_ids),
                MptcpOption::MpPrio { backup, addr_id } => ctl.prio = Some((backup, addr_id)),
                // RFC 8684 §3.7: the peer's checksum failed on data we sent; the endpoint
                // answers (infinite mapping on a sole subflow, else a reset of this one). On a
                // RST the subflow is gone anyway and its data is reinjected.
                MptcpOption::MpFail { dsn } => {
                    c.mp_fail_rx += 1;
                    fail = Some(dsn);
                }
                MptcpOption::MpFastclose { receiver_key } => ctl.fastclose = Some(receiver_key),
                MptcpOption::MpTcpRst { reason, .. } => {
                    c.mp_rst_rx += 1;
                    if f.rst() {
                        self.rst_rx_reason = Some(reason.code());
                    }
                }
                _ => {}
            }
        }
        if let Some(act) = self.on_control(lv, c, seg, &ctl) {
            return act;
        }
        if f.rst() {
            return InAction::Continue;
        }
        if let Some(dsn) = fail {
            if !f.syn() && lv.remote_key.is_some() && !lv.fallback {
                self.fail_rx = Some(dsn);
            }
        }
        if lv.fail_pending && self.fail_dsn.is_some() && !seg.payload.is_empty() {
            // Every data segment while we wait is answered with an MP_FAIL-carrying ACK.
            self.fail_ack_due = true;
        }
        if let Some(j) = self.join.as_mut() {
            if i.syn_sent {
                if !(f.syn() && f.ack()) {
                    return InAction::Continue;
                }
                let Some((backup, addr_id, hmac, nonce)) = join_synack else {
                    // RFC 8684 §3.2: a SYN/ACK without MP_JOIN: the subflow is reset.
                    return self.join_failed(c);
                };
                c.mp_join_synack_rx += 1;
                let want = join_synack_hmac(
                    lv.remote_key.unwrap_or_default(),
                    lv.local_key,
                    nonce,
                    j.local_nonce,
                );
                if hmac != want {
                    c.mp_join_synack_hmac_failure += 1;
                    return self.join_failed(c);
                }
                j.remote_nonce = nonce;
                j.remote_addr_id = addr_id;
                // The responder's B bit: its request for our sending (§3.2).
                self.peer_backup = backup;
                return InAction::Continue;
            }
            if f.syn() {
                return InAction::Continue;
            }
            if self.ready && !j.initiator && join_ack.is_some() {
                // A repeated third ACK: our fourth ACK was lost (RFC 8684 §3.2).
                self.ack_now = true;
            }
            if !self.ready {
                if j.initiator {
                    // The peer acknowledged our third ACK (the "4th ACK", RFC 8684 §3.2).
                    self.ready = true;
                } else {
                    let Some(hmac) = join_ack else {
                        return self.join_failed(c);
                    };
                    let want = join_ack_hmac(
                        lv.remote_key.unwrap_or_default(),
                        lv.local_key,
                        j.remote_nonce,
                        j.local_nonce,
                    );
                    if hmac != want {
                        c.mp_join_ack_hmac_failure += 1;
                        return self.join_failed(c);
                    }
                    c.mp_join_ack_rx += 1;
                    self.ready = true;
                    self.ack_now = true;
                }
            }
            if lv.fallback {
                return InAction::Continue;
            }
            return self.on_dss(lv, c, seg, i, dss);
        }
        if i.syn_sent {
            if f.syn() && f.ack() {
                match mpc {
                    Some(m) if m.version == MPTCP_VERSION && m.sender_key.is_some() => {
                        c.mp_capable_synack_rx += 1;
                        lv.set_remote_key(m.sender_key.unwrap_or_default());
                        lv.csum |= m.flags.checksum_required();
                    }
                    _ => {
                        // RFC 8684 §3.7: no MP_CAPABLE on the SYN/ACK: regular TCP.
                        c.mp_capable_fallback_synack += 1;
                        lv.fallback = true;
                    }
                }
            }
            return InAction::Continue;
        }
        if f.syn() {
            return InAction::Continue;
        }
        if lv.remote_key.is_none() {
            // Server before the third ACK's keys: RFC 8684 §3.1.
            match mpc {
                Some(m) if m.sender_key.is_some() && m.receiver_key.is_some() => {
                    if m.receiver_key != Some(lv.local_key) {
                        // Not our key echoed back: treat the option as malformed.
                        return if !seg.payload.is_empty() || dss.is_some() {
                            InAction::Continue
                        } else {
                            InAction::Drop
                        };
                    }
                    c.mp_capable_ack_rx += 1;
                    lv.set_remote_key(m.sender_key.unwrap_or_default());
                    lv.fully_established = true;
                }
                _ if dss.is_some() => {
                    // A DSS before the keys: it cannot be placed; the client repeats the keys.
                    return InAction::Drop;
                }
                _ if !seg.payload.is_empty() && i.seg_off > 0 => {
                    // Data beyond the first byte with no option: a later segment of a mapping
                    // that overtook the first data (RFC 8684 §3.3.1 lets a mapping span
                    // segments). Not a verdict: it waits at the subflow level.
                    return InAction::Continue;
                }
                _ => {
                    // RFC 8684 §3.7: the third ACK (or first data) without MP_CAPABLE.
                    c.mp_capable_fallback_ack += 1;
                    lv.fallback = true;
                    return InAction::Continue;
                }
            }
        }
        if let Some(m) = mpc {
            if let (Some(dl), false) = (m.data_len, seg.payload.is_empty()) {
                // The client's first data: DSN IDSN+1 at subflow sequence 1 (§3.1).
                if i.rel_seq == 1 && dl as usize == seg.payload.len() {
                    // Verified with the rest of the data when it is delivered (drain_sub).
                    let csum = lv.csum.then(|| MapCsum {
                        dsn: lv.remote_idsn.wrapping_add(1),
                        ssn: 1,
                        data_len: dl,
                        value: m.checksum,
                    });
                    self.push_rx(c, i, i.seg_off, 0, (dl as u64, csum));
                }
            }
        }
        if !any_opt
            && lv.role == Role::Client
            && !lv.fully_established
            && (i.seg_off == 0 && !seg.payload.is_empty() || i.acks_data)
        {
            // RFC 8684 §3.7: the server's first segment after the handshake has no MPTCP
            // option: it did not see our third ACK's MP_CAPABLE and fell back. (Linux sends
            // ADD_ADDR alone on a pure ACK: that is no fallback. Data beyond the server's
            // first byte may be a later segment of a mapping that overtook its first segment,
            // and an ACK of nothing yet may come from a server still waiting for our keys:
            // only the server's first byte, or an ACK of our data, decides.)
            c.mp_capable_fallback_ack += 1;
            lv.fallback = true;
            return InAction::Continue;
        }
        if dss.is_some() && lv.role == Role::Client {
            lv.fully_established = true;
        }
        self.on_dss(lv, c, seg, i, dss)
    }

    /// MP_FASTCLOSE, REMOVE_ADDR and MP_PRIO of an incoming segment; `Some` ends the handling
    /// of the segment there.
    fn on_control(
        &mut self,
        lv: &mut MpLevel,
        c: &mut Counters,
        seg: &TcpRepr<'_>,
        ctl: &Control<'_>,
    ) -> Option<InAction> {
        let f = seg.flags;
        if f.syn() || lv.remote_key.is_none() {
            return None;
        }
        if let Some(key) = ctl.fastclose {
            if key != lv.local_key {
                // Not our key: not the peer (RFC 8684 §3.5 keys authenticate the request).
                c.mp_fastclose_bad_key += 1;
            } else {
                // RFC 8684 §3.5: tear down every subflow with RST and the connection at once.
                // The endpoint resets the other subflows; this one answers with RST unless the
                // option came on one (option R), which the TCB handles as any RST.
                c.mp_fastclose_rx += 1;
                lv.fastclose_rx = true;
                if !f.rst() {
                    return Some(InAction::Reset);
                }
            }
        }
        // Path management only from a peer this subflow authenticated (the join's HMACs): the
        // initial subflow, a join we opened (SYN/ACK checked), or a join whose third ACK was.
        let trusted = match self.join {
            None => true,
            Some(j) => j.initiator || self.ready,
        };
        if f.rst() || !trusted {
            return None;
        }
        if let Some(ids) = ctl.remove {
            // RFC 8684 §3.4.2: the peer's addresses are gone; the endpoint closes the subflows
            // using them. Forgotten so that the path manager does not join them again.
            c.mp_rm_addr += 1;
            for &id in ids {
                if !lv.removed_ids.contains(&id) {
                    // Told once per removal (REMOVE_ADDR may come again on other subflows).
                    if lv.removed_ids.len() >= 16 {
                        lv.removed_ids.remove(0);
                    }
                    lv.removed_ids.push(id);
                    lv.push_event(MpEvent::Removed { id });
                }
                lv.remote_addrs.retain(|r| r.0 != id);
                lv.remote_ports.retain(|p| p.0 != id);
                lv.echo.retain(|e| e.addr_id != id);
                if !lv.rm_pending.contains(&id) && lv.rm_pending.len() < MAX_REMOTE_ADDRS * 4 {
                    lv.rm_pending.push(id);
                }
            }
        }
        if let Some((backup, id)) = ctl.prio {
            // RFC 8684 §3.3.8: the subflow it arrives on; with an address id (RFC 6824's
            // form), the subflows to that address of the peer.
            c.mp_prio_rx += 1;
            match id {
                None => self.peer_backup = backup,
                Some(id) => {
                    if id == self.remote_id() {
                        self.peer_backup = backup;
                    }
                    lv.peer_prio.retain(|p| p.0 != id);
                    if lv.peer_prio.len() < MAX_REMOTE_ADDRS * 4 {
                        lv.peer_prio.push((id, backup));
                    }
                }
            }
        }
        None
    }

    /// DATA_ACK, window and mapping of a DSS (RFC 8684 §3.3).
    fn on_dss(
        &mut self,
        lv: &mut MpLevel,
        c: &mut Counters,
        seg: &TcpRepr<'_>,
        i: &InSeg,
        dss: Option<Dss>,
    ) -> InAction {
        let Some(d) = dss else {
            return InAction::Continue;
        };
        if let Some(a) = d.data_ack {
            let base = lv.local_idsn.wrapping_add(1);
            let v = expand(a, base.wrapping_add(lv.data_una));
            let off = v.wrapping_sub(base);
            let max = lv.data_nxt.max(lv.sendbuf.start()) + lv.local_fin.is_some() as u64;
            // Accept only DATA_ACKs between what is acknowledged and what was sent.
            if off >= lv.data_una && off <= max.max(lv.data_una) {
                lv.data_una = off;
                let wnd = (seg.window as u64) << i.wnd_shift;
                let right = off + wnd;
                if right > lv.snd_right || !lv.window_known {
                    lv.snd_right = right.max(lv.snd_right);
                }
                lv.window_known = true;
            }
        }
        if let Some(m) = d.mapping {
            let base = lv.remote_idsn.wrapping_add(1);
            let dsn = expand(m.dsn, base.wrapping_add(lv.recvbuf.in_order_end()));
            let data_off = dsn.wrapping_sub(base);
            let delta = m.subflow_seq.wrapping_sub(i.rel_seq) as i32 as i64;
            let sub_off = (i.seg_off as i64).wrapping_add(delta);
            if m.data_len == 0 {
                // RFC 8684 §3.7: an infinite mapping: regular TCP from here on.
                c.mp_infinite_map_rx += 1;
                if self.join.is_none() {
                    self.on_infinite_mapping(lv, sub_off, data_off);
                }
                return InAction::Continue;
            }
            let dlen = m.data_len as u64 - d.data_fin as u64;
            if dlen > 0 && !seg.payload.is_empty() {
                // RFC 8684 §3.3.1: the checksum covers the whole mapping, which may span
                // many segments: it is verified once all of it is in order (drain_sub).
                let csum = lv.csum.then_some(MapCsum {
                    dsn,
                    ssn: m.subflow_seq,
                    data_len: m.data_len,
                    value: m.checksum,
                });
                if sub_off >= 0 && data_off < (1 << 62) {
                    self.push_rx(c, i, sub_off as u64, data_off, (dlen, csum));
                } else {
                    c.mp_dss_not_matching += 1;
                }
            }
            if d.data_fin {
                // The DATA_FIN takes the last DSN of the mapping (RFC 8684 §3.3.3).
                let fin = data_off.wrapping_add(dlen);
                if fin < (1 << 62) {
                    lv.peer_fin.get_or_insert(fin);
                    // Acknowledge it at once, also when it came alone on a pure ACK to a
                    // subflow that already sent its FIN (the peer repeats it until then).
                    self.ack_now = true;
                }
            }
        }
        InAction::Continue
    }
}

impl SubflowMp {
    /// The peer's infinite mapping on the initial subflow (RFC 8684 §3.7): its bytes from
    /// subflow offset `sub_off` on are the data stream from `data_off` on. A placement that
    /// cannot be right (before the stream, beyond the window) is replaced by the continuation
    /// of the last mapping. Our held failed mapping is delivered only when the peer does not
    /// send it again.
    fn on_infinite_mapping(&mut self, lv: &mut MpLevel, sub_off: i64, data_off: u64) {
        let ioe = lv.recvbuf.in_order_end();
        let win_end = lv.recvbuf.read_offset() + lv.recvbuf.capacity() as u64;
        lv.fb_rx = if sub_off >= 0 && data_off <= win_end && data_off.saturating_add(1 << 32) > ioe
        {
            (sub_off as u64, data_off)
        } else {
            self.rx_tail.unwrap_or((0, 0))
        };
        if lv.fail_stash.as_ref().is_some_and(|s| lv.fb_rx.1 <= s.0) {
            lv.fail_stash = None;
        }
        lv.fallback = true;
        lv.fail_pending = false;
        self.fail_dsn = None;
        self.fail_ack_due = false;
    }
}

/// The IDSN a key gives (RFC 8684 §3.1), or, under the [`MptcpConfig::idsn_base`] test hook,
/// `base` plus its low 20 bits.
fn placed_idsn(idsn: u64, base: Option<u64>) -> u64 {
    base.map_or(idsn, |b| b.wrapping_add(idsn & 0xf_ffff))
}

/// Widens a 4-octet DSN or DATA_ACK to the 64-bit value nearest `near` (RFC 8684 §3.3).
fn expand(v: DataSeq, near: u64) -> u64 {
    if v.wide {
        return v.value;
    }
    let low = v.value & 0xffff_ffff;
    let cand = (near & !0xffff_ffff) | low;
    let delta = cand.wrapping_sub(near) as i64;
    if delta > i32::MAX as i64 {
        cand.wrapping_sub(1 << 32)
    } else if delta < i32::MIN as i64 {
        cand.wrapping_add(1 << 32)
    } else {
        cand
    }
}

/// The MPTCP level of one subflow as its TCB sees it: the subflow state with its connection
/// level, for the duration of one TCB call.
pub(crate) struct MpHooks<'a> {
    pub mp: &'a mut SubflowMp,
    pub lv: &'a mut MpLevel,
}

impl SubflowHooks for MpHooks<'_> {
    fn option_reserve(&self) -> u32 {
        if self.lv.fallback {
            0
        } else {
            DSS_RESERVE
        }
    }
    fn on_input(&mut self, c: &mut Counters, seg: &TcpRepr<'_>, i: &InSeg) -> InAction {
        self.mp.on_input(self.lv, c, seg, i)
    }
    fn take_ack_now(&mut self) -> bool {
        std::mem::take(&mut self.mp.ack_now)
    }
    fn take_fail_ack_due(&mut self) -> bool {
        std::mem::take(&mut self.mp.fail_ack_due)
    }
    fn options(&mut self, s: &OutSeg<'_>, out: &mut [[u8; 40]; 2]) -> [usize; 2] {
        self.mp.options(self.lv, s, out)
    }
    fn recv_window(&self) -> Option<usize> {
        Some(self.lv.recv_window())
    }
    fn seg_limit(&self, off: u64) -> u64 {
        self.mp.seg_limit(off)
    }
    fn data_opt_len(&self, off: u64) -> Option<u32> {
        Some(self.mp.data_opt_len(self.lv, off))
    }
    fn burst_ok(&self, off: u64) -> bool {
        self.mp.burst_ok(self.lv, off)
    }
    /// The subflow's bytes are the connection level's: the send buffer holds them, found at
    /// the data offset of the mapping that covers `off`.
    fn lend_payload(&mut self, off: u64) -> Option<(SendBuffer, u64)> {
        let (d, _) = self.mp.tx_lookup(off)?;
        Some((
            std::mem::replace(&mut self.lv.sendbuf, SendBuffer::new(0)),
            d,
        ))
    }
    fn return_payload(&mut self, buf: SendBuffer) {
        self.lv.sendbuf = buf;
    }
    /// In-order subflow bytes that one received mapping without a checksum covers whole go
    /// straight to their data offset, when the data-level window has room for all of them
    /// (what `conn::deliver` would do with them one pass later, without the subflow's copy).
    fn land(&mut self, c: &mut Counters, off: u64, data: &[u8]) -> bool {
        let lv = &mut *self.lv;
        if lv.fallback || lv.csum || lv.fail_pending || self.mp.failed {
            return false;
        }
        let Some(m) = self.mp.rx_index(off).map(|k| self.mp.rx[k]) else {
            return false;
        };
        let n = data.len() as u64;
        let at = m.data + (off - m.sub);
        let win_end = lv.recvbuf.read_offset() + lv.recvbuf.capacity() as u64;
        if m.csum.is_some() || off + n > m.sub + m.len || at + n > win_end {
            return false;
        }
        let ioe = lv.recvbuf.in_order_end();
        if at + n <= ioe {
            c.mp_duplicate_data += 1;
        } else if at > ioe {
            c.mp_ofo_queue += 1;
        }
        if lv.recvbuf.write_at(at, data) > 0 {
            lv.landed = true;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_picks_nearest() {
        assert_eq!(expand(DataSeq::narrow(5), 0x1_0000_0000), 0x1_0000_0005);
        assert_eq!(
            expand(DataSeq::narrow(0xffff_fff0), 0x1_0000_0005),
            0xffff_fff0
        );
        assert_eq!(expand(DataSeq::narrow(3), 0x1_ffff_fff0), 0x2_0000_0003);
        assert_eq!(expand(DataSeq::wide(77), 5), 77);
    }

    /// Runs `on_input` on an ACK (or RST) carrying `opts` for subflow `sub` of a connection
    /// whose keys are known (ours: 1, the peer's: 2).
    fn control(
        sub: &mut SubflowMp,
        lv: &mut MpLevel,
        rst: bool,
        opts: &[MptcpOption<'_>],
    ) -> (InAction, Counters) {
        let bodies: Vec<Vec<u8>> = opts.iter().map(|o| o.emit_to_vec()).collect();
        let mut seg = TcpRepr {
            flags: TcpFlags(TcpFlags::ACK | if rst { TcpFlags::RST } else { 0 }),
            ..Default::default()
        };
        for b in &bodies {
            assert!(seg.options.mptcp.push(30, b));
        }
        let info = InSeg {
            syn_sent: false,
            rel_seq: 1,
            seg_off: 0,
            wnd_shift: 0,
            rcv_capacity: 4096,
            acks_data: false,
        };
        let mut c = Counters::default();
        let act = sub.on_input(lv, &mut c, &seg, &info);
        (act, c)
    }

    fn level() -> MpLevel {
        let mut tcp = TcpConfig::default();
        tcp.fixed_buffers(4096, 4096);
        let mut lv = MpLevel::client(1, &MptcpConfig::default(), &tcp);
        lv.set_remote_key(2);
        lv.fully_established = true;
        lv
    }

    #[test]
    fn control_options_are_bounded_and_authenticated() {
        let mut lv = level();
        lv.remote_addrs = vec![(3, "192.0.2.9".parse().unwrap())];
        let mut s = SubflowMp::initial();
        // The longest REMOVE_ADDR (36 ids), all the same id but one: kept once each.
        let mut ids = [7u8; 36];
        ids[35] = 3;
        let (act, c) = control(
            &mut s,
            &mut lv,
            false,
            &[MptcpOption::RemoveAddr { addr_ids: &ids }],
        );
        assert_eq!(act, InAction::Continue);
        assert_eq!(c.mp_rm_addr, 1);
        assert_eq!(lv.rm_pending, vec![7, 3]);
        assert!(lv.remote_addrs.is_empty(), "forgotten");
        // MP_PRIO: without an address id for this subflow; with one for the subflows to it.
        let prio = |backup, addr_id| MptcpOption::MpPrio { backup, addr_id };
        control(&mut s, &mut lv, false, &[prio(true, None)]);
        assert!(s.peer_backup && !s.backup && s.is_backup());
        control(&mut s, &mut lv, false, &[prio(false, Some(5))]);
        assert!(s.peer_backup, "id 5 is not this subflow's (0)");
        assert_eq!(lv.peer_prio, vec![(5, false)]);
        control(&mut s, &mut lv, false, &[prio(false, Some(0))]);
        assert!(!s.peer_backup);
        // A join whose third ACK is not checked yet changes nothing.
        let mut j = SubflowMp::join_responder(1, 2, 9, 1, true);
        assert!(
            j.peer_backup && !j.backup,
            "the SYN's B bit is the peer's request"
        );
        lv.rm_pending.clear();
        control(
            &mut j,
            &mut lv,
            false,
            &[
                MptcpOption::RemoveAddr { addr_ids: &[9] },
                prio(false, None),
            ],
        );
        assert!(lv.rm_pending.is_empty() && j.peer_backup);
        // MP_FASTCLOSE: a wrong key is ignored; ours resets (on an ACK: this subflow answers
        // with RST; on a RST: the TCB handles it).
        let fc = |receiver_key| MptcpOption::MpFastclose { receiver_key };
        let (act, c) = control(&mut s, &mut lv, false, &[fc(2)]);
        assert_eq!(
            (act, c.mp_fastclose_bad_key, lv.fastclose_rx),
            (InAction::Continue, 1, false)
        );
        let (act, c) = control(&mut s, &mut lv, true, &[fc(1)]);
        assert_eq!(
            (act, c.mp_fastclose_rx, lv.fastclose_rx),
            (InAction::Continue, 1, true)
        );
        lv.fastclose_rx = false;
        let (act, _) = control(&mut s, &mut lv, false, &[fc(1)]);
        assert_eq!(act, InAction::Reset);
    }

    #[test]
    fn mp_prio_rides_on_a_pure_ack_with_room() {
        let mut lv = level();
        let mut s = SubflowMp::initial();
        s.set_backup(true);
        let mut out = [[0u8; 40]; 2];
        let seg = |flags, payload, sack| OutSeg {
            flags,
            rel_seq: 1,
            off: 0,
            payload,
            sack,
            room: 24,
            gso: false,
        };
        // Not on data, nor beside SACK blocks.
        s.options(&mut lv, &seg(TcpFlags::ACK, &[1, 2, 3], false), &mut out);
        s.options(&mut lv, &seg(TcpFlags::ACK, &[], true), &mut out);
        assert_eq!(s.prio_pending, Some(true));
        let lens = s.options(&mut lv, &seg(TcpFlags::ACK, &[], false), &mut out);
        assert_eq!(s.prio_pending, None);
        assert!(matches!(
            MptcpOption::parse(&out[0][..lens[0]]),
            Ok(MptcpOption::Dss(_))
        ));
        assert_eq!(
            MptcpOption::parse(&out[1][..lens[1]]),
            Ok(MptcpOption::MpPrio {
                backup: true,
                addr_id: None
            })
        );
        // An abort's RST: MP_FASTCLOSE with the peer's key, and MP_TCPRST.
        lv.fastclose_tx = true;
        let lens = s.options(
            &mut lv,
            &seg(TcpFlags::RST | TcpFlags::ACK, &[], false),
            &mut out,
        );
        assert_eq!(
            MptcpOption::parse(&out[0][..lens[0]]),
            Ok(MptcpOption::MpFastclose { receiver_key: 2 })
        );
        assert!(matches!(
            MptcpOption::parse(&out[1][..lens[1]]),
            Ok(MptcpOption::MpTcpRst { .. })
        ));
    }

    #[test]
    fn infinite_mapping_keeps_the_failed_bytes_only_when_not_sent_again() {
        // A peer that carries on after the failed mapping (its infinite mapping starts beyond
        // it): the held bytes are the stream, as over plain TCP.
        let mut lv = level();
        let mut s = SubflowMp::initial();
        lv.fail_pending = true;
        lv.fail_stash = Some((0, vec![7; 100]));
        s.fail_dsn = Some(lv.remote_dsn(0));
        s.on_infinite_mapping(&mut lv, 300, 300);
        assert!(lv.fallback && !lv.fail_pending && s.fail_dsn.is_none());
        assert_eq!(lv.fb_rx, (300, 300));
        assert!(lv.fail_stash.is_some());
        // A peer that sends them again (from data offset 0, after its old bytes).
        let mut lv = level();
        lv.fail_pending = true;
        lv.fail_stash = Some((0, vec![7; 100]));
        s.on_infinite_mapping(&mut lv, 5000, 0);
        assert_eq!(lv.fb_rx, (5000, 0));
        assert!(lv.fail_stash.is_none());
        // A placement beyond the window or before the subflow is not believed.
        let mut lv = level();
        s.rx_tail = Some((40, 40));
        s.on_infinite_mapping(&mut lv, -5, 0);
        assert_eq!(lv.fb_rx, (40, 40));
        s.on_infinite_mapping(&mut lv, 10, 1 << 40);
        assert_eq!(lv.fb_rx, (40, 40));
    }

    #[test]
    fn rx_mappings_with_checksums_stay_apart_and_retransmissions_are_known() {
        let mut s = SubflowMp::initial();
        let mut c = Counters::default();
        let i = InSeg {
            syn_sent: false,
            rel_seq: 1,
            seg_off: 0,
            wnd_shift: 0,
            rcv_capacity: 4096,
            acks_data: false,
        };
        let ck = |dsn| {
            Some(MapCsum {
                dsn,
                ssn: 1,
                data_len: 10,
                value: Some(0),
            })
        };
        s.push_rx(&mut c, &i, 0, 0, (10, ck(1)));
        s.push_rx(&mut c, &i, 10, 10, (10, ck(11)));
        s.push_rx(&mut c, &i, 0, 0, (10, ck(1)));
        assert_eq!(s.rx.len(), 2, "not merged, the repeat not kept");
        s.push_rx(&mut c, &i, 20, 20, (5, None));
        s.push_rx(&mut c, &i, 25, 25, (5, None));
        assert_eq!(s.rx.len(), 3, "plain ones merge");
        assert_eq!(s.rx_index(12), Some(1));
        assert_eq!(s.rx_tail, Some((30, 30)));
        s.prune_rx(20);
        assert_eq!(s.rx.len(), 1);
    }

    #[test]
    fn tx_mappings_merge_and_limit_segments() {
        let mut s = SubflowMp::initial();
        s.push_tx(0, 100, 10);
        s.push_tx(10, 110, 5);
        s.push_tx(15, 500, 5);
        assert_eq!(s.tx.len(), 2);
        assert_eq!(s.seg_limit(3), 12);
        assert_eq!(s.tx_lookup(16), Some((501, 4)));
        s.prune_tx(15, 515);
        assert_eq!(s.tx.len(), 1);
    }
}
