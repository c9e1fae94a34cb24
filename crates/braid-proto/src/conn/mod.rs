//! One connection: its subflows (one for plain TCP) and, for MPTCP, the connection level —
//! what happens after a subflow handled input or a timeout (data-level delivery, DATA_ACKs,
//! reinjection, control options, the path manager, DATA_FIN and closing, scheduling). The
//! endpoint routes packets here and turns the answer ([`After`]) into application events,
//! new subflows and demultiplexer changes.

mod control;
mod deliver;
mod events;
pub(crate) mod health;
mod send;

use control::{mp_control, mp_fail_answer};
pub(crate) use deliver::drain_sub;
pub(crate) use send::schedule;
use send::{couple, opportunistic};

use crate::counters::Counters;
use crate::mptcp::conn::{MpHooks, MpLevel, Role, SubflowMp};
use crate::mptcp::pm::{PathManager, PmAction, PmContext, PmEvent};
use crate::mptcp::sched::Scheduler;
use crate::tcp::hooks::{NoHooks, SubflowHooks};
use crate::tcp::tcb::{ev, End, Tcb};
use crate::tcp::TcpState;
use crate::time::Instant;
use braid_wire::mptcp::ResetReason;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One subflow: its TCP (which knows nothing of MPTCP) and its MPTCP state (`None` for
/// plain TCP). It reads as its TCB.
#[derive(Debug)]
pub(crate) struct Subflow {
    pub tcb: Tcb,
    pub mp: Option<Box<SubflowMp>>,
}

impl Subflow {
    /// An MPTCP subflow's send buffer only counts its bytes: they stay in the connection
    /// level's, which lends them for each segment.
    pub(crate) fn new(mut tcb: Tcb, mp: Option<SubflowMp>) -> Self {
        if mp.is_some() {
            tcb.map_send();
        }
        Subflow {
            tcb,
            mp: mp.map(Box::new),
        }
    }
}

impl std::ops::Deref for Subflow {
    type Target = Tcb;
    fn deref(&self) -> &Tcb {
        &self.tcb
    }
}

impl std::ops::DerefMut for Subflow {
    fn deref_mut(&mut self) -> &mut Tcb {
        &mut self.tcb
    }
}

/// What a connection needs of its endpoint while it works.
pub(crate) struct Env<'a> {
    pub counters: &'a mut Counters,
    /// Copy space between subflow and connection-level buffers.
    pub scratch: &'a mut [u8],
    pub local_addrs: &'a [IpAddr],
    /// Those of `local_addrs` that went away.
    pub gone: &'a [IpAddr],
    pub max_subflows: usize,
}

/// What the endpoint must do after a connection worked.
#[derive(Debug)]
pub(crate) struct After {
    /// TCB event bits for the application (`tcb::ev`).
    pub evs: u8,
    /// Subflows the path manager wants opened: (local address, remote).
    pub joins: Vec<(IpAddr, SocketAddr)>,
    /// Every subflow is closed now (told once): why.
    pub closed: Option<End>,
}

/// One connection as the application names it: its subflows (one for plain TCP) and, for
/// MPTCP, the connection level.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Subflow 0 is the initial one; closed subflows stay for `conn_info`.
    pub(crate) subs: Vec<Subflow>,
    /// The MPTCP connection level (RFC 8684); `None` for plain TCP.
    pub(crate) level: Option<Box<MpLevel>>,
    /// Subflow `poll_transmit` asks first (fair turns between subflows).
    pub(crate) tx_next: usize,
    /// The application was told the connection closed (MPTCP).
    pub(crate) closed_told: bool,
    /// The listening port it came from, until it is accepted.
    pub(crate) listener: Option<u16>,
    /// The application knows this handle (active open, or accepted / announced).
    pub(crate) visible: bool,
    /// In the transmit queue.
    pub(crate) queued: bool,
    /// The packet scheduler (MPTCP).
    pub(crate) sched: Option<Box<dyn Scheduler>>,
    /// The path manager (MPTCP), the peer's addresses it was told of, and the subflows whose
    /// end it was told of.
    pub(crate) pm: Option<Box<dyn PathManager>>,
    pub(crate) pm_addrs: Vec<(u8, IpAddr)>,
    pub(crate) pm_closed: Vec<bool>,
    /// Buffer bytes this connection counts for in the endpoint's total, and whether it was
    /// told of the memory pressure now on.
    pub(crate) mem: usize,
    pub(crate) pressured: bool,
    /// MPTCP events for the application, taken by the endpoint once the connection is visible.
    pub(crate) events: std::collections::VecDeque<crate::mptcp::event::MpEvent>,
    /// Events for the path manager from the endpoint (our addresses that came or went).
    pub(crate) pm_pending: Vec<PmEvent>,
}

