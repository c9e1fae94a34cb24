//! One TCP connection: the RFC 9293 state machine with its send and receive machinery.
//!
//! The transmission control block (TCB) is sans-IO: segments come in as parsed [`TcpRepr`]s,
//! segments go out through [`Tcb::poll_transmit`], and time is the `now` handed to each call.
//!
//! Loss recovery follows RFC 6675 (SACK) with a NewReno fallback (RFC 6582) when the peer does
//! not do SACK; the scoreboard is one record per segment sent, with incremental byte counters so
//! that the common path costs O(1) per ACK.

use super::hooks::{InAction, InSeg, OutSeg, SubflowHooks};
use super::recvbuf::RecvBuffer;
use super::rtt::RttEstimator;
use super::sendbuf::SendBuffer;
use super::tune::{grow_step, moderate, sndbuf_for, RcvRtt, RcvSpace};
use super::{Seq, TcpConfig, TcpState};
use crate::cc::{new_cc, CongestionControl};
use crate::counters::Counters;
use crate::time::Instant;
use braid_wire::{IpRepr, SackBlock, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// Duplicate ACKs (or SACKed segments) that signal a loss (RFC 5681 §3.2, RFC 6675 §2).
const DUP_THRESH: u32 = 3;
/// PAWS: TS.Recent older than this is not trusted (RFC 7323 §5.5).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// Most sacked ranges kept on the scoreboard; further disjoint ranges are ignored.
const MAX_SACKED_RANGES: usize = 2048;
/// MSS assumed when the peer sends none (RFC 9293 §3.7.1).
const DEFAULT_PEER_MSS: u16 = 536;
/// Bytes of the timestamps option with its padding.
const TS_OPTION_LEN: u16 = 12;
/// At most one ACK per this interval answers unacceptable bare ACKs (Linux: 500 ms).
const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// Timer kinds of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Timer {
    /// Retransmission (also SYN / FIN retransmission).
    Rto = 0,
    DelayedAck = 1,
    /// Zero-window probe.
    Persist = 2,
    Keepalive = 3,
    /// TIME_WAIT expiry, or FIN_WAIT_2 give-up.
    Linger = 4,
}
const TIMER_COUNT: usize = 5;

/// Loss-recovery state, as Linux names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recovery {
    Open,
    /// Fast recovery after duplicate ACKs / SACK (cwnd frozen, pipe-driven).
    Fast,
    /// After an RTO: everything unacked is lost, slow start retransmits it.
    Loss,
}

/// One segment on the wire, for the scoreboard and RTT sampling.
#[derive(Clone, Copy, Debug)]
struct SentSeg {
    start: Seq,
    /// One past the last sequence number (FIN included).
    end: Seq,
    sent: Instant,
    fin: bool,
    sacked: bool,
    lost: bool,
    /// A retransmission of this segment is in flight.
    retx: bool,
    /// Ever retransmitted (Karn: no RTT sample from it).
    ever_retx: bool,
}

impl SentSeg {
    fn len(&self) -> u32 {
        (self.end - self.start) as u32
    }
}

/// Events for the endpoint to turn into [`crate::Event`]s.
pub(crate) mod ev {
    pub const CONNECTED: u8 = 1;
    pub const ESTABLISHED_PASSIVE: u8 = 2;
    pub const READABLE: u8 = 4;
    pub const WRITABLE: u8 = 8;
    pub const CLOSED: u8 = 16;
}

/// Why the connection ended, as the TCB knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Normal,
    Reset,
    Refused,
    TimedOut,
    Aborted,
}

/// Rate limit for challenge ACKs, shared by all connections of an endpoint (RFC 5961 §7).
#[derive(Debug, Default)]
pub(crate) struct ChallengeLimiter {
    window_start: Instant,
    count: u32,
}

impl ChallengeLimiter {
    /// Linux's default `tcp_challenge_ack_limit`.
    const PER_SECOND: u32 = 1000;

    fn allow(&mut self, now: Instant) -> bool {
        if now - self.window_start >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= Self::PER_SECOND
    }
}

/// What the TCB needs from its endpoint while handling input.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub counters: &'a mut Counters,
    pub limiter: &'a mut ChallengeLimiter,
}

/// Statistics of one connection.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    pub bytes_sent: u64,
    pub bytes_retransmitted: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segments_sent: u64,
    pub segments_received: u64,
}

/// The transmission control block of one connection.
#[derive(Debug)]
pub(crate) struct Tcb {
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    cfg: TcpConfig,
    ip: IpRepr,
    /// Came from a listener (a RST in SYN_RECEIVED then just drops it).
    passive: bool,

    // --- send side (RFC 9293 §3.3.1) ---
    iss: Seq,
    snd_una: Seq,
    /// Next new sequence number to send (retransmissions are driven by the scoreboard).
    snd_nxt: Seq,
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: Seq,
    snd_wl2: Seq,
    /// Shift applied to the peer's window field.
    snd_wscale: u8,
    sendbuf: SendBuffer,
    /// Stream offset of `snd_una` (FIN counted as a byte after the data).
    snd_una_off: u64,
    /// The application will write no more: a FIN follows the data.
    fin_queued: bool,
    /// Sequence number of our FIN once sent.
    fin_seq: Option<Seq>,
    /// Segment size for data we send (peer MSS, our MSS, options).
    smss: u32,
    sent: VecDeque<SentSeg>,
    /// Bytes in `sent`, and how many of them are SACKed / marked lost / lost and retransmitted.
    out_bytes: u32,
    sacked_bytes: u32,
    lost_bytes: u32,
    retx_bytes: u32,
    sacked_ranges: Vec<(Seq, Seq)>,
    recovery: Recovery,
    recovery_point: Seq,
    /// Proportional rate reduction during fast recovery (RFC 6937): bytes delivered and sent
    /// since recovery began, the flight size when it began, and the window PRR allows now.
    prr_delivered: u64,
    prr_out: u64,
    recover_fs: u64,
    prr_cwnd: u32,
    /// Retransmitted segments (their start) in the order they were retransmitted, and the send
    /// time of the newest segment known delivered: a retransmission sent well before a segment
    /// that has since arrived was lost too (the RACK idea, RFC 8985 §6.2, for retransmissions).
    rxt_queue: VecDeque<Seq>,
    rack_xmit: Instant,
    dupacks: u32,
    /// Records below this are marked lost where unsacked.
    lost_scan: Seq,
    /// Next candidate for retransmission.
    rxt_scan: Seq,
    cc: Box<dyn CongestionControl>,
    rtt: RttEstimator,
    backoff: u32,
    retries: u32,
    /// The application could not write everything it wanted (signal WRITABLE later).
    write_blocked: bool,
    /// When the last segment was sent, to restart from idle and for keepalive.
    last_send: Instant,
    /// In the last send opportunity we had less data than the window allowed.
    app_limited: bool,
    /// The MSS was reduced by the extension's option reserve (MPTCP: RFC 8684 §3.3).
    dss_reserved: u32,
    /// End of the last short segment sent (Minshall's Nagle: at most one unacknowledged).
    snd_sml: Seq,
    /// MPTCP penalisation: not again before everything sent at the last one is acknowledged.
    penalty_mark: Seq,

    // --- receive side ---
    irs: Seq,
    rcv_nxt: Seq,
    /// Right edge of the window we advertised last (never moved left, RFC 9293 §3.8.6.2.2).
    rcv_adv: Seq,
    rcv_wscale: u8,
    recvbuf: RecvBuffer,
    /// Stream offset of the peer's FIN once seen (possibly out of order).
    fin_offset: Option<u64>,
    fin_received: bool,
    rcv_mss: u32,
    /// Payload bytes received in order since we last sent an ACK.
    unacked_rcv_bytes: u32,
    last_ack_sent: Seq,
    ack_now: bool,
    sack_scratch: Vec<(u64, u64)>,
    /// Receive-buffer autotuning (plain TCP; the MPTCP data level tunes its subflows') and the
    /// receiver's RTT estimate it measures over.
    rcv_space: RcvSpace,
    rcv_rtt: RcvRtt,
    /// Most bytes the send and receive rings held at once.
    mem_peak: usize,
    /// The endpoint is short of buffer memory: no growth, buffers moderated.
    mem_pressure: bool,

    // --- options ---
    sack_ok: bool,
    ts_ok: bool,
    ts_offset: u32,
    ts_recent: u32,
    ts_recent_at: Instant,
    ws_ok: bool,

    // --- control ---
    timers: [Option<Instant>; TIMER_COUNT],
    /// A SYN (or SYN/ACK) must be (re)sent.
    syn_pending: bool,
    rst_pending: bool,
    keepalive_probes: u32,
    persist_probe_pending: bool,
    /// The persist timer fired with a small non-zero window: send what fits once, bypassing
    /// sender SWS avoidance (RFC 9293 §3.8.6.2.1, override timeout).
    sws_override: bool,
    keepalive_probe_pending: bool,
    /// The application released its handle: nobody reads any more.
    pub released: bool,
    pub end: Option<End>,
    pub events: u8,
    pub stats: Stats,
    payload_scratch: Vec<u8>,
    /// What the device does on transmit (the endpoint sets it before each `poll_transmit`).
    pub(crate) offload: crate::endpoint::TxOffload,
    /// The packet last emitted: payload bytes per packet of a super-segment (0: one packet),
    /// and how many packets it stands for.
    pub(crate) tx_gso: u16,
    pub(crate) tx_packets: u32,
    /// Last time an ACK brought news of the data we sent (snd_una moved, more bytes SACKed,
    /// or a duplicate ACK): the MPTCP connection's evidence that the path delivers.
    pub(crate) ack_progress_at: Option<Instant>,
    /// Upper bound on the backed-off retransmission timeout (never below the RTO itself):
    /// set by the MPTCP connection for a stale subflow so that it notices a return quickly.
    pub(crate) rto_cap: Option<Duration>,
    /// When we last answered an unacceptable segment (ACK-loop rate limit).
    last_oow_ack: Option<Instant>,
    /// A RST to send in reply to an unacceptable segment: (seq, ack, with ACK flag).
    rst_reply: Option<(u32, u32, bool)>,
    /// When the first SYN (or SYN/ACK) went out, for the handshake RTT sample.
    syn_sent_at: Option<Instant>,
    /// Out-of-order segments the receive buffer refused so far (to count the difference).
    stats_ooo_dropped: u64,
}