impl Conn {
    /// A connection of one subflow (not yet visible to the application).
    pub(crate) fn new(
        sub: Subflow,
        level: Option<Box<MpLevel>>,
        listener: Option<u16>,
        sched: Option<Box<dyn Scheduler>>,
        pm: Option<Box<dyn PathManager>>,
    ) -> Self {
        Conn {
            subs: vec![sub],
            level,
            tx_next: 0,
            closed_told: false,
            listener,
            visible: false,
            queued: false,
            sched,
            pm,
            pm_addrs: Vec::new(),
            pm_closed: Vec::new(),
            mem: 0,
            pressured: false,
            events: std::collections::VecDeque::new(),
            pm_pending: Vec::new(),
        }
    }

    /// Bytes its rings hold now (data level and subflows).
    pub(crate) fn memory(&self) -> usize {
        match self.level.as_deref() {
            Some(lv) => lv.memory(&self.subs),
            None => self.subs.iter().map(|t| t.memory()).sum(),
        }
    }

    /// Memory pressure starts (again: moderates once more) or ends for this connection.
    pub(crate) fn set_memory_pressure(&mut self, on: bool) {
        self.pressured = on;
        match self.level.as_deref_mut() {
            Some(lv) => lv.set_memory_pressure(on, &mut self.subs),
            None => self.subs.iter_mut().for_each(|t| t.set_memory_pressure(on)),
        }
    }

    pub(crate) fn tcb(&self) -> &Subflow {
        &self.subs[0]
    }
    pub(crate) fn tcb_mut(&mut self) -> &mut Subflow {
        &mut self.subs[0]
    }
    /// Every subflow is closed.
    pub(crate) fn all_closed(&self) -> bool {
        self.subs.iter().all(|t| t.state == TcpState::Closed)
    }
    /// The state the application sees: the first live subflow's (subflow 0's once all closed).
    pub(crate) fn state(&self) -> TcpState {
        self.subs
            .iter()
            .map(|t| t.state)
            .find(|&s| s != TcpState::Closed)
            .unwrap_or(TcpState::Closed)
    }

    /// The MPTCP side of handling input or a timeout: moves received data from the subflows
    /// to the connection level, handles DATA_ACKs, reinjection, the path manager, DATA_FIN and
    /// closing, and schedules data onto subflows. `None` for plain TCP.
    pub(crate) fn after_mptcp(&mut self, now: Instant, env: &mut Env<'_>) -> Option<After> {
        let c = self;
        let mut lv = c.level.take()?;
        mp_control(&mut lv, &mut c.subs, env.counters);
        mp_fail_answer(&mut lv, &mut c.subs, env.counters);
        let mut evs = std::mem::take(&mut c.subs[0].events);
        for t in c.subs.iter_mut().skip(1) {
            t.events = 0;
        }
        // Receive: subflow bytes to their data offsets.
        let before = lv.recvbuf.in_order_end();
        let sole = c.subs.len() == 1;
        for t in c.subs.iter_mut() {
            drain_sub(&mut lv, t, sole, env.scratch, env.counters);
        }
        if lv.recvbuf.in_order_end() > before || std::mem::take(&mut lv.landed) {
            evs |= ev::READABLE;
        }
        // Buffer autotuning (data level and subflows, mptcp::conn).
        lv.tune_buffers(now, &mut c.subs);
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
        // A stale subflow (`health`: silent while another works) counts as stalled.
        lv.health_at = if lv.fallback || lv.closing {
            None
        } else {
            health::check(&mut c.subs, now, env.counters)
        };
        let is_stale = |t: &Subflow| t.mp.as_deref().is_some_and(|m| m.stale);
        let usable = c
            .subs
            .iter()
            .filter(|t| t.state != TcpState::Closed && t.backoff() == 0 && !is_stale(t))
            .count();
        for t in c.subs.iter_mut() {
            let dead = t.state == TcpState::Closed;
            let stale = is_stale(t);
            let stalled = t.backoff() >= 1 || stale;
            let healthy = t.backoff() == 0 && !stale;
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
                mp.reinjected_to = end;
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
                    env.counters.mp_reinjections += 1;
                }
            } else if !dead && healthy {
                mp.reinjected = false;
            }
        }
        send::keep_for_subflows(&mut lv, &mut c.subs);
        // Path manager: events in, actions out.
        let mut joins: Vec<(IpAddr, SocketAddr)> = Vec::new();
        if lv.fully_established
            && !lv.fallback
            && !lv.closing
            && !lv.fastclose_rx
            && !lv.fastclose_tx
        {
            let mut evs_pm: Vec<PmEvent> = Vec::new();
            if c.pm.is_some() {
                if !lv.pm_started {
                    lv.pm_started = true;
                    evs_pm.push(PmEvent::FullyEstablished);
                    c.pm_addrs = lv.remote_addrs.clone();
                }
                if c.pm_addrs != lv.remote_addrs {
                    for &(id, addr) in lv.remote_addrs.iter() {
                        if !c.pm_addrs.contains(&(id, addr)) {
                            evs_pm.push(PmEvent::AddressAnnounced { id, addr });
                        }
                    }
                    for &(id, addr) in c.pm_addrs.iter() {
                        if !lv.remote_addrs.contains(&(id, addr)) {
                            evs_pm.push(PmEvent::AddressRemoved { id });
                        }
                    }
                    c.pm_addrs = lv.remote_addrs.clone();
                }
                c.pm_closed.resize(c.subs.len(), false);
                // With no subflow left the connection is over: nothing is opened again.
                let any_live = c.subs.iter().any(|t| t.state != TcpState::Closed);
                for (t, told) in c.subs.iter().zip(c.pm_closed.iter_mut()) {
                    if t.state == TcpState::Closed && !*told {
                        *told = true;
                        // Worth opening again (with backoff): it failed (reset, timed out),
                        // not by removal of either address, not refused by the peer.
                        let recreate = any_live
                            && matches!(t.end, Some(End::Reset) | Some(End::TimedOut))
                            && !lv.fin_queued
                            && t.mp.as_deref().is_some_and(|m| {
                                !m.removed
                                    && !m.local_gone
                                    && !m.abandoned
                                    && !m.failed
                                    && m.rst_reason.is_none()
                                    && !matches!(m.rst_rx_reason, Some(1) | Some(3))
                            })
                            && (t.remote.ip() == c.subs[0].remote.ip()
                                || lv.remote_addrs.iter().any(|r| r.1 == t.remote.ip()));
                        evs_pm.push(PmEvent::SubflowClosed {
                            local: t.local,
                            remote: t.remote,
                            recreate,
                        });
                    }
                }
                if lv.pm_wake.is_some_and(|t| t <= now) {
                    lv.pm_wake = None;
                    evs_pm.push(PmEvent::Timer);
                }
                evs_pm.append(&mut c.pm_pending);
            }
            // Most calls bring the path manager nothing (no events: no actions); they skip
            // building its context.
            if let Some(pm) = c.pm.as_deref_mut().filter(|_| !evs_pm.is_empty()) {
                let (live, live_remotes): (Vec<IpAddr>, Vec<SocketAddr>) = c
                    .subs
                    .iter()
                    .filter(|t| t.state != TcpState::Closed)
                    .map(|t| (t.local.ip(), t.remote))
                    .unzip();
                let cx = PmContext {
                    now,
                    server: lv.role == Role::Server,
                    local_addrs: env.local_addrs,
                    gone: env.gone,
                    live_locals: &live,
                    live_remotes: &live_remotes,
                    first_local: c.subs[0].local,
                    first_remote: c.subs[0].remote,
                    remote_addrs: &lv.remote_addrs,
                    remote_ports: &lv.remote_ports,
                    subflows: c.subs.len(),
                    max_subflows: env.max_subflows,
                    srtt: c.subs[0].srtt(),
                };
                let mut acts: Vec<PmAction> = Vec::new();
                for e in &evs_pm {
                    pm.on_event(e, &cx, &mut acts);
                }
                let mut announced = false;
                for act in acts {
                    match act {
                        PmAction::Announce { id, addr } => {
                            if lv.announce.len() < 8 && !lv.announce.contains(&(id, addr)) {
                                lv.announce.push((id, addr));
                                announced = true;
                            }
                        }
                        PmAction::Join { local, remote } => joins.push((local, remote)),
                        PmAction::WakeAt(t) => {
                            lv.pm_wake = Some(lv.pm_wake.map_or(t, |w| w.min(t)));
                        }
                    }
                }
                if announced {
                    lv.announce_due = true;
                    lv.announce_tries = 1;
                    c.subs[0].force_ack();
                }
            }
        }
        c.pm_pending.clear();
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
        if lv.closing && !lv.fallback {
            // The data is done both ways: a subflow that cannot close in order (its path is
            // dead, its FIN never acknowledged) must not hold the connection open. After
            // max(1 s, 4·srtt) it is reset (Linux closes the MPTCP socket at once).
            let lingering = |t: &Subflow| !matches!(t.state, TcpState::Closed | TcpState::TimeWait);
            if c.subs.iter().any(lingering) {
                let srtt = c
                    .subs
                    .iter()
                    .filter_map(|t| t.srtt())
                    .max()
                    .unwrap_or_default();
                let at = *lv
                    .close_deadline
                    .get_or_insert(now + (srtt * 4).max(Duration::from_secs(1)));
                if now >= at {
                    for t in c.subs.iter_mut().filter(|t| lingering(t)) {
                        if let Some(mp) = t.mp.as_deref_mut() {
                            mp.abandoned = true;
                        }
                        env.counters.mp_rst_tx += 1;
                        t.reset(End::Normal);
                    }
                    lv.close_deadline = None;
                }
            } else {
                lv.close_deadline = None;
            }
        }
        // The data level's retransmission timer: the oldest unacknowledged data is in flight
        // on no working subflow (they delivered it but the peer never DATA_ACKed it, or the one
        // carrying it is stalled). Its own timer, so that the others' traffic does not defer it.
        if lv.data_una > lv.rtx_una {
            lv.rtx_backoff = 0;
        }
        if data_una_orphaned(&lv, &c.subs) {
            if lv.rtx_at.is_none() {
                let rto = data_rto(&c.subs);
                lv.rtx_at = Some(now + rto * (1 << lv.rtx_backoff.min(6)));
            }
        } else {
            lv.rtx_at = None;
        }
        // Connection-level timer: DATA_FIN, ADD_ADDR and third-ACK retransmission, late joins.
        let pending = lv.local_fin.is_some() && !lv.local_fin_acked() && !lv.fallback
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
        if let Some(at) = lv.pm_wake.filter(|&t| t > now && !lv.fallback) {
            lv.timer = Some(lv.timer.map_or(at, |t| t.min(at)));
        }
        c.level = Some(lv);
        couple(c);
        schedule(c, env.scratch);
        if opportunistic(c, now, env.scratch) {
            env.counters.mp_opportunistic += 1;
        }
        // Closed for the application once every subflow is closed, or, after the DATA_FIN
        // exchange, in TIME_WAIT (the MPTCP connection is over, as Linux's socket is).
        let all_closed = c.all_closed()
            || c.level.as_deref().is_some_and(|l| l.closing && !l.fallback)
                && c.subs
                    .iter()
                    .all(|t| matches!(t.state, TcpState::Closed | TcpState::TimeWait));
        let told = c.closed_told;
        let removed = |t: &Subflow| t.mp.as_deref().is_some_and(|m| m.removed);
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
        if let Some(lv) = c.level.as_deref_mut() {
            events::collect(lv, &mut c.subs, &mut c.events);
        }
        Some(After {
            evs,
            joins,
            closed: (all_closed && !told).then_some(end),
        })
    }

    /// The connection-level timer fired (if it is due).
    pub(crate) fn tick(&mut self, now: Instant, counters: &mut Counters) {
        let c = self;
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
                counters.mp_rst_tx += 1;
                t.reset(End::Reset);
            }
            return;
        }
        if lv.rtx_at.is_some_and(|t| t <= now) {
            lv.rtx_at = None;
            if let Some(holes) = data_hole(lv, &c.subs) {
                // The data level's own retransmission (RFC 8684 §3.3.6; Linux's MPTCPRetrans):
                // what no working subflow holds in flight, from the DATA_ACK on, sent again
                // through the scheduler. A peer that is gone answers with a reset, or the
                // subflows' retransmissions time out: either way the connection ends.
                for (a, z) in holes {
                    lv.push_reinject(a, z);
                }
                lv.rtx_backoff += 1;
                lv.rtx_una = lv.data_una;
                counters.mp_retrans += 1;
            }
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
}