impl Tcb {
    fn new(
        cfg: &TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        ts_offset: u32,
        now: Instant,
        state: TcpState,
    ) -> Option<Self> {
        let ip = IpRepr::new_tcp(local.ip(), remote.ip(), 0)?;
        let cc = new_cc(&cfg.cc, cfg.mss as u32).or_else(|| new_cc("cubic", cfg.mss as u32))?;
        let rcv_wscale = if cfg.window_scale {
            let mut s = 0u8;
            while s < 14 && (cfg.recv_cap() >> s) > 65535 {
                s += 1;
            }
            s
        } else {
            0
        };
        let iss = Seq(iss);
        let mut cfg = cfg.clone();
        if remote.is_ipv6() {
            // The configured MSS is for IPv4; the IPv6 header is 20 bytes longer.
            cfg.mss = cfg.mss.saturating_sub(20).max(64);
        }
        let cfg = &cfg;
        Some(Tcb {
            state,
            local,
            remote,
            ip,
            passive: state == TcpState::Listen,
            iss,
            snd_una: iss,
            snd_nxt: iss + 1u32,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: Seq(0),
            snd_wl2: Seq(0),
            snd_wscale: 0,
            sendbuf: SendBuffer::new(cfg.send_buffer),
            snd_una_off: 0,
            fin_queued: false,
            fin_seq: None,
            smss: DEFAULT_PEER_MSS as u32,
            sent: VecDeque::new(),
            out_bytes: 0,
            sacked_bytes: 0,
            lost_bytes: 0,
            retx_bytes: 0,
            sacked_ranges: Vec::new(),
            recovery: Recovery::Open,
            recovery_point: iss,
            prr_delivered: 0,
            prr_out: 0,
            recover_fs: 0,
            prr_cwnd: 0,
            rxt_queue: VecDeque::new(),
            rack_xmit: now,
            dupacks: 0,
            lost_scan: iss,
            rxt_scan: iss,
            cc,
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            backoff: 0,
            retries: 0,
            write_blocked: false,
            last_send: now,
            app_limited: true,
            dss_reserved: 0,
            snd_sml: iss,
            penalty_mark: iss,
            irs: Seq(0),
            rcv_nxt: Seq(0),
            rcv_adv: Seq(0),
            rcv_wscale,
            recvbuf: RecvBuffer::new(cfg.recv_buffer),
            fin_offset: None,
            fin_received: false,
            rcv_mss: DEFAULT_PEER_MSS as u32,
            unacked_rcv_bytes: 0,
            last_ack_sent: Seq(0),
            ack_now: false,
            sack_scratch: Vec::new(),
            rcv_space: RcvSpace::new(now, cfg.mss as u32),
            rcv_rtt: RcvRtt::default(),
            mem_peak: 0,
            mem_pressure: false,
            sack_ok: false,
            ts_ok: false,
            ts_offset,
            ts_recent: 0,
            ts_recent_at: now,
            ws_ok: false,
            timers: [None; TIMER_COUNT],
            syn_pending: true,
            rst_pending: false,
            keepalive_probes: 0,
            persist_probe_pending: false,
            sws_override: false,
            keepalive_probe_pending: false,
            released: false,
            end: None,
            events: 0,
            stats: Stats::default(),
            payload_scratch: Vec::new(),
            offload: Default::default(),
            tx_gso: 0,
            tx_packets: 1,
            ack_progress_at: None,
            rto_cap: None,
            last_oow_ack: None,
            rst_reply: None,
            syn_sent_at: None,
            stats_ooo_dropped: 0,
            cfg: cfg.clone(),
        })
    }

    /// Active open: a TCB in SYN_SENT whose SYN goes out at the next `poll_transmit`.
    /// `None` when the addresses are of different families.
    pub fn connect(
        cfg: &TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        ts_offset: u32,
        now: Instant,
    ) -> Option<Self> {
        let mut t = Self::new(cfg, local, remote, iss, ts_offset, now, TcpState::SynSent)?;
        t.passive = false;
        t.sack_ok = cfg.sack;
        t.ts_ok = cfg.timestamps;
        t.ws_ok = cfg.window_scale;
        Some(t)
    }

    /// Passive open from a SYN that reached a listener: a TCB in SYN_RECEIVED whose SYN/ACK goes
    /// out at the next `poll_transmit`.
    pub fn accept_syn(
        cfg: &TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        ts_offset: u32,
        now: Instant,
        syn: &TcpRepr<'_>,
    ) -> Option<Self> {
        let mut t = Self::new(cfg, local, remote, iss, ts_offset, now, TcpState::Listen)?;
        t.state = TcpState::SynReceived;
        t.passive = true;
        t.irs = Seq(syn.seq);
        t.rcv_nxt = t.irs + 1u32;
        t.rcv_adv = t.rcv_nxt;
        t.last_ack_sent = t.rcv_nxt;
        t.negotiate(&syn.options, &mut super::hooks::NoHooks);
        t.snd_wnd = syn.window as u32; // RFC 7323 §2.2: the window in a SYN is never scaled
        t.max_snd_wnd = t.snd_wnd;
        t.snd_wl1 = t.irs;
        t.snd_wl2 = t.iss;
        if let Some(ts) = syn.options.timestamps.filter(|_| t.ts_ok) {
            t.ts_recent = ts.tsval;
            t.ts_recent_at = now;
        }
        Some(t)
    }

    /// Applies the options of the peer's SYN: we use an option only if both sides offered it.
    fn negotiate(&mut self, o: &TcpOptions<'_>, hk: &mut dyn SubflowHooks) {
        let peer_mss = o.mss.unwrap_or(DEFAULT_PEER_MSS).max(64);
        self.sack_ok = self.cfg.sack && o.sack_permitted;
        self.ts_ok = self.cfg.timestamps && o.timestamps.is_some();
        self.ws_ok = self.cfg.window_scale && o.window_scale.is_some();
        if self.ws_ok {
            self.snd_wscale = o.window_scale.unwrap_or(0).min(14);
        } else {
            self.snd_wscale = 0;
            self.rcv_wscale = 0;
        }
        let mut opt = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        // Room for the extension's option on every data segment (MPTCP's DSS, RFC 8684 §3.3;
        // Linux does the same).
        let reserve = hk.option_reserve().min(40) as u16;
        opt += reserve;
        let mss = peer_mss.min(self.cfg.mss);
        self.smss = (mss.saturating_sub(opt)).max(32) as u32;
        if reserve > 0 {
            let full = (mss.saturating_sub(opt - reserve)).max(32) as u32;
            self.dss_reserved = full - self.smss;
        }
        self.rcv_mss = (self.cfg.mss.saturating_sub(opt)).max(32) as u32;
        self.cc.set_mss(self.smss);
    }

    // ------------------------------------------------------------------------------------------
    // Application calls
    // ------------------------------------------------------------------------------------------

    /// Queues data; returns how much fit.
    pub fn send(&mut self, data: &[u8]) -> usize {
        let n = self.sendbuf.write(data);
        if n < data.len() {
            self.write_blocked = true;
        }
        self.note_memory();
        n
    }

    /// From now on the send buffer counts bytes without holding them ([`Tcb::send_mapped`]):
    /// the payload of each segment is lent by the hooks (an MPTCP subflow's comes from the
    /// connection-level buffer). Only while nothing is queued.
    pub(crate) fn map_send(&mut self) {
        if self.sendbuf.is_empty() && !self.sendbuf.is_mapped() {
            self.sendbuf = SendBuffer::mapped_at(self.sendbuf.capacity(), self.sendbuf.end());
        }
    }

    /// The send buffer holds no bytes of its own ([`Tcb::map_send`]).
    pub(crate) fn send_is_mapped(&self) -> bool {
        self.sendbuf.is_mapped()
    }

    /// Queues `n` bytes that the hooks will lend when they are sent; returns how many fit.
    pub(crate) fn send_mapped(&mut self, n: usize) -> usize {
        let w = self.sendbuf.write_mapped(n);
        if w < n {
            self.write_blocked = true;
        }
        w
    }

    /// Gives a mapped send buffer the bytes it counts (`fill` copies them into the new buffer
    /// from the stream offset of the first unacknowledged byte to the end): it holds its own
    /// copy from then on.
    pub(crate) fn own_send_bytes(&mut self, fill: impl FnOnce(&mut SendBuffer)) {
        if !self.sendbuf.is_mapped() {
            return;
        }
        let (start, end) = (self.sendbuf.start(), self.sendbuf.end());
        let mut b = SendBuffer::starting_at(self.sendbuf.capacity(), start);
        fill(&mut b);
        debug_assert_eq!(b.end(), end, "every counted byte copied");
        self.sendbuf = b;
        self.note_memory();
    }

    pub fn can_send(&self) -> bool {
        matches!(
            self.state,
            TcpState::SynSent | TcpState::SynReceived | TcpState::Established | TcpState::CloseWait
        ) && !self.fin_queued
    }