/// Calls `f` on subflow `i`'s TCB with the hooks its MPTCP state plugs in (none for plain
/// TCP): the subflow state with the connection level.
pub(crate) fn with_hooks<R>(
    c: &mut Conn,
    i: usize,
    f: impl FnOnce(&mut Tcb, &mut dyn SubflowHooks) -> R,
) -> R {
    let s = &mut c.subs[i];
    match (s.mp.as_deref_mut(), c.level.as_deref_mut()) {
        (Some(mp), Some(lv)) => f(&mut s.tcb, &mut MpHooks { mp, lv }),
        _ => f(&mut s.tcb, &mut NoHooks),
    }
}

/// Shortest wait for the infinite mapping that answers our MP_FAIL (else 8 RTOs).
const FAIL_ANSWER_MIN_WAIT: Duration = Duration::from_secs(2);

/// The earliest timer of a connection: its subflows' and the connection level's.
pub(crate) fn conn_timeout(c: &Conn) -> Option<Instant> {
    let subs = c.subs.iter().filter_map(|t| t.next_timeout());
    let level = c
        .level
        .as_deref()
        .into_iter()
        .flat_map(|l| {
            [
                l.timer,
                l.rtx_at,
                l.fail_deadline,
                l.health_at,
                l.close_deadline,
            ]
        })
        .flatten();
    subs.chain(level).min()
}

/// Marks an MPTCP connection about to be aborted so that its RSTs carry MP_FASTCLOSE (RFC 8684
/// §3.5); returns how many RSTs will (0 for plain TCP, fallback, or before the peer's key).
pub(crate) fn fastclose(c: &mut Conn) -> u64 {
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

/// Most bytes one firing of the data-level retransmission timer sends again.
const DATA_RTX_MAX: u64 = 256 * 1024;

/// A subflow that still carries what it was given: open, not stale, not reinjected.
fn working(t: &Subflow) -> Option<&SubflowMp> {
    (t.state != TcpState::Closed)
        .then_some(t.mp.as_deref())
        .flatten()
        .filter(|m| !m.reinjected && !m.stale)
}

/// The oldest unacknowledged byte is in flight on no working subflow (the cheap test of every
/// pass; [`data_hole`] computes what to send when the timer fires).
fn data_una_orphaned(lv: &MpLevel, subs: &[Subflow]) -> bool {
    if lv.fallback
        || lv.data_una >= lv.data_nxt
        || !lv.reinject.is_empty()
        || subs.iter().all(|t| t.state == TcpState::Closed)
    {
        return false;
    }
    let u = lv.data_una;
    !subs.iter().any(|t| {
        let una = t.snd_una_offset();
        working(t).is_some_and(|mp| {
            mp.tx
                .iter()
                .any(|&(so, d, n)| d <= u && u < d + n && so + (u - d) >= una)
        })
    })
}

/// The data ranges from the DATA_ACK on (at most [`DATA_RTX_MAX`] bytes) that no working
/// subflow holds, when the oldest unacknowledged byte is one of them (so the first range
/// starts there): only the data level's retransmission can move them (the DATA_ACK was lost,
/// the peer dropped data above its subflows, or the subflow that carried them is stalled or
/// closed). None otherwise, or while a reinjection is queued.
fn data_hole(lv: &MpLevel, subs: &[Subflow]) -> Option<Vec<(u64, u64)>> {
    if !data_una_orphaned(lv, subs) {
        return None;
    }
    let end = lv.data_nxt.min(lv.data_una + DATA_RTX_MAX);
    // Data ranges a working subflow still holds (queued, or sent and not acknowledged there).
    let mut held: Vec<(u64, u64)> = Vec::new();
    for t in subs {
        let Some(mp) = working(t) else {
            continue;
        };
        let una = t.snd_una_offset();
        for &(so, d, n) in mp.tx.iter().filter(|m| m.0 + m.2 > una) {
            let (a, z) = (d + una.saturating_sub(so), d + n);
            if a < end && z > lv.data_una {
                held.push((a, z));
            }
        }
    }
    held.sort_unstable();
    let mut holes = Vec::new();
    let mut at = lv.data_una;
    for (a, z) in held {
        if a > at {
            holes.push((at, a.min(end)));
        }
        at = at.max(z);
        if at >= end {
            break;
        }
    }
    if at < end {
        holes.push((at, end));
    }
    Some(holes)
}

/// The data level's retransmission timeout: the longest of the working subflows' (at least
/// Linux's 200 ms floor).
fn data_rto(subs: &[Subflow]) -> Duration {
    subs.iter()
        .filter(|t| t.state != TcpState::Closed)
        .map(|t| t.base_rto())
        .max()
        .unwrap_or_default()
        .max(Duration::from_millis(200))
}