    /// Reads in-order data. Returns `None` when nothing is there and the peer has not closed.
    pub fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let n = self.recvbuf.read(buf);
        if n > 0 {
            self.maybe_window_update();
            return Some(n);
        }
        if self.fin_received || buf.is_empty() {
            Some(0)
        } else {
            None
        }
    }

    pub fn readable(&self) -> usize {
        self.recvbuf.readable()
    }

    /// After the application read: tell the peer when the window opened a lot
    /// (receiver-side silly window avoidance, RFC 9293 §3.8.6.2.2).
    fn maybe_window_update(&mut self) {
        if !self.synchronized() || self.fin_received {
            return;
        }
        let cur = (self.rcv_adv - self.rcv_nxt).max(0) as u32;
        let new = self.recvbuf.window() as u32;
        let buf = self.recvbuf.capacity() as u32;
        if cur < buf / 2 && new >= cur.saturating_mul(2) && new - cur >= self.rcv_mss {
            self.ack_now = true;
        }
    }

    /// The application will send no more: FIN after the queued data (RFC 9293 §3.10.4).
    pub fn shutdown(&mut self, now: Instant) {
        match self.state {
            TcpState::SynSent => {
                // Nothing sent yet that matters: just go away.
                self.close_with(End::Normal);
            }
            TcpState::SynReceived | TcpState::Established | TcpState::CloseWait => {
                self.fin_queued = true;
                let _ = now;
            }
            _ => {}
        }
    }

    /// Abort: RST to the peer (when synchronized), everything forgotten (RFC 9293 §3.10.5).
    pub fn abort(&mut self) {
        if self.synchronized() || self.state == TcpState::SynReceived {
            self.rst_pending = true;
        }
        self.close_with(End::Aborted);
    }

    /// Resets the subflow on the MPTCP connection level's behalf (REMOVE_ADDR, MP_FASTCLOSE):
    /// RST to the peer when synchronized, closed with `why`.
    pub(crate) fn reset(&mut self, why: End) {
        if self.synchronized() || self.state == TcpState::SynReceived {
            self.rst_pending = true;
        }
        self.close_with(why);
    }

    /// Closes the subflow with `why` without a word to the peer (its path is gone: our
    /// address went away, or its FIN can never be acknowledged).
    pub(crate) fn abandon(&mut self, why: End) {
        self.rst_pending = false;
        self.close_with(why);
    }

    fn synchronized(&self) -> bool {
        !matches!(
            self.state,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::SynReceived
        )
    }

    fn close_with(&mut self, why: End) {
        if self.state != TcpState::Closed {
            self.state = TcpState::Closed;
            self.end.get_or_insert(why);
            self.events |= ev::CLOSED;
            self.timers = [None; TIMER_COUNT];
            self.sent.clear();
        }
    }

    // ------------------------------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------------------------------

    fn set_timer(&mut self, t: Timer, at: Instant) {
        self.timers[t as usize] = Some(at);
    }

    fn clear_timer(&mut self, t: Timer) {
        self.timers[t as usize] = None;
    }

    fn timer(&self, t: Timer) -> Option<Instant> {
        self.timers[t as usize]
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    fn arm_rto(&mut self, now: Instant) {
        let mut rto = self.rtt.rto_backoff(self.backoff);
        if let Some(cap) = self.rto_cap {
            rto = rto.min(cap.max(self.rtt.rto()));
        }
        self.set_timer(Timer::Rto, now + rto);
    }

    fn restart_keepalive(&mut self, now: Instant) {
        if let Some(ka) = self.cfg.keepalive {
            if self.synchronized() {
                self.keepalive_probes = 0;
                self.set_timer(Timer::Keepalive, now + ka.idle);
            }
        }
    }

    /// Runs the timers that are due.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        for i in 0..TIMER_COUNT {
            if self.timers[i].is_some_and(|at| at <= now) {
                self.timers[i] = None;
                match i {
                    0 => self.on_rto(ctx),
                    1 => self.ack_now = true,
                    2 => self.on_persist(now),
                    3 => self.on_keepalive(now),
                    _ => self.on_linger(),
                }
            }
        }
        self.release_buffers();
    }

    fn on_rto(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        ctx.counters.rto_expirations += 1;
        self.retries += 1;
        self.backoff = (self.backoff + 1).min(16);
        match self.state {
            TcpState::SynSent | TcpState::SynReceived => {
                if self.retries > self.cfg.syn_retries {
                    self.close_with(End::TimedOut);
                    return;
                }
                self.syn_pending = true;
                self.arm_rto(now);
            }
            TcpState::Closed | TcpState::Listen | TcpState::TimeWait => {}
            _ => {
                if self.sent.is_empty() {
                    return;
                }
                // A stale MPTCP subflow (`rto_cap`) keeps probing its path while another
                // subflow carries the data.
                if self.retries > self.cfg.max_retries && self.rto_cap.is_none() {
                    self.rst_pending = true;
                    self.close_with(End::TimedOut);
                    return;
                }
                // RFC 5681 §3.1 / RFC 6298 §5.5: collapse the window, back off, and mark every
                // unacknowledged, unSACKed segment lost (RFC 6675 §5.1).
                self.cc.on_rto(now, self.pipe());
                self.recovery = Recovery::Loss;
                self.recovery_point = self.snd_nxt;
                self.dupacks = 0;
                for s in self.sent.iter_mut() {
                    if !s.sacked {
                        s.lost = true;
                        s.retx = false;
                    }
                }
                self.lost_bytes = self.out_bytes - self.sacked_bytes;
                self.retx_bytes = 0;
                self.rxt_queue.clear();
                self.lost_scan = self.snd_nxt;
                self.rxt_scan = self.snd_una;
                self.arm_rto(now);
            }
        }
    }

    /// Nothing in flight and data the peer's window does not let us send (RFC 9293 §3.8.6.1).
    fn on_persist(&mut self, now: Instant) {
        if !self.sent.is_empty() || !self.has_unsent_data() {
            return;
        }
        if self.snd_wnd == 0 {
            self.persist_probe_pending = true;
            self.backoff = (self.backoff + 1).min(16);
            self.set_timer(Timer::Persist, now + self.rtt.rto_backoff(self.backoff));
        } else {
            // A window too small for sender SWS avoidance: without this the connection would
            // wait forever if the peer's later window update were lost.
            self.sws_override = true;
        }
    }

    fn on_keepalive(&mut self, now: Instant) {
        let Some(ka) = self.cfg.keepalive else { return };
        if !self.synchronized() || self.state == TcpState::TimeWait {
            return;
        }
        if self.keepalive_probes >= ka.probes {
            self.rst_pending = true;
            self.close_with(End::TimedOut);
            return;
        }
        self.keepalive_probes += 1;
        self.keepalive_probe_pending = true;
        self.set_timer(Timer::Keepalive, now + ka.interval);
    }

    fn on_linger(&mut self) {
        // TIME_WAIT over (RFC 9293 §3.10.8), or FIN_WAIT_2 gave up on the peer.
        if self.state == TcpState::TimeWait {
            self.close_with(End::Normal);
        } else if self.state == TcpState::FinWait2 {
            self.close_with(End::TimedOut);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Input (RFC 9293 §3.10.7)
    // ------------------------------------------------------------------------------------------

    /// Handles one segment addressed to this connection.
    pub fn on_segment(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>, hk: &mut dyn SubflowHooks) {
        let before = (self.snd_una, self.sacked_bytes, self.dupacks);
        self.on_segment_inner(ctx, seg, hk);
        if (self.snd_una, self.sacked_bytes, self.dupacks) != before && !seg.flags.rst() {
            self.ack_progress_at = Some(ctx.now);
        }
    }

    fn on_segment_inner(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &TcpRepr<'_>,
        hk: &mut dyn SubflowHooks,
    ) {
        self.stats.segments_received += 1;
        {
            let syn_sent = self.state == TcpState::SynSent;
            let seq = Seq(seg.seq);
            let seg_off = if syn_sent {
                0
            } else if seq >= self.rcv_nxt {
                self.recvbuf.in_order_end() + (seq - self.rcv_nxt) as u64
            } else {
                self.recvbuf
                    .in_order_end()
                    .saturating_sub((self.rcv_nxt - seq) as u64)
            };
            let info = InSeg {
                syn_sent,
                rel_seq: seg.seq.wrapping_sub(self.irs.0),
                seg_off,
                wnd_shift: self.snd_wscale,
                rcv_capacity: self.recvbuf.capacity(),
                acks_data: seg.flags.ack()
                    && Seq(seg.ack) > self.iss + 1u32
                    && Seq(seg.ack) <= self.snd_nxt,
            };
            match hk.on_input(ctx.counters, seg, &info) {
                InAction::Continue => {}
                InAction::Drop => return,
                InAction::Reset => {
                    self.rst_pending = true;
                    self.close_with(End::Reset);
                    return;
                }
            }
        }
        match self.state {
            TcpState::Closed | TcpState::Listen => {}
            TcpState::SynSent => self.on_segment_syn_sent(ctx, seg, hk),
            _ => self.on_segment_synchronized(ctx, seg, hk),
        }
        if hk.take_ack_now() {
            self.ack_now = true;
        }
        if hk.recv_window().is_none() {
            // Plain TCP: the application reads this buffer (MPTCP: the data level's).
            self.tune_rcvbuf(ctx.now);
        }
        self.note_memory();
        self.release_buffers();
    }

    fn on_segment_syn_sent(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &TcpRepr<'_>,
        hk: &mut dyn SubflowHooks,
    ) {
        let f = seg.flags;
        let now = ctx.now;
        if f.ack() {
            let ack = Seq(seg.ack);
            if ack <= self.iss || ack > self.snd_nxt {
                if !f.rst() {
                    ctx.counters.out_of_window += 1;
                    // The endpoint answers with <SEQ=SEG.ACK><CTL=RST>; we only flag it.
                    self.rst_reply = Some((seg.ack, 0, false));
                }
                return;
            }
        }
        if f.rst() {
            if f.ack() {
                ctx.counters.rst_received += 1;
                self.close_with(End::Refused);
            }
            return;
        }
        if !f.syn() {
            return;
        }
        self.irs = Seq(seg.seq);
        self.rcv_nxt = self.irs + 1u32;
        self.rcv_adv = self.rcv_nxt;
        self.negotiate(&seg.options, hk);
        if let Some(ts) = seg.options.timestamps.filter(|_| self.ts_ok) {
            self.ts_recent = ts.tsval;
            self.ts_recent_at = now;
        }
        if f.ack() {
            // RFC 9293 §3.10.7.3: our SYN is acknowledged.
            self.snd_una = Seq(seg.ack);
            self.snd_una_off = 0;
            self.snd_wnd = seg.window as u32; // RFC 7323 §2.2: never scaled in a SYN
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = Seq(seg.seq);
            self.snd_wl2 = Seq(seg.ack);
            self.take_syn_rtt_sample(now);
            self.clear_timer(Timer::Rto);
            self.backoff = 0;
            self.retries = 0;
            self.syn_pending = false;
            self.state = TcpState::Established;
            self.events |= ev::CONNECTED;
            self.ack_now = true;
            self.restart_keepalive(now);
            // Data on the SYN/ACK is unusual but legal.
            if !seg.payload.is_empty() || f.fin() {
                self.process_data_and_fin(ctx, seg, &mut super::hooks::NoHooks);
            }
        } else {
            // Simultaneous open (RFC 9293 §3.5, figure 8): answer with SYN/ACK.
            self.state = TcpState::SynReceived;
            self.snd_wnd = seg.window as u32;
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = Seq(seg.seq);
            self.snd_wl2 = self.iss;
            self.syn_pending = true;
        }
    }

    fn take_syn_rtt_sample(&mut self, now: Instant) {
        // Karn: only when the SYN was not retransmitted.
        if self.retries == 0 {
            if let Some(at) = self.syn_sent_at {
                self.rtt.on_sample(now - at);
            }
        }
    }

    /// Is the segment acceptable (RFC 9293 §3.10.7.4, first check)?
    fn acceptable(&self, seq: Seq, len: u32) -> bool {
        let wnd = (self.rcv_adv - self.rcv_nxt).max(0) as u32;
        let end = self.rcv_nxt + wnd;
        match (len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq.in_range(self.rcv_nxt, end),
            (_, 0) => false,
            (_, _) => {
                seq.in_range(self.rcv_nxt, end) || (seq + (len - 1)).in_range(self.rcv_nxt, end)
            }
        }
    }

    fn challenge_ack(&mut self, ctx: &mut Ctx<'_>) {
        // Per connection first (as Linux: no ACK loop between two stacks can run faster than
        // one ACK per 500 ms), then the endpoint-wide limit of RFC 5961 §7.
        if self.oow_rate_limited(ctx.now) {
            ctx.counters.oow_acks_skipped += 1;
            return;
        }
        if ctx.limiter.allow(ctx.now) {
            ctx.counters.challenge_acks += 1;
            self.ack_now = true;
        }
    }

    /// Rate limit for ACKs answering unacceptable segments (RFC 5961 §10; Linux's
    /// `tcp_invalid_ratelimit`, 500 ms): returns true when this one must be skipped.
    fn oow_rate_limited(&mut self, now: Instant) -> bool {
        if self
            .last_oow_ack
            .is_some_and(|t| now - t < OOW_ACK_INTERVAL)
        {
            return true;
        }
        self.last_oow_ack = Some(now);
        false
    }

    /// Duplicate ACK for an unacceptable segment. Segments carrying data (or SYN/FIN) are
    /// always answered (they are not part of an ACK loop); bare ACKs are rate limited.
    fn dupack_for_unacceptable(&mut self, ctx: &mut Ctx<'_>, seg_len: u32) {
        if seg_len == 0 && self.oow_rate_limited(ctx.now) {
            ctx.counters.oow_acks_skipped += 1;
            return;
        }
        self.ack_now = true;
    }

    fn on_segment_synchronized(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &TcpRepr<'_>,
        hk: &mut dyn SubflowHooks,
    ) {
        let f = seg.flags;
        let now = ctx.now;
        let seq = Seq(seg.seq);
        let seg_len = seg.payload.len() as u32 + f.syn() as u32 + f.fin() as u32;

        // Simultaneous open (RFC 9293 §3.5, figure 8): in SYN_RECEIVED after an active open, the
        // peer's SYN/ACK acknowledges our SYN and completes the handshake. Its sequence number is
        // below RCV.NXT, so the generic checks below would only answer it with an ACK.
        if self.state == TcpState::SynReceived
            && !self.passive
            && f.syn()
            && f.ack()
            && !f.rst()
            && seq == self.irs
            && Seq(seg.ack) == self.snd_nxt
        {
            // RFC 7323 §2.2: the window of a SYN segment is never scaled.
            self.syn_received_acked(now, seq, Seq(seg.ack), seg.window as u32);
            self.ack_now = true;
            return;
        }

        // A retransmitted SYN while we wait for the handshake's ACK: repeat the SYN/ACK.
        if self.state == TcpState::SynReceived && f.syn() && !f.ack() && seq == self.irs {
            self.syn_pending = true;
            return;
        }

        // PAWS (RFC 7323 §5.3): drop old duplicates by their timestamp.
        if self.ts_ok && !f.rst() {
            if let Some(ts) = seg.options.timestamps {
                let older = (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0;
                if older && now - self.ts_recent_at < PAWS_IDLE {
                    ctx.counters.paws_rejected += 1;
                    self.dupack_for_unacceptable(ctx, seg_len);
                    return;
                }
            }
        }

        // Sequence number check.
        if !self.acceptable(seq, seg_len) {
            // A zero-window probe or data at RCV.NXT while the window is closed still carries a
            // valid ACK (RFC 9293 §3.10.7.4: "special allowance").
            let zero_wnd_at_nxt = seq == self.rcv_nxt && f.ack() && !f.rst() && !f.syn();
            if !zero_wnd_at_nxt {
                if self.state == TcpState::TimeWait && f.fin() {
                    // The peer did not hear our last ACK: ACK again, restart 2 MSL.
                    self.set_timer(Timer::Linger, now + self.cfg.time_wait);
                }
                if !f.rst() {
                    ctx.counters.out_of_window += 1;
                    self.dupack_for_unacceptable(ctx, seg_len);
                }
                return;
            }
        }

        // RST (RFC 5961 §3.2): exact match resets, in-window gets a challenge ACK.
        if f.rst() {
            ctx.counters.rst_received += 1;
            if seq == self.rcv_nxt {
                if self.state == TcpState::SynReceived && !self.passive {
                    // RFC 9293 §3.10.7.4: from an active open, the connection was refused.
                    self.close_with(End::Refused);
                } else if self.state == TcpState::TimeWait {
                    // RFC 9293 §3.10.7.4: in TIME-WAIT a RST only cuts the wait short; both
                    // directions were complete and acknowledged, so the end is a normal one
                    // (the user gets no "connection reset"). A peer whose socket is gone
                    // answers our ACK of its retransmitted FIN so (Linux, once LAST_ACK ends).
                    self.close_with(End::Normal);
                } else {
                    // A passive open goes back to LISTEN: the listener forgets this attempt.
                    self.close_with(End::Reset);
                }
            } else {
                self.challenge_ack(ctx);
            }
            return;
        }

        // SYN in a synchronized state (RFC 5961 §4): challenge ACK.
        if f.syn() {
            if self.state == TcpState::TimeWait {
                // A new connection may reuse the pair; the endpoint decides (RFC 6191).
                self.ack_now = true;
                return;
            }
            self.challenge_ack(ctx);
            return;
        }

        if !f.ack() {
            return;
        }

        // Timestamps: remember the newest from the left edge of the window (RFC 7323 §4.3).
        if self.ts_ok {
            if let Some(ts) = seg.options.timestamps {
                if seq <= self.last_ack_sent && (ts.tsval.wrapping_sub(self.ts_recent) as i32) >= 0
                {
                    self.ts_recent = ts.tsval;
                    self.ts_recent_at = now;
                }
            }
        }

        let ack = Seq(seg.ack);
        if self.state == TcpState::SynReceived {
            if ack > self.snd_una && ack <= self.snd_nxt {
                let wnd = (seg.window as u32) << self.snd_wscale;
                self.syn_received_acked(now, seq, ack, wnd);
            } else {
                ctx.counters.out_of_window += 1;
                self.rst_reply = Some((seg.ack, 0, false));
                return;
            }
        }

        // RFC 5961 §5.2: ACKs of data never sent, or far too old, get an ACK and are dropped.
        if ack > self.snd_nxt {
            ctx.counters.out_of_window += 1;
            self.challenge_ack(ctx);
            return;
        }
        if ack < self.snd_una - self.max_snd_wnd.max(1) {
            ctx.counters.out_of_window += 1;
            self.challenge_ack(ctx);
            return;
        }

        self.restart_keepalive(now);
        self.process_ack(ctx, seg, seg_len);
        if self.state == TcpState::Closed {
            return;
        }
        self.process_data_and_fin(ctx, seg, hk);
    }

    /// SYN_RECEIVED → ESTABLISHED: our SYN is acknowledged (RFC 9293 §3.10.7.4, fifth check).
    fn syn_received_acked(&mut self, now: Instant, seq: Seq, ack: Seq, wnd: u32) {
        self.state = TcpState::Established;
        self.syn_pending = false;
        if self.retries == 0 {
            if let Some(at) = self.syn_sent_at {
                self.rtt.on_sample(now - at);
            }
        }
        self.snd_una = self.iss + 1u32;
        self.snd_una_off = 0;
        self.clear_timer(Timer::Rto);
        self.backoff = 0;
        self.retries = 0;
        self.snd_wnd = wnd;
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        self.events |= if self.passive {
            ev::ESTABLISHED_PASSIVE
        } else {
            ev::CONNECTED
        };
        self.restart_keepalive(now);
    }

    // ------------------------------------------------------------------------------------------
    // ACK processing and loss recovery
    // ------------------------------------------------------------------------------------------

    fn process_ack(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>, seg_len: u32) {
        let now = ctx.now;
        let ack = Seq(seg.ack);
        let seq = Seq(seg.seq);
        let wnd = (seg.window as u32) << self.snd_wscale;
        let prior_in_flight = self.pipe();
        let prior_sacked = self.sacked_bytes as i64;
        let prior_una = self.snd_una;

        // SACK blocks first, so that a cumulative ACK sees the newest scoreboard.
        let mut newly_sacked = false;
        if self.sack_ok && !seg.options.sack.is_empty() {
            for b in seg.options.sack.as_slice() {
                newly_sacked |= self.on_sack_block(*b);
            }
        }

        let window_changed = wnd != self.snd_wnd;
        // Window update (RFC 9293 §3.10.7.4, fifth check).
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            self.snd_wnd = wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            if wnd > 0 {
                self.clear_timer(Timer::Persist);
                self.persist_probe_pending = false;
            }
        }

        if ack > self.snd_una {
            // Payload bytes: our FIN takes a sequence number but is not data.
            let fin_acked = self.fin_seq.is_some_and(|f| self.snd_una <= f && ack > f);
            let acked = (ack - self.snd_una) as u32 - fin_acked as u32;
            let rtt = self.on_cumulative_ack(ack, now);
            self.stats.bytes_acked += acked as u64;
            self.dupacks = 0;
            self.backoff = 0;
            self.retries = 0;
            if let Some(r) = rtt {
                self.rtt.on_sample(r);
            }
            match self.recovery {
                Recovery::Open => {
                    self.cc
                        .on_ack(now, acked, rtt, prior_in_flight, self.app_limited);
                }
                Recovery::Loss => {
                    self.cc
                        .on_ack(now, acked, rtt, prior_in_flight, self.app_limited);
                    if ack >= self.recovery_point {
                        self.recovery = Recovery::Open;
                    }
                }
                Recovery::Fast => {
                    if ack >= self.recovery_point {
                        self.recovery = Recovery::Open;
                        self.cc.on_recovery_exit(now);
                    } else if !self.sack_ok {
                        // NewReno partial ACK (RFC 6582 §3.2): the next hole is lost too.
                        self.mark_first_lost();
                    }
                }
            }
            self.grow_sndbuf();
            // RFC 6298 §5.2/5.3: stop or restart the retransmission timer.
            if self.sent.is_empty() {
                self.clear_timer(Timer::Rto);
            } else {
                self.arm_rto(now);
            }
            if self.write_blocked && self.sendbuf.free() > 0 {
                self.write_blocked = false;
                self.events |= ev::WRITABLE;
            }
            self.on_fin_acked(now);
        } else if ack == self.snd_una
            && !self.sent.is_empty()
            && (newly_sacked || (seg_len == 0 && !window_changed))
        {
            // A duplicate ACK (RFC 5681 §2), or one bringing new SACK information.
            self.dupacks += 1;
        }

        if self.recovery == Recovery::Open && !self.sent.is_empty() {
            let lost_by_sack = self.sack_ok && self.sacked_bytes > (DUP_THRESH - 1) * self.smss;
            if self.dupacks >= DUP_THRESH || lost_by_sack {
                // Enter fast recovery (RFC 6675 §5 step 4; RFC 6582).
                ctx.counters.fast_retransmits += 1;
                self.recovery = Recovery::Fast;
                self.recovery_point = self.snd_nxt;
                self.cc.on_congestion_event(now, prior_in_flight);
                self.rxt_scan = self.snd_una;
                self.lost_scan = self.snd_una;
                self.prr_delivered = 0;
                self.prr_out = 0;
                self.recover_fs = (self.snd_nxt - self.snd_una).max(1) as u64;
                self.mark_first_lost();
                if self.sack_ok {
                    self.update_lost();
                }
                // The first retransmission goes out at once (RFC 6937 §3.1).
                self.prr_cwnd = self.pipe() + self.smss;
                return;
            }
        }
        if self.recovery != Recovery::Open && self.sack_ok {
            self.detect_lost_retransmissions(ctx);
        }
        if self.recovery == Recovery::Fast {
            if self.sack_ok {
                self.update_lost();
            }
            self.update_prr(prior_una, prior_sacked);
        }
    }

    /// Removes everything below `ack` from the scoreboard; returns an RTT sample (Karn).
    fn on_cumulative_ack(&mut self, ack: Seq, now: Instant) -> Option<Duration> {
        let mut rtt = None;
        while let Some(s) = self.sent.front() {
            if s.end > ack {
                // Partially acknowledged segment: trim it.
                if s.start < ack {
                    let s = self.sent.front_mut().expect("front exists");
                    let cut = (ack - s.start) as u32;
                    self.out_bytes -= cut;
                    if s.sacked {
                        self.sacked_bytes -= cut;
                    } else if s.lost {
                        self.lost_bytes -= cut;
                        if s.retx {
                            self.retx_bytes -= cut;
                        }
                    }
                    s.start = ack;
                }
                break;
            }
            let s = self.sent.pop_front().expect("front exists");
            let len = s.len();
            self.out_bytes -= len;
            if s.sacked {
                self.sacked_bytes -= len;
            } else if s.lost {
                self.lost_bytes -= len;
                if s.retx {
                    self.retx_bytes -= len;
                }
            }
            if !s.ever_retx {
                rtt = Some(now - s.sent);
                self.rack_xmit = self.rack_xmit.max(s.sent);
            }
        }
        let advanced = (ack - self.snd_una) as u64;
        self.snd_una = ack;
        self.snd_una_off += advanced;
        self.sendbuf
            .ack_to(self.snd_una_off.min(self.sendbuf.end()));
        // Drop scoreboard ranges now below the cumulative ACK.
        self.sacked_ranges.retain_mut(|r| {
            if r.1 <= ack {
                return false;
            }
            r.0 = r.0.max(ack);
            true
        });
        // Marks in sequence space never fall behind the cumulative ACK: a mark left 2^31 bytes
        // behind would compare as ahead of it (modulo-2^32 order) and hold the sender back.
        self.lost_scan = self.lost_scan.max(ack);
        self.rxt_scan = self.rxt_scan.max(ack);
        self.snd_sml = self.snd_sml.max(ack);
        self.penalty_mark = self.penalty_mark.max(ack);
        rtt
    }

    /// Index of the first record whose end is beyond `seq`.
    fn seg_index(&self, seq: Seq) -> usize {
        self.sent.partition_point(|s| s.end <= seq)
    }

    /// Records a SACK block (RFC 2018); returns whether it SACKed anything new.
    fn on_sack_block(&mut self, b: SackBlock) -> bool {
        let (mut l, r) = (Seq(b.left), Seq(b.right));
        if r <= l || r > self.snd_nxt || r <= self.snd_una {
            return false; // invalid, or a D-SACK below the cumulative ACK
        }
        l = l.max(self.snd_una);
        // Merge into the range list, noting only the parts not yet covered.
        let mut fresh: [(Seq, Seq); 4] = [(Seq(0), Seq(0)); 4];
        let mut nfresh = 0;
        let mut cur = l;
        for &(a, z) in self.sacked_ranges.iter() {
            if z <= cur {
                continue;
            }
            if a >= r {
                break;
            }
            if a > cur && nfresh < fresh.len() {
                fresh[nfresh] = (cur, a);
                nfresh += 1;
            }
            cur = cur.max(z);
            if cur >= r {
                break;
            }
        }
        if cur < r && nfresh < fresh.len() {
            fresh[nfresh] = (cur, r);
            nfresh += 1;
        }
        if nfresh == 0 {
            return false;
        }
        if !self.insert_sacked_range(l, r) {
            return false;
        }
        let mut any = false;
        for &(a, z) in &fresh[..nfresh] {
            let mut i = self.seg_index(a);
            while i < self.sent.len() {
                let s = &mut self.sent[i];
                if s.start >= z {
                    break;
                }
                // Only whole segments count as SACKed.
                if s.start >= a && s.end <= z && !s.sacked {
                    let len = s.len();
                    s.sacked = true;
                    self.rack_xmit = self.rack_xmit.max(s.sent);
                    self.sacked_bytes += len;
                    if s.lost {
                        s.lost = false;
                        self.lost_bytes -= len;
                        if s.retx {
                            s.retx = false;
                            self.retx_bytes -= len;
                        }
                    }
                    any = true;
                }
                i += 1;
            }
        }
        any
    }

    /// Adds `[l, r)` to the sorted, merged list of SACKed ranges. False when the list is full.
    fn insert_sacked_range(&mut self, l: Seq, r: Seq) -> bool {
        let v = &mut self.sacked_ranges;
        let i = v.partition_point(|&(_, z)| z < l);
        let mut j = i;
        let (mut nl, mut nr) = (l, r);
        while j < v.len() && v[j].0 <= r {
            nl = nl.min(v[j].0);
            nr = nr.max(v[j].1);
            j += 1;
        }
        if i == j {
            if v.len() >= MAX_SACKED_RANGES {
                return false;
            }
            v.insert(i, (nl, nr));
        } else {
            v[i] = (nl, nr);
            v.drain(i + 1..j);
        }
        true
    }

    /// Marks the first unSACKed segment lost (entering recovery; NewReno partial ACK).
    fn mark_first_lost(&mut self) {
        if let Some(s) = self.sent.iter_mut().find(|s| !s.sacked) {
            if !s.lost {
                s.lost = true;
                self.lost_bytes += s.len();
            } else if s.retx && !self.sack_ok {
                // NewReno: a partial ACK means the retransmission itself needs repeating.
                s.retx = false;
                self.retx_bytes -= s.len();
            }
            self.rxt_scan = self.rxt_scan.min(s.start);
        }
    }

    /// RFC 6675 IsLost: a hole is lost once more than (DupThresh-1)·SMSS bytes above it are SACKed.
    fn update_lost(&mut self) {
        let limit = (DUP_THRESH - 1) * self.smss;
        let mut above = 0u32;
        let mut boundary = None;
        for &(a, z) in self.sacked_ranges.iter().rev() {
            let len = (z - a) as u32;
            if above + len > limit {
                // The boundary lies inside this range; holes below its start are lost.
                boundary = Some(a);
                break;
            }
            above += len;
        }
        let Some(boundary) = boundary else { return };
        if boundary <= self.lost_scan {
            return;
        }
        let mut i = self.seg_index(self.lost_scan);
        while i < self.sent.len() {
            let s = &mut self.sent[i];
            if s.start >= boundary {
                break;
            }
            if !s.sacked && !s.lost {
                s.lost = true;
                self.lost_bytes += s.len();
            }
            i += 1;
        }
        self.lost_scan = boundary;
    }

    /// A retransmission sent more than a reordering window before a segment that has been
    /// delivered since is lost as well: mark it for another retransmission instead of waiting
    /// for the RTO (RFC 8985 §6.2 applied to retransmissions; Linux does the same with RACK).
    fn detect_lost_retransmissions(&mut self, ctx: &mut Ctx<'_>) {
        let reo_wnd = self.rtt.min_rtt().unwrap_or_default() / 4;
        while let Some(&start) = self.rxt_queue.front() {
            let i = self.seg_index(start);
            let Some(s) = self.sent.get_mut(i).filter(|s| s.start == start && s.retx) else {
                // Acknowledged, SACKed, or already marked again.
                self.rxt_queue.pop_front();
                continue;
            };
            if s.sent + reo_wnd >= self.rack_xmit {
                break;
            }
            s.retx = false;
            self.retx_bytes -= s.len();
            self.rxt_scan = self.rxt_scan.min(s.start);
            self.rxt_queue.pop_front();
            ctx.counters.lost_retransmits += 1;
        }
    }

    /// Proportional rate reduction (RFC 6937 §3.1): during fast recovery, send in proportion to
    /// what the network delivers, so the window shrinks to ssthresh smoothly instead of in a
    /// burst (and retransmissions are not lost to a queue still full from slow start).
    fn update_prr(&mut self, prior_una: Seq, prior_sacked: i64) {
        let delivered =
            (self.snd_una - prior_una).max(0) as i64 + self.sacked_bytes as i64 - prior_sacked;
        let delivered = delivered.max(0) as u64;
        self.prr_delivered += delivered;
        let pipe = self.pipe() as u64;
        let ssthresh = self.cc.ssthresh() as u64;
        let mss = self.smss as u64;
        let sndcnt = if pipe > ssthresh {
            (self.prr_delivered * ssthresh)
                .div_ceil(self.recover_fs)
                .saturating_sub(self.prr_out)
        } else {
            // Slow-start reduction bound: catch up to ssthresh, at most one MSS beyond delivery.
            let catch_up = self
                .prr_delivered
                .saturating_sub(self.prr_out)
                .max(delivered)
                + mss;
            (ssthresh - pipe).min(catch_up)
        };
        self.prr_cwnd = (pipe + sndcnt).min(u32::MAX as u64) as u32;
    }

    /// Bytes in flight by the RFC 6675 pipe rule.
    fn pipe(&self) -> u32 {
        self.out_bytes - self.sacked_bytes - self.lost_bytes + self.retx_bytes
    }

    fn on_fin_acked(&mut self, now: Instant) {
        let Some(fin) = self.fin_seq else { return };
        if self.snd_una <= fin {
            return;
        }
        match self.state {
            TcpState::FinWait1 => {
                self.state = TcpState::FinWait2;
                if self.released {
                    self.set_timer(Timer::Linger, now + self.cfg.fin_wait2_timeout);
                }
            }
            TcpState::Closing => self.enter_time_wait(now),
            TcpState::LastAck => self.close_with(End::Normal),
            _ => {}
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = TcpState::TimeWait;
        let tw = self.cfg.time_wait;
        self.timers = [None; TIMER_COUNT];
        self.set_timer(Timer::Linger, now + tw);
    }

    /// The application released its handle; an orphan in FIN_WAIT_2 gives up after a while.
    pub fn on_released(&mut self, now: Instant) {
        self.released = true;
        if self.state == TcpState::FinWait2 && self.timer(Timer::Linger).is_none() {
            self.set_timer(Timer::Linger, now + self.cfg.fin_wait2_timeout);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Data and FIN
    // ------------------------------------------------------------------------------------------

    /// Stream offset of a receive sequence number at or after `rcv_nxt`.
    fn rcv_offset(&self, seq: Seq) -> u64 {
        self.recvbuf.in_order_end() + (seq - self.rcv_nxt).max(0) as u64
    }

    fn process_data_and_fin(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &TcpRepr<'_>,
        hk: &mut dyn SubflowHooks,
    ) {
        let now = ctx.now;
        let f = seg.flags;
        let can_receive = matches!(
            self.state,
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
        );
        let seq = Seq(seg.seq);
        if !seg.payload.is_empty() {
            if !can_receive || self.fin_received {
                // Data after the peer's FIN (or after we stopped reading) is not acceptable.
                self.ack_now = true;
            } else {
                // Bytes before RCV.NXT were received already: skip them.
                let skip = ((self.rcv_nxt - seq).max(0) as usize).min(seg.payload.len());
                let off = self.rcv_offset(seq);
                let before_ooo = self.recvbuf.ooo_bytes();
                let data = &seg.payload[skip..];
                // In order with nothing unread held: the hooks may take the bytes straight to
                // where they belong (an MPTCP subflow's go to the connection level), and the
                // buffer only counts them.
                let direct = before_ooo == 0
                    && self.recvbuf.readable() == 0
                    && off == self.recvbuf.in_order_end()
                    && data.len() <= self.recvbuf.window()
                    && hk.land(ctx.counters, off, data);
                let advanced = if direct {
                    self.recvbuf.pass(data.len())
                } else {
                    self.recvbuf.write_at(off, data)
                };
                let dropped_before = self.stats_ooo_dropped;
                self.stats_ooo_dropped = self.recvbuf.dropped_segments();
                if self.stats_ooo_dropped > dropped_before {
                    ctx.counters.ooo_dropped += self.stats_ooo_dropped - dropped_before;
                }
                if advanced > 0 {
                    self.measure_rcv_rtt(now, seg);
                    self.rcv_nxt = self.rcv_nxt + advanced as u32;
                    self.stats.bytes_received += advanced as u64;
                    self.unacked_rcv_bytes += advanced as u32;
                    self.events |= ev::READABLE;
                    // Filled a hole, or a reordering is pending: ACK at once (RFC 5681 §4.2).
                    if before_ooo > 0 || self.recvbuf.ooo_bytes() > 0 {
                        self.ack_now = true;
                    }
                    if self.unacked_rcv_bytes >= 2 * self.rcv_mss {
                        self.ack_now = true;
                    } else if self.timer(Timer::DelayedAck).is_none() {
                        self.set_timer(Timer::DelayedAck, now + self.cfg.delayed_ack);
                    }
                } else {
                    // Out of order, duplicate, or outside the window: ACK at once (with SACK).
                    self.ack_now = true;
                }
            }
        }
        if f.fin() && can_receive_fin(self.state) && !self.fin_received {
            let end = seq + seg.payload.len();
            if end >= self.rcv_nxt {
                self.fin_offset = Some(self.rcv_offset(end));
            }
            self.ack_now = true;
        }
        self.check_fin(now);
    }

    /// Processes the peer's FIN once every byte before it arrived (RFC 9293 §3.10.7.4, eighth).
    fn check_fin(&mut self, now: Instant) {
        if self.fin_received {
            return;
        }
        let Some(off) = self.fin_offset else { return };
        if self.recvbuf.in_order_end() != off {
            return;
        }
        self.fin_received = true;
        self.rcv_nxt = self.rcv_nxt + 1u32;
        self.events |= ev::READABLE;
        self.ack_now = true;
        match self.state {
            TcpState::SynReceived | TcpState::Established => self.state = TcpState::CloseWait,
            TcpState::FinWait1 => {
                // Our FIN not yet acknowledged: simultaneous close.
                if self.fin_seq.is_some_and(|f| self.snd_una > f) {
                    self.enter_time_wait(now);
                } else {
                    self.state = TcpState::Closing;
                }
            }
            TcpState::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    // ------------------------------------------------------------------------------------------
    // Buffer autotuning (`super::tune`)
    // ------------------------------------------------------------------------------------------

    /// A data segment advanced the in-order end: a sample of the receiver's RTT from the
    /// timestamp it echoes (full-sized segments only, as Linux), else from the time one
    /// window takes to arrive.
    fn measure_rcv_rtt(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        match seg.options.timestamps.filter(|_| self.ts_ok) {
            Some(ts) => {
                if seg.payload.len() as u32 >= self.rcv_mss {
                    self.rcv_rtt.on_timestamp(self.ts_now(now), ts.tsecr);
                }
            }
            None => {
                let wnd = (self.rcv_adv - self.rcv_nxt).max(0) as u64;
                self.rcv_rtt
                    .on_window(now, self.recvbuf.in_order_end(), wnd);
            }
        }
    }

    /// The receiver's RTT estimate (for the MPTCP data level's autotuning).
    pub(crate) fn rcv_rtt(&self) -> Option<Duration> {
        self.rcv_rtt.get()
    }

    /// Payload of a full-sized segment we receive.
    pub(crate) fn rcv_mss_now(&self) -> u32 {
        self.rcv_mss
    }

    /// Dynamic right-sizing of the receive buffer, once per round trip of what the
    /// application read.
    fn tune_rcvbuf(&mut self, now: Instant) {
        let cap = self.recvbuf.capacity();
        let max = self.cfg.recv_cap();
        if cap >= max || !self.synchronized() || self.mem_pressure {
            return;
        }
        let rtt = self.rcv_rtt.get().or(self.rtt.srtt());
        let read = self.recvbuf.read_offset();
        if let Some(c) = self
            .rcv_space
            .adjust(now, read, rtt, self.rcv_mss, cap, max)
        {
            self.recvbuf.set_capacity(c);
        }
    }

    /// Grows the receive buffer to `cap` bytes (the MPTCP data level's size), never above the
    /// configured cap.
    pub(crate) fn grow_rcvbuf(&mut self, cap: usize) {
        let c = cap.min(self.cfg.recv_cap());
        if c > self.recvbuf.capacity() && !self.mem_pressure {
            self.recvbuf.set_capacity(c);
        }
    }

    /// The send buffer follows the congestion window (twice it), never shrinking; as Linux,
    /// only for a writer the buffer held back.
    fn grow_sndbuf(&mut self) {
        if self.write_blocked {
            self.grow_sndbuf_to_cwnd();
        }
    }

    /// The send buffer grows to twice the congestion window (an MPTCP subflow: the scheduler
    /// fills it up to the window and one mapping more).
    pub(crate) fn grow_sndbuf_to_cwnd(&mut self) {
        let cap = self.sendbuf.capacity();
        let max = self.cfg.send_cap();
        if cap >= max || self.mem_pressure {
            return;
        }
        let want = sndbuf_for(self.cc.cwnd() as u64, self.smss, max);
        if let Some(c) = grow_step(cap, want, max) {
            self.sendbuf.set_capacity(c);
            if self.write_blocked {
                self.write_blocked = false;
                self.events |= ev::WRITABLE;
            }
        }
    }

    /// Memory pressure on the endpoint (Linux's `tcp_memory_pressure`) starts (`true`, also
    /// again while it lasts: each call moderates once more) or ends. While it lasts buffers do
    /// not grow; the send buffer shrinks to what it holds (at least 64 KiB (`tune::PRESSURE_BUFFER`); a
    /// blocked writer waits for acknowledgments, as `sk_stream_moderate_sndbuf`), the receive
    /// window closes towards 64 KiB (`tune::PRESSURE_BUFFER`) as the application reads (never reneging on
    /// what was advertised), and empty rings are freed.
    pub(crate) fn set_memory_pressure(&mut self, on: bool) {
        self.mem_pressure = on;
        if !on {
            self.recvbuf.shrink_towards(None);
            return;
        }
        moderate(&mut self.sendbuf, &mut self.recvbuf);
    }

    /// Bytes the send and receive rings hold now.
    pub(crate) fn memory(&self) -> usize {
        self.sendbuf.allocated() + self.recvbuf.allocated()
    }

    /// Most bytes the rings held at once.
    pub(crate) fn memory_peak(&self) -> usize {
        self.mem_peak
    }

    fn note_memory(&mut self) {
        self.mem_peak = self.mem_peak.max(self.memory());
    }

    /// Send and receive capacity now (what autotuning grew them to).
    pub(crate) fn buffer_sizes(&self) -> (usize, usize) {
        (self.sendbuf.capacity(), self.recvbuf.capacity())
    }

    /// Frees rings that hold nothing once the connection is over (closed, or TIME_WAIT).
    fn release_buffers(&mut self) {
        if matches!(self.state, TcpState::Closed | TcpState::TimeWait) {
            self.note_memory();
            self.sendbuf.release();
            self.recvbuf.release();
        }
    }

    // ------------------------------------------------------------------------------------------
    // Output
    // ------------------------------------------------------------------------------------------

    fn has_unsent_data(&self) -> bool {
        self.snd_off(self.snd_nxt) < self.sendbuf.end()
    }

    /// Stream offset of a send sequence number at or after `snd_una`.
    fn snd_off(&self, seq: Seq) -> u64 {
        self.snd_una_off + (seq - self.snd_una).max(0) as u64
    }

    /// The window we advertise now, as the header field, and the right edge it implies.
    fn window_to_advertise(&mut self, syn: bool, hk: &mut dyn SubflowHooks) -> u16 {
        if syn {
            let w = self.recvbuf.window().min(65535) as u16;
            self.rcv_adv = self.rcv_nxt + w as u32;
            return w;
        }
        let avail = match hk.recv_window() {
            // RFC 8684 §3.3.4: the connection-level window, on every subflow.
            Some(w) => w.saturating_sub(self.recvbuf.readable()) as u32,
            None => self.recvbuf.window() as u32,
        };
        let mut right = self.rcv_nxt + avail;
        // Never shrink (RFC 9293 §3.8.6.2.2), and only open by a useful amount (SWS avoidance).
        let min_step = (self.recvbuf.capacity() as u32 / 2).min(self.rcv_mss);
        if right < self.rcv_adv || (right - self.rcv_adv) < min_step as i32 {
            right = self.rcv_adv.max(self.rcv_nxt);
        }
        let wnd = (right - self.rcv_nxt).max(0) as u32;
        let field = (wnd >> self.rcv_wscale).min(65535);
        self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + (field << self.rcv_wscale));
        field as u16
    }

    fn ts_now(&self, now: Instant) -> u32 {
        self.ts_offset
            .wrapping_add((now.as_nanos() / 1_000_000) as u32)
    }

    fn base_repr(
        &mut self,
        now: Instant,
        seq: Seq,
        flags: u8,
        hk: &mut dyn SubflowHooks,
    ) -> TcpRepr<'static> {
        let syn = flags & TcpFlags::SYN != 0;
        let mut r = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.0,
            ack: 0,
            flags: TcpFlags(flags),
            window: 0,
            ..Default::default()
        };
        if flags & TcpFlags::RST == 0 {
            // Every segment but a RST carries our window; a SYN's is never scaled (RFC 7323 §2.2).
            r.window = self.window_to_advertise(syn, hk);
        }
        if flags & TcpFlags::ACK != 0 {
            r.ack = self.rcv_nxt.0;
            self.last_ack_sent = self.rcv_nxt;
            self.unacked_rcv_bytes = 0;
            self.ack_now = false;
            self.clear_timer(Timer::DelayedAck);
        }
        if self.ts_ok {
            r.options.timestamps = Some(Timestamps {
                tsval: self.ts_now(now),
                tsecr: if flags & TcpFlags::ACK != 0 {
                    self.ts_recent
                } else {
                    0
                },
            });
        }
        if syn {
            r.options.mss = Some(self.cfg.mss);
            if self.ws_ok {
                r.options.window_scale = Some(self.rcv_wscale);
            }
            r.options.sack_permitted = self.sack_ok;
        } else if self.sack_ok && self.recvbuf.ooo_bytes() > 0 {
            let max = if self.ts_ok { 3 } else { 4 };
            let mut ranges = std::mem::take(&mut self.sack_scratch);
            self.recvbuf.sack_ranges(max, &mut ranges);
            let base = self.recvbuf.in_order_end();
            for &(a, z) in &ranges {
                let left = self.rcv_nxt + (a - base) as u32;
                let right = self.rcv_nxt + (z - base) as u32;
                r.options.sack.push(SackBlock {
                    left: left.0,
                    right: right.0,
                });
            }
            self.sack_scratch = ranges;
        }
        r
    }

    /// Emits the next segment this connection wants to send into `buf` (a whole IP packet).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        hk: &mut dyn SubflowHooks,
    ) -> bool {
        self.tx_gso = 0;
        self.tx_packets = 1;
        let emitted = self.next_segment(now, buf, hk);
        if emitted {
            self.stats.segments_sent += u64::from(self.tx_packets);
            self.last_send = now;
        }
        emitted
    }

    fn emit(&mut self, repr: &TcpRepr<'_>, buf: &mut Vec<u8>, hk: &mut dyn SubflowHooks) {
        let off = self.sendbuf.end();
        self.emit_seg(repr, off, buf, hk);
    }

    /// Emits a segment whose first payload byte (or FIN) is at stream offset `off`, decorated
    /// with the extension's options (MPTCP) when there are any.
    fn emit_seg(
        &mut self,
        repr: &TcpRepr<'_>,
        off: u64,
        buf: &mut Vec<u8>,
        hk: &mut dyn SubflowHooks,
    ) {
        let mut body = [[0u8; 40]; 2];
        let gso = self.tx_gso > 0;
        let out = OutSeg {
            flags: repr.flags.0,
            rel_seq: repr.seq.wrapping_sub(self.iss.0),
            off,
            payload: repr.payload,
            sack: !repr.options.sack.is_empty(),
            room: if gso {
                self.dss_reserved
            } else {
                (self.smss + self.dss_reserved).saturating_sub(repr.payload.len() as u32)
            },
            gso,
        };
        let emit = if self.offload.csum {
            braid_wire::emit_ip_tcp_partial
        } else {
            braid_wire::emit_ip_tcp
        };
        let n = hk.options(&out, &mut body);
        if n == [0, 0] {
            emit(&self.ip, repr, buf);
            return;
        }
        let mut r = *repr;
        for (b, &len) in body.iter().zip(n.iter()) {
            if len > 0 {
                r.options
                    .mptcp
                    .push(braid_wire::tcp::kind::MPTCP, &b[..len]);
            }
        }
        emit(&self.ip, &r, buf);
    }

    /// Keeps `bytes` of option room free on every data segment (passive open: after
    /// `accept_syn` negotiated, when an extension such as MPTCP was agreed).
    pub(crate) fn reserve_option_room(&mut self, bytes: u32) {
        if self.state == TcpState::SynReceived && bytes > 0 {
            let full = self.smss;
            self.smss = self.smss.saturating_sub(bytes).max(32);
            self.dss_reserved = full - self.smss;
            self.rcv_mss = self.rcv_mss.saturating_sub(bytes).max(32);
            self.cc.set_mss(self.smss);
        }
    }

    // --- for the MPTCP connection level (endpoint) ---

    fn sched_cwnd(&self) -> u64 {
        let cwnd = if self.recovery == Recovery::Fast {
            self.prr_cwnd
        } else {
            self.cc.cwnd()
        };
        cwnd as u64
    }

    /// Room the scheduler may fill: congestion window plus one [`Tcb::sched_chunk`] of queue,
    /// less what is in flight or queued unsent.
    pub(crate) fn sched_room(&self) -> u64 {
        let unsent = self
            .sendbuf
            .end()
            .saturating_sub(self.snd_off(self.snd_nxt));
        (self.sched_cwnd() + self.sched_chunk()).saturating_sub(self.pipe() as u64 + unsent)
    }

    /// What the scheduler hands this subflow at once (one DSS mapping): a quarter of the
    /// congestion window, one to 16 segments. Fewer, longer mappings leave room for payload
    /// (most segments carry no DSS), while one chunk of queue keeps the subflow busy between
    /// hand-overs without holding much data away from the other subflows.
    pub(crate) fn sched_chunk(&self) -> u64 {
        let seg = (self.smss + self.dss_reserved) as u64;
        (self.sched_cwnd() / 4).clamp(seg, 16 * seg)
    }

    /// MPTCP penalisation (this subflow held data the peer's full window waits for): the
    /// window is reduced as for a loss, at most once per round trip, never during recovery.
    pub(crate) fn penalize(&mut self, now: Instant) {
        if self.recovery != Recovery::Open || self.snd_una < self.penalty_mark {
            return;
        }
        let flight = self.pipe();
        self.cc.on_congestion_event(now, flight);
        self.cc.on_recovery_exit(now);
        self.penalty_mark = self.snd_nxt;
    }

    /// `n` rounded down to whole segments of one mapping (its first segment carries the DSS,
    /// the others the full MSS, or all carry it when `every` segment needs a mapping); `n`
    /// itself when it is less than one segment.
    pub(crate) fn whole_segments(&self, n: u64, every: bool) -> u64 {
        let first = self.smss as u64;
        let rest = if every {
            first
        } else {
            (self.smss + self.dss_reserved) as u64
        };
        if n <= first {
            return n;
        }
        first + (n - first) / rest * rest
    }
    /// Stream offset acknowledged on this subflow.
    pub(crate) fn snd_una_offset(&self) -> u64 {
        self.snd_una_off.min(self.sendbuf.end())
    }
    /// Stream offset one past what is queued.
    pub(crate) fn send_end(&self) -> u64 {
        self.sendbuf.end()
    }
    pub(crate) fn backoff(&self) -> u32 {
        self.backoff
    }
    /// Stream offset of the next byte `recv` returns, and how many are in order.
    pub(crate) fn rcv_read_offset(&self) -> u64 {
        self.recvbuf.read_offset()
    }
    pub(crate) fn fin_received(&self) -> bool {
        self.fin_received
    }
    /// Reads in-order bytes without window bookkeeping (the connection level advertises).
    pub(crate) fn drain(&mut self, buf: &mut [u8]) -> usize {
        self.recvbuf.read(buf)
    }
    /// Up to `n` in-order bytes, as one or two slices of the receive buffer (not consumed).
    pub(crate) fn rcv_slices(&self, n: usize) -> (&[u8], &[u8]) {
        self.recvbuf.readable_slices(n)
    }
    /// Consumes up to `n` in-order bytes without copying (after [`Tcb::rcv_slices`]).
    pub(crate) fn consume(&mut self, n: usize) -> usize {
        self.recvbuf.consume(n)
    }
    /// Copies in-order bytes from `rcv_read_offset() + skip` without consuming them.
    pub(crate) fn peek(&self, skip: usize, buf: &mut [u8]) -> usize {
        self.recvbuf.peek(skip, buf)
    }
    /// Most in-order bytes the receive buffer holds.
    pub(crate) fn rcv_capacity(&self) -> usize {
        self.recvbuf.capacity()
    }
    /// Send an ACK at the next opportunity.
    pub(crate) fn force_ack(&mut self) {
        if self.synchronized() {
            self.ack_now = true;
        }
    }
    /// Established (or the peer closed) and able to carry new data.
    pub(crate) fn can_carry(&self) -> bool {
        matches!(self.state, TcpState::Established | TcpState::CloseWait) && !self.fin_queued
    }

    fn next_segment(&mut self, now: Instant, buf: &mut Vec<u8>, hk: &mut dyn SubflowHooks) -> bool {
        if self.rst_pending {
            self.rst_pending = false;
            let r = self.base_repr(now, self.snd_nxt, TcpFlags::RST | TcpFlags::ACK, hk);
            self.emit(&r, buf, hk);
            return true;
        }
        if let Some((seq, ack, with_ack)) = self.rst_reply.take() {
            let flags = if with_ack {
                TcpFlags::RST | TcpFlags::ACK
            } else {
                TcpFlags::RST
            };
            let r = TcpRepr {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq,
                ack,
                flags: TcpFlags(flags),
                ..Default::default()
            };
            self.emit(&r, buf, hk);
            return true;
        }
        match self.state {
            TcpState::Closed | TcpState::Listen => false,
            TcpState::SynSent | TcpState::SynReceived => {
                if !self.syn_pending {
                    return self.send_pure_ack_if_needed(now, buf, hk);
                }
                self.syn_pending = false;
                let flags = if self.state == TcpState::SynSent {
                    TcpFlags::SYN
                } else {
                    TcpFlags::SYN | TcpFlags::ACK
                };
                let r = self.base_repr(now, self.iss, flags, hk);
                self.emit(&r, buf, hk);
                if self.retries == 0 {
                    self.syn_sent_at = Some(now);
                }
                if self.timer(Timer::Rto).is_none() {
                    self.arm_rto(now);
                }
                true
            }
            _ => {
                if hk.take_fail_ack_due() {
                    // An ACK of its own for the MP_FAIL (RFC 8684 §3.7), which a data
                    // segment has no room for.
                    self.ack_now = true;
                    return self.send_pure_ack_if_needed(now, buf, hk);
                }
                if self.send_data(now, buf, hk) {
                    return true;
                }
                if self.persist_probe_pending || self.keepalive_probe_pending {
                    // Zero-window probe and keepalive: an old sequence number elicits an ACK
                    // carrying the peer's current window (RFC 9293 §3.8.4, §3.8.6.1).
                    self.persist_probe_pending = false;
                    self.keepalive_probe_pending = false;
                    let r = self.base_repr(now, self.snd_una - 1u32, TcpFlags::ACK, hk);
                    self.emit(&r, buf, hk);
                    return true;
                }
                self.send_pure_ack_if_needed(now, buf, hk)
            }
        }
    }

    fn send_pure_ack_if_needed(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        hk: &mut dyn SubflowHooks,
    ) -> bool {
        if !self.ack_now || matches!(self.state, TcpState::SynSent | TcpState::Closed) {
            return false;
        }
        let seq = if self.state == TcpState::SynReceived {
            self.iss + 1u32
        } else {
            self.snd_nxt
        };
        let r = self.base_repr(now, seq, TcpFlags::ACK, hk);
        self.emit(&r, buf, hk);
        true
    }

    /// Sends one data (or FIN) segment if the windows and Nagle allow (RFC 6675 NextSeg first).
    fn send_data(&mut self, now: Instant, buf: &mut Vec<u8>, hk: &mut dyn SubflowHooks) -> bool {
        if !matches!(
            self.state,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::Closing
                | TcpState::LastAck
        ) {
            return false;
        }
        let cwnd = if self.recovery == Recovery::Fast {
            self.prr_cwnd
        } else {
            self.cc.cwnd()
        };
        let pipe = self.pipe();
        if pipe >= cwnd && !self.sent.is_empty() {
            self.app_limited = false;
            return false;
        }
        // 1. Retransmit a lost segment.
        if self.recovery != Recovery::Open {
            if let Some(i) = self.next_lost() {
                return self.retransmit(now, i, buf, hk);
            }
        }
        // 2. New data (and FIN).
        let off = self.snd_off(self.snd_nxt);
        let data_end = self.sendbuf.end();
        let mut avail = data_end.saturating_sub(off);
        let mut cut = false;
        let mut mss = self.smss;
        // RFC 8684 §3.3.1: a segment never spans two mappings.
        let lim = hk.seg_limit(off);
        if lim < avail {
            avail = lim;
            cut = true;
        }
        // The MSS was reduced by the largest option; a segment that carries less gets the
        // difference back as payload.
        if let Some(need) = hk.data_opt_len(off) {
            let r = self.dss_reserved;
            mss = self.smss + r - need.min(r);
        }
        let fin_now = self.fin_queued && self.fin_seq.is_none();
        if avail == 0 && !fin_now {
            self.app_limited = true;
            return false;
        }
        let wnd_right = self.snd_una + self.snd_wnd;
        // With MPTCP the window is the connection-level one (RFC 8684 §3.3.4); applied to the
        // subflow it never allows more than the data level does, and drives the persist timer.
        let wnd_room = (wnd_right - self.snd_nxt).max(0) as u64;
        let cwnd_room = (cwnd.saturating_sub(pipe)) as u64;
        if let Some(n) = self.burst_packets(off, avail, fin_now, wnd_room.min(cwnd_room), hk) {
            return self.send_burst(now, off, n, avail, cut, buf, hk);
        }
        let len = avail.min(mss as u64).min(wnd_room).min(cwnd_room) as u32;
        if len == 0 && avail > 0 {
            if wnd_room == 0 {
                self.arm_persist_if_needed(now);
            }
            return false;
        }
        if len < mss && (len as u64) < avail {
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): wait for a full segment unless the
            // peer's window is at least half its maximum and nothing is in flight.
            let half_max = (self.max_snd_wnd / 2) as u64;
            let sws_ok = self.sent.is_empty() && (wnd_room >= half_max.max(1) || self.sws_override);
            if !sws_ok {
                if wnd_room < cwnd_room {
                    self.arm_persist_if_needed(now);
                }
                return false;
            }
        }
        if self.cfg.nagle
            && !cut
            && (len as u64) == avail
            && len < mss
            && len > 0
            && self.snd_sml > self.snd_una
            && !self.fin_queued
        {
            // Nagle (RFC 9293 §3.7.4) with Minshall's refinement (as Linux): one small segment
            // in flight at a time; full-sized segments in flight do not hold back the last,
            // short piece of a burst.
            return false;
        }
        let fin = fin_now && off + len as u64 == data_end && !cut;
        if len == 0 && !fin {
            return false;
        }
        self.sws_override = false;
        if avail > 0 && (len as u64) == avail {
            self.app_limited = cwnd_room.min(wnd_room) > len as u64;
        } else {
            self.app_limited = false;
        }
        let seq = self.snd_nxt;
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
        }
        if len as u64 == avail && len > 0 && !cut {
            flags |= TcpFlags::PSH;
        }
        self.build_data_segment(now, seq, off, len, flags, buf, hk);
        let end = seq + len + fin as u32;
        self.snd_nxt = end;
        if len < mss {
            self.snd_sml = end;
        }
        if fin {
            self.fin_seq = Some(seq + len);
            self.state = match self.state {
                TcpState::Established => TcpState::FinWait1,
                TcpState::CloseWait => TcpState::LastAck,
                s => s,
            };
        }
        self.sent.push_back(SentSeg {
            start: seq,
            end,
            sent: now,
            fin,
            sacked: false,
            lost: false,
            retx: false,
            ever_retx: false,
        });
        self.out_bytes += len + fin as u32;
        self.stats.bytes_sent += len as u64;
        self.prr_out += (len + fin as u32) as u64;
        if self.timer(Timer::Rto).is_none() {
            self.arm_rto(now);
        }
        true
    }

    /// Packets of `smss` payload bytes a super-segment at stream offset `off` can carry (at least
    /// two), when the device cuts them (TSO) and the windows, the data queued (`avail`, up to
    /// the mapping's end with MPTCP) and the extension allow one: only whole packets, and never
    /// the FIN (which goes on a segment of its own after the burst).
    fn burst_packets(
        &self,
        off: u64,
        avail: u64,
        fin_now: bool,
        room: u64,
        hk: &dyn SubflowHooks,
    ) -> Option<u32> {
        let seg = self.smss as u64;
        if self.offload.tso == 0 || seg == 0 || avail.min(room) < 2 * seg {
            return None;
        }
        let mut n = avail
            .min(room)
            .min(self.offload.tso as u64)
            .min(u16::MAX as u64 * seg)
            / seg;
        if fin_now && off + n * seg == self.sendbuf.end() {
            n -= 1;
        }
        (n >= 2 && hk.burst_ok(off)).then_some(n as u32)
    }

    /// Sends `n` packets of new data as one super-segment: one header (MPTCP: with the one
    /// mapping that covers it all) that the device copies onto each packet. The scoreboard
    /// keeps one entry per packet, as if they had been sent one by one.
    #[allow(clippy::too_many_arguments)]
    fn send_burst(
        &mut self,
        now: Instant,
        off: u64,
        n: u32,
        avail: u64,
        cut: bool,
        buf: &mut Vec<u8>,
        hk: &mut dyn SubflowHooks,
    ) -> bool {
        let seg = self.smss;
        let len = n * seg;
        self.sws_override = false;
        self.app_limited = false;
        let seq = self.snd_nxt;
        let mut flags = TcpFlags::ACK;
        if len as u64 == avail && !cut {
            flags |= TcpFlags::PSH;
        }
        self.tx_gso = seg as u16;
        self.tx_packets = n;
        self.build_data_segment(now, seq, off, len, flags, buf, hk);
        self.snd_nxt = seq + len;
        for k in 0..n {
            let start = seq + k * seg;
            self.sent.push_back(SentSeg {
                start,
                end: start + seg,
                sent: now,
                fin: false,
                sacked: false,
                lost: false,
                retx: false,
                ever_retx: false,
            });
        }
        self.out_bytes += len;
        self.stats.bytes_sent += len as u64;
        self.prr_out += len as u64;
        if self.timer(Timer::Rto).is_none() {
            self.arm_rto(now);
        }
        true
    }

    /// Arms the persist timer when nothing is in flight and the peer's window (zero, or too
    /// small for sender SWS avoidance) holds back data we have (RFC 9293 §3.8.6.1, §3.8.6.2.1).
    fn arm_persist_if_needed(&mut self, now: Instant) {
        if self.sent.is_empty() && self.has_unsent_data() && self.timer(Timer::Persist).is_none() {
            let rto = self.rtt.rto_backoff(self.backoff);
            self.set_timer(Timer::Persist, now + rto);
        }
    }

    /// Index of the next segment to retransmit: lost, not yet retransmitted, not SACKed.
    fn next_lost(&mut self) -> Option<usize> {
        if self.lost_bytes == self.retx_bytes {
            return None;
        }
        let mut i = self.seg_index(self.rxt_scan);
        while i < self.sent.len() {
            let s = &self.sent[i];
            if s.lost && !s.retx && !s.sacked {
                self.rxt_scan = s.start;
                return Some(i);
            }
            i += 1;
        }
        self.rxt_scan = self.snd_nxt;
        None
    }

    fn retransmit(
        &mut self,
        now: Instant,
        i: usize,
        buf: &mut Vec<u8>,
        hk: &mut dyn SubflowHooks,
    ) -> bool {
        let s = self.sent[i];
        let len = s.len() - s.fin as u32;
        let off = self.snd_off(s.start);
        let mut flags = TcpFlags::ACK;
        if s.fin {
            flags |= TcpFlags::FIN;
        }
        self.build_data_segment(now, s.start, off, len, flags, buf, hk);
        let seg = &mut self.sent[i];
        seg.retx = true;
        seg.ever_retx = true;
        seg.sent = now;
        self.retx_bytes += seg.len();
        self.prr_out += seg.len() as u64;
        self.rxt_scan = seg.end;
        self.rxt_queue.push_back(s.start);
        self.stats.bytes_retransmitted += len as u64;
        self.stats.bytes_sent += len as u64;
        if self.timer(Timer::Rto).is_none() {
            self.arm_rto(now);
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn build_data_segment(
        &mut self,
        now: Instant,
        seq: Seq,
        off: u64,
        len: u32,
        flags: u8,
        buf: &mut Vec<u8>,
        hk: &mut dyn SubflowHooks,
    ) {
        // The payload straight from the send buffer's ring (copied once, into the packet),
        // unless it wraps; the buffer is moved out for the call (no allocation either way).
        // A mapped buffer's bytes are in the buffer the hooks lend (at offset `at` there).
        let (sendbuf, at, lent) = match self.sendbuf.is_mapped() && len > 0 {
            true => match hk.lend_payload(off) {
                Some((b, at)) => (b, at, true),
                None => {
                    debug_assert!(false, "no payload for mapped offset {off}");
                    (SendBuffer::new(0), 0, false)
                }
            },
            false => (
                std::mem::replace(&mut self.sendbuf, SendBuffer::new(0)),
                off,
                false,
            ),
        };
        let mut scratch = std::mem::take(&mut self.payload_scratch);
        let (a, b) = sendbuf.slices_at(at, len as usize);
        let payload = if b.is_empty() {
            a
        } else {
            scratch.clear();
            scratch.extend_from_slice(a);
            scratch.extend_from_slice(b);
            &scratch[..]
        };
        let mut r = self.base_repr(now, seq, flags, hk);
        r.payload = payload;
        self.emit_seg(&r, off, buf, hk);
        self.payload_scratch = scratch;
        if lent {
            hk.return_payload(sendbuf);
        } else if !self.sendbuf.is_mapped() {
            self.sendbuf = sendbuf;
        }
    }

    /// In TIME_WAIT: may a new SYN for the same pair start a new connection (RFC 6191)?
    pub fn accepts_new_syn(&self, syn: &TcpRepr<'_>) -> bool {
        match (self.ts_ok, syn.options.timestamps) {
            (true, Some(ts)) => (ts.tsval.wrapping_sub(self.ts_recent) as i32) > 0,
            _ => Seq(syn.seq) > self.rcv_nxt,
        }
    }

    /// Information for users and reports.
    /// When the ACK of the oldest unacknowledged segment was set going: the latest (last) send
    /// time of the outstanding segments that make up its first two full segments, since a
    /// receiver ACKs at once when it holds two (RFC 9293 §3.8.6.3). `true` when fewer than two
    /// full segments are outstanding: the ACK may then be delayed.
    pub(crate) fn oldest_ack_due_from(&self) -> Option<(Instant, bool)> {
        let mut bytes = 0u32;
        let mut latest: Option<Instant> = None;
        for s in &self.sent {
            latest = Some(latest.map_or(s.sent, |l| l.max(s.sent)));
            bytes = bytes.saturating_add(s.end.0.wrapping_sub(s.start.0));
            if bytes >= 2 * self.smss {
                return latest.map(|l| (l, false));
            }
        }
        latest.map(|l| (l, true))
    }

    pub(crate) fn rttvar(&self) -> Duration {
        self.rtt.rttvar()
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }
    pub fn rto(&self) -> Duration {
        self.rtt.rto_backoff(self.backoff)
    }
    /// The retransmission timeout without the backoff of timeouts in a row.
    pub fn base_rto(&self) -> Duration {
        self.rtt.rto()
    }
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }
    pub fn ssthresh(&self) -> u32 {
        self.cc.ssthresh()
    }
    pub fn cc_name(&self) -> &'static str {
        self.cc.name()
    }
    /// The congestion controller, for the connection's coupling input.
    pub(crate) fn cc_mut(&mut self) -> &mut dyn crate::cc::CongestionControl {
        self.cc.as_mut()
    }
    pub(crate) fn cc(&self) -> &dyn crate::cc::CongestionControl {
        self.cc.as_ref()
    }
    pub fn peer_window(&self) -> u32 {
        self.snd_wnd
    }
    pub fn smss(&self) -> u32 {
        self.smss
    }
    /// Bytes the application may still write.
    pub fn send_free(&self) -> usize {
        self.sendbuf.free()
    }
    /// Bytes in flight (the RFC 6675 pipe estimate).
    pub fn inflight(&self) -> u32 {
        self.pipe()
    }
    /// Bytes written by the application and not yet acknowledged (sent or not).
    pub fn send_queued(&self) -> usize {
        self.sendbuf.len()
    }
}

fn can_receive_fin(s: TcpState) -> bool {
    matches!(
        s,
        TcpState::SynReceived | TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
    )
}
